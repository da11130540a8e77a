/* A lab allocator written for 32-bit pointers, CS:APP style: freed blocks go on a LIFO list whose
 * links are kept in 4-byte integers, and a request takes the first listed block large enough.
 * Right while the heap lies below 4 GiB; truncated pointers above. Written for tagalloc-diff's
 * tests. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "mm.h"
#include "memlib.h"

team_t team = {"tests", "", "", "", ""};

static unsigned int free_list; /* address of the first free payload, in 32 bits */

#define SIZE(p) (*((size_t *)(p) - 1))
#define LINK(p) (*(unsigned int *)(p))

int mm_init(void) {
    free_list = 0;
    return 0;
}

void *mm_malloc(size_t size) {
    if (size == 0 || size > (20u << 20)) return NULL;
    size_t need = (size + 7) & ~(size_t)7;
    if (need < 8) need = 8;
    unsigned int *prev = &free_list;
    for (unsigned int at = free_list; at; at = LINK((char *)(uintptr_t)at)) {
        char *p = (char *)(uintptr_t)at;
        if (SIZE(p) >= need) {
            *prev = LINK(p);
            return p;
        }
        prev = (unsigned int *)p;
    }
    char *p = mem_sbrk((int)(need + 8));
    if (p == (void *)-1) return NULL;
    *(size_t *)p = need;
    return p + 8;
}

void mm_free(void *p) {
    if (!p) return;
    LINK(p) = free_list;
    free_list = (unsigned int)(uintptr_t)p;
}

void *mm_realloc(void *p, size_t size) {
    if (!p) return mm_malloc(size);
    if (size == 0) {
        mm_free(p);
        return NULL;
    }
    if (SIZE(p) >= size) return p;
    void *q = mm_malloc(size);
    if (!q) return NULL;
    memcpy(q, p, SIZE(p));
    mm_free(p);
    return q;
}
