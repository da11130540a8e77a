"""Writes a C file of moderate size for the `gcc` check.

Usage: compile_unit.py FUNCTIONS > unit.c

Many functions with loops, switches, structs and string tables, called from
main, which prints a checksum: enough to make cc1 allocate a few tens of MB
(hash tables, GC pages, obstacks), and deterministic, so the assembly gcc
writes and the program's output must be identical with and without the
preload library.
"""

import sys

n = int(sys.argv[1]) if len(sys.argv) > 1 else 400
out = []
w = out.append
w("#include <stdio.h>\n#include <string.h>\n#include <stdint.h>\n")
w("struct pair { uint32_t a, b; const char *name; };\n")
for i in range(n):
    k = 3 + i % 7
    w(f"static const struct pair table_{i}[] = {{")
    w(", ".join(f'{{{(i * 31 + j * 7) % 1000}u, {(i * 17 + j) % 97}u, "n{i}_{j}"}}' for j in range(k)))
    w("};\n")
    w(f"static uint64_t fn_{i}(uint64_t x) {{\n")
    w("    uint64_t acc = x;\n")
    w(f"    for (unsigned j = 0; j < {k}; j++) {{\n")
    w(f"        acc = acc * 6364136223846793005ull + table_{i}[j].a;\n")
    w(f"        acc ^= strlen(table_{i}[j].name) << (j % 13);\n")
    w("        switch ((acc >> 7) % 5) {\n")
    for c in range(5):
        w(f"        case {c}: acc += {i * 13 + c}u * table_{i}[j].b; break;\n")
    w("        default: acc = ~acc; break;\n")
    w("        }\n    }\n")
    if i > 0:
        w(f"    if ((acc & 15) == {i % 16}) acc ^= fn_{i - 1}(acc >> 3);\n")
    w("    return acc;\n}\n")
w("int main(void) {\n    uint64_t sum = 0;\n")
w(f"    for (unsigned r = 0; r < 20; r++) {{\n")
for i in range(n):
    w(f"        sum += fn_{i}(sum + r + {i});\n")
w("    }\n")
w('    printf("functions %d checksum %llu\\n", ' + str(n) + ", (unsigned long long)sum);\n")
w("    return 0;\n}\n")
sys.stdout.write("".join(out))
