/*
 * realloc.c - buffers that grow by realloc, as strings and vectors do while a
 * program builds them.
 *
 * A set of buffers is grown in turns: each turn appends 1 to 200 bytes to
 * one buffer.  Three buffers in four are strings, grown by a realloc to the
 * exact new length each time (as a naive string builder does); the others
 * are vectors, whose capacity doubles when full.  A
 * buffer that reaches its target length, drawn log-uniformly between 64 B and
 * 512 KiB so that growth crosses the 128 KiB mmap threshold, is checked,
 * freed, and started again from nothing.
 *
 * Arguments: steps=N (default 1500000), buffers=N (default 32).
 * Prints the number of reallocs and completed buffers and a checksum.
 */
#include <math.h>

#include "driver.h"

struct buffer {
    unsigned char *p;
    size_t len, cap, target;
    uint64_t tag;
    int doubling;
};

static size_t draw_target(struct rng *rng)
{
    return (size_t)(64.0 * pow(8192.0, rng_unit(rng)));
}

int main(int argc, char **argv)
{
    check_args(argc, argv, "steps buffers");
    long steps = arg(argc, argv, "steps", 1500000);
    long count = arg(argc, argv, "buffers", 32);
    if (count < 1)
        die("buffers must be at least 1");
    struct rng rng = {99};
    struct buffer *bufs = xmalloc((size_t)count * sizeof *bufs);
    for (long i = 0; i < count; i++)
        bufs[i] = (struct buffer){NULL, 0, 0, draw_target(&rng), (uint64_t)i, i % 4 == 3};
    unsigned long long reallocs = 0, done = 0, sum = 0;
    for (long s = 0; s < steps; s++) {
        struct buffer *b = &bufs[rng_below(&rng, (uint64_t)count)];
        size_t add = 1 + rng_below(&rng, 200);
        size_t want = b->len + add;
        if (want > b->cap) {
            size_t cap = want;
            if (b->doubling && b->cap * 2 > want)
                cap = b->cap * 2;
            unsigned char *p = realloc(b->p, cap);
            if (p == NULL)
                die("realloc(%zu) failed", cap);
            reallocs++;
            if (b->len > 0 && (p[0] != pattern_byte(b->tag) || p[b->len - 1] != pattern_byte(b->tag)))
                die("realloc lost the contents of a %zu-byte buffer", b->len);
            b->p = p;
            b->cap = cap;
        }
        memset(b->p + b->len, pattern_byte(b->tag), add);
        b->len = want;
        if (b->len >= b->target) {
            check_ends(b->p, b->len, b->tag, "realloc");
            sum += b->len;
            done++;
            free(b->p);
            b->p = NULL;
            b->len = b->cap = 0;
            b->target = draw_target(&rng);
            b->tag = (uint64_t)s + (uint64_t)count;
        }
    }
    for (long i = 0; i < count; i++)
        free(bufs[i].p);
    free(bufs);
    printf("realloc: %llu reallocs, %llu buffers completed, checksum %llu\n", reallocs, done, sum);
    return 0;
}
