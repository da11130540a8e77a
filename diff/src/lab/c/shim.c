/* tagalloc-diff's lab shim: the student's mm_* as the malloc family tagalloc-diff loads.
 * mm_init runs before the first call of every run (each run is a fresh forked child of a process
 * that loaded the object and never called it). The heap checker, when the code has one, and the
 * heap's size are exported for the suite. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef TAGALLOC_LAB_INIT_BOOL
_Bool mm_init(void);
#define INIT_FAILED(r) (!(r))
#else
int mm_init(void);
#define INIT_FAILED(r) ((r) < 0)
#endif
void *mm_malloc(size_t);
void mm_free(void *);
void *mm_realloc(void *, size_t);
void *mm_calloc(size_t, size_t) __attribute__((weak));
#ifdef TAGALLOC_LAB_CHECK_BOOL
_Bool mm_checkheap(int) __attribute__((weak));
#else
void mm_checkheap(int) __attribute__((weak));
#endif
void mem_init(void);
void mem_reset_brk(void);
size_t mem_heapsize(void);

static int ready;

static void start(void) {
    if (ready) return;
    ready = 1;
    mem_init();
    mem_reset_brk();
    if (INIT_FAILED(mm_init())) {
        static const char msg[] = "lab: mm_init failed\n";
        (void)!write(2, msg, sizeof msg - 1);
        _exit(98);
    }
}

void *malloc(size_t n) { start(); return mm_malloc(n); }
void free(void *p) { start(); mm_free(p); }
void *realloc(void *p, size_t n) { start(); return mm_realloc(p, n); }
#ifdef TAGALLOC_LAB_CALLOC
void *calloc(size_t c, size_t n) { start(); return mm_calloc(c, n); }
#endif

/* 0 when the heap checker passes (or there is none); 1 when it says the heap is broken. */
int tagalloc_check(void) {
    start();
    if (!mm_checkheap) return 0;
#ifdef TAGALLOC_LAB_CHECK_BOOL
    return mm_checkheap(__LINE__) ? 0 : 1;
#else
    mm_checkheap(0);
    return 0;
#endif
}

int tagalloc_has_check(void) { return mm_checkheap != 0; }

size_t tagalloc_heap_size(void) { start(); return mem_heapsize(); }
