#!/usr/bin/env bash
# programs.sh - runs programs on the preload face of tagalloc (issue 2, "What
# it must show", the part that needs LD_PRELOAD).
#
# 1. Builds target/release/libtagalloc.so (cargo build --release -p
#    tagalloc-preload) and checks that it exports the malloc family.
# 2. Compiles the C programs in c/ into target/preload-tests/bin and runs them:
#    threads, fork, foreign_sbrk and edges must exit 0 on glibc (a check of
#    the tests themselves) and on tagalloc, where TAGALLOC_STATS=1 must show
#    that tagalloc served them; double_free and every case of misuse must die
#    of SIGABRT (status 134) after exactly one "tagalloc: CALL(): ..." line.
# 3. Runs real programs with and without the preload library: a Python script
#    sorting strings and dicts (also with PYTHONMALLOC=malloc), `sort` over a
#    generated file of about 9 MB (in memory, and as an external merge), and
#    `gcc` compiling a generated C file (assembly on stdout, an executable
#    that must be byte-identical and print the same).  Stdout must be
#    byte-identical, stderr identical once tagalloc's own lines are removed,
#    and the TAGALLOC_STATS=1 report must show bytes from brk and from mmap.
# 4. Records the threads program with TAGALLOC_TRACE and replays the trace
#    with tagalloc-diff, differentially against libc, on tagalloc in-process
#    and on libtagalloc.so loaded with dlopen.
#
# Prints "ok  NAME" or "FAIL NAME: WHY" per check (the logs of every run are in
# target/preload-tests/logs), then "N passed, M failed"; exits 1 on any
# failure.  Runs from any directory.  Takes about 30 s on 2 cores, plus the
# cargo build.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(git -C "$here" rev-parse --show-toplevel 2>/dev/null || (cd "$here/../../.." && pwd))
cd "$root"
target=$(realpath -m "${CARGO_TARGET_DIR:-target}")
so=$target/release/libtagalloc.so
work=$target/preload-tests
bin=$work/bin
logs=$work/logs
# One run at a time: a second run waits instead of wiping the first one's files.
mkdir -p "$target"
exec 9>"$target/preload-tests.lock"
flock 9
rm -rf "$work"
mkdir -p "$bin" "$logs"

unset TAGALLOC_STATS
ulimit -c 0 # the misuse programs abort: no core files

passed=0
failed=0
ok() {
    printf 'ok  %s\n' "$1"
    passed=$((passed + 1))
}
fail() {
    printf 'FAIL %s: %s\n' "$1" "$2"
    failed=$((failed + 1))
}
finish() {
    printf '%d passed, %d failed\n' "$passed" "$failed"
    exit $((failed > 0))
}

# ---------------------------------------------------------------------------
# The one place that knows the TAGALLOC_STATS=1 format.  Reads the stderr
# file $1, which holds the reports of every process of the run (children
# such as cc1, as and ld print their own).  Succeeds if some report shows
# brk bytes and some report shows mmap bytes; prints a short summary either
# way.  Tokens are matched anywhere so reports interleaved with other output
# still count.  The peak_ fields, not the current ones: at exit a program
# may have freed (and tagalloc trimmed or unmapped) everything.
stats_field_brk=peak_brk_bytes
stats_field_mmap=peak_mmap_bytes
stats_show_brk_and_mmap() {
    grep -oE "(^|[^A-Za-z_])($stats_field_brk|$stats_field_mmap)=[0-9]+" "$1" |
        awk -F= -v brk="$stats_field_brk" -v mm="$stats_field_mmap" '
            { key = $1; sub(/^[^A-Za-z_]/, "", key); v = $2 + 0 }
            key == brk { nb++; if (v > 0) b++; if (v > maxb) maxb = v }
            key == mm  { nm++; if (v > 0) m++; if (v > maxm) maxm = v }
            END {
                printf "%d reports, %d with %s > 0 (max %.0f), %d with %s > 0 (max %.0f)",
                    nb, b, brk, maxb, m, mm, maxm
                exit !(b > 0 && m > 0)
            }'
}
# Removes tagalloc's own lines (the stats reports) from a stderr file.
without_tagalloc_lines() { grep -v '^tagalloc:' "$1" || true; }
# ---------------------------------------------------------------------------

