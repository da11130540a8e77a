# Writes the input for the `sort` check: LINES lines (default 160000, about
# 9 MB) of a hex key, a number, and a word-like tail of varying length, from
# a fixed seed.  Only the bytes of one file matter (both runs of sort read the
# same file), so awk's generator need not match across machines.
BEGIN {
    if (LINES == "") LINES = 160000
    srand(7)
    alpha = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    for (i = 0; i < LINES; i++) {
        len = 1 + int(rand() * 40)
        start = 1 + int(rand() * (52 - 1))
        tail = substr(alpha alpha, start, len)
        printf "%08x %d %s %s\n", int(rand() * 4294967295), int(rand() * 100000), tail, tail
    }
}
