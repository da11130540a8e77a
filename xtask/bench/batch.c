/*
 * batch.c - many small blocks allocated and then freed in large batches, as
 * in the sh6bench and sh8bench benchmarks: a batch far larger than any
 * thread cache, freed in LIFO, FIFO or random order.
 *
 * Each round, a thread allocates BATCH blocks of 1 to MAX bytes (sizes drawn
 * small-heavy: half the draws from 1 to 64 bytes), writes the first and last
 * byte of each, then checks and frees the whole batch in the round's order:
 * order=lifo (the last allocated first), fifo (the first allocated first),
 * random (a shuffle), or mixed (the three in turn, round by round).
 * With threads=2 the two threads allocate at once, then each frees the batch
 * the *other* thread allocated (as sh8bench frees across threads), so every
 * block is freed by a thread that did not allocate it.  The total number of
 * blocks is fixed and split among the threads.
 *
 * Arguments: threads=N (1 or 2, default 1), blocks=N in total (default
 * 6000000), batch=N (default 20000), max=N bytes (default 512),
 * order=lifo|fifo|random|mixed (default mixed).  Prints the blocks freed and
 * a checksum.
 */
#include <pthread.h>

#include "driver.h"

enum order { LIFO, FIFO, RANDOM, MIXED };

static long batch_len, max_size, threads;
static enum order order;
static pthread_barrier_t barrier;

struct worker {
    pthread_t thread;
    long rounds;
    uint64_t seed;
    unsigned char **blocks; /* this thread's current batch */
    uint32_t *sizes;
    uint32_t *perm;
    struct worker *peer; /* whose batch this thread frees */
    unsigned long long freed, sum;
};

static uint32_t draw_size(struct rng *rng)
{
    uint64_t r = rng_next(rng);
    uint64_t top = (r & 1) ? 64 : (uint64_t)max_size;
    return (uint32_t)(1 + ((r >> 1) % top));
}

static void free_batch(struct worker *w, struct worker *owner, enum order o)
{
    long n = batch_len;
    for (long k = 0; k < n; k++) {
        long i;
        if (o == LIFO) {
            i = n - 1 - k;
        } else if (o == FIFO) {
            i = k;
        } else {
            i = owner->perm[k];
        }
        unsigned char *b = owner->blocks[i];
        uint32_t size = owner->sizes[i];
        check_ends(b, size, size, "batch");
        w->sum += size;
        w->freed++;
        free(b);
    }
}

static void *work(void *arg)
{
    struct worker *w = arg;
    struct rng rng = {w->seed};
    for (long r = 0; r < w->rounds; r++) {
        for (long i = 0; i < batch_len; i++) {
            uint32_t size = draw_size(&rng);
            unsigned char *b = xmalloc(size);
            b[0] = b[size - 1] = pattern_byte(size);
            w->blocks[i] = b;
            w->sizes[i] = size;
        }
        enum order o = order == MIXED ? (enum order)(r % 3) : order;
        if (o == RANDOM) {
            for (long i = 0; i < batch_len; i++)
                w->perm[i] = (uint32_t)i;
            for (long i = batch_len - 1; i > 0; i--) {
                long j = (long)rng_below(&rng, (uint64_t)i + 1);
                uint32_t t = w->perm[i];
                w->perm[i] = w->perm[j];
                w->perm[j] = t;
            }
        }
        if (threads > 1)
            pthread_barrier_wait(&barrier);
        free_batch(w, w->peer, o);
        if (threads > 1)
            pthread_barrier_wait(&barrier);
    }
    return NULL;
}

/* The value of word argument NAME=WORD, one of `words` (separated by single
 * spaces), as its index; `fallback` when absent. */
static int word_arg(int argc, char **argv, const char *name, const char *words, int fallback)
{
    size_t len = strlen(name);
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], name, len) != 0 || argv[i][len] != '=')
            continue;
        const char *v = argv[i] + len + 1;
        const char *k = words;
        for (int index = 0; *k; index++) {
            const char *sp = strchr(k, ' ');
            size_t klen = sp ? (size_t)(sp - k) : strlen(k);
            if (klen == strlen(v) && strncmp(k, v, klen) == 0)
                return index;
            k += klen + (sp ? 1 : 0);
        }
        fprintf(stderr, "%s: %s must be one of: %s\n", argv[0], name, words);
        exit(2);
    }
    return fallback;
}

int main(int argc, char **argv)
{
    check_args(argc, argv, "threads blocks batch max order");
    threads = arg(argc, argv, "threads", 1);
    long blocks = arg(argc, argv, "blocks", 6000000);
    batch_len = arg(argc, argv, "batch", 20000);
    max_size = arg(argc, argv, "max", 512);
    order = (enum order)word_arg(argc, argv, "order", "lifo fifo random mixed", MIXED);
    if (threads < 1 || threads > 2 || batch_len < 1 || max_size < 1)
        die("threads must be 1 or 2, batch and max at least 1");
    if (threads > 1 && pthread_barrier_init(&barrier, NULL, (unsigned)threads) != 0)
        die("pthread_barrier_init failed");
    struct worker w[2];
    long rounds = blocks / batch_len / threads;
    for (long t = 0; t < threads; t++) {
        w[t] = (struct worker){
            .rounds = rounds,
            .seed = mix64((uint64_t)t + 11),
            .blocks = xmalloc((size_t)batch_len * sizeof(unsigned char *)),
            .sizes = xmalloc((size_t)batch_len * sizeof(uint32_t)),
            .perm = xmalloc((size_t)batch_len * sizeof(uint32_t)),
        };
    }
    for (long t = 0; t < threads; t++)
        w[t].peer = &w[(t + 1) % threads];
    for (long t = 0; t < threads; t++) {
        int e = pthread_create(&w[t].thread, NULL, work, &w[t]);
        if (e != 0)
            die("pthread_create: error %d", e);
    }
    unsigned long long freed = 0, sum = 0;
    for (long t = 0; t < threads; t++) {
        pthread_join(w[t].thread, NULL);
        freed += w[t].freed;
        sum += w[t].sum;
    }
    for (long t = 0; t < threads; t++) {
        free(w[t].blocks);
        free(w[t].sizes);
        free(w[t].perm);
    }
    printf("batch: %llu blocks freed, checksum %llu\n", freed, sum);
    return 0;
}
