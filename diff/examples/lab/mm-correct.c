/* A correct lab allocator, CMU 15-213 style (functions named malloc, free, ...; -DDRIVER renames
 * them): an implicit list of blocks with a header and a footer each, first fit, blocks split when
 * the rest is big enough, free neighbours merged at once. Written for tagalloc-diff's tests. */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include "mm.h"
#include "memlib.h"

#define W 8
#define MIN_BLOCK 32
#define TAG(size, used) ((size) | (used))
#define GET(p) (*(size_t *)(p))
#define SET(p, v) (*(size_t *)(p) = (v))
#define SIZE(p) (GET(p) & ~(size_t)15)
#define USED(p) (GET(p) & 1)
#define HEAD(b) ((char *)(b) - W)
#define FOOT(b) ((char *)(b) + SIZE(HEAD(b)) - 2 * W)
#define NEXT(b) ((char *)(b) + SIZE(HEAD(b)))
#define PREV(b) ((char *)(b) - SIZE((char *)(b) - 2 * W))

static char *first;

static void mark(void *b, size_t size, size_t used) {
    SET(HEAD(b), TAG(size, used));
    SET(FOOT(b), TAG(size, used));
}

static void *merge(void *b) {
    size_t size = SIZE(HEAD(b));
    if (!USED(HEAD(NEXT(b)))) size += SIZE(HEAD(NEXT(b)));
    if (!USED(HEAD(b) - W)) {
        b = PREV(b);
        size += SIZE(HEAD(b));
    }
    mark(b, size, 0);
    return b;
}

static void *grow(size_t bytes) {
    char *b = mem_sbrk((int)bytes);
    if (b == (void *)-1) return NULL;
    mark(b, bytes, 0);
    SET(HEAD(NEXT(b)), TAG(0, 1));
    return merge(b);
}

bool mm_init(void) {
    char *p = mem_sbrk(4 * W);
    if (p == (void *)-1) return false;
    SET(p, 0);
    SET(p + W, TAG(16, 1));
    SET(p + 2 * W, TAG(16, 1));
    SET(p + 3 * W, TAG(0, 1));
    first = p + 2 * W;
    return true;
}

void *malloc(size_t size) {
    if (size == 0 || size > (20u << 20)) return NULL;
    size_t need = (size + 2 * W + 15) & ~(size_t)15;
    char *b;
    for (b = first; SIZE(HEAD(b)) > 0; b = NEXT(b))
        if (!USED(HEAD(b)) && SIZE(HEAD(b)) >= need) break;
    if (SIZE(HEAD(b)) == 0 && !(b = grow(need > 4096 ? need : 4096))) return NULL;
    size_t have = SIZE(HEAD(b));
    if (have - need >= MIN_BLOCK) {
        mark(b, need, 1);
        mark(NEXT(b), have - need, 0);
    } else {
        mark(b, have, 1);
    }
    return b;
}

void free(void *p) {
    if (!p) return;
    mark(p, SIZE(HEAD(p)), 0);
    merge(p);
}

void *realloc(void *p, size_t size) {
    if (!p) return malloc(size);
    if (size == 0) {
        free(p);
        return NULL;
    }
    void *q = malloc(size);
    if (!q) return NULL;
    size_t old = SIZE(HEAD(p)) - 2 * W;
    memcpy(q, p, old < size ? old : size);
    free(p);
    return q;
}

void *calloc(size_t n, size_t size) {
    if (size && n > SIZE_MAX / size) return NULL;
    void *p = malloc(n * size);
    if (p) memset(p, 0, n * size);
    return p;
}

bool mm_checkheap(int line) {
    (void)line;
    int was_free = 0;
    for (char *b = first; SIZE(HEAD(b)) > 0; b = NEXT(b)) {
        if ((uintptr_t)b % 16 || GET(HEAD(b)) != GET(FOOT(b))) return false;
        if (!USED(HEAD(b)) && was_free) return false;
        was_free = !USED(HEAD(b));
    }
    return true;
}
