/*
 * uaf.c - one use after free per run, chosen by argv[1]: a block is freed,
 * then written to, then the program keeps allocating blocks of its size.
 * Under tagalloc the next malloc of that size must print one line,
 * "tagalloc: malloc(): corrupted free block at 0x... detected", naming the
 * freed block, and abort.
 *
 *   poison          the classic tcache poisoning: the address of a static
 *                   buffer written into the first word of a freed 48-byte
 *                   block, then two malloc(48); neither may return it
 *   link-small      the first word of a freed 48-byte block overwritten
 *   header-small    the header word before a freed 48-byte block overwritten
 *   block-small     the whole payload of a freed 48-byte block overwritten
 *   link-medium     the same three for a 3000-byte block (the heap's free
 *   header-medium   lists rather than a thread cache)
 *   block-medium
 *
 * The freed block's address is printed on stdout first (flushed).  Reaching
 * the end is a failure (exit 1); returning the planted address is exit 4.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Alignas(64) unsigned char target[256];

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: uaf poison|link-small|header-small|block-small|link-medium|"
                        "header-medium|block-medium\n");
        return 2;
    }
    const char *c = argv[1];
    size_t n = strstr(c, "medium") ? 3000 : 48;
    /* neighbours on both sides stay allocated, so the freed block cannot
     * merge away; volatile keeps the compiler from reasoning about the misuse */
    void *volatile before = malloc(n);
    unsigned char *volatile p = malloc(n);
    void *volatile after = malloc(n);
    if (!before || !p || !after)
        return 2;
    memset(p, 0x11, n);
    free(p);
    printf("%p\n", (void *)p);
    fflush(stdout);

    if (!strcmp(c, "poison")) {
        *(void *volatile *)p = target;
        /* volatile: a compiler may know that malloc never returns a static
         * object's address, and drop the calls and the comparison */
        void *volatile a = malloc(n);
        void *volatile b = malloc(n);
        if (a == target || b == target) {
            fprintf(stderr, "uaf poison: malloc returned the planted address %p\n", (void *)target);
            return 4;
        }
    } else {
        if (!strncmp(c, "link-", 5))
            *(volatile uint64_t *)p = 0x4141414141414141ull;
        else if (!strncmp(c, "header-", 7))
            *(volatile uint64_t *)(p - 8) = 0x4141414141414141ull;
        else if (!strncmp(c, "block-", 6))
            memset(p, 0x41, n);
        else {
            fprintf(stderr, "uaf: unknown case %s\n", c);
            return 2;
        }
        for (int i = 0; i < 4; i++) {
            void *volatile q = malloc(n);
            (void)q;
        }
    }
    fprintf(stderr, "uaf %s: the use after free was not detected\n", c);
    return 1;
}
