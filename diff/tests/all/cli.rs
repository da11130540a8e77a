//! The command-line tool on good, failing and malformed traces, and on shared-object backends
//! built here from a few lines of C.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_tagalloc-diff");

pub(crate) fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("tagalloc-diff-cli-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub(crate) fn file(name: &str, content: &[u8]) -> String {
    let p = dir().join(name);
    std::fs::write(&p, content).unwrap();
    p.to_string_lossy().into_owned()
}

pub(crate) fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

pub(crate) fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

const GOOD: &str = "# grows, shrinks, crosses the mmap threshold\nmalloc 0 24\ncalloc 1 10 8\n\
                    realloc 0 100\nposix_memalign 2 64 200\nmalloc 3 131072\nrealloc 3 16\n\
                    usable_size 1\nmalloc 4 PTRDIFF_MAX+1\nfree 0\ncheck\n";

#[test]
fn good_traces_exit_0_on_every_backend() {
    let t = file("good.trace", GOOD.as_bytes());
    let csapp = file(
        "lab.rep",
        b"20000\n2\n5\n1\na 0 2040\na 1 2040\nr 0 4000\nf 1\nf 0\n",
    );
    for args in [
        vec!["run", &t, &csapp],
        vec!["run", "--backend", "libc", &t],
        vec!["diff", &t, &csapp],
        vec!["diff", "--backend", "libc", "--against", "tagalloc", &t],
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", text(&o));
        assert!(text(&o).contains(": ok ("), "{}", text(&o));
    }
}

