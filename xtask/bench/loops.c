/*
 * loops.c - the two loops of glibc's own malloc benchmarks, in our words.
 *
 * mode=simple (as bench-malloc-simple): for each block size of 16, 64, 256
 * and 1024 bytes and each count of 25, 100, 400 and 1600 blocks, allocate
 * that many blocks of that size, then free them all, over and over (the same
 * number of blocks for every pair).  One thread; LIFO-free batches of one
 * size, the pattern a thread cache of a few blocks per size does not cover
 * once the count passes it.
 *
 * mode=thread (as bench-malloc-thread): each of THREADS threads keeps a
 * working set of 400 slots and, step after step, frees the block of a random
 * slot and allocates one of a random size in its place, sizes from 8 bytes
 * to 32 KiB with odds inversely proportional to the size (most are small).
 *
 * Arguments: mode=simple|thread (default simple), threads=N (mode=thread,
 * default 1), blocks=N in total (default 40000000).  Prints the blocks freed
 * and a checksum.
 */
#include <pthread.h>

#include <math.h>

#include "driver.h"

#define SET 400

static const uint32_t simple_sizes[] = {16, 64, 256, 1024};
static const uint32_t simple_counts[] = {25, 100, 400, 1600};

static unsigned long long simple(long blocks)
{
    static void *p[1600];
    unsigned long long sum = 0;
    long per_pair = blocks / 16;
    for (int si = 0; si < 4; si++) {
        for (int ci = 0; ci < 4; ci++) {
            uint32_t size = simple_sizes[si], count = simple_counts[ci];
            for (long r = 0; r < per_pair / count; r++) {
                for (uint32_t i = 0; i < count; i++) {
                    unsigned char *b = xmalloc(size);
                    b[0] = b[size - 1] = pattern_byte(size);
                    p[i] = b;
                }
                for (uint32_t i = count; i-- > 0;) {
                    check_ends(p[i], size, size, "loops");
                    sum += size;
                    free(p[i]);
                }
            }
        }
    }
    return sum;
}

struct worker {
    pthread_t thread;
    long steps;
    uint64_t seed;
    unsigned long long sum;
};

/* A size from 8 to 32768 bytes with odds proportional to 1 / size. */
static uint32_t draw_size(struct rng *rng)
{
    /* 8 * 4096^u for u uniform in [0, 1): log-uniform, density ~ 1 / size */
    double u = rng_unit(rng);
    return (uint32_t)(8.0 * exp2(12.0 * u));
}

static void *thread_loop(void *arg)
{
    struct worker *w = arg;
    struct rng rng = {w->seed};
    unsigned char *p[SET];
    uint32_t n[SET];
    for (int i = 0; i < SET; i++) {
        n[i] = draw_size(&rng);
        p[i] = xmalloc(n[i]);
        p[i][0] = p[i][n[i] - 1] = pattern_byte(n[i]);
    }
    for (long s = 0; s < w->steps; s++) {
        long i = (long)rng_below(&rng, SET);
        check_ends(p[i], n[i], n[i], "loops");
        w->sum += n[i];
        free(p[i]);
        n[i] = draw_size(&rng);
        p[i] = xmalloc(n[i]);
        p[i][0] = p[i][n[i] - 1] = pattern_byte(n[i]);
    }
    for (int i = 0; i < SET; i++)
        free(p[i]);
    return NULL;
}

int main(int argc, char **argv)
{
    check_args(argc, argv, "mode threads blocks");
    long threads = arg(argc, argv, "threads", 1);
    long blocks = arg(argc, argv, "blocks", 40000000);
    const char *mode = "simple";
    for (int i = 1; i < argc; i++)
        if (strncmp(argv[i], "mode=", 5) == 0)
            mode = argv[i] + 5;
    if (threads < 1)
        die("threads must be at least 1");
    unsigned long long sum = 0;
    if (strcmp(mode, "simple") == 0) {
        sum = simple(blocks);
    } else if (strcmp(mode, "thread") == 0) {
        struct worker *w = xmalloc((size_t)threads * sizeof *w);
        for (long t = 0; t < threads; t++) {
            w[t] = (struct worker){.steps = blocks / threads, .seed = mix64((uint64_t)t + 31)};
            int e = pthread_create(&w[t].thread, NULL, thread_loop, &w[t]);
            if (e != 0)
                die("pthread_create: error %d", e);
        }
        for (long t = 0; t < threads; t++) {
            pthread_join(w[t].thread, NULL);
            sum += w[t].sum;
        }
        free(w);
    } else {
        fprintf(stderr, "%s: mode must be one of: simple thread\n", argv[0]);
        exit(2);
    }
    printf("loops: mode %s, checksum %llu\n", mode, sum);
    return 0;
}
