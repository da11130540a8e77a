//! valgrind's memcheck sees tagalloc's blocks: `examples/memcheck.rs`, a program on `TagAlloc`
//! built with the `valgrind` feature, leaks a block and reads a freed one; under
//! `valgrind --tool=memcheck --leak-check=full` both must be reported, at the lines that did them,
//! and nothing else (tagalloc's own reads and writes of its metadata, in memory the program may not
//! touch, must not be, nor the program's reads of what large chunks kept when `mremap` moved
//! them). Without valgrind installed the test says it skipped; with `CI=true` a missing valgrind
//! fails it.

use std::path::Path;
use std::process::Command;

#[test]
fn memcheck_reports_the_leak_and_the_use_after_free() {
    if Command::new("valgrind").arg("--version").output().is_err() {
        let why = "valgrind is not installed (apt-get install valgrind)";
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true: {why}, so memcheck cannot be checked"
        );
        eprintln!("memcheck: skipped: {why}");
        return;
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = manifest.parent().unwrap();
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), Into::into);
    let build = Command::new(env!("CARGO"))
        .args(["build", "-q", "-p", "tagalloc", "--features", "valgrind"])
        .args(["--example", "memcheck"])
        .current_dir(root)
        .status()
        .unwrap();
    assert!(build.success(), "building examples/memcheck.rs failed");
    let out = Command::new("valgrind")
        .args(["--tool=memcheck", "--leak-check=full"])
        .arg(target.join("debug/examples/memcheck"))
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the program failed:\n{report}");
    // The large chunks grown by `mremap` must have moved at least once, or the bytes a moved
    // chunk kept (which tagalloc marks defined) were not put to the test.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let moved = stdout
        .lines()
        .find_map(|l| l.strip_prefix("large chunks: ")?.split(", ").nth(1))
        .and_then(|m| m.strip_suffix(" moved")?.parse::<usize>().ok());
    assert!(
        moved.is_some_and(|n| n > 0),
        "no large chunk moved:\n{stdout}"
    );
    let has = |s: &str| report.contains(s);
    assert!(
        has("Invalid read of size 8") && has("0 bytes inside a block of size 8 free'd"),
        "memcheck must report the read of the freed block:\n{report}"
    );
    assert!(
        has("memcheck::use_after_free (memcheck.rs:"),
        "at the read:\n{report}"
    );
    assert!(
        has("definitely lost: 100 bytes in 1 blocks") && has("memcheck::leak (memcheck.rs:"),
        "memcheck must report the leaked block, allocated in `leak`:\n{report}"
    );
    assert!(
        has("ERROR SUMMARY: 2 errors from 2 contexts"),
        "the two bugs and nothing else (tagalloc's own metadata accesses are not errors):\n{report}"
    );
}
