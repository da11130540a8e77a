/*
 * block.h - what every preload test program shares: a fast deterministic
 * random generator, a byte pattern that a block carries from the moment it is
 * filled until it is freed, and a way to fail loudly.
 *
 * The pattern of a block is derived from a 64-bit seed (usually from the
 * block's address and the owning thread), so two live blocks that overlap
 * cannot both verify, and a block that another allocation scribbled over
 * reports the first bad byte.  Everything here is header-only and static so
 * each test stays a single translation unit.
 */
#ifndef TAGALLOC_TEST_BLOCK_H
#define TAGALLOC_TEST_BLOCK_H

#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Print "PROG: message" to stderr and leave at once, without running atexit
 * handlers (other threads may be inside malloc). */
__attribute__((noreturn, format(printf, 1, 2), unused)) static void fail(const char *fmt, ...)
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

/* After `seconds`, print "PROG: timed out (WHAT)" and exit 3: a deadlock
 * becomes a failure.  Calling it again rearms it (in a child, say). */
static const char *watchdog_line;
__attribute__((unused)) static void watchdog_fired(int sig)
{
    (void)sig;
    ssize_t unused = write(2, watchdog_line, strlen(watchdog_line));
    (void)unused;
    _exit(3);
}
__attribute__((unused)) static void watchdog(unsigned seconds, const char *line)
{
    watchdog_line = line;
    signal(SIGALRM, watchdog_fired);
    alarm(seconds);
}

/* splitmix64: the seed mixer and the generator step. */
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

/* Uniform in [lo, hi]. */
static inline size_t rng_range(struct rng *r, size_t lo, size_t hi)
{
    return lo + (size_t)(rng_next(r) % (uint64_t)(hi - lo + 1));
}

static inline uint64_t block_seed(const void *p, uint64_t owner)
{
    return mix64((uint64_t)(uintptr_t)p ^ (owner << 48) ^ 0x5A5A5A5A5A5A5A5Aull);
}

/* The 8 pattern bytes at offset i (a multiple of 8). */
static inline uint64_t pattern_word(uint64_t seed, size_t i)
{
    return seed ^ ((uint64_t)i * 0xD6E8FEB86659FD93ull);
}

static inline void pattern_fill(void *p, size_t n, uint64_t seed)
{
    unsigned char *b = p;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w = pattern_word(seed, i);
        memcpy(b + i, &w, 8);
    }
    if (i < n) {
        uint64_t w = pattern_word(seed, i);
        memcpy(b + i, &w, n - i);
    }
}

/* Offset of the first byte that does not carry the pattern, or n. */
static inline size_t pattern_check(const void *p, size_t n, uint64_t seed)
{
    const unsigned char *b = p;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w = pattern_word(seed, i), got;
        memcpy(&got, b + i, 8);
        if (got != w)
            break;
    }
    for (; i < n; i++) {
        uint64_t w = pattern_word(seed, i & ~(size_t)7);
        unsigned char want = (unsigned char)(w >> (8 * (i & 7)));
        if (b[i] != want)
            return i;
    }
    return n;
}

/* Fail unless the block still carries its pattern. */
static inline void pattern_verify(const void *p, size_t n, uint64_t seed, const char *what)
{
    size_t bad = pattern_check(p, n, seed);
    if (bad != n)
        fail("%s: block %p of %zu bytes corrupted at offset %zu (byte 0x%02x)", what, p, n,
             bad, ((const unsigned char *)p)[bad]);
}

/* Offset of the first non-zero byte, or n. */
static inline size_t first_nonzero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return i;
    return n;
}

static inline int is_aligned(const void *p, size_t align)
{
    return ((uintptr_t)p & (align - 1)) == 0;
}

#endif
