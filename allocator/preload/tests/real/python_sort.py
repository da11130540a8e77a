"""Builds and sorts a large list of strings and dicts, then prints a digest.

A real-program check for the preload library: the output depends only on
the seed, so a run on tagalloc must print exactly what a run on glibc prints.
Strings range from a few bytes to a few KiB (the long ones bypass pymalloc and
reach malloc); the lists and the index dict grow to megabytes (mmap-sized).
"""

import hashlib
import json
import random
import sys

N = int(sys.argv[1]) if len(sys.argv) > 1 else 300_000
rng = random.Random(20240501)

words = ["%x" % rng.getrandbits(rng.randint(8, 96)) for _ in range(5000)]
strings = []
records = []
for i in range(N):
    w = words[rng.randrange(len(words))]
    if i % 97 == 0:
        s = w * rng.randint(100, 800)  # a few KiB: a malloc'd object
    else:
        s = "%s-%d" % (w, rng.randrange(1_000_000))
    strings.append(s)
    records.append(
        {
            "name": s[:40],
            "n": rng.randrange(1 << 30),
            "tags": [words[rng.randrange(len(words))] for _ in range(rng.randint(0, 4))],
            "score": rng.random(),
        }
    )

strings.sort()
records.sort(key=lambda r: (r["name"], r["n"]))
index = {}
for r in records:
    index.setdefault(r["name"], []).append(r["n"])
grouped = sorted(((k, sum(v) % 1_000_003, len(v)) for k, v in index.items()), key=lambda t: (-t[2], t[0]))

h = hashlib.sha256()
for s in strings:
    h.update(s.encode())
    h.update(b"\n")
h.update(json.dumps(records[::1000], sort_keys=True).encode())
h.update(repr(grouped[:1000]).encode())

print("strings", len(strings), "first", strings[0][:30], "last", strings[-1][:30])
print("records", len(records), "distinct names", len(index))
print("top group", grouped[0])
print("sha256", h.hexdigest())
