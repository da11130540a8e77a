/* A lab allocator that never reuses a byte, CS:APP style (mm_init, mm_malloc, ...): every
 * request moves the break, free does nothing. Correct, until the heap runs out. Written for
 * tagalloc-diff's tests. */
#include <stddef.h>
#include <string.h>
#include "mm.h"
#include "memlib.h"

team_t team = {"tests", "", "", "", ""};

int mm_init(void) { return 0; }

void *mm_malloc(size_t size) {
    if (size == 0 || size > (20u << 20)) return NULL;
    size_t need = (size + 8 + 7) & ~(size_t)7;
    char *p = mem_sbrk((int)need);
    if (p == (void *)-1) return NULL;
    *(size_t *)p = size;
    return p + 8;
}

void mm_free(void *p) { (void)p; }

void *mm_realloc(void *p, size_t size) {
    if (!p) return mm_malloc(size);
    if (size == 0) return NULL;
    void *q = mm_malloc(size);
    if (!q) return NULL;
    size_t old = *((size_t *)p - 1);
    memcpy(q, p, old < size ? old : size);
    return q;
}
