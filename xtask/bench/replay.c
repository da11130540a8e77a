/*
 * replay.c - replays a text trace through the C allocation API, and reports
 * the peak of live requested bytes so the runner can compute space
 * utilisation, as the CS:APP malloc-lab driver does.
 *
 * Usage: replay FILE
 *
 * Grammar (the suite's text traces, see diff/src/text.rs): one op per line,
 * `#` starts a comment, blank lines anywhere;
 *   malloc SLOT SIZE              calloc SLOT COUNT SIZE      realloc SLOT SIZE
 *   free SLOT                     usable_size SLOT            (also malloc_usable_size)
 *   posix_memalign SLOT ALIGN SIZE   aligned_alloc SLOT ALIGN SIZE   memalign SLOT ALIGN SIZE
 *   a SLOT SIZE   r SLOT SIZE   f SLOT                      (CS:APP malloc lab, after
 *                                                            up to 4 header lines of one integer)
 * Numbers are DECIMAL, 0xHEX, SIZE_MAX or PTRDIFF_MAX, optionally followed by
 * +N or -N.  Ops this driver does not know (`check`, and the misuse and fault
 * dialects) are counted and skipped; a known op with bad operands is an
 * error (exit 2, naming the line).  Slots are below 2^24.
 *
 * Semantics, as the suite's runner: an allocation into a slot that holds a
 * live block leaves that block allocated (leaked, still counted live); free,
 * realloc and usable_size of an empty slot pass NULL; a call that fails
 * leaves the slot as it was (realloc to 0 that returns NULL freed the block).
 *
 * Phases: (1) the whole trace is parsed into an array of ops, and the slot
 * table is allocated and touched; none of the driver's own memory comes from
 * malloc (it is mmap'd), and nothing is unmapped before the replay, so the
 * process's RSS only grows up to (2): the RSS just before the replay is
 * printed as `metric baseline_rss_kib`; (3) the replay: every block is filled
 * with a byte pattern of its slot over its whole requested size, and its
 * first and last bytes are checked before free and realloc.  The peak of the
 * sum of requested sizes of live blocks is `metric peak_live_bytes`, the
 * time the replay took (phase 3 only) `metric replay_ns`.  The
 * runner defines the heap footprint as the process's peak RSS minus the
 * baseline, and utilisation as peak_live_bytes over that footprint.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>

#include "driver.h"

#define MAX_SLOT_BITS 24
#define LINE_BUF (1 << 16)

enum kind {
    OP_MALLOC,
    OP_CALLOC,
    OP_REALLOC,
    OP_FREE,
    OP_POSIX_MEMALIGN,
    OP_ALIGNED_ALLOC,
    OP_MEMALIGN,
    OP_USABLE_SIZE,
};

struct op {
    uint32_t kind;
    uint32_t slot;
    uint64_t a, b; /* SIZE; COUNT SIZE; ALIGN SIZE */
};

struct slot {
    unsigned char *p;
    size_t n;
};

static const char *file_name;
static unsigned long line_no;

__attribute__((noreturn)) static void bad_line(const char *what)
{
    fprintf(stderr, "replay: %s:%lu: %s\n", file_name, line_no, what);
    exit(2);
}

static void *map_anonymous(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (p == MAP_FAILED)
        die("replay: mmap(%zu): %s", bytes, strerror(errno));
    return p;
}

/* Parse an unsigned DECIMAL or 0xHEX of exactly `len` chars. */
static int parse_unsigned(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    if (len > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        for (size_t i = 2; i < len; i++) {
            int d;
            char c = s[i];
            if (c >= '0' && c <= '9')
                d = c - '0';
            else if (c >= 'a' && c <= 'f')
                d = c - 'a' + 10;
            else if (c >= 'A' && c <= 'F')
                d = c - 'A' + 10;
            else
                return 0;
            if (v > (UINT64_MAX >> 4))
                return 0;
            v = (v << 4) | (uint64_t)d;
        }
    } else {
        if (len == 0)
            return 0;
        for (size_t i = 0; i < len; i++) {
            if (s[i] < '0' || s[i] > '9')
                return 0;
            uint64_t d = (uint64_t)(s[i] - '0');
            if (v > (UINT64_MAX - d) / 10)
                return 0;
            v = v * 10 + d;
        }
    }
    *out = v;
    return 1;
}

/* NUMBER = (DECIMAL | 0xHEX | SIZE_MAX | PTRDIFF_MAX) [+DECIMAL | -DECIMAL] */
static int parse_number(const char *s, size_t len, uint64_t *out)
{
    size_t split = len;
    for (size_t i = 1; i < len; i++) {
        if (s[i] == '+' || s[i] == '-') {
            split = i;
            break;
        }
    }
    uint64_t base;
    if (split == 8 && strncmp(s, "SIZE_MAX", 8) == 0)
        base = SIZE_MAX;
    else if (split == 11 && strncmp(s, "PTRDIFF_MAX", 11) == 0)
        base = PTRDIFF_MAX;
    else if (!parse_unsigned(s, split, &base))
        return 0;
    if (split == len) {
        *out = base;
        return 1;
    }
    uint64_t delta;
    if (!parse_unsigned(s + split + 1, len - split - 1, &delta))
        return 0;
    if (s[split] == '+') {
        if (base > UINT64_MAX - delta)
            return 0;
        *out = base + delta;
    } else {
        if (delta > base)
            return 0;
        *out = base - delta;
    }
    return 1;
}