# run LOG SECONDS [NAME=VALUE...] -- COMMAND...
# Runs COMMAND with the extra environment, stdout to $logs/LOG.out and
# stderr to $logs/LOG.err, killed after SECONDS.  Sets $status: the exit
# status, 128+N for death by signal N, 124 for a timeout.
run() {
    local log=$1 secs=$2
    shift 2
    local envs=()
    while [[ $1 != -- ]]; do
        envs+=("$1")
        shift
    done
    shift
    status=0
    # the braces take bash's own "Aborted" notice away from our output
    { timeout -k 5 "$secs" env "${envs[@]}" "$@" >"$logs/$log.out" 2>"$logs/$log.err"; } 2>/dev/null ||
        status=$?
}

describe_status() {
    case $1 in
    124) echo "timed out" ;;
    134) echo "died of SIGABRT" ;;
    139) echo "died of SIGSEGV" ;;
    *) if [[ $1 -gt 128 ]]; then echo "died of signal $(($1 - 128))"; else echo "exit status $1"; fi ;;
    esac
}

first_line() { head -n 1 "$1" | cut -c 1-160; }

# --- 1. the library ---------------------------------------------------------
if cargo build --release -p tagalloc-preload --quiet >"$logs/cargo.out" 2>"$logs/cargo.err" && [[ -f $so ]]; then
    ok "build libtagalloc.so"
else
    fail "build libtagalloc.so" "cargo build failed (see $logs/cargo.err)"
    finish
fi

missing=()
for sym in malloc free calloc realloc reallocarray posix_memalign aligned_alloc memalign valloc pvalloc malloc_usable_size; do
    nm -D --defined-only "$so" | awk '{ print $NF }' | grep -qx "$sym" || missing+=("$sym")
