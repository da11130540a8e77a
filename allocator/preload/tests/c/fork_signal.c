/*
 * fork_signal.c - a signal handler forks while its thread is inside malloc
 * (the situation of glibc's malloc/tst-mallocfork2.c; written afresh).
 *
 * A sender process sends SIGUSR1 to this process as fast as it can; the main
 * thread loops on malloc, realloc and free of small, medium and large blocks
 * (so the signal often lands while the allocator holds its lock), and the
 * SIGUSR1 handler calls fork().  In the child the handler returns, so the
 * interrupted call resumes and finishes; the child then allocates, checks
 * and frees a few hundred blocks of every size and exits 0: the heap it
 * inherited must be consistent and its locks free once that call finished.
 * The parent reaps its children as it goes and stops after FORKS forks.
 *
 *   fork_signal           single-threaded process
 *   fork_signal threads   the same with a second thread allocating too (the
 *                         signal is blocked there, so it lands in main)
 *
 * alarm() turns a hang into a failure (exit 3); prints one summary line and
 * exits 0.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/wait.h>

#include "block.h"

#define FORKS 300

static volatile sig_atomic_t in_child;
static volatile sig_atomic_t forks;
static volatile sig_atomic_t fork_failed;
static atomic_int stop;

static void on_usr1(int sig)
{
    (void)sig;
    if (in_child)
        return;
    int saved = errno;
    pid_t pid = fork();
    if (pid == 0) {
        in_child = 1;
        alarm(20);
    } else if (pid < 0) {
        fork_failed = 1;
    } else {
        forks++;
    }
    errno = saved;
}

static size_t pick(struct rng *r)
{
    unsigned k = (unsigned)(rng_next(r) % 16);
    if (k < 10)
        return rng_range(r, 1, 600);
    if (k < 15)
        return rng_range(r, 1000, 20000);
    return rng_range(r, 140000, 400000);
}

/* What a child does once the interrupted call has finished. */
static void child_work(void)
{
    struct rng r = {.state = 99};
    void *keep[32] = {0};
    for (int i = 0; i < 600; i++) {
        int s = (int)(rng_next(&r) % 32);
        if (keep[s]) {
            free(keep[s]);
            keep[s] = NULL;
        } else {
            size_t n = pick(&r);
            unsigned char *p = malloc(n);
            if (!p)
                _exit(4);
            pattern_fill(p, n, block_seed(p, 1));
            if (pattern_check(p, n, block_seed(p, 1)) != n)
                _exit(5);
            keep[s] = p;
        }
    }
    for (int s = 0; s < 32; s++)
        free(keep[s]);
    _exit(0);
}

/* Allocates and frees until stopped (or, in a child, hands over to child_work). */
static void churn(uint64_t seed, int main_thread)
{
    struct rng r = {.state = seed};
    void *live[16] = {0};
    while (!atomic_load(&stop)) {
        int s = (int)(rng_next(&r) % 16);
        if (!live[s]) {
            live[s] = malloc(pick(&r));
            if (!live[s])
                fail("fork_signal: malloc failed: %s", strerror(errno));
        } else if (rng_next(&r) % 4 == 0) {
            void *q = realloc(live[s], pick(&r));
            if (!q)
                fail("fork_signal: realloc failed: %s", strerror(errno));
            live[s] = q;
        } else {
            free(live[s]);
            live[s] = NULL;
        }
        if (in_child)
            child_work();
        if (main_thread && forks >= FORKS)
            break;
    }
    for (int s = 0; s < 16; s++)
        free(live[s]);
}

static void *second_thread(void *arg)
{
    (void)arg;
    churn(2, 0);
    return NULL;
}

static int children_failed;
static pid_t sender;

/* Reaps the children forked by the handler (not the sender, killed at the end). */
static void reap(int options)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, options)) > 0 || (pid < 0 && errno == EINTR)) {
        if (pid > 0 && pid != sender && (!WIFEXITED(status) || WEXITSTATUS(status) != 0)) {
            if (children_failed++ == 0)
                fprintf(stderr, "fork_signal: child %d ended with status 0x%x\n", (int)pid, status);
        }
    }
}

int main(int argc, char **argv)
{
    int threads = argc > 1 && !strcmp(argv[1], "threads");
    watchdog(90, "fork_signal: timed out (fork in a signal handler waited for malloc?)\n");
    struct sigaction sa = {0};
    sa.sa_handler = on_usr1;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);

    /* the second thread starts with SIGUSR1 blocked, so every signal lands in main */
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    pthread_t t;
    pthread_sigmask(SIG_BLOCK, &usr1, NULL);
    if (threads && pthread_create(&t, NULL, second_thread, NULL))
        fail("fork_signal: pthread_create failed");
    pthread_sigmask(SIG_UNBLOCK, &usr1, NULL);

    pid_t me = getpid();
    /* Blocked while this fork runs: a signal landing inside fork itself would
     * make the handler's fork wait for the one it interrupted (glibc's handler
     * list lock, in the two-thread case), a deadlock of the test, not of malloc. */
    pthread_sigmask(SIG_BLOCK, &usr1, NULL);
    sender = fork();
    if (sender < 0)
        fail("fork_signal: fork: %s", strerror(errno));
    if (sender == 0) {
        /* the sender: signals as fast as the kernel delivers them, until killed */
        signal(SIGUSR1, SIG_IGN);
        for (;;)
            if (kill(me, SIGUSR1) < 0)
                _exit(0);
    }
    pthread_sigmask(SIG_UNBLOCK, &usr1, NULL);

    struct rng r = {.state = 1};
    while (forks < FORKS && !fork_failed) {
        churn(rng_next(&r), 1);
        reap(WNOHANG);
    }
    pthread_sigmask(SIG_BLOCK, &usr1, NULL);
    /* a child forked by a signal that landed after the last allocation */
    if (in_child)
        child_work();
    kill(sender, SIGKILL);
    atomic_store(&stop, 1);
    if (threads)
        pthread_join(t, NULL);
    reap(0);
    if (fork_failed)
        fail("fork_signal: fork in the handler failed");
    if (children_failed)
        fail("fork_signal: %d of %d children failed", children_failed, (int)forks);
    printf("fork_signal: %d forks from a signal handler interrupting malloc (%s), every child "
           "allocated and exited 0\n",
           (int)forks, threads ? "2 threads" : "single-threaded");
    return 0;
}
