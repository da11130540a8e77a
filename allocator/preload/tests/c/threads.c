/*
 * threads.c - several threads allocate, fill, check and free blocks at the
 * same time, and hand some blocks to another thread that checks and frees
 * them.
 *
 * Each thread keeps a table of live blocks and, per step, either allocates
 * into an empty slot (malloc, calloc, posix_memalign or aligned_alloc, 1 B to
 * 300 KiB so both the brk-backed heap and the mmap path are used), or, for a
 * full slot, frees it, reallocs it (growing, shrinking or crossing the mmap
 * threshold) or passes it through a locked queue to another thread.  Every
 * block carries a pattern derived from its address and owner and is checked
 * before it is freed or moved; calloc memory must be zero, every pointer
 * 16-byte aligned, posix_memalign/aligned_alloc pointers aligned as asked.
 *
 * Prints one summary line and exits 0 on success; exits 1 with a message on
 * the first mismatch.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "block.h"

#define THREADS 4
#define SLOTS 384
#define STEPS 80000
#define QUEUE_CAP 256

struct block {
    unsigned char *p;
    size_t n;
    uint64_t seed;
    int owner; /* thread that allocated (or last realloc'ed) it */
};

struct queue {
    pthread_mutex_t mu;
    struct block items[QUEUE_CAP];
    size_t head, len;
};

struct counts {
    unsigned long mallocs, callocs, aligned, reallocs, frees, handed, received_foreign, large;
};

static struct queue queues[THREADS];
static struct counts counts[THREADS];

static int queue_push(int to, struct block b)
{
    struct queue *q = &queues[to];
    int ok = 0;
    pthread_mutex_lock(&q->mu);
    if (q->len < QUEUE_CAP) {
        q->items[(q->head + q->len) % QUEUE_CAP] = b;
        q->len++;
        ok = 1;
    }
    pthread_mutex_unlock(&q->mu);
    return ok;
}

static int queue_pop(int from, struct block *b)
{
    struct queue *q = &queues[from];
    int ok = 0;
    pthread_mutex_lock(&q->mu);
    if (q->len > 0) {
        *b = q->items[q->head];
        q->head = (q->head + 1) % QUEUE_CAP;
        q->len--;
        ok = 1;
    }
    pthread_mutex_unlock(&q->mu);
    return ok;
}

static size_t pick_size(struct rng *r)
{
    unsigned k = (unsigned)(rng_next(r) % 1000);
    if (k < 50)
        return rng_range(r, 1, 16);
    if (k < 750)
        return rng_range(r, 17, 1024);
    if (k < 930)
        return rng_range(r, 1025, 32 * 1024);
    if (k < 980)
        return rng_range(r, 32 * 1024 + 1, 128 * 1024 - 1);
    return rng_range(r, 128 * 1024, 300 * 1024);
}

static void check_and_free(struct block *b, int self, const char *how)
{
    char what[64];
    snprintf(what, sizeof what, "thread %d, %s", self, how);
    pattern_verify(b->p, b->n, b->seed, what);
    free(b->p);
    counts[self].frees++;
    b->p = NULL;
}

static void allocate(struct block *b, struct rng *r, int self)
{
    size_t n = pick_size(r);
    unsigned how = (unsigned)(rng_next(r) % 10);
    void *p = NULL;
    size_t align = 16;
    if (how < 6) {
        p = malloc(n);
        counts[self].mallocs++;
    } else if (how < 8) {
        size_t count = rng_range(r, 1, 8);
        size_t each = n / count + 1;
        n = count * each;
        p = calloc(count, each);
        counts[self].callocs++;
        if (p) {
            size_t nz = first_nonzero(p, n);
            if (nz != n)
                fail("thread %d: calloc(%zu, %zu) = %p has non-zero byte at %zu", self,
                     count, each, p, nz);
        }
    } else {
        static const size_t aligns[] = {8, 16, 32, 64, 128, 256, 4096, 16384};
        align = aligns[rng_next(r) % (sizeof aligns / sizeof aligns[0])];
        if (how == 8) {
            int err = posix_memalign(&p, align, n);
            if (err)
                fail("thread %d: posix_memalign(%zu, %zu) failed: %s", self, align, n,
                     strerror(err));
        } else {
            p = aligned_alloc(align, n);
        }
        counts[self].aligned++;
        if (p && !is_aligned(p, align))
            fail("thread %d: %s(%zu, %zu) = %p is not aligned", self,
                 how == 8 ? "posix_memalign" : "aligned_alloc", align, n, p);
    }
    if (!p)
        fail("thread %d: allocation of %zu bytes failed: %s", self, n, strerror(errno));
    if (!is_aligned(p, 16))
        fail("thread %d: %p (%zu bytes) is not 16-byte aligned", self, p, n);
    if (n >= 128 * 1024)
        counts[self].large++;
    b->p = p;
    b->n = n;
    b->owner = self;
    b->seed = block_seed(p, (uint64_t)self);
    pattern_fill(p, n, b->seed);
}