#[test]
fn malformed_traces_exit_2_naming_file_and_line() {
    let t = file("bad.trace", b"malloc 0 24\n\nfree zero\n");
    let o = run(&["run", &t]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("{t}:3: bad a slot `zero`")),
        "{}",
        text(&o)
    );
    for args in [
        vec!["frobnicate"],
        vec!["run"],
        vec!["run", "--backend"],
        vec![],
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(text(&o).contains("usage:"), "{args:?}: {}", text(&o));
    }
    let o = run(&["run", "/nonexistent/x.trace"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let misuse = file("misuse.trace", b"malloc 0 8\nmisuse free freed 0\n");
    // Misuse on a backend that cannot report it: skipped, saying why, not bad input.
    let o = run(&["run", "--backend", "libc", &misuse]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("skipped: `misuse free freed 0` is misuse"),
        "{}",
        text(&o)
    );
    assert_eq!(run(&["run", &misuse]).status.code(), Some(0));
}

#[test]
fn encode_and_decode_round_trip() {
    let t = file("rt.trace", GOOD.as_bytes());
    let bin = dir().join("rt.bin");
    let o = run(&["encode", "-o", bin.to_str().unwrap(), &t]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // Its directory names no target: decode refuses to guess, and decodes when told.
    let o = run(&["decode", bin.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("pass --target T"), "{}", text(&o));
    let o = run(&["decode", "--target", "all", bin.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let decoded = String::from_utf8(o.stdout).unwrap();
    let parse = |s: &str| tagalloc_diff::text::parse(s).unwrap();
    assert_eq!(parse(&decoded), parse(GOOD));
}

#[test]
fn decode_takes_the_target_from_the_artifact_directory() {
    // Bytes that decode differently per target: misuse keeps ops that ops drops.
    let t = file(
        "mixed.trace",
        b"malloc 0 8\nmisuse free freed 0\noverwrite 0 4\nmalloc 1 16\n",
    );
    let bytes = run(&["encode", "-o", "/dev/stdout", &t]).stdout;
    let mut seen = Vec::new();
    for target in ["ops", "misuse"] {
        let d = dir().join("artifacts").join(target);
        std::fs::create_dir_all(&d).unwrap();
        let crash = d.join("crash-0123");
        std::fs::write(&crash, &bytes).unwrap();
        let by_path = run(&["decode", crash.to_str().unwrap()]);
        let told = run(&["decode", "--target", target, crash.to_str().unwrap()]);
        assert_eq!(by_path.status.code(), Some(0), "{}", text(&by_path));
        assert_eq!(by_path.stdout, told.stdout, "{target}");
        seen.push(by_path.stdout);
    }
    assert_ne!(
        seen[0], seen[1],
        "the two targets should decode these bytes differently"
    );
}

#[test]
fn help_and_version_exit_0_and_bad_flags_exit_2_with_usage() {
    for args in [
        vec!["--help"],
        vec!["-h"],
        vec!["help"],
        vec!["run", "--help"],
        vec!["decode", "-h"],
        vec!["stress", "--help"],
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("usage:"),
            "{args:?}"
        );
    }
    for args in [vec!["--version"], vec!["-V"]] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(0), "{args:?}");
        assert!(String::from_utf8_lossy(&o.stdout).starts_with("tagalloc-diff 0."));
    }
    for args in [
        vec!["run", "-x", "a.trace"],
        vec!["run", "--frobnicate"],
        vec!["--frobnicate"],
        vec!["frobnicate", "--help"],
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(text(&o).contains("usage:"), "{args:?}: {}", text(&o));
    }
    // After `--`, a word starting with `-` is a file.
    let d = dir();
    std::fs::write(d.join("-dash.trace"), GOOD).unwrap();
    let o = Command::new(BIN)
        .args(["run", "--", "-dash.trace"])
        .current_dir(&d)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[test]
fn gzip_traces_run_from_a_file_and_from_stdin() {
    let t = file("packed.trace", GOOD.as_bytes());
    assert!(Command::new("gzip")
        .arg("-f")
        .arg(&t)
        .status()
        .unwrap()
        .success());
    let gz = format!("{t}.gz");
    let o = run(&["run", &gz]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains(".trace.gz: ok (10 ops; peak live "),
        "{}",
        text(&o)
    );
    let o = Command::new(BIN)
        .args(["diff", "-"])
        .stdin(std::fs::File::open(&gz).unwrap())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // A damaged one is bad input naming the file.
    let mut cut = std::fs::read(&gz).unwrap();
    cut.truncate(cut.len() - 12);
    let bad = file("cut.trace.gz", &cut);
    let o = run(&["run", &bad]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("{bad}: gzip-compressed")),
        "{}",
        text(&o)
    );
}

#[test]
fn encode_refuses_to_write_binary_to_a_terminal() {
    let t = file("tty.trace", GOOD.as_bytes());
    // `script` runs the command on a pseudo-terminal.
    let o = Command::new("script")
        .args(["-qec", &format!("{BIN} encode {t}"), "/dev/null"])
        .output()
        .expect("script (util-linux) runs a command on a terminal");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("not to a terminal"), "{}", text(&o));
    // Redirected, it writes.
    let o = run(&["encode", &t]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(!o.stdout.is_empty());
}

#[test]
fn a_huge_token_is_shown_cut() {
    let t = file(
        "huge.trace",
        format!("malloc 0 {}\n", "7".repeat(5 << 20)).as_bytes(),
    );
    let o = run(&["run", &t]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(o.stderr.len() < 400, "{} bytes of error", o.stderr.len());
    assert!(
        text(&o).contains(&format!("{t}:1: bad a size `777")),
        "{}",
        text(&o)
    );
}

/// Compiles `c` into a shared object, or `None` (with a message) when there is no C compiler.
/// `-fno-builtin`, so that an allocator's `calloc` calling `malloc` then `memset` is not folded
/// into a call to `calloc`, itself.
pub(crate) fn shared_object(name: &str, c: &str) -> Option<String> {
    let src = file(&format!("{name}.c"), c.as_bytes());
    let so = dir().join(format!("{name}.so"));
    match Command::new("gcc")
        .args(["-shared", "-fPIC", "-O1", "-fno-builtin", "-o"])
        .arg(&so)
        .arg(&src)
        .output()
    {
        Err(_) => {
            eprintln!("SKIPPED: gcc not found, so no .so backend can be built for this test");
            None
        }
        Ok(o) => {
            assert!(o.status.success(), "gcc: {}", text(&o));
            Some(so.to_string_lossy().into_owned())
        }
    }
}

/// A bump allocator: correct when OFFSET is 0, 8-byte aligned when it is 8.
const BUMP_C: &str = r#"
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
static _Alignas(16) unsigned char arena[64 << 20];
static size_t top;
void *malloc(size_t n) {
    if (n > sizeof arena) { errno = ENOMEM; return NULL; }
    size_t start = (top + 16 + 15) & ~(size_t)15;
    if (start + n + OFFSET > sizeof arena) { errno = ENOMEM; return NULL; }
    unsigned char *p = arena + start + OFFSET;
    ((size_t *)p)[-1] = n;
    top = start + OFFSET + n;
    return p;
}
void free(void *p) { (void)p; }
void *calloc(size_t c, size_t n) {
    if (n && c > SIZE_MAX / n) { errno = ENOMEM; return NULL; }
    void *p = malloc(c * n);
    if (p) memset(p, 0, c * n);
    return p;
}
void *realloc(void *p, size_t n) {
    if (!p) return malloc(n);
    if (!n) { free(p); return NULL; }
    void *q = malloc(n);
    if (!q) return NULL;
    size_t old = ((size_t *)p)[-1];
    memcpy(q, p, old < n ? old : n);
    return q;
}
size_t malloc_usable_size(void *p) { return p ? ((size_t *)p)[-1] : 0; }
"#;

#[test]
fn shared_object_backends() {
    let Some(good) = shared_object("bump", &BUMP_C.replace("OFFSET", "0")) else {
        return;
    };
    let Some(misaligned) = shared_object("bump8", &BUMP_C.replace("OFFSET", "8")) else {
        return;
    };
    let Some(empty) = shared_object("nomalloc", "int not_an_allocator(void) { return 0; }\n")
    else {
        return;
    };
    let t = file(
        "so.trace",
        b"malloc 0 24\nmalloc 1 40\ncalloc 2 4 8\nrealloc 0 300\nfree 1\nmalloc 3 SIZE_MAX\n",
    );

    let o = run(&["run", "--backend", &good, &t]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = run(&["diff", "--backend", &good, "--against", "libc", &t]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    let o = run(&["run", "--backend", &misaligned, &t]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = text(&o);
    assert!(
        out.contains("not aligned to 16") && out.contains("minimal trace (1 ops"),
        "{out}"
    );

    let o = run(&["shrink", "--backend", &misaligned, &t]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let minimal = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(
        tagalloc_diff::text::parse(&minimal).unwrap().len(),
        1,
        "{minimal}"
    );

    let o = run(&["run", "--backend", &empty, &t]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("does not export `malloc`"),
        "{}",
        text(&o)
    );
    assert!(Path::new(&good).exists());
}

/// A bump allocator with two bugs: `malloc(0)` returns NULL (wrong for glibc, allowed by POSIX)
/// and `calloc` does not check its product for overflow (wrong for both).
const TWO_BUGS_C: &str = r#"
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
static char *top, *end;
void *malloc(size_t n) {
  if (n == 0) return NULL;
  if (n > (1ul << 28)) { errno = ENOMEM; return NULL; }
  if (!top) { top = mmap(0, 1ul << 30, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0); end = top + (1ul << 30); }
  n = (n + 15) & ~15ul;
  if (top + n + 16 > end) { errno = ENOMEM; return NULL; }
  *(size_t *)top = n; top += 16; void *p = top; top += n; return p;
}
void free(void *p) { (void)p; }
void *calloc(size_t c, size_t n) { void *p = malloc(c * n); if (p) memset(p, 0, c * n); return p; }
void *realloc(void *p, size_t n) {
  if (!p) return malloc(n);
  void *q = malloc(n); size_t o = ((size_t *)p)[-2];
  if (q) memcpy(q, p, o < n ? o : n);
  return q;
}
"#;

#[test]
fn run_keeps_going_and_groups_failures_by_signature() {
    let Some(so) = shared_object("two-bugs", TWO_BUGS_C) else {
        return;
    };
    let t = file(
        "two-bugs.trace",
        b"# two bugs\nmalloc 0 0\nmalloc 1 24\n\ncalloc 2 0x8000000000000001 2\nfree 1\nmalloc 3 0\n",
    );
    let save = dir().join("two-bugs-min");
    let s = save.to_str().unwrap();
    let o = run(&["run", "--save", s, "--backend", &so, &t]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    // Every failure at its line, with the contract and its rule; the third is the first again.
    assert!(
        out.contains(&format!("{t}:2: `malloc 0 0` malloc(0) returned NULL")),
        "{out}"
    );
    assert!(
        out.contains(&format!("{t}:5: `calloc 2 PTRDIFF_MAX+2 2`")),
        "{out}"
    );
    assert!(out.contains("[success-where-failure-required]"), "{out}");
    assert!(out.contains(&format!("{t}:7: `malloc 3 0`")), "{out}");
    assert!(out.contains("same signature (null-where-success-required on malloc (0 size))"));
    assert!(
        out.contains("broke contract glibc, rule: calloc whose product overflows"),
        "{out}"
    );
    assert!(out.contains("3 failures, 2 distinct signatures"), "{out}");
    let saved = std::fs::read_dir(&save).unwrap().count();
    assert_eq!(saved, 2, "{out}");
    // Under POSIX malloc(0) may return NULL: only the calloc bug is left.
    let o = run(&[
        "run",
        "--save",
        s,
        "--contract",
        "posix",
        "--backend",
        &so,
        &t,
    ]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("1 failures, 1 distinct signatures"), "{out}");
    assert!(out.contains("broke contract posix"), "{out}");
}

#[test]
fn a_static_tls_object_loads_through_the_retry() {
    // Debian's jemalloc is built with initial-exec TLS and cannot be dlopened without it.
    let so = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2";
    if !std::path::Path::new(so).exists() {
        eprintln!("SKIPPED: {so} not installed (apt-get install libjemalloc2)");
        return;
    }
    let t = file("tls.trace", b"malloc 0 24\nfree 0\n");
    let o = Command::new(BIN)
        .args(["run", "--backend", so, &t])
        .env_remove("GLIBC_TUNABLES")
        .output()
        .unwrap();
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("tls.trace: ok (2 ops"), "{out}");
}

#[test]
fn bench_backend_sets_a_shared_object_beside_libc_and_tagalloc() {
    let Some(so) = shared_object("bench-bump", &BUMP_C.replace("OFFSET", "0")) else {
        return;
    };
    let o = run(&["bench", "--backend", &so, "--ops", "100", "--runs", "1"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    let table = out.split_once("peak live").expect(&out).1;
    let rows: Vec<&str> = table.lines().skip(1).collect();
    assert_eq!(rows.len(), 3, "{out}");
    for (row, name) in rows.iter().zip(["bench-bump.so", "libc", "tagalloc"]) {
        let words: Vec<&str> = row.split_whitespace().collect();
        assert!(words[1].ends_with(name), "{row}");
        let calls: f64 = words[2].parse().expect(row);
        let peak: f64 = words[3].parse().expect(row);
        assert!(calls > 0.0 && peak > 0.0, "{row}");
    }
}
