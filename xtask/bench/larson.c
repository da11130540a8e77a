/*
 * larson.c - a server-like pattern where blocks are freed by other threads
 * than the ones that allocated them, as in the Larson benchmark.
 *
 * THREADS workers each own a table of blocks (16 to 512 bytes).  A worker
 * repeatedly frees a random block of its table and allocates a new one in its
 * place.  After each round the workers exit and new threads take over the
 * tables, each the table of a different worker than before (with one thread,
 * a new thread takes over the same table), so most blocks are freed by a
 * thread that did not allocate them, as when a server hands connections from
 * thread to thread.  The total work is fixed: with more threads, each does a
 * smaller share, so the time shows how the allocator scales.
 *
 * Arguments: threads=N (default 1), rounds=N (default 40), slots=N per
 * thread (default 2000), steps=N in total over all rounds and threads
 * (default 6000000).  Prints the steps done and a checksum.
 */
#include <pthread.h>

#include "driver.h"

struct block {
    uint64_t tag; /* first 8 bytes of every block: its tag */
};

struct table {
    struct block **p;
    uint32_t *n;
};

struct worker {
    pthread_t thread;
    struct table *table;
    long steps;
    uint64_t seed;
    unsigned long long sum;
};

static long slots_per_table;

static struct block *new_block(struct rng *rng, uint32_t *size)
{
    uint32_t n = (uint32_t)rng_range(rng, 16, 512);
    struct block *b = xmalloc(n);
    uint64_t tag = rng_next(rng);
    fill(b, n, tag);
    b->tag = tag;
    *size = n;
    return b;
}

static void check_block(struct block *b, uint32_t n)
{
    check_ends((unsigned char *)b + 8, n - 8, b->tag, "larson");
}

static void *work(void *arg)
{
    struct worker *w = arg;
    struct rng rng = {w->seed};
    struct table *t = w->table;
    for (long s = 0; s < w->steps; s++) {
        long i = (long)rng_below(&rng, (uint64_t)slots_per_table);
        check_block(t->p[i], t->n[i]);
        w->sum += t->n[i];
        free(t->p[i]);
        t->p[i] = new_block(&rng, &t->n[i]);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    check_args(argc, argv, "threads rounds slots steps");
    long threads = arg(argc, argv, "threads", 1);
    long rounds = arg(argc, argv, "rounds", 40);
    slots_per_table = arg(argc, argv, "slots", 2000);
    long steps = arg(argc, argv, "steps", 6000000);
    if (threads < 1 || rounds < 1 || slots_per_table < 1)
        die("threads, rounds and slots must be at least 1");
    struct rng rng = {5};
    struct table *tables = xmalloc((size_t)threads * sizeof *tables);
    for (long t = 0; t < threads; t++) {
        tables[t].p = xmalloc((size_t)slots_per_table * sizeof(struct block *));
        tables[t].n = xmalloc((size_t)slots_per_table * sizeof(uint32_t));
        for (long i = 0; i < slots_per_table; i++)
            tables[t].p[i] = new_block(&rng, &tables[t].n[i]);
    }
    struct worker *workers = xmalloc((size_t)threads * sizeof *workers);
    long per_worker = steps / rounds / threads;
    unsigned long long sum = 0;
    for (long r = 0; r < rounds; r++) {
        for (long t = 0; t < threads; t++) {
            workers[t] = (struct worker){
                .table = &tables[(t + r) % threads],
                .steps = per_worker,
                .seed = mix64((uint64_t)(r * threads + t)),
            };
            int e = pthread_create(&workers[t].thread, NULL, work, &workers[t]);
            if (e != 0)
                die("pthread_create: error %d", e);
        }
        for (long t = 0; t < threads; t++) {
            pthread_join(workers[t].thread, NULL);
            sum += workers[t].sum;
        }
    }
    for (long t = 0; t < threads; t++) {
        for (long i = 0; i < slots_per_table; i++) {
            check_block(tables[t].p[i], tables[t].n[i]);
            free(tables[t].p[i]);
        }
        free(tables[t].p);
        free(tables[t].n);
    }
    free(tables);
    free(workers);
    printf("larson: %ld steps, checksum %llu\n", per_worker * rounds * threads, sum);
    return 0;
}
