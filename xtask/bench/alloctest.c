/*
 * alloctest.c - sizes from a heavy-tailed distribution up to 1 KiB, as in
 * the alloc-test benchmark: a working set of blocks where each step frees a
 * random block and allocates a new one in its place.
 *
 * Sizes follow a truncated Pareto law (alpha = 1) on [16, 1024] with a
 * little jitter, so most requests are a few tens of bytes and a long tail
 * reaches 1 KiB.  Every block is filled with its pattern; the ends are
 * checked before it is freed.
 *
 * Arguments: steps=N (default 8000000), live=N (default 20000).
 * Prints the bytes requested and a checksum.
 */
#include "driver.h"

struct slot {
    unsigned char *p;
    size_t n;
    uint64_t tag;
};

/* Truncated Pareto on [16, 1024], minus 0..15 bytes of jitter. */
static size_t heavy_tailed_size(struct rng *rng)
{
    const double lo = 16.0, hi = 1024.0;
    double u = rng_unit(rng);
    double s = lo / (1.0 - u * (1.0 - lo / hi));
    size_t n = (size_t)s;
    if (n > 1024)
        n = 1024;
    return n - rng_below(rng, 16);
}

int main(int argc, char **argv)
{
    check_args(argc, argv, "steps live");
    long steps = arg(argc, argv, "steps", 8000000);
    long live = arg(argc, argv, "live", 20000);
    if (live < 1)
        die("live must be at least 1");
    struct rng rng = {7};
    struct slot *slots = xmalloc((size_t)live * sizeof *slots);
    unsigned long long requested = 0, sum = 0;
    for (long i = 0; i < live; i++) {
        size_t n = heavy_tailed_size(&rng);
        slots[i] = (struct slot){xmalloc(n), n, (uint64_t)i};
        fill(slots[i].p, n, slots[i].tag);
        requested += n;
    }
    for (long s = 0; s < steps; s++) {
        struct slot *sl = &slots[rng_below(&rng, (uint64_t)live)];
        check_ends(sl->p, sl->n, sl->tag, "alloctest");
        sum += sl->p[sl->n / 2];
        free(sl->p);
        size_t n = heavy_tailed_size(&rng);
        sl->p = xmalloc(n);
        sl->n = n;
        sl->tag = (uint64_t)s;
        fill(sl->p, n, sl->tag);
        requested += n;
    }
    for (long i = 0; i < live; i++) {
        check_ends(slots[i].p, slots[i].n, slots[i].tag, "alloctest");
        free(slots[i].p);
    }
    free(slots);
    printf("alloctest: %llu bytes requested, checksum %llu\n", requested, sum);
    return 0;
}
