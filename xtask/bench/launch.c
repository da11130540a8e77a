/*
 * launch.c - starts one measured run of a workload and reports its wall time,
 * peak RSS and wait status; the runner's measure.rs starts this program, which
 * starts the workload.
 *
 * Usage: launch RESULT_FILE PRELOAD|- PROGRAM [ARG...]
 *
 * Why a separate small process: a child's ru_maxrss counts the memory of the
 * process image it replaced (the kernel keeps the peak RSS of the old image
 * across execve, and with vfork or posix_spawn that image is the parent's),
 * so a workload forked from the runner would report at least the runner's own
 * peak RSS.  Forked from this program, whose RSS is about a megabyte, it
 * reports its own.
 *
 * forks; the child sets LD_PRELOAD=PRELOAD (unless PRELOAD is "-") and execs
 * PROGRAM with the environment and file descriptors it inherited; the parent
 * waits for it with wait4 and writes to RESULT_FILE
 *     status N        the raw wait status
 *     maxrss_kib N    ru_maxrss: the largest RSS of PROGRAM or of any
 *                     descendant it waited for, in KiB
 *     wall_ns N       from just before fork to the return of wait4
 * then exits 0.  Exits 2 on bad usage, 1 if it cannot fork or write the
 * result; if PROGRAM cannot be executed the child exits 127 with a message.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: launch RESULT_FILE PRELOAD|- PROGRAM [ARG...]\n");
        return 2;
    }
    const char *result = argv[1], *preload = argv[2];
    long long start = now_ns();
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "launch: fork: %s\n", strerror(errno));
        return 1;
    }
    if (pid == 0) {
        if (strcmp(preload, "-") != 0 && setenv("LD_PRELOAD", preload, 1) != 0)
            _exit(127);
        execvp(argv[3], argv + 3);
        fprintf(stderr, "launch: cannot execute %s: %s\n", argv[3], strerror(errno));
        _exit(127);
    }
    int status;
    struct rusage ru;
    while (wait4(pid, &status, 0, &ru) < 0) {
        if (errno != EINTR) {
            fprintf(stderr, "launch: wait4: %s\n", strerror(errno));
            return 1;
        }
    }
    long long wall = now_ns() - start;
    FILE *f = fopen(result, "w");
    if (f == NULL || fprintf(f, "status %d\nmaxrss_kib %ld\nwall_ns %lld\n", status, ru.ru_maxrss, wall) < 0 ||
        fclose(f) != 0) {
        fprintf(stderr, "launch: cannot write %s\n", result);
        return 1;
    }
    return 0;
}
