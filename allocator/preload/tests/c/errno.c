/*
 * errno.c - errno after every failing path of the malloc family, and after
 * calls that must leave it alone (free, realloc(p, 0), malloc_usable_size,
 * successful calls).  Before each call errno is set to a sentinel; one line
 * per case says what came back and what errno became.  The test script runs
 * it on glibc and on tagalloc and requires identical output.
 *
 * (aligned_alloc with an alignment that is not a power of two is left out:
 * glibc 2.36 serves it as memalign does, tagalloc refuses it with EINVAL as
 * C11 and glibc 2.38 do.)
 */
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SENTINEL 4242

static const char *errno_name(int e)
{
    switch (e) {
    case SENTINEL:
        return "unchanged";
    case ENOMEM:
        return "ENOMEM";
    case EINVAL:
        return "EINVAL";
    case 0:
        return "0";
    default:
        return "other";
    }
}

static void report(const char *what, const void *p)
{
    int e = errno;
    printf("%-44s %-8s errno %s\n", what, p ? "pointer" : "NULL", errno_name(e));
}

static void report_void(const char *what)
{
    int e = errno;
    printf("%-44s %-8s errno %s\n", what, "-", errno_name(e));
}

static void report_rc(const char *what, int rc)
{
    int e = errno;
    printf("%-44s rc %-5s errno %s\n", what, rc == 0 ? "0" : errno_name(rc), errno_name(e));
}

/* volatile sizes: the compiler must not fold or warn about the huge requests */
static volatile size_t huge = SIZE_MAX, half = SIZE_MAX / 2, ptrdiff = PTRDIFF_MAX;

int main(void)
{
    void *volatile keep = malloc(100);
    void *p, *q;
    int rc;

    errno = SENTINEL; p = malloc(huge); report("malloc(SIZE_MAX)", p);
    errno = SENTINEL; p = malloc(ptrdiff + 1); report("malloc(PTRDIFF_MAX + 1)", p);
    errno = SENTINEL; p = malloc(ptrdiff - 4096); report("malloc(PTRDIFF_MAX - 4096)", p);
    errno = SENTINEL; p = calloc(half, 3); report("calloc(SIZE_MAX / 2, 3)", p);
    errno = SENTINEL; p = calloc(1, huge); report("calloc(1, SIZE_MAX)", p);
    errno = SENTINEL; p = realloc(NULL, huge); report("realloc(NULL, SIZE_MAX)", p);
    errno = SENTINEL; p = realloc(keep, huge); report("realloc(p, SIZE_MAX)", p);
    errno = SENTINEL; p = realloc(keep, ptrdiff - 4096); report("realloc(p, PTRDIFF_MAX - 4096)", p);
    errno = SENTINEL; p = reallocarray(keep, half, 3); report("reallocarray(p, SIZE_MAX / 2, 3)", p);
    errno = SENTINEL; rc = posix_memalign(&q, 3, 16); report_rc("posix_memalign(3, 16)", rc);
    errno = SENTINEL; rc = posix_memalign(&q, 0, 16); report_rc("posix_memalign(0, 16)", rc);
    errno = SENTINEL; rc = posix_memalign(&q, 24, 16); report_rc("posix_memalign(24, 16)", rc);
    errno = SENTINEL; rc = posix_memalign(&q, 64, huge); report_rc("posix_memalign(64, SIZE_MAX)", rc);
    errno = SENTINEL; rc = posix_memalign(&q, 64, ptrdiff - 4096); report_rc("posix_memalign(64, PTRDIFF_MAX - 4096)", rc);
    errno = SENTINEL; p = memalign(64, huge); report("memalign(64, SIZE_MAX)", p);
    errno = SENTINEL; p = memalign(half + 2, 16); report("memalign(SIZE_MAX / 2 + 2, 16)", p);
    errno = SENTINEL; p = aligned_alloc(64, huge); report("aligned_alloc(64, SIZE_MAX)", p);
    errno = SENTINEL; p = valloc(huge); report("valloc(SIZE_MAX)", p);
    errno = SENTINEL; p = pvalloc(huge); report("pvalloc(SIZE_MAX)", p);
    errno = SENTINEL; p = pvalloc(huge - 100); report("pvalloc(SIZE_MAX - 100)", p);

    /* calls that succeed, or free, must leave errno alone */
    errno = SENTINEL; p = malloc(100); report("malloc(100)", p);
    errno = SENTINEL; free(p); report_void("free(small block)");
    errno = SENTINEL; p = malloc(1 << 20); report("malloc(1 MiB)", p);
    errno = SENTINEL; free(p); report_void("free(large chunk)");
    errno = SENTINEL; free(NULL); report_void("free(NULL)");
    errno = SENTINEL; p = malloc(300); p = realloc(p, 0); report("realloc(p, 0)", p);
    errno = SENTINEL; (void)malloc_usable_size(keep); report_void("malloc_usable_size(p)");
    /* many frees in a row: the thread cache fills and gives blocks back */
    void *many[2000];
    for (int i = 0; i < 2000; i++)
        many[i] = malloc((size_t)(16 + i % 64 * 16));
    errno = SENTINEL;
    for (int i = 0; i < 2000; i++)
        free(many[i]);
    report_void("2000 frees of small blocks");
    /* a big block freed at the top of the heap (trim) */
    void *big = malloc(120000);
    errno = SENTINEL; free(big); report_void("free(120000 bytes at the top)");
    free(keep);
    return 0;
}
