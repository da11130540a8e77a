//! Regression replay: everything kept under `corpus/` runs on every `cargo test`
//! ([`tagalloc_diff::corpus`]: each target's fuzz inputs through the target's own function, every
//! readable trace on every tagalloc backend and against libc). The replay runs in a forked child,
//! so an input that crashes the allocator fails this test with a report naming the file and the
//! op, instead of killing the test binary.

use std::path::{Path, PathBuf};

use tagalloc_diff::corpus::{self, Kind};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus")
}

fn replay(keep: impl Fn(&corpus::Input) -> bool, what: &str) {
    let root = corpus_dir();
    let inputs: Vec<_> = corpus::inputs(&root).into_iter().filter(keep).collect();
    assert!(!inputs.is_empty(), "no {what} under {}", root.display());
    let failures = corpus::replay(&inputs, root.parent().unwrap(), usize::MAX);
    assert!(
        failures.is_empty(),
        "{} of {} {what} failed:\n{}",
        failures.len(),
        inputs.len(),
        failures.join("\n")
    );
    eprintln!("{} {what} replayed", inputs.len());
}

#[test]
fn every_fuzz_input_replays_through_its_target() {
    replay(|i| matches!(i.kind, Kind::Fuzz(_)), "fuzz inputs");
}

#[test]
fn every_trace_replays_on_tagalloc_and_against_libc() {
    replay(|i| i.kind == Kind::Trace, "traces");
}
