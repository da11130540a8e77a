/* bump.c: the smallest allocator tagalloc-diff can judge, with one deliberate bug.
 *
 * malloc hands out 16-byte-aligned blocks from a 64 MiB static arena and never reuses them; free
 * does nothing; each block's size sits in the 8 bytes before it. The bug: realloc copies at most
 * 16 bytes of the old block, so a grown block loses its contents past them. The README builds it
 * and shows tagalloc-diff finding the bug and shrinking a trace down to it:
 *
 *   gcc -shared -fPIC -O2 -fno-builtin -o target/bump.so diff/examples/bump.c
 *   cargo run -p tagalloc-diff -- shrink --backend ./target/bump.so corpus/seeds/realloc-in-place.trace
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static _Alignas(16) unsigned char arena[64 << 20];
static size_t top;

void *malloc(size_t n) {
    size_t start = (top + 8 + 15) & ~(size_t)15;
    if (n > sizeof arena || start + n > sizeof arena) {
        errno = ENOMEM;
        return NULL;
    }
    unsigned char *p = arena + start;
    ((size_t *)p)[-1] = n;
    top = start + n;
    return p;
}

void free(void *p) { (void)p; }

void *calloc(size_t count, size_t n) {
    if (n && count > SIZE_MAX / n) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = malloc(count * n);
    if (p) memset(p, 0, count * n); /* the arena is reused by no one, but say it */
    return p;
}

void *realloc(void *p, size_t n) {
    if (!p) return malloc(n);
    if (!n) {
        free(p);
        return NULL;
    }
    void *q = malloc(n);
    if (!q) return NULL;
    size_t old = ((size_t *)p)[-1];
    size_t keep = old < n ? old : n;
    memcpy(q, p, keep < 16 ? keep : 16); /* the bug: the rest of the old block is lost */
    return q;
}

size_t malloc_usable_size(void *p) { return p ? ((size_t *)p)[-1] : 0; }