struct words {
    const char *start[6];
    size_t len[6];
    int count;
};

/* Split a line (without its newline) into at most 6 words, dropping a comment. */
static void split_words(const char *line, size_t len, struct words *w)
{
    w->count = 0;
    size_t i = 0;
    while (i < len && line[i] != '#') {
        while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'))
            i++;
        if (i >= len || line[i] == '#')
            break;
        size_t start = i;
        while (i < len && line[i] != ' ' && line[i] != '\t' && line[i] != '\r' && line[i] != '#')
            i++;
        if (w->count == 6)
            bad_line("too many words");
        w->start[w->count] = line + start;
        w->len[w->count] = i - start;
        w->count++;
    }
}

static int word_is(const struct words *w, int i, const char *s)
{
    return w->len[i] == strlen(s) && strncmp(w->start[i], s, w->len[i]) == 0;
}

static uint64_t operand(const struct words *w, int i)
{
    uint64_t v;
    if (i >= w->count)
        bad_line("missing operand");
    if (!parse_number(w->start[i], w->len[i], &v))
        bad_line("bad number");
    return v;
}

struct trace {
    struct op *ops;
    size_t len, cap;
    uint64_t max_slot;
    unsigned long ignored;
    int header_lines;
};

static int all_digits(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return len > 0;
}

/* Parse one line into the trace. */
static void parse_line(struct trace *t, const char *line, size_t len)
{
    struct words w;
    split_words(line, len, &w);
    if (w.count == 0)
        return;
    if (t->len == 0 && t->header_lines < 4 && w.count == 1 && all_digits(w.start[0], w.len[0])) {
        t->header_lines++; /* a malloc-lab header line */
        return;
    }
    struct op op = {0};
    int operands;
    if (word_is(&w, 0, "malloc") || word_is(&w, 0, "a")) {
        op.kind = OP_MALLOC;
        operands = 1;
    } else if (word_is(&w, 0, "calloc")) {
        op.kind = OP_CALLOC;
        operands = 2;
    } else if (word_is(&w, 0, "realloc") || word_is(&w, 0, "r")) {
        op.kind = OP_REALLOC;
        operands = 1;
    } else if (word_is(&w, 0, "free") || word_is(&w, 0, "f")) {
        op.kind = OP_FREE;
        operands = 0;
    } else if (word_is(&w, 0, "posix_memalign")) {
        op.kind = OP_POSIX_MEMALIGN;
        operands = 2;
    } else if (word_is(&w, 0, "aligned_alloc")) {
        op.kind = OP_ALIGNED_ALLOC;
        operands = 2;
    } else if (word_is(&w, 0, "memalign")) {
        op.kind = OP_MEMALIGN;
        operands = 2;
    } else if (word_is(&w, 0, "usable_size") || word_is(&w, 0, "malloc_usable_size")) {
        op.kind = OP_USABLE_SIZE;
        operands = 0;
    } else {
        t->ignored++;
        return;
    }
    if (w.count != 2 + operands)
        bad_line(w.count < 2 + operands ? "missing operand" : "too many operands");
    uint64_t slot = operand(&w, 1);
    if (slot >= (1u << MAX_SLOT_BITS))
        bad_line("slot out of range (at most 2^24 - 1)");
    op.slot = (uint32_t)slot;
    if (operands >= 1)
        op.a = operand(&w, 2);
    if (operands == 2)
        op.b = operand(&w, 3);
    if (t->len == t->cap)
        die("replay: %s: more ops than its size allows", file_name);
    if (slot > t->max_slot)
        t->max_slot = slot;
    t->ops[t->len++] = op;
}

