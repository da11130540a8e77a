/* tagalloc-diff's memlib (see memlib.h). The region comes from mmap, never from malloc, so the
 * student's malloc is never called from inside itself. Built with TAGALLOC_LAB_LOW, the region
 * lies below 2 GiB (MAP_32BIT), where code that keeps pointers in 4 bytes happens to work. */
#include <errno.h>
#include <stdio.h>
#include <sys/mman.h>
#include "memlib.h"

static char *mem_start_brk, *mem_brk, *mem_max_addr;

void mem_init(void) {
    if (mem_start_brk) return;
    int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
#ifdef TAGALLOC_LAB_LOW
    flags |= MAP_32BIT;
#endif
    void *p = mmap(NULL, MAX_HEAP, PROT_READ | PROT_WRITE, flags, -1, 0);
    if (p == MAP_FAILED) {
        static const char msg[] = "memlib: cannot map the heap region\n";
        (void)!write(2, msg, sizeof msg - 1);
        _exit(97);
    }
    mem_start_brk = mem_brk = p;
    mem_max_addr = mem_start_brk + MAX_HEAP;
}

void mem_deinit(void) {}

void mem_reset_brk(void) { mem_init(); mem_brk = mem_start_brk; }

void *mem_sbrk(int incr) {
    mem_init();
    if (incr < 0 || incr > mem_max_addr - mem_brk) {
        errno = ENOMEM;
        return (void *)-1;
    }
    char *old = mem_brk;
    mem_brk += incr;
    return old;
}

void *mem_heap_lo(void) { mem_init(); return mem_start_brk; }
void *mem_heap_hi(void) { mem_init(); return mem_brk - 1; }
size_t mem_heapsize(void) { return (size_t)(mem_brk - mem_start_brk); }
size_t mem_pagesize(void) { return (size_t)getpagesize(); }
