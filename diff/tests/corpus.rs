//! Regression replay: everything kept under `corpus/` runs on every `cargo test`.
//!
//! - Every file in `corpus/TARGET/` runs through that fuzz target's own function
//!   ([`Target::run`], exactly what `fuzz_target!` calls), decoded the same way.
//! - Every `.trace` file anywhere under `corpus/` (the hand-written seeds, the regressions found by
//!   fuzzing) is parsed and replayed on tagalloc, and differentially against libc when it is a clean
//!   trace ([`targets::replay`]); a `trace_parse-*.trace` regression is text that once broke the
//!   parser, and goes through that target instead.
//!
//! A failure names the file and carries the oracle's report.

use std::fs;
use std::path::{Path, PathBuf};
use tagalloc_diff::targets::{self, Target};
use tagalloc_diff::text;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus")
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn name(p: &Path) -> String {
    p.strip_prefix(corpus().parent().unwrap())
        .unwrap_or(p)
        .display()
        .to_string()
}

#[test]
fn every_fuzz_input_replays_through_its_target() {
    let mut failures = Vec::new();
    let mut count = 0;
    for target in Target::ALL {
        let mut inputs = Vec::new();
        files(&corpus().join(target.name()), &mut inputs);
        inputs.sort();
        for input in inputs {
            let data = fs::read(&input).unwrap();
            count += 1;
            if let Err(report) = target.run(&data) {
                failures.push(format!("{}: {report}", name(&input)));
            }
        }
    }
    assert!(
        count > 0,
        "no fuzz inputs found under {}",
        corpus().display()
    );
    assert!(
        failures.is_empty(),
        "{} of {count} inputs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("{count} fuzz inputs replayed");
}

#[test]
fn every_trace_replays_on_tagalloc_and_against_libc() {
    let mut traces = Vec::new();
    files(&corpus(), &mut traces);
    traces.retain(|p| p.extension().is_some_and(|e| e == "trace"));
    traces.sort();
    assert!(
        !traces.is_empty(),
        "no .trace files under {}",
        corpus().display()
    );
    let mut failures = Vec::new();
    for path in &traces {
        let data = fs::read(path).unwrap();
        // A regression found by the `trace_parse` target is the raw text that broke the parser:
        // it replays through that target, not as a trace.
        let from_parser = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("trace_parse-"));
        if from_parser {
            if let Err(report) = Target::TraceParse.run(&data) {
                failures.push(format!("{}: {report}", name(path)));
            }
            continue;
        }
        let text = String::from_utf8_lossy(&data);
        match text::parse(&text) {
            Err(e) => failures.push(e.in_file(&name(path))),
            Ok(trace) => {
                if let Err(report) = targets::replay(&trace) {
                    failures.push(format!("{}: {report}", name(path)));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} traces failed:\n{}",
        failures.len(),
        traces.len(),
        failures.join("\n")
    );
    eprintln!("{} traces replayed", traces.len());
}