static void load(struct trace *t, const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        die("replay: cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0)
        die("replay: cannot stat %s: %s", path, strerror(errno));
    /* every op takes at least 4 bytes ("f 1\n") */
    t->cap = (size_t)st.st_size / 4 + 1;
    t->ops = map_anonymous(t->cap * sizeof(struct op));
    static char buf[LINE_BUF];
    size_t have = 0;
    int eof = 0;
    while (!eof || have > 0) {
        if (!eof) {
            ssize_t n = read(fd, buf + have, sizeof buf - have);
            if (n < 0)
                die("replay: reading %s: %s", path, strerror(errno));
            if (n == 0)
                eof = 1;
            have += (size_t)n;
        }
        size_t start = 0;
        for (;;) {
            char *nl = memchr(buf + start, '\n', have - start);
            if (nl == NULL)
                break;
            line_no++;
            parse_line(t, buf + start, (size_t)(nl - (buf + start)));
            start = (size_t)(nl - buf) + 1;
        }
        if (eof && start < have) { /* a last line without newline */
            line_no++;
            parse_line(t, buf + start, have - start);
            start = have;
        }
        if (start == 0 && have == sizeof buf)
            bad_line("line longer than 64 KiB");
        memmove(buf, buf + start, have - start);
        have -= start;
    }
    close(fd);
}

/* VmRSS of this process in KiB, read without malloc. */
static unsigned long long rss_kib(void)
{
    char buf[4096];
    int fd = open("/proc/self/status", O_RDONLY);
    if (fd < 0)
        die("replay: cannot open /proc/self/status");
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        die("replay: cannot read /proc/self/status");
    buf[n] = '\0';
    const char *p = strstr(buf, "VmRSS:");
    if (p == NULL)
        die("replay: no VmRSS in /proc/self/status");
    return strtoull(p + 6, NULL, 10);
}

struct totals {
    unsigned long long live, peak_live, failed;
};

static void allocated(struct totals *tot, struct slot *s, void *p, size_t n, uint32_t slot)
{
    if (p == NULL) {
        tot->failed++;
        return;
    }
    /* a live block in the slot is leaked: it stays counted live */
    s->p = p;
    s->n = n;
    fill(p, n, slot);
    tot->live += n;
    if (tot->live > tot->peak_live)
        tot->peak_live = tot->live;
}

static void replay(const struct trace *t, struct slot *slots, struct totals *tot)
{
    for (size_t i = 0; i < t->len; i++) {
        const struct op *op = &t->ops[i];
        struct slot *s = &slots[op->slot];
        switch (op->kind) {
        case OP_MALLOC:
            allocated(tot, s, malloc(op->a), op->a, op->slot);
            break;
        case OP_CALLOC: {
            unsigned char *p = calloc(op->a, op->b);
            size_t n = p ? op->a * op->b : 0;
            if (p != NULL && n > 0 && (p[0] != 0 || p[n - 1] != 0))
                die("replay: op %zu: calloc returned memory that is not zero", i + 1);
            allocated(tot, s, p, n, op->slot);
            break;
        }
        case OP_REALLOC: {
            unsigned char *old = s->p;
            size_t old_n = old ? s->n : 0;
            if (old != NULL)
                check_ends(old, old_n, op->slot, "replay: realloc");
            unsigned char *p = realloc(old, op->a);
            if (p == NULL) {
                if (op->a == 0 && old != NULL) { /* glibc: realloc(p, 0) frees p */
                    tot->live -= old_n;
                    s->p = NULL;
                    s->n = 0;
                } else {
                    tot->failed++;
                }
                break;
            }
            size_t kept = old_n < op->a ? old_n : op->a;
            if (kept > 0)
                check_ends(p, kept, op->slot, "replay: realloc kept");
            if (op->a > old_n)
                fill(p + old_n, op->a - old_n, op->slot);
            s->p = p;
            s->n = op->a;
            tot->live = tot->live - old_n + op->a;
            if (tot->live > tot->peak_live)
                tot->peak_live = tot->live;
            break;
        }
        case OP_FREE:
            if (s->p != NULL) {
                check_ends(s->p, s->n, op->slot, "replay: free");
                tot->live -= s->n;
            }
            free(s->p);
            s->p = NULL;
            s->n = 0;
            break;
        case OP_POSIX_MEMALIGN: {
            void *p = NULL;
            if (posix_memalign(&p, op->a, op->b) != 0)
                p = NULL;
            allocated(tot, s, p, op->b, op->slot);
            break;
        }
        case OP_ALIGNED_ALLOC:
            allocated(tot, s, aligned_alloc(op->a, op->b), op->b, op->slot);
            break;
        case OP_MEMALIGN:
            allocated(tot, s, memalign(op->a, op->b), op->b, op->slot);
            break;
        case OP_USABLE_SIZE:
            if (s->p != NULL && malloc_usable_size(s->p) < s->n)
                die("replay: op %zu: malloc_usable_size %zu below the %zu bytes requested", i + 1,
                    malloc_usable_size(s->p), s->n);
            break;
        }
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: replay FILE\n");
        return 2;
    }
    file_name = argv[1];
    struct trace t = {0};
    load(&t, file_name);
    size_t table = (size_t)(t.max_slot + 1) * sizeof(struct slot);
    struct slot *slots = map_anonymous(table);
    memset(slots, 0, table); /* resident before the baseline is taken */
    unsigned long long baseline = rss_kib();
    struct totals tot = {0};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    replay(&t, slots, &tot);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("replay: %zu ops replayed, %lu ops ignored\n", t.len, t.ignored);
    metric("baseline_rss_kib", baseline);
    metric("peak_live_bytes", tot.peak_live);
    metric("failed_calls", tot.failed);
    long long ns = (t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec);
    metric("replay_ns", (unsigned long long)ns);
    return 0;
}
