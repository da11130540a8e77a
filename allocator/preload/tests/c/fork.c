/*
 * fork.c - a parent whose other threads are busy allocating forks again and
 * again; every child must be able to allocate at once.
 *
 * Three parent threads loop on malloc/calloc/realloc/free of mixed sizes
 * (so a fork often lands while one of them is inside the allocator).  The
 * main thread forks N times (40 by default).  Each child allocates, checks and frees
 * a few thousand blocks, runs two threads that do the same, forks a
 * grandchild that allocates too, and exits 0.  The parent checks that every
 * child exited 0.  alarm() turns a deadlock into a failure: the parent gives
 * up after 90 s, a child or grandchild after 20 s.
 *
 *   fork             40 children as above
 *   fork N light     N children that each allocate, check and free a few
 *                    hundred blocks and exit (no threads, no grandchild)
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/wait.h>

#include "block.h"

#define BUSY_THREADS 3
#define MAX_CHILDREN 10000
#define IN_FLIGHT 3

static atomic_int stop;
static atomic_ulong busy_ops;

static const char timed_out[] = "fork: timed out (deadlock in a child or the parent?)\n";

static size_t pick_size(struct rng *r)
{
    unsigned k = (unsigned)(rng_next(r) % 100);
    if (k < 80)
        return rng_range(r, 1, 512);
    if (k < 97)
        return rng_range(r, 513, 64 * 1024);
    return rng_range(r, 128 * 1024, 256 * 1024);
}

/* Allocate into a table of live blocks, check, realloc and free; return with
 * every block freed. */
static void workload(uint64_t seed, int steps, const char *who)
{
    enum { LIVE = 64 };
    struct {
        unsigned char *p;
        size_t n;
        uint64_t seed;
    } live[LIVE] = {{0}};
    struct rng r = {.state = seed};
    for (int i = 0; i < steps; i++) {
        int s = (int)(rng_next(&r) % LIVE);
        if (!live[s].p) {
            size_t n = pick_size(&r);
            void *p;
            if (rng_next(&r) & 1) {
                p = malloc(n);
            } else {
                p = calloc(1, n);
                if (p && first_nonzero(p, n) != n)
                    fail("%s: calloc(1, %zu) = %p is not zeroed", who, n, p);
            }
            if (!p)
                fail("%s: allocation of %zu bytes failed: %s", who, n, strerror(errno));
            live[s].p = p;
            live[s].n = n;
            live[s].seed = block_seed(p, seed);
            pattern_fill(p, n, live[s].seed);
        } else if (rng_next(&r) % 4 == 0) {
            pattern_verify(live[s].p, live[s].n, live[s].seed, who);
            size_t n = pick_size(&r);
            void *p = realloc(live[s].p, n);
            if (!p)
                fail("%s: realloc to %zu bytes failed: %s", who, n, strerror(errno));
            size_t kept = n < live[s].n ? n : live[s].n;
            pattern_verify(p, kept, live[s].seed, who);
            live[s].p = p;
            live[s].n = n;
            live[s].seed = block_seed(p, seed);
            pattern_fill(p, n, live[s].seed);
        } else {
            pattern_verify(live[s].p, live[s].n, live[s].seed, who);
            free(live[s].p);
            live[s].p = NULL;
        }
    }
    for (int s = 0; s < LIVE; s++)
        if (live[s].p) {
            pattern_verify(live[s].p, live[s].n, live[s].seed, who);
            free(live[s].p);
        }
}

static void *busy(void *arg)
{
    uint64_t seed = 1000 + (uint64_t)(intptr_t)arg;
    while (!atomic_load(&stop)) {
        workload(seed++, 500, "parent thread");
        atomic_fetch_add(&busy_ops, 500);
    }
    return NULL;
}

static void *child_thread(void *arg)
{
    workload((uint64_t)(intptr_t)arg, 2000, "child thread");
    return NULL;
}

static int wait_ok(pid_t pid, const char *who)
{
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            fail("fork: waitpid(%s %d): %s", who, (int)pid, strerror(errno));
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 1;
    if (WIFEXITED(status))
        fprintf(stderr, "fork: %s %d exited with status %d\n", who, (int)pid,
                WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        fprintf(stderr, "fork: %s %d killed by signal %d (%s)\n", who, (int)pid,
                WTERMSIG(status), strsignal(WTERMSIG(status)));
    return 0;
}

static void light_child(int index)
{
    watchdog(20, timed_out);
    workload(50000 + (uint64_t)index, 300, "child");
    exit(0);
}

static void child(int index)
{
    watchdog(20, timed_out);
    workload(50000 + (uint64_t)index, 3000, "child");
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        if (pthread_create(&t[i], NULL, child_thread, (void *)(intptr_t)(60000 + index * 2 + i)))
            fail("fork: child %d: pthread_create failed", index);
    /* Fork again while the child's own threads allocate. */
    pid_t g = fork();
    if (g < 0)
        fail("fork: child %d: fork: %s", index, strerror(errno));
    if (g == 0) {
        watchdog(20, timed_out);
        workload(70000 + (uint64_t)index, 2000, "grandchild");
        exit(0);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    exit(wait_ok(g, "grandchild") ? 0 : 1);
}

int main(int argc, char **argv)
{
    int children = argc > 1 ? atoi(argv[1]) : 40;
    int light = argc > 2 && !strcmp(argv[2], "light");
    if (children < IN_FLIGHT || children > MAX_CHILDREN)
        fail("usage: fork [N [light]] with %d <= N <= %d", IN_FLIGHT, MAX_CHILDREN);
    watchdog(90, timed_out);
    pthread_t t[BUSY_THREADS];
    for (int i = 0; i < BUSY_THREADS; i++)
        if (pthread_create(&t[i], NULL, busy, (void *)(intptr_t)i))
            fail("fork: pthread_create failed");

    static pid_t pids[MAX_CHILDREN];
    int failed = 0;
    struct rng r = {.state = 42};
    for (int i = 0; i < children; i++) {
        workload(90000 + (uint64_t)i, (int)rng_range(&r, 10, light ? 30 : 300), "parent");
        fflush(stdout);
        pids[i] = fork();
        if (pids[i] < 0)
            fail("fork: fork: %s", strerror(errno));
        if (pids[i] == 0) {
            if (light)
                light_child(i);
            child(i);
        }
        if (i >= IN_FLIGHT - 1)
            failed += !wait_ok(pids[i - (IN_FLIGHT - 1)], "child");
    }
    for (int i = children - (IN_FLIGHT - 1); i < children; i++)
        failed += !wait_ok(pids[i], "child");

    atomic_store(&stop, 1);
    for (int i = 0; i < BUSY_THREADS; i++)
        pthread_join(t[i], NULL);
    if (failed)
        fail("fork: %d of %d children failed", failed, children);
    printf("fork: %d children (%s) exited 0 while %d parent threads did %lu allocation steps\n",
           children, light ? "each allocating once" : "each with 2 threads and a grandchild",
           BUSY_THREADS, atomic_load(&busy_ops));
    return 0;
}
