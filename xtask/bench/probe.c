/*
 * probe.c - says which shared object serves malloc in this process, so the
 * runner can tell that an LD_PRELOAD library was really loaded (the dynamic
 * loader only warns, and goes on without it, when a preload fails).
 *
 * Prints "malloc from PATH", where PATH is the object that defines the
 * `malloc` this program calls, then allocates and frees a block through it.
 */
#define _GNU_SOURCE
#include <dlfcn.h>

#include "driver.h"

int main(void)
{
    Dl_info info;
    void *(*volatile m)(size_t) = malloc;
    if (dladdr((void *)m, &info) == 0 || info.dli_fname == NULL)
        die("probe: dladdr(malloc) failed");
    void *p = xmalloc(100);
    fill(p, 100, 1);
    free(p);
    printf("malloc from %s\n", info.dli_fname);
    return 0;
}
