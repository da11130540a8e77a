//! AddressSanitizer stops a stray write by tagalloc itself at the write: the `calloc-past-block`
//! variant (`tagalloc::broken`) writes one byte past a block, onto the next block's header, which
//! an ASan build of tagalloc keeps poisoned (`allocator/src/track.rs`). The `ops` fuzz target is
//! built with the `broken` feature under AddressSanitizer and run on the `calloc-dirty` seed: with
//! the variant on, ASan must report a write of one byte to poisoned memory whose first frame of
//! tagalloc's is the planted store in `Heap::zero_dirty`; with it off, the same input runs clean.
//!
//! Needs nightly and cargo-fuzz, so it is `#[ignore]`d in `cargo test`; the `asan-write` step of
//! `cargo xtask test` runs it (with `TAGALLOC_FUZZ_TESTS=1`, and always in CI), after checking
//! that nightly AddressSanitizer works: `cargo test -p xtask --test asan_write -- --ignored`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Runs the fuzz binary on `input` with `TAGALLOC_BROKEN=variant`: (exit code, stderr).
fn run(bin: &Path, input: &Path, variant: &str, artifacts: &Path) -> (Option<i32>, String) {
    let out = Command::new(bin)
        .arg(input)
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .env("TAGALLOC_BROKEN", variant)
        .env(tagalloc_diff::deadly::EXPLAIN, "0")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
#[ignore = "needs nightly and cargo-fuzz: the asan-write step of `cargo xtask test` runs it"]
fn asan_stops_a_write_past_a_block_at_the_write() {
    let root = root();
    let tmp =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("asan-write-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).unwrap();

    let build = Command::new("cargo")
        .args(["+nightly", "fuzz", "build", "--features", "broken", "ops"])
        .current_dir(&root)
        .status()
        .unwrap();
    assert!(
        build.success(),
        "cargo +nightly fuzz build --features broken ops failed"
    );
    let bin = root.join("fuzz/target/x86_64-unknown-linux-gnu/release/ops");

    let input = tmp.join("calloc-dirty.bin");
    let encoded = Command::new("cargo")
        .args(["run", "--quiet", "--release", "-p", "tagalloc-diff", "--"])
        .args(["encode", "-o"])
        .arg(&input)
        .arg(root.join("corpus/seeds/calloc-dirty.trace"))
        .current_dir(&root)
        .status()
        .unwrap();
    assert!(encoded.success(), "tagalloc-diff encode failed");

    let (code, clean) = run(&bin, &input, "correct", &tmp);
    assert_eq!(
        code,
        Some(0),
        "the seed must run clean on the correct allocator:\n{clean}"
    );

    let (code, report) = run(&bin, &input, "calloc-past-block", &tmp);
    eprintln!("{report}");
    assert_ne!(code, Some(0), "the variant must stop the run");
    assert!(
        report.contains("ERROR: AddressSanitizer: use-after-poison"),
        "AddressSanitizer must report the write to poisoned memory"
    );
    let lines: Vec<&str> = report.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("WRITE of size 1 at "))
        .expect("the report names a one-byte write");
    // The first frame in tagalloc's own code (the frames above it are `core::ptr::write`).
    let frame = lines[at + 1..]
        .iter()
        .take_while(|l| l.trim_start().starts_with('#'))
        .find(|l| l.contains("/allocator/src/"))
        .expect("a frame in tagalloc's code");
    assert!(
        frame.contains("zero_dirty") && frame.contains("allocator/src/heap.rs"),
        "the report must stop at the planted write in Heap::zero_dirty, not later: {frame}"
    );
    fs::remove_dir_all(&tmp).unwrap();
}
