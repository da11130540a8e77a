/*
 * driver.h - what every benchmark driver shares: arguments as NAME=VALUE
 * words, a fast deterministic random generator, byte patterns written into
 * blocks and checked before they are freed, and the two kinds of output lines.
 *
 * Output contract (read by `cargo xtask bench`): stdout holds the driver's
 * result, which must be the same under every allocator (counts and checksums,
 * never addresses or usable sizes), except for lines that start with
 * "metric ", which carry measurements that may differ between allocators
 * ("metric NAME VALUE").  A driver that finds a wrong byte, or a call that
 * fails where it must not, prints one line to stderr and exits 1.
 *
 * The drivers are compiled with `gcc -O2 -pthread -fno-builtin-malloc ...`
 * so that the compiler cannot drop a malloc/free pair it can see through:
 * every call in the source is a call the allocator serves.
 */
#ifndef TAGALLOC_BENCH_DRIVER_H
#define TAGALLOC_BENCH_DRIVER_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Print "driver: message" to stderr and exit 1 at once (other threads may be
 * inside malloc, so no atexit handlers). */
__attribute__((noreturn, format(printf, 1, 2), unused)) static void die(const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if (n > (int)sizeof line - 2)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    ssize_t unused = write(2, line, (size_t)n);
    (void)unused;
    _exit(1);
}

/* The value of argument NAME=VALUE among argv[1..], or `fallback`.  Call
 * check_args first. */
__attribute__((unused)) static long arg(int argc, char **argv, const char *name, long fallback)
{
    size_t len = strlen(name);
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], name, len) == 0 && argv[i][len] == '=') {
            char *end;
            long v = strtol(argv[i] + len + 1, &end, 10);
            if (*end != '\0' || v < 0)
                die("bad value in `%s`", argv[i]);
            return v;
        }
    }
    return fallback;
}

/* Exit 2 unless every argument is NAME=VALUE with NAME in `known` (names
 * separated by single spaces). */
__attribute__((unused)) static void check_args(int argc, char **argv, const char *known)
{
    for (int i = 1; i < argc; i++) {
        const char *eq = strchr(argv[i], '=');
        size_t len = eq ? (size_t)(eq - argv[i]) : 0;
        const char *k = known;
        int found = 0;
        while (eq && *k) {
            const char *sp = strchr(k, ' ');
            size_t klen = sp ? (size_t)(sp - k) : strlen(k);
            if (klen == len && strncmp(k, argv[i], len) == 0)
                found = 1;
            k += klen + (sp ? 1 : 0);
        }
        if (!found) {
            fprintf(stderr, "usage: %s [NAME=VALUE...] with NAME in: %s\n", argv[0], known);
            exit(2);
        }
    }
}

/* splitmix64. */
static inline uint64_t mix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

struct rng {
    uint64_t state;
};

static inline uint64_t rng_next(struct rng *r)
{
    r->state += 0x9E3779B97F4A7C15ull;
    return mix64(r->state);
}

/* Uniform in [0, n), n > 0 (Lemire's multiply-shift, bias negligible here). */
static inline uint64_t rng_below(struct rng *r, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)rng_next(r) * n) >> 64);
}

/* Uniform in [lo, hi]. */
static inline uint64_t rng_range(struct rng *r, uint64_t lo, uint64_t hi)
{
    return lo + rng_below(r, hi - lo + 1);
}

/* Uniform in [0, 1). */
static inline double rng_unit(struct rng *r)
{
    return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

/* The pattern byte of a block tagged `tag`. */
static inline unsigned char pattern_byte(uint64_t tag)
{
    return (unsigned char)(mix64(tag) | 1);
}

/* Fill the whole of a block with its pattern byte. */
static inline void fill(void *p, size_t n, uint64_t tag)
{
    memset(p, pattern_byte(tag), n);
}

/* Touch a large block cheaply: its first and last byte and one byte in every
 * 4 KiB page, so every page is resident as in a program that uses it. */
static inline void touch_pages(unsigned char *p, size_t n, uint64_t tag)
{
    unsigned char b = pattern_byte(tag);
    for (size_t i = 0; i < n; i += 4096)
        p[i] = b;
    p[n - 1] = b;
}

/* Check the first and last byte of a block filled (or touched) with `tag`;
 * exits 1 naming `what` if either is wrong. */
static inline void check_ends(const void *p, size_t n, uint64_t tag, const char *what)
{
    const unsigned char *b = p;
    unsigned char want = pattern_byte(tag);
    if (n > 0 && (b[0] != want || b[n - 1] != want))
        die("%s: block of %zu bytes lost its pattern (0x%02x ... 0x%02x, want 0x%02x)", what, n,
            b[0], b[n - 1], want);
}

/* malloc that must not fail. */
static inline void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (p == NULL)
        die("malloc(%zu) failed", n);
    return p;
}

/* A metric line (may differ between allocators). */
static inline void metric(const char *name, unsigned long long value)
{
    printf("metric %s %llu\n", name, value);
}

#endif
