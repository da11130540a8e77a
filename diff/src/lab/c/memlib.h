/* tagalloc-diff's memlib: the malloc lab's memory system, written for the suite.
 * One private region of MAX_HEAP bytes, mapped once; mem_sbrk moves a break inside it. */
#ifndef TAGALLOC_MEMLIB_H
#define TAGALLOC_MEMLIB_H
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>
#ifndef MAX_HEAP
#define MAX_HEAP (20 * (1 << 20))
#endif
void mem_init(void);
void mem_deinit(void);
void *mem_sbrk(int incr);
void mem_reset_brk(void);
void *mem_heap_lo(void);
void *mem_heap_hi(void);
size_t mem_heapsize(void);
size_t mem_pagesize(void);
#endif
