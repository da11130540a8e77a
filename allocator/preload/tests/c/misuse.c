/*
 * misuse.c - one misuse of the allocator per run, chosen by argv[1].  Under
 * tagalloc each must print one "tagalloc: CALL(): ..." line naming the call
 * and what was wrong, and abort.
 *
 *   stack          free() of a stack address
 *   interior       free() of a pointer 16 bytes into a live block
 *   misaligned     free() of a pointer 1 byte into a live block
 *   realloc-freed  realloc() of a block already freed
 *   overflow       a write past the end of a block runs over the next block's
 *                  header, then that next block is freed
 *   overflow-prev  the same overflow, then the block that overflowed is freed
 *                  (freeing it must look at the damaged neighbour)
 *   overflow-1     one byte written just past malloc_usable_size (the next
 *                  block's header), then the block is freed
 *   underflow-1    one byte written just before the payload (the block's own
 *                  header), then the block is freed
 *   large-interior free() of a pointer 64 bytes into a 1 MiB chunk
 *   large-past     free() of a pointer one page past the end of a 1 MiB chunk
 *   large-double   free() of a 1 MiB chunk twice (its memory is unmapped by
 *                  then: the message must still say double free)
 *
 * Before the misuse the program prints the pointer it is about to pass on
 * stdout (flushed), or for overflow-1 and underflow-1 the address of the
 * header word the byte landed in.  Reaching the end is a failure (exit 1); a bad argument
 * or an unexpected heap layout exits 2.
 */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void announce(void *p)
{
    printf("%p\n", p);
    fflush(stdout);
}

/* Two live blocks where b follows a closely in memory, so [a, b) covers b's
 * header whatever the layout (and whichever way successive allocations go).
 * The other blocks tried stay allocated. */
static void adjacent_pair(unsigned char **a, unsigned char **b)
{
    unsigned char *prev = malloc(40);
    for (int i = 0; i < 64 && prev; i++) {
        unsigned char *next = malloc(40);
        if (!next)
            break;
        unsigned char *lo = next < prev ? next : prev, *hi = next < prev ? prev : next;
        if ((size_t)(hi - lo) <= 128) {
            *a = lo;
            *b = hi;
            return;
        }
        prev = next;
    }
    fprintf(stderr, "misuse: found no two adjacent blocks\n");
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: misuse stack|interior|misaligned|realloc-freed|overflow|overflow-prev|"
                        "overflow-1|underflow-1|large-interior|large-past|large-double\n");
        return 2;
    }
    const char *c = argv[1];
    /* volatile launders the pointers so the compiler neither warns about nor
     * rewrites the deliberate misuse */
    unsigned char *volatile p = malloc(64);
    void *volatile neighbour = malloc(64);
    if (!p || !neighbour)
        return 2;
    memset(p, 0x11, 64);

    if (!strcmp(c, "stack")) {
        unsigned char buf[128];
        memset(buf, 0, sizeof buf);
        unsigned char *volatile s = buf + 32;
        announce(s);
        free(s);
    } else if (!strcmp(c, "interior")) {
        unsigned char *volatile q = p + 16;
        announce(q);
        free(q);
    } else if (!strcmp(c, "misaligned")) {
        unsigned char *volatile q = p + 1;
        announce(q);
        free(q);
    } else if (!strcmp(c, "realloc-freed")) {
        free(p);
        announce(p);
        void *volatile q = realloc(p, 128);
        (void)q;
    } else if (!strcmp(c, "overflow") || !strcmp(c, "overflow-prev")) {
        unsigned char *a, *b;
        adjacent_pair(&a, &b);
        unsigned char *volatile va = a;
        /* a string-style overrun: every byte up to b's payload */
        memset(va, 'A', (size_t)(b - a));
        if (!strcmp(c, "overflow")) {
            announce(b);
            free(b);
        } else {
            announce(a);
            free(va);
        }
    } else if (!strcmp(c, "overflow-1")) {
        size_t u = malloc_usable_size(p);
        announce(p + u);
        p[u] ^= 0x01; /* whatever the byte was, it is not that any more */
        free(p);
    } else if (!strcmp(c, "underflow-1")) {
        announce(p - 8);
        p[-1] ^= 0x01;
        free(p);
    } else if (!strncmp(c, "large-", 6)) {
        unsigned char *volatile big = malloc(1 << 20);
        if (!big)
            return 2;
        if (!strcmp(c, "large-interior")) {
            unsigned char *volatile q = big + 64;
            announce(q);
            free(q);
        } else if (!strcmp(c, "large-past")) {
            unsigned char *volatile q = big + (1 << 20) + 4096;
            announce(q);
            free(q);
        } else if (!strcmp(c, "large-double")) {
            free(big);
            announce(big);
            free(big);
        } else {
            fprintf(stderr, "misuse: unknown case %s\n", c);
            return 2;
        }
    } else {
        fprintf(stderr, "misuse: unknown case %s\n", c);
        return 2;
    }
    fprintf(stderr, "misuse %s: the misuse was not detected\n", c);
    return 1;
}
