/* tagalloc-diff's mm.h, for lab code that brings none: both lab variants' declarations.
 * CS:APP: mm_init, mm_malloc, mm_free, mm_realloc and a team_t. CMU 15-213 (64-bit): functions
 * written as malloc, free, realloc, calloc, renamed to mm_* when DRIVER is defined. */
#ifndef TAGALLOC_MM_H
#define TAGALLOC_MM_H
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#ifdef DRIVER
#define malloc mm_malloc
#define free mm_free
#define realloc mm_realloc
#define calloc mm_calloc
#endif
/* mm_init and mm_checkheap are not declared: CS:APP's return int, CMU's bool. */
void *mm_malloc(size_t size);
void mm_free(void *ptr);
void *mm_realloc(void *ptr, size_t size);
void *mm_calloc(size_t nmemb, size_t size);
typedef struct { char *teamname, *name1, *id1, *name2, *id2; } team_t;
extern team_t team;
#endif