done
if [[ ${#missing[@]} -eq 0 ]]; then
    ok "libtagalloc.so exports the malloc family"
else
    fail "libtagalloc.so exports the malloc family" "missing ${missing[*]}"
fi

# No allocation path may panic: a panic allocates its payload and formats, in the middle of
# malloc.  Every function of tagalloc's own in the library (its C exports and the tagalloc::
# functions, with what was inlined into them) is disassembled, and a direct call into core's
# panic entry points (bounds checks, unwrap, assertions, panic_fmt) fails the check.  The
# abort-on-unwind guards of the extern "C" functions (panic_cannot_unwind, panic_in_cleanup) are
# allowed: they run only if something unwinds, and nothing is left that panics.
name="no panic path in tagalloc's own code"
if command -v objdump >/dev/null; then
    objdump -d --no-show-raw-insn -C "$so" >"$logs/objdump.txt"
    awk '
        /^[0-9a-f]+ <.*>:$/ {
            fn = substr($0, index($0, "<") + 1); sub(/>:$/, "", fn)
            ours = fn ~ /^<?tagalloc::/ || fn ~ /^(malloc|free|calloc|realloc|reallocarray|posix_memalign|aligned_alloc|memalign|valloc|pvalloc|malloc_usable_size)$/
            next
        }
        ours && /(call|jmp)/ && /<core::(panicking|slice::index|str::slice_error|option::(unwrap|expect)_failed|result::unwrap_failed|option::expect)/ && !/panic_cannot_unwind|panic_in_cleanup/ {
            n = $NF; print fn " -> " n
        }' "$logs/objdump.txt" | sort -u >"$logs/panic-paths.txt"
    if [[ ! -s $logs/panic-paths.txt ]]; then
        ok "$name"
    else
        fail "$name" "$(wc -l <"$logs/panic-paths.txt") call sites, e.g. $(head -n 1 "$logs/panic-paths.txt" | cut -c 1-160) (all: $logs/panic-paths.txt)"
    fi
else
    printf 'skip %s: objdump is not installed\n' "$name"
fi

# The library does not load the unwinder: on x86-64 Linux it defines std's references to
# _Unwind_* itself, hidden and inert (src/unwind.rs), so libgcc_s.so.1 is not needed and a
# preloaded program does not map it (about 100 KiB of resident memory per process).  Whether
# those copies stay private is checked by the exceptions program below.
name="libtagalloc.so does not need libgcc_s"
if [[ $(uname -m) != x86_64 ]]; then
    printf 'skip %s: the inert unwinder is x86-64 only\n' "$name"
elif ! command -v objdump >/dev/null; then
    printf 'skip %s: objdump is not installed\n' "$name"
else
    needed=$(objdump -p "$so" | awk '$1 == "NEEDED" { printf "%s ", $2 }')
    if [[ $needed == *libgcc_s* ]]; then
        fail "$name" "NEEDED: $needed"
    elif nm -D --defined-only "$so" | grep -q ' _Unwind_'; then
        fail "$name" "it exports $(nm -D --defined-only "$so" | grep -m 1 ' _Unwind_')"
    else
        ok "$name (NEEDED: $needed)"
    fi
fi
preload=LD_PRELOAD=$so

# --- 2. the C programs ------------------------------------------------------
programs=(threads fork fork_stdio fork_signal foreign_sbrk edges errno double_free misuse uaf)
compiled=1
for p in "${programs[@]}"; do
    if ! gcc -O2 -g -pthread -Wall -Werror -o "$bin/$p" "$here/c/$p.c" 2>"$logs/gcc-$p.err"; then
        fail "compile $p.c" "$(first_line "$logs/gcc-$p.err")"
        compiled=0
    fi
done
[[ $compiled -eq 1 ]] && ok "compile the C programs (gcc -O2 -pthread -Wall -Werror)"
[[ $compiled -eq 1 ]] || finish
# C++ exceptions under the preload: the unwinder of libgcc_s, not the library's inert copies.
cxx=0
if command -v g++ >/dev/null; then
    if g++ -O2 -g -pthread -Wall -Werror -o "$bin/exceptions" "$here/c/exceptions.cc" 2>"$logs/gxx-exceptions.err"; then
        cxx=1
    else
        fail "compile exceptions.cc" "$(first_line "$logs/gxx-exceptions.err")"
    fi
else
    printf 'skip exceptions: g++ is not installed\n'
fi

# A program that must succeed: exit 0, a summary on stdout, nothing on stderr
# but tagalloc's report, and the report must show brk and mmap.
clean_run() {
    local p=$1 secs=$2
    run "$p-glibc" "$secs" -- "$bin/$p"
    if [[ $status -ne 0 ]]; then
        fail "$p (glibc)" "$(describe_status $status): $(first_line "$logs/$p-glibc.err")$(first_line "$logs/$p-glibc.out")"
    else
        ok "$p (glibc)"
    fi
    run "$p" "$secs" "$preload" TAGALLOC_STATS=1 -- "$bin/$p"
    local stats
    if [[ $status -ne 0 ]]; then
        fail "$p" "$(describe_status $status): $(without_tagalloc_lines "$logs/$p.err" | head -n 1)$(first_line "$logs/$p.out")"
    elif [[ -n $(without_tagalloc_lines "$logs/$p.err") ]]; then
        fail "$p" "unexpected stderr: $(without_tagalloc_lines "$logs/$p.err" | head -n 1)"
    elif ! stats=$(stats_show_brk_and_mmap "$logs/$p.err"); then
        fail "$p" "TAGALLOC_STATS=1 does not show tagalloc serving it from brk and mmap: $stats"
    else
        ok "$p: $(first_line "$logs/$p.out" | sed "s/^$p: //")"
    fi
}

clean_run threads 120
clean_run fork 120
clean_run foreign_sbrk 60
[[ $cxx -eq 1 ]] && clean_run exceptions 120

# repeat_run NAME TIMES SECONDS -- COMMAND...: COMMAND under the preload,
# TIMES runs, each killed after SECONDS; every run must exit 0 (a hang is a
# timeout).  Reports the slowest run.
repeat_run() {
    local name=$1 times=$2 secs=$3
    shift 4
    local i bad=0 why="" slowest=0 t0 ms
    for ((i = 1; i <= times; i++)); do
        t0=$(date +%s%N)
        run "$name-$i" "$secs" "$preload" -- "$@"
        ms=$((($(date +%s%N) - t0) / 1000000))
        ((ms > slowest)) && slowest=$ms
        if [[ $status -ne 0 ]]; then
            bad=$((bad + 1))
            [[ -z $why ]] && why="run $i: $(describe_status $status): $(first_line "$logs/$name-$i.err")"
        fi
    done
    if [[ $bad -eq 0 ]]; then
        ok "$name: $times runs exited 0, slowest $((slowest / 1000)).$((slowest % 1000 / 100)) s (limit $secs s): $(first_line "$logs/$name-$times.out")"
    else
        fail "$name" "$bad of $times runs failed; $why"
    fi
}

# fork beside stdio locks (glibc bug 19431) and fork from a signal handler
# inside malloc (glibc's tst-mallocfork2): each program once on glibc, as a
# check of the program itself, then 20 times on tagalloc.  The two-thread
# signal case hangs on glibc itself (fork is not async-signal-safe in a
# multi-threaded glibc process), so it runs on tagalloc only.
for glibc_check in "fork_stdio" "fork_signal"; do
    run "$glibc_check-glibc" 60 -- "$bin/$glibc_check"
    if [[ $status -eq 0 ]]; then
        ok "$glibc_check (glibc)"
    else
        fail "$glibc_check (glibc)" "$(describe_status $status): $(first_line "$logs/$glibc_check-glibc.err")"
    fi
done
printf 'skip fork_signal threads (glibc): hangs on glibc by design; tagalloc only\n'
repeat_run fork_stdio 20 30 -- "$bin/fork_stdio"
repeat_run fork_signal 20 30 -- "$bin/fork_signal"
repeat_run fork_signal-threads 20 30 -- "$bin/fork_signal" threads
repeat_run fork-1000 20 60 -- "$bin/fork" 1000 light
clean_run edges 60

# An abort check: status 134, exactly one line on stderr matching $regex,
# and (if $want_addr) a 0x number in it equal to the pointer the program
# printed on stdout just before the misuse.
abort_run() {
    local name=$1 regex=$2 want_addr=$3
    shift 3
    run "$name" 30 "$preload" -- "$@"
    local err=$logs/$name.err lines
    lines=$(wc -l <"$err")
    if [[ $status -ne 134 ]]; then
        fail "$name" "$(describe_status $status), not SIGABRT: stderr: $(first_line "$err")"
    elif [[ $lines -ne 1 ]]; then
        fail "$name" "$lines lines on stderr, not one: $(first_line "$err")"
    elif ! grep -qE "$regex" "$err"; then
        fail "$name" "stderr line does not match /$regex/: $(first_line "$err")"
    elif [[ $want_addr -eq 1 ]] && ! mentions_pointer "$err" "$(first_line "$logs/$name.out")"; then
        fail "$name" "message does not name the pointer $(first_line "$logs/$name.out"): $(first_line "$err")"
    else
        ok "$name: $(first_line "$err")"
    fi
}

# mentions_pointer FILE 0xADDR: some 0x number in FILE equals ADDR.
mentions_pointer() {
    [[ $2 =~ ^0x[0-9a-fA-F]+$ ]] || return 1
    local want=$(($2)) hex
    for hex in $(grep -oE '0x[0-9a-fA-F]+' "$1"); do
        [[ $((hex)) -eq $want ]] && return 0
    done
    return 1
}

# The messages each misuse must produce (one line, then SIGABRT).
hex='0x[0-9a-f]+'
abort_run double_free "^tagalloc: free\(\): double free of $hex detected\$" 1 "$bin/double_free"
abort_run misuse-stack "^tagalloc: free\(\): invalid pointer $hex detected\$" 1 "$bin/misuse" stack
abort_run misuse-interior "^tagalloc: free\(\): invalid pointer $hex detected\$" 1 "$bin/misuse" interior
abort_run misuse-misaligned "^tagalloc: free\(\): invalid pointer $hex detected\$" 1 "$bin/misuse" misaligned
abort_run misuse-realloc-freed "^tagalloc: realloc\(\): .*$hex.* detected\$" 1 "$bin/misuse" realloc-freed
abort_run misuse-overflow "^tagalloc: free\(\): corrupted boundary tag at $hex detected\$" 0 "$bin/misuse" overflow
abort_run misuse-overflow-prev "^tagalloc: free\(\): corrupted boundary tag at $hex detected\$" 0 "$bin/misuse" overflow-prev
abort_run misuse-overflow-1 "^tagalloc: free\(\): corrupted boundary tag at $hex detected\$" 1 "$bin/misuse" overflow-1
abort_run misuse-underflow-1 "^tagalloc: free\(\): corrupted boundary tag at $hex detected\$" 1 "$bin/misuse" underflow-1
abort_run misuse-large-interior "^tagalloc: free\(\): invalid pointer $hex detected\$" 1 "$bin/misuse" large-interior
abort_run misuse-large-past "^tagalloc: free\(\): invalid pointer $hex detected\$" 1 "$bin/misuse" large-past
abort_run misuse-large-double "^tagalloc: free\(\): double free of $hex detected\$" 1 "$bin/misuse" large-double
# Use after free: caught by the next malloc of the size, naming the freed block; the poisoning
# program must not get the planted address back (it would exit 4).
for c in poison link-small header-small block-small link-medium header-medium block-medium; do
    abort_run "uaf-$c" "^tagalloc: malloc\(\): corrupted free block at $hex detected\$" 1 "$bin/uaf" "$c"
done

# --- 3. real programs -------------------------------------------------------
# same_output NAME SECONDS [NAME=VALUE...] -- COMMAND...
# Runs COMMAND on glibc and on tagalloc (with TAGALLOC_STATS=1); two checks:
# "NAME output" (both exit 0, stdout byte-identical, stderr identical but
# for tagalloc's lines) and "NAME stats" (the report shows brk and mmap).
same_output() {
    local name=$1 secs=$2
    shift 2
    # "$@" is NAME=VALUE... -- COMMAND..., which `run` takes as it is.
    run "$name-glibc" "$secs" "$@"
    local glibc_status=$status
    run "$name" "$secs" "$preload" TAGALLOC_STATS=1 "$@"
    local g=$logs/$name-glibc t=$logs/$name stats
    if [[ $glibc_status -ne 0 ]]; then
        fail "$name output" "fails without the preload too: $(describe_status $glibc_status): $(first_line "$g.err")"
    elif [[ $status -ne 0 ]]; then
        fail "$name output" "$(describe_status $status) on tagalloc (glibc: 0): $(without_tagalloc_lines "$t.err" | head -n 1 | cut -c 1-160)"
    elif ! cmp -s "$g.out" "$t.out"; then
        fail "$name output" "stdout differs from glibc's ($(cmp "$g.out" "$t.out" 2>&1 | head -n 1))"
    elif ! cmp -s <(without_tagalloc_lines "$g.err") <(without_tagalloc_lines "$t.err"); then
        fail "$name output" "stderr differs from glibc's: $(without_tagalloc_lines "$t.err" | head -n 1 | cut -c 1-160)"
    else
        ok "$name output ($(wc -c <"$t.out") bytes identical)"
    fi
    if stats=$(stats_show_brk_and_mmap "$t.err"); then
        ok "$name stats: $stats"
    else
        fail "$name stats" "TAGALLOC_STATS=1 does not show brk and mmap: $stats"
    fi
}

# errno after every failing path of the family, and untouched by free,
# realloc(p, 0) and successful calls: line for line as on glibc.
same_output errno 30 -- "$bin/errno"

# The interpreter itself, not a wrapper such as a pyenv shim (a bash script
# whose own processes would fill the stats with reports of bash).
python=$(python3 -c 'import sys; print(sys.executable)')
same_output python-sort 180 PYTHONHASHSEED=0 -- "$python" "$here/real/python_sort.py" 300000
same_output python-sort-malloc 180 PYTHONHASHSEED=0 PYTHONMALLOC=malloc -- "$python" "$here/real/python_sort.py" 150000

awk -f "$here/real/sort_input.awk" >"$work/sort.in"
same_output sort 60 LC_ALL=C -- sort "$work/sort.in"
mkdir -p "$work/sort-tmp"
same_output sort-merge 60 LC_ALL=C -- sort -k2,2n -k3 -S 1M --parallel=2 -T "$work/sort-tmp" "$work/sort.in"

python3 "$here/real/compile_unit.py" 400 >"$work/unit.c"
same_output gcc-asm 180 -- gcc -O2 -S -o - "$work/unit.c"
run gcc-link-glibc 180 -- gcc -O2 -o "$work/unit-glibc" "$work/unit.c"
glibc_status=$status
run gcc-link 180 "$preload" TAGALLOC_STATS=1 -- gcc -O2 -o "$work/unit-tagalloc" "$work/unit.c"
if [[ $glibc_status -ne 0 ]]; then
    fail "gcc-link output" "fails without the preload too: $(first_line "$logs/gcc-link-glibc.err")"
elif [[ $status -ne 0 ]]; then
    fail "gcc-link output" "$(describe_status $status) on tagalloc: $(without_tagalloc_lines "$logs/gcc-link.err" | head -n 1 | cut -c 1-160)"
elif ! cmp -s "$work/unit-glibc" "$work/unit-tagalloc"; then
    fail "gcc-link output" "the executable differs from the one gcc builds on glibc"
else
    run unit-glibc 60 -- "$work/unit-glibc"
    glibc_status=$status
    run unit-tagalloc 60 -- "$work/unit-tagalloc"
    if [[ $glibc_status -ne 0 || $status -ne 0 ]] || ! cmp -s "$logs/unit-glibc.out" "$logs/unit-tagalloc.out"; then
        fail "gcc-link output" "the compiled program's runs differ or fail"
    else
        ok "gcc-link output (identical executable; it prints: $(first_line "$logs/unit-tagalloc.out"))"
    fi
fi
if stats=$(stats_show_brk_and_mmap "$logs/gcc-link.err"); then
    ok "gcc-link stats: $stats"
else
    fail "gcc-link stats" "TAGALLOC_STATS=1 does not show brk and mmap: $stats"
fi

# ---------------------------------------------------------------------------
# TAGALLOC_TRACE: a multi-threaded program recorded as a text trace, which the
# suite's runner replays on tagalloc with every oracle, and differentially
# against libc.  Recording must not change what the program prints.
cargo build --release -q -p tagalloc-diff
differ=$target/release/tagalloc-diff
run trace-record 180 "$preload" TAGALLOC_TRACE="$work/threads.trace" -- "$bin/threads"
if [[ $status -ne 0 ]]; then
    fail "trace-record" "$(describe_status $status) while tracing: $(first_line "$logs/trace-record.err")"
elif ! grep -q '^malloc ' "$work/threads.trace" || ! grep -q '^free ' "$work/threads.trace"; then
    fail "trace-record" "the trace holds no malloc or free lines"
else
    ok "trace-record: $(grep -c -v '^#' "$work/threads.trace") calls from 4 threads"
    run trace-replay 300 -- "$differ" diff "$work/threads.trace"
    if [[ $status -eq 0 ]]; then
        ok "trace-replay: $(first_line "$logs/trace-replay.out")"
    else
        fail "trace-replay" "$(describe_status $status): $(head -n 3 "$logs/trace-replay.out" "$logs/trace-replay.err" | tr '\n' ' ' | cut -c 1-200)"
    fi
fi

# The library loaded with dlopen beside glibc's malloc (the suite's dylib backend), where it runs on
# a private break and without the static-TLS shortcut: the recorded trace must pass every oracle
# there too, differentially against libc.
run dlopen-replay 300 -- "$differ" diff --backend "$so" --against libc "$work/threads.trace"
if [[ $status -eq 0 ]]; then
    ok "dlopen-replay: $(first_line "$logs/dlopen-replay.out")"
else
    fail "dlopen-replay" "$(describe_status $status): $(head -n 3 "$logs/dlopen-replay.out" "$logs/dlopen-replay.err" | tr '\n' ' ' | cut -c 1-200)"
fi

# The shipped library's C exports (symbol layer, errno, malloc_usable_size) judged by the suite's
# oracles: every clean and threads trace kept under corpus/ (the misuse and faults dialects need
# tagalloc in-process), each run in a fresh child of tagalloc-diff that loaded the library.
mapfile -t kept < <(grep -L -E '^[[:space:]]*(misuse|overwrite|fail_next|foreign_sbrk)' \
    "$root"/corpus/seeds/*.trace "$root"/corpus/regressions/*.trace)
run dlopen-corpus 300 -- "$differ" run --backend "$so" "${kept[@]}"
if [[ $status -eq 0 ]]; then
    ok "dlopen-corpus: ${#kept[@]} kept traces pass every oracle on $(basename "$so")"
else
    fail "dlopen-corpus" "$(describe_status $status): $(grep -v ': ok (' "$logs/dlopen-corpus.out" "$logs/dlopen-corpus.err" | head -n 3 | tr '\n' ' ' | cut -c 1-300)"
fi

finish
