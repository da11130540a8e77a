/*
 * double_free.c - frees a block twice.  Under tagalloc this must print one
 * line, "tagalloc: free(): double free of 0x... detected", and abort.
 *
 * The pointer is printed on stdout first (and flushed) so the test script can
 * check that the message names it.  A neighbour stays allocated so the freed
 * block cannot merge away.  Reaching the end is a failure (exit 1).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    /* volatile: keep the compiler from pairing or dropping the calls */
    void *volatile p = malloc(64);
    void *volatile neighbour = malloc(64);
    if (!p || !neighbour)
        return 2;
    memset(p, 0x5a, 64);
    printf("%p\n", p);
    fflush(stdout);
    free(p);
    free(p);
    fprintf(stderr, "double_free: second free(%p) returned\n", p);
    return 1;
}
