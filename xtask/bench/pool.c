/*
 * pool.c - a pool of variable-size blocks recycled at random, as in the
 * rptest benchmark: each thread keeps SLOTS live blocks and replaces them in
 * runs, so that batches of frees and of allocations alternate, with sizes from
 * 16 bytes to 16 KiB drawn small-heavy (three draws in four below 256 bytes).
 *
 * A step picks a random slot and a run length from 1 to RUN; the run of slots
 * from there is checked and freed first, then allocated again with new sizes
 * (so up to RUN frees in a row, then as many allocations).  With threads=2
 * both threads work at once on pools of their own, and every EXCHANGE steps
 * both threads swap a run of RUN slots of their pools (at the same step, so
 * the run is the same whatever the timing), so part of the blocks are freed
 * by the other thread.
 * STEPS is about the number of blocks replaced in total: it sets the number of
 * runs, the same on each thread.
 *
 * Arguments: threads=N (1 or 2, default 1), steps=N (default
 * 4000000), slots=N per thread (default 8192), run=N (default 64),
 * exchange=N (default 64).  Prints the blocks replaced and a checksum.
 */
#include <pthread.h>

#include "driver.h"

static long slots, run_max, exchange_every, threads;
static struct worker *workers;

struct worker {
    pthread_t thread;
    long steps;
    uint64_t seed;
    unsigned char **p;
    uint32_t *n;
    unsigned long long replaced, sum;
};

/* The exchange: the run of blocks each thread hands to the other. */
static struct {
    unsigned char *p[256];
    uint32_t n[256];
} box[2];
static pthread_barrier_t barrier;

static uint32_t draw_size(struct rng *rng)
{
    uint64_t r = rng_below(rng, 100);
    if (r < 75)
        return (uint32_t)rng_range(rng, 16, 255);
    if (r < 97)
        return (uint32_t)rng_range(rng, 256, 2047);
    return (uint32_t)rng_range(rng, 2048, 16384);
}

static void put(struct worker *w, long i, struct rng *rng)
{
    uint32_t size = draw_size(rng);
    unsigned char *b = xmalloc(size);
    b[0] = b[size - 1] = pattern_byte(size);
    w->p[i] = b;
    w->n[i] = size;
}

static void drop(struct worker *w, long i)
{
    check_ends(w->p[i], w->n[i], w->n[i], "pool");
    w->sum += w->n[i];
    w->replaced++;
    free(w->p[i]);
}

/* Swaps the run of RUN slots at `start` with the run the other thread hands
 * over at the same time (both threads call this at the same step, so the
 * result does not depend on timing). */
static void swap(struct worker *w, long t, long start)
{
    for (long k = 0; k < run_max; k++) {
        long i = (start + k) % slots;
        box[t].p[k] = w->p[i];
        box[t].n[k] = w->n[i];
    }
    pthread_barrier_wait(&barrier);
    for (long k = 0; k < run_max; k++) {
        long i = (start + k) % slots;
        w->p[i] = box[1 - t].p[k];
        w->n[i] = box[1 - t].n[k];
    }
    pthread_barrier_wait(&barrier);
}

static void *work(void *arg)
{
    struct worker *w = arg;
    struct rng rng = {w->seed};
    for (long i = 0; i < slots; i++)
        put(w, i, &rng);
    /* the same number of runs on every thread, so the exchanges pair up */
    long runs = w->steps / ((run_max + 1) / 2 + 1) + 1;
    for (long s = 0; s < runs; s++) {
        long start = (long)rng_below(&rng, (uint64_t)slots);
        long len = (long)rng_range(&rng, 1, (uint64_t)run_max);
        if (threads > 1 && s % exchange_every == exchange_every - 1) {
            swap(w, w - workers, start);
            continue;
        }
        for (long k = 0; k < len; k++)
            drop(w, (start + k) % slots);
        for (long k = 0; k < len; k++)
            put(w, (start + k) % slots, &rng);
    }
    for (long i = 0; i < slots; i++)
        drop(w, i);
    return NULL;
}

int main(int argc, char **argv)
{
    check_args(argc, argv, "threads steps slots run exchange");
    threads = arg(argc, argv, "threads", 1);
    long steps = arg(argc, argv, "steps", 4000000);
    slots = arg(argc, argv, "slots", 8192);
    run_max = arg(argc, argv, "run", 64);
    exchange_every = arg(argc, argv, "exchange", 64);
    if (threads < 1 || threads > 2 || slots < 1 || run_max < 1 || run_max > 256 ||
        exchange_every < 1)
        die("threads must be 1 or 2, slots and exchange at least 1, run from 1 to 256");
    struct worker w[2];
    workers = w;
    if (threads > 1 && pthread_barrier_init(&barrier, NULL, (unsigned)threads) != 0)
        die("pthread_barrier_init failed");
    for (long t = 0; t < threads; t++) {
        w[t] = (struct worker){
            .steps = steps / threads,
            .seed = mix64((uint64_t)t + 23),
            .p = xmalloc((size_t)slots * sizeof(unsigned char *)),
            .n = xmalloc((size_t)slots * sizeof(uint32_t)),
        };
    }
    for (long t = 0; t < threads; t++) {
        int e = pthread_create(&w[t].thread, NULL, work, &w[t]);
        if (e != 0)
            die("pthread_create: error %d", e);
    }
    unsigned long long replaced = 0, sum = 0;
    for (long t = 0; t < threads; t++) {
        pthread_join(w[t].thread, NULL);
        replaced += w[t].replaced;
        sum += w[t].sum;
        free(w[t].p);
        free(w[t].n);
    }
    printf("pool: %llu blocks replaced, checksum %llu\n", replaced, sum);
    return 0;
}