static void reallocate(struct block *b, struct rng *r, int self)
{
    size_t n;
    switch (rng_next(r) % 4) {
    case 0:
        n = b->n + rng_range(r, 1, 64); /* a little larger: in place if possible */
        break;
    case 1:
        n = b->n / 2 + 1; /* shrink */
        break;
    default:
        n = pick_size(r);
        break;
    }
    char what[64];
    snprintf(what, sizeof what, "thread %d, before realloc", self);
    pattern_verify(b->p, b->n, b->seed, what);
    void *p = realloc(b->p, n);
    counts[self].reallocs++;
    if (!p)
        fail("thread %d: realloc(%p, %zu) failed: %s", self, (void *)b->p, n, strerror(errno));
    if (!is_aligned(p, 16))
        fail("thread %d: realloc returned %p, not 16-byte aligned", self, p);
    size_t kept = n < b->n ? n : b->n;
    size_t bad = pattern_check(p, kept, b->seed);
    if (bad != kept)
        fail("thread %d: realloc(%p, %zu -> %zu) = %p lost contents at offset %zu", self,
             (void *)b->p, b->n, n, p, bad);
    if (n >= 128 * 1024)
        counts[self].large++;
    b->p = p;
    b->n = n;
    b->owner = self;
    b->seed = block_seed(p, (uint64_t)self);
    pattern_fill(p, n, b->seed);
}

static void receive(int self, int max)
{
    struct block b;
    for (int i = 0; i < max && queue_pop(self, &b); i++) {
        if (b.owner != self)
            counts[self].received_foreign++;
        check_and_free(&b, self, "block received from another thread");
    }
}

static void *worker(void *arg)
{
    int self = (int)(intptr_t)arg;
    struct rng r = {.state = 0x1234567ull * (uint64_t)(self + 1)};
    static __thread struct block slots[SLOTS];

    for (int step = 0; step < STEPS; step++) {
        struct block *b = &slots[rng_next(&r) % SLOTS];
        if (!b->p) {
            allocate(b, &r, self);
        } else {
            unsigned what = (unsigned)(rng_next(&r) % 10);
            if (what < 5) {
                check_and_free(b, self, "own block");
            } else if (what < 8) {
                reallocate(b, &r, self);
            } else {
                int to = (self + 1 + (int)(rng_next(&r) % (THREADS - 1))) % THREADS;
                pattern_verify(b->p, b->n, b->seed, "block before handing over");
                if (queue_push(to, *b)) {
                    counts[self].handed++;
                    b->p = NULL;
                } else {
                    check_and_free(b, self, "own block (queue full)");
                }
            }
        }
        receive(self, 2);
    }
    for (int i = 0; i < SLOTS; i++)
        if (slots[i].p)
            check_and_free(&slots[i], self, "own block at exit");
    receive(self, QUEUE_CAP);
    return NULL;
}

int main(void)
{
    pthread_t tids[THREADS];
    for (int i = 0; i < THREADS; i++)
        pthread_mutex_init(&queues[i].mu, NULL);
    for (int i = 0; i < THREADS; i++) {
        int err = pthread_create(&tids[i], NULL, worker, (void *)(intptr_t)i);
        if (err)
            fail("threads: pthread_create: %s", strerror(err));
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(tids[i], NULL);

    /* Blocks still queued after their receiver finished: free them here, on
     * a thread that allocated none of them. */
    unsigned long leftovers = 0;
    for (int i = 0; i < THREADS; i++) {
        struct block b;
        while (queue_pop(i, &b)) {
            pattern_verify(b.p, b.n, b.seed, "queued block freed by main");
            free(b.p);
            leftovers++;
        }
    }

    struct counts t = {0};
    for (int i = 0; i < THREADS; i++) {
        t.mallocs += counts[i].mallocs;
        t.callocs += counts[i].callocs;
        t.aligned += counts[i].aligned;
        t.reallocs += counts[i].reallocs;
        t.frees += counts[i].frees;
        t.handed += counts[i].handed;
        t.received_foreign += counts[i].received_foreign;
        t.large += counts[i].large;
    }
    if (t.received_foreign + leftovers == 0)
        fail("threads: no block was freed by another thread than its owner");
    if (t.large == 0)
        fail("threads: no block reached the mmap threshold");
    printf("threads: %d threads ok: %lu malloc, %lu calloc, %lu aligned, %lu realloc, "
           "%lu free, %lu freed by another thread, %lu of >= 128 KiB\n",
           THREADS, t.mallocs, t.callocs, t.aligned, t.reallocs, t.frees + leftovers,
           t.received_foreign + leftovers, t.large);
    return 0;
}
