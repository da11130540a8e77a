/*
 * fork_stdio.c - fork while other threads hold stdio locks and call malloc,
 * the situation of glibc bug 19431 (glibc's own test of it is
 * malloc/tst-malloc-fork-deadlock.c; this program is written afresh).
 *
 * Threads of the parent, all looping until told to stop:
 *   - "lockers" each lock a FILE with flockfile, malloc and free inside the
 *     lock (as printf does when it grows a buffer), and unlock it;
 *   - a "flusher" calls fflush(NULL), which takes glibc's stdio list lock
 *     and then the lock of every FILE;
 *   - an "opener" fopens and fcloses /dev/null (list lock and malloc).
 * The main thread forks FORKS times; each child mallocs, writes through a
 * FILE, frees and exits 0.  If fork took the allocator's lock before the
 * stdio list lock, a locker (FILE lock held, waiting in malloc), the flusher
 * (list lock held, waiting for that FILE) and the forking thread (allocator
 * lock held, waiting for the list lock) would wait for each other forever.
 *
 * alarm() turns a hang into a failure (exit 3); the test script also runs it
 * under timeout.  Prints one summary line and exits 0.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>

#include "block.h"

#define LOCKERS 3
#define FORKS 200

static atomic_int stop;
static atomic_ulong locked_mallocs;
static FILE *files[LOCKERS];

static void pause_briefly(void)
{
    struct timespec ts = {0, 20000};
    nanosleep(&ts, NULL);
}

static void *locker(void *arg)
{
    FILE *f = files[(intptr_t)arg];
    struct rng r = {.state = 7 + (uint64_t)(intptr_t)arg};
    while (!atomic_load(&stop)) {
        flockfile(f);
        for (int i = 0; i < 8; i++) {
            size_t n = rng_range(&r, 1, i == 0 ? 200000 : 2000);
            void *p = malloc(n);
            if (!p)
                fail("fork_stdio: malloc(%zu) failed", n);
            memset(p, 0x5a, n < 64 ? n : 64);
            free(p);
        }
        fputc('x', f);
        funlockfile(f);
        atomic_fetch_add(&locked_mallocs, 8);
        /* glibc's FILE locks are not fair: without a pause a locker would
         * take its lock again at once and starve the flusher (and so fork,
         * which waits for the list lock the flusher holds) */
        pause_briefly();
    }
    return NULL;
}

static void *flusher(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop)) {
        fflush(NULL);
        pause_briefly();
    }
    return NULL;
}

static void *opener(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop)) {
        FILE *f = fopen("/dev/null", "w");
        if (!f)
            fail("fork_stdio: fopen(/dev/null): %s", strerror(errno));
        fprintf(f, "%d\n", 42);
        fclose(f);
        pause_briefly();
    }
    return NULL;
}

int main(void)
{
    watchdog(60, "fork_stdio: timed out (deadlock between fork, stdio and malloc?)\n");
    for (int i = 0; i < LOCKERS; i++) {
        files[i] = fopen("/dev/null", "w");
        if (!files[i])
            fail("fork_stdio: fopen(/dev/null): %s", strerror(errno));
    }
    pthread_t t[LOCKERS + 2];
    for (int i = 0; i < LOCKERS; i++)
        if (pthread_create(&t[i], NULL, locker, (void *)(intptr_t)i))
            fail("fork_stdio: pthread_create failed");
    if (pthread_create(&t[LOCKERS], NULL, flusher, NULL) ||
        pthread_create(&t[LOCKERS + 1], NULL, opener, NULL))
        fail("fork_stdio: pthread_create failed");

    for (int i = 0; i < FORKS; i++) {
        pid_t pid = fork();
        if (pid < 0)
            fail("fork_stdio: fork: %s", strerror(errno));
        if (pid == 0) {
            alarm(10);
            for (int k = 0; k < 100; k++) {
                void *p = malloc((size_t)(k * 37 + 1));
                if (!p)
                    _exit(4);
                free(p);
            }
            fprintf(files[0], "child %d\n", i);
            fflush(files[0]);
            _exit(0);
        }
        int status;
        while (waitpid(pid, &status, 0) < 0)
            if (errno != EINTR)
                fail("fork_stdio: waitpid: %s", strerror(errno));
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            fail("fork_stdio: child %d ended with status 0x%x", i, status);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < LOCKERS + 2; i++)
        pthread_join(t[i], NULL);
    printf("fork_stdio: %d children exited 0 while %d threads called malloc under FILE locks "
           "(%lu calls) beside fflush(NULL) and fopen\n",
           FORKS, LOCKERS, atomic_load(&locked_mallocs));
    return 0;
}
