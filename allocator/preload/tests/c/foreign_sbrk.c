/*
 * foreign_sbrk.c - the program moves the break itself between allocations,
 * on the same thread, so the allocator's next heap growth cannot assume the
 * break is where it left it.
 *
 * Each round: malloc small and medium blocks (brk-served), sbrk(4096) and
 * sbrk(12345) (the second leaves the break unaligned), malloc more small,
 * medium and large (mmap-served) blocks, then check that no block overlaps
 * any region the program took with sbrk, that every block and every region
 * still holds its pattern, free everything in a scrambled order, and check the
 * regions again (a trim must never hand back memory below a break someone
 * else moved).  Exits 0 with a summary line.
 */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "block.h"

#define ROUNDS 40
#define BEFORE 24
#define AFTER 24
#define LARGE 3
#define MAX_BLOCKS (BEFORE + AFTER + LARGE)

struct region {
    unsigned char *p;
    size_t n;
    uint64_t seed;
};

static struct region regions[ROUNDS * 2];
static size_t nregions;

static void take_from_break(size_t n)
{
    void *p = sbrk((intptr_t)n);
    if (p == (void *)-1)
        fail("foreign_sbrk: sbrk(%zu) failed: %s", n, strerror(errno));
    struct region *r = &regions[nregions++];
    r->p = p;
    r->n = n;
    r->seed = block_seed(p, 0xF0F0);
    pattern_fill(p, n, r->seed);
}

static void check_regions(const char *when)
{
    for (size_t i = 0; i < nregions; i++)
        pattern_verify(regions[i].p, regions[i].n, regions[i].seed, when);
}

int main(void)
{
    struct rng r = {.state = 7};
    struct {
        unsigned char *p;
        size_t n;
        uint64_t seed;
    } b[MAX_BLOCKS];
    size_t total = 0, large = 0;

    for (int round = 0; round < ROUNDS; round++) {
        size_t nb = 0;
        for (int i = 0; i < BEFORE; i++)
            b[nb++].n = i % 6 == 0 ? rng_range(&r, 4096, 60000) : rng_range(&r, 1, 2000);
        size_t first_after = nb;
        for (int i = 0; i < AFTER; i++)
            b[nb++].n = i % 6 == 0 ? rng_range(&r, 4096, 60000) : rng_range(&r, 1, 2000);
        for (int i = 0; i < LARGE; i++)
            b[nb++].n = rng_range(&r, 130 * 1024, 400 * 1024);

        for (size_t i = 0; i < nb; i++) {
            if (i == first_after) {
                take_from_break(4096);
                take_from_break(12345);
            }
            b[i].p = malloc(b[i].n);
            if (!b[i].p)
                fail("foreign_sbrk: malloc(%zu) failed: %s", b[i].n, strerror(errno));
            if (!is_aligned(b[i].p, 16))
                fail("foreign_sbrk: malloc(%zu) = %p is not 16-byte aligned", b[i].n,
                     (void *)b[i].p);
            b[i].seed = block_seed(b[i].p, (uint64_t)round);
            pattern_fill(b[i].p, b[i].n, b[i].seed);
        }
        total += nb;
        large += LARGE;

        for (size_t i = 0; i < nb; i++)
            for (size_t k = 0; k < nregions; k++)
                if (b[i].p < regions[k].p + regions[k].n && regions[k].p < b[i].p + b[i].n)
                    fail("foreign_sbrk: round %d: malloc(%zu) = %p overlaps sbrk region "
                         "%p+%zu",
                         round, b[i].n, (void *)b[i].p, (void *)regions[k].p, regions[k].n);
        for (size_t i = 0; i < nb; i++)
            pattern_verify(b[i].p, b[i].n, b[i].seed, "foreign_sbrk: block");
        check_regions("foreign_sbrk: sbrk region before free");

        /* scrambled free order */
        for (size_t i = nb; i > 1; i--) {
            size_t j = (size_t)(rng_next(&r) % i);
            __typeof__(b[0]) t = b[i - 1];
            b[i - 1] = b[j];
            b[j] = t;
        }
        for (size_t i = 0; i < nb; i++) {
            pattern_verify(b[i].p, b[i].n, b[i].seed, "foreign_sbrk: block before free");
            free(b[i].p);
        }
        check_regions("foreign_sbrk: sbrk region after free");
    }
    printf("foreign_sbrk: %d rounds ok: %zu blocks (%zu of >= 128 KiB) around %zu regions "
           "taken with sbrk\n",
           ROUNDS, total, large, nregions);
    return 0;
}
