//! The crash path of `cargo xtask fuzz`, end to end: on the `selftest_crash` fixture target (which
//! panics on a `malloc` of 4097 bytes), seeded one byte away from its crash, the runner must find
//! the crash, minimise the input, write a readable trace to `regressions/`, print the command that
//! reproduces it, and exit 1. It works in a temporary corpus root, never in the repository's.
//!
//! Slow (it needs cargo-fuzz and a fuzz build), so it is `#[ignore]`d in `cargo test`; the
//! `crash-path` step of `cargo xtask test` runs it (with `TAGALLOC_FUZZ_TESTS=1`, and always in CI):
//! `cargo test -p xtask --test crash_path -- --ignored`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// A trace one byte away from the crash: every `4096` is the table entry just before `4097`.
const SEED: &str = "\
malloc 0 4096
malloc 1 4095
realloc 1 8192
free 0
calloc 2 4 1024
malloc 3 4096
free 1
free 2
free 3
";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).into_iter().flatten().flatten() {
        if entry.file_type().unwrap().is_file() {
            fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

#[test]
#[ignore = "needs cargo-fuzz and a fuzz build: the crash-path step of `cargo xtask test` runs it"]
fn a_crash_becomes_a_minimised_readable_regression() {
    let started = Instant::now();
    let root = root();
    let tmp =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("crash-path-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    let corpus = tmp.join("corpus");
    let regressions = corpus.join("regressions");
    copy_dir(&root.join("corpus").join("regressions"), &regressions);
    let repo_regressions = listing(&root.join("corpus").join("regressions"));

    // The seed, as the fuzzer's bytes.
    fs::create_dir_all(corpus.join("selftest_crash")).unwrap();
    let seed_trace = tmp.join("seed.trace");
    fs::write(&seed_trace, SEED).unwrap();
    let encoded = Command::new("cargo")
        .args([
            "run",
            "--quiet",
            "--release",
            "-p",
            "tagalloc-diff",
            "--",
            "encode",
            "-o",
        ])
        .arg(corpus.join("selftest_crash").join("seed"))
        .arg(&seed_trace)
        .current_dir(&root)
        .status()
        .unwrap();
    assert!(encoded.success(), "tagalloc-diff encode failed");

    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args([
            "fuzz",
            "selftest_crash",
            "--time",
            "120",
            "--jobs",
            "1",
            "--corpus-root",
        ])
        .arg(&corpus)
        .arg("--report")
        .arg(tmp.join("fuzz-report.md"))
        .current_dir(&root)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let all = format!("{stderr}\n{stdout}");
    eprintln!("{all}");

    // Exit 1: a crash.
    assert_eq!(
        out.status.code(),
        Some(1),
        "the runner must exit 1 on a crash"
    );

    // A readable trace in the temporary regressions directory, and none in the repository's.
    let new: Vec<String> = listing(&regressions)
        .into_iter()
        .filter(|n| n.starts_with("selftest_crash-") && n.ends_with(".trace"))
        .collect();
    assert_eq!(new.len(), 1, "one regression trace expected, got {new:?}");
    assert_eq!(
        listing(&root.join("corpus").join("regressions")),
        repo_regressions
    );
    let trace = fs::read_to_string(regressions.join(&new[0])).unwrap();
    assert!(
        trace.starts_with("# Regression found by `cargo xtask fuzz`"),
        "{trace}"
    );
    assert!(trace.contains("target `selftest_crash`"), "{trace}");
    let ops: Vec<&str> = trace
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .collect();
    assert!(
        !ops.is_empty()
            && ops.len() <= 2
            && ops
                .iter()
                .any(|l| l.starts_with("malloc ") && l.ends_with(" 4097")),
        "the trace should be minimal and hold `malloc SLOT 4097`:\n{trace}"
    );

    // Minimised: tmin ran and the input shrank (the seed alone is 9 ops, over 20 bytes).
    let (from, to) = minimised_sizes(&trace);
    assert!(to < from && to <= 8, "not minimised: {from} -> {to} bytes");
    let artifact = all
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("cargo +nightly fuzz run selftest_crash ")
        })
        .or_else(|| {
            all.lines().find_map(|l| {
                l.trim()
                    .strip_prefix("cargo fuzz run --sanitizer none selftest_crash ")
            })
        })
        .expect("the reproduce command is printed");
    let minimised = root.join(artifact.trim());
    assert_eq!(
        fs::metadata(&minimised).unwrap().len(),
        to,
        "{}",
        minimised.display()
    );
    assert!(all.contains(" fuzz tmin "), "tmin is run and shown");

    fs::remove_dir_all(&tmp).unwrap();
    eprintln!("crash path: ok in {:.0} s", started.elapsed().as_secs_f64());
}

/// "(from A to B bytes" in the trace's header.
fn minimised_sizes(trace: &str) -> (u64, u64) {
    let at = trace
        .find("from ")
        .expect("the header says how the input was minimised");
    let words: Vec<&str> = trace[at..].split_whitespace().take(5).collect();
    match words.as_slice() {
        ["from", a, "to", b, "bytes"] => (a.parse().unwrap(), b.parse().unwrap()),
        _ => panic!("unexpected header: {words:?}"),
    }
}
