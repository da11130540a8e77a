/*
 * large.c - large blocks around the 128 KiB mmap threshold.
 *
 * A working set of blocks between 64 KiB and 320 KiB, replaced at random:
 * each step frees one block and allocates another, so requests fall on both
 * sides of the threshold where glibc switches from its heap to mmap (and
 * adjusts the threshold as it goes).  Every page of a new block is touched,
 * as a program that uses its buffer would; one step in four uses calloc,
 * whose block must read as zero before it is touched.
 *
 * Arguments: steps=N (default 100000), live=N (default 16).
 * Prints the bytes requested and a checksum.
 */
#include "driver.h"

struct slot {
    unsigned char *p;
    size_t n;
    uint64_t tag;
};

int main(int argc, char **argv)
{
    check_args(argc, argv, "steps live");
    long steps = arg(argc, argv, "steps", 100000);
    long live = arg(argc, argv, "live", 16);
    if (live < 1)
        die("live must be at least 1");
    struct rng rng = {2024};
    struct slot *slots = xmalloc((size_t)live * sizeof *slots);
    memset(slots, 0, (size_t)live * sizeof *slots);
    unsigned long long requested = 0, sum = 0;
    for (long s = 0; s < steps + live; s++) {
        struct slot *sl = s < live ? &slots[s] : &slots[rng_below(&rng, (uint64_t)live)];
        if (sl->p != NULL) {
            check_ends(sl->p, sl->n, sl->tag, "large");
            sum += sl->n;
            free(sl->p);
        }
        size_t n = (size_t)rng_range(&rng, 64 << 10, 320 << 10);
        unsigned char *p;
        if (rng_below(&rng, 4) == 0) {
            p = calloc(1, n);
            if (p == NULL)
                die("calloc(1, %zu) failed", n);
            if (p[0] != 0 || p[n / 2] != 0 || p[n - 1] != 0)
                die("calloc(1, %zu) returned memory that is not zero", n);
        } else {
            p = xmalloc(n);
        }
        touch_pages(p, n, (uint64_t)s);
        *sl = (struct slot){p, n, (uint64_t)s};
        requested += n;
    }
    for (long i = 0; i < live; i++)
        free(slots[i].p);
    free(slots);
    printf("large: %llu bytes requested, checksum %llu\n", requested, sum);
    return 0;
}
