/*
 * xmalloc.c - producer and consumer threads, as in the xmalloc-test
 * benchmark: every block is allocated by one thread and freed by another.
 *
 * THREADS producers allocate blocks of 16 to 256 bytes, fill them, and push
 * them in batches of BATCH through one locked queue of bounded length;
 * THREADS consumers pop the batches, check every block and free it.  So
 * threads=1 runs one producer and one consumer (two threads), threads=2 four.
 * The total number of blocks is fixed and shared among the producers.
 *
 * Arguments: threads=N (default 1), blocks=N in total (default 3000000),
 * batch=N (default 256).  Prints the blocks passed and a checksum.
 */
#include <pthread.h>

#include "driver.h"

#define QUEUE_CAP 64

struct batch {
    uint32_t count;
    void *block[];
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t not_empty, not_full;
    struct batch *items[QUEUE_CAP];
    size_t head, len;
    long producers_left;
} queue = {
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .not_empty = PTHREAD_COND_INITIALIZER,
    .not_full = PTHREAD_COND_INITIALIZER,
};

static long batch_len;

static void push(struct batch *b)
{
    pthread_mutex_lock(&queue.mu);
    while (queue.len == QUEUE_CAP)
        pthread_cond_wait(&queue.not_full, &queue.mu);
    queue.items[(queue.head + queue.len) % QUEUE_CAP] = b;
    queue.len++;
    pthread_cond_signal(&queue.not_empty);
    pthread_mutex_unlock(&queue.mu);
}

/* The next batch, or NULL when every producer is done and the queue empty. */
static struct batch *pop(void)
{
    pthread_mutex_lock(&queue.mu);
    while (queue.len == 0 && queue.producers_left > 0)
        pthread_cond_wait(&queue.not_empty, &queue.mu);
    struct batch *b = NULL;
    if (queue.len > 0) {
        b = queue.items[queue.head];
        queue.head = (queue.head + 1) % QUEUE_CAP;
        queue.len--;
        pthread_cond_signal(&queue.not_full);
    }
    pthread_mutex_unlock(&queue.mu);
    return b;
}

struct producer {
    pthread_t thread;
    long blocks;
    uint64_t seed;
};

struct consumer {
    pthread_t thread;
    unsigned long long blocks, sum;
};

/* A block: its size in the first 4 bytes, then its pattern (tag = size). */
static void *produce(void *arg)
{
    struct producer *p = arg;
    struct rng rng = {p->seed};
    long left = p->blocks;
    while (left > 0) {
        uint32_t count = (uint32_t)(left < batch_len ? left : batch_len);
        struct batch *b = xmalloc(sizeof *b + count * sizeof(void *));
        b->count = count;
        for (uint32_t i = 0; i < count; i++) {
            uint32_t n = (uint32_t)rng_range(&rng, 16, 256);
            unsigned char *blk = xmalloc(n);
            fill(blk, n, n);
            memcpy(blk, &n, sizeof n);
            b->block[i] = blk;
        }
        left -= count;
        push(b);
    }
    pthread_mutex_lock(&queue.mu);
    queue.producers_left--;
    pthread_cond_broadcast(&queue.not_empty);
    pthread_mutex_unlock(&queue.mu);
    return NULL;
}

static void *consume(void *arg)
{
    struct consumer *c = arg;
    struct batch *b;
    while ((b = pop()) != NULL) {
        for (uint32_t i = 0; i < b->count; i++) {
            unsigned char *blk = b->block[i];
            uint32_t n;
            memcpy(&n, blk, sizeof n);
            check_ends(blk + sizeof n, n - sizeof n, n, "xmalloc");
            c->sum += n;
            c->blocks++;
            free(blk);
        }
        free(b);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    check_args(argc, argv, "threads blocks batch");
    long threads = arg(argc, argv, "threads", 1);
    long blocks = arg(argc, argv, "blocks", 3000000);
    batch_len = arg(argc, argv, "batch", 256);
    if (threads < 1 || batch_len < 1)
        die("threads and batch must be at least 1");
    struct producer *producers = xmalloc((size_t)threads * sizeof *producers);
    struct consumer *consumers = xmalloc((size_t)threads * sizeof *consumers);
    queue.producers_left = threads;
    for (long t = 0; t < threads; t++) {
        producers[t] = (struct producer){.blocks = blocks / threads, .seed = mix64((uint64_t)t)};
        consumers[t] = (struct consumer){0};
        int e = pthread_create(&consumers[t].thread, NULL, consume, &consumers[t]);
        if (e == 0)
            e = pthread_create(&producers[t].thread, NULL, produce, &producers[t]);
        if (e != 0)
            die("pthread_create: error %d", e);
    }
    unsigned long long passed = 0, sum = 0;
    for (long t = 0; t < threads; t++)
        pthread_join(producers[t].thread, NULL);
    for (long t = 0; t < threads; t++) {
        pthread_join(consumers[t].thread, NULL);
        passed += consumers[t].blocks;
        sum += consumers[t].sum;
    }
    free(producers);
    free(consumers);
    printf("xmalloc: %llu blocks passed, checksum %llu\n", passed, sum);
    return 0;
}
