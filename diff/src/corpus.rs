//! The inputs kept under `corpus/`, and their replay: what `cargo test` runs on every change.
//!
//! - Every file in `corpus/TARGET/` runs through that fuzz target's own function
//!   ([`Target::run`], exactly what `fuzz_target!` calls), decoded the same way.
//! - Every `.trace` file anywhere under `corpus/` (the hand-written seeds, the regressions found by
//!   fuzzing) is parsed and replayed on tagalloc's core heap, on the locked heap with its thread
//!   caches, and differentially against libc when it is a clean trace ([`targets::replay`]); a
//!   `trace_parse-*.trace` regression is text that once broke the parser, and goes through that
//!   target instead.
//!
//! [`replay`] runs them all in a forked child ([`isolate::failing_jobs`]), so an input that crashes
//! the allocator costs one report, not the test process; each input that fails is then run again
//! alone, isolated and shrunk, for its report.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::isolate::{self, Isolation};
use crate::op::Dialect;
use crate::report::Report;
use crate::targets::{self, Target};
use crate::text;

/// One kept input.
#[derive(Clone, Debug)]
pub struct Input {
    /// Its file.
    pub path: PathBuf,
    /// How it runs.
    pub kind: Kind,
}

/// How a kept input runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Fuzz bytes (or text, for `trace_parse`) of this target's corpus.
    Fuzz(Target),
    /// A readable trace, replayed on every backend that takes it.
    Trace,
}

/// The files under `dir`, recursively, sorted.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Every input kept under `corpus`: each target's fuzz inputs, then every `.trace` file.
pub fn inputs(corpus: &Path) -> Vec<Input> {
    let mut out = Vec::new();
    for target in Target::ALL {
        for path in files(&corpus.join(target.name())) {
            out.push(Input {
                path,
                kind: Kind::Fuzz(target),
            });
        }
    }
    for path in files(corpus) {
        if path.extension().is_some_and(|e| e == "trace") {
            out.push(Input {
                path,
                kind: Kind::Trace,
            });
        }
    }
    out
}

/// A `trace_parse-*.trace` regression: raw text that once broke the parser.
fn from_parser(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("trace_parse-"))
}

impl Input {
    /// Runs the input in this process; with `isolated`, every run in a forked child instead.
    pub fn run(&self, isolated: bool) -> Result<(), String> {
        let data = fs::read(&self.path).map_err(|e| e.to_string())?;
        let target = match self.kind {
            Kind::Fuzz(t) => Some(t),
            Kind::Trace if from_parser(&self.path) => Some(Target::TraceParse),
            Kind::Trace => None,
        };
        let result = match target {
            Some(t) if isolated => t.run_isolated(&data),
            Some(t) => t.run(&data),
            None => {
                let trace = text::parse_bytes(&data).map_err(|e| e.to_string())?;
                if isolated {
                    replay_isolated(&trace)
                } else {
                    targets::replay(&trace)
                }
            }
        };
        result.map_err(|r| r.to_string())
    }
}

/// [`targets::replay`], every run in a forked child.
fn replay_isolated(trace: &crate::op::Trace) -> Result<(), Report> {
    let iso = Isolation::default();
    let backend = crate::backend::tagalloc::for_trace;
    if !trace.uses(Dialect::Threads) {
        isolate::run(backend(trace, false), trace, iso)?;
    }
    isolate::run(backend(trace, true), trace, iso)?;
    if trace.dialect() == Dialect::Clean {
        let libc = crate::backend::libc::LibcBackend::new();
        isolate::diff(backend(trace, false), libc, trace, iso)?;
    }
    Ok(())
}

/// With this environment variable set, [`replay`] runs everything in this process (for coverage
/// and profiling tools, which see nothing of a forked child that ends with `_exit`); a crash then
/// ends the process.
pub const IN_PROCESS: &str = "TAGALLOC_DIFF_IN_PROCESS";

/// Replays `inputs`, crash-safe (see the module docs); returns `FILE: report` for each failure,
/// with paths shown relative to `base`, up to `limit` of them.
pub fn replay(inputs: &[Input], base: &Path, limit: usize) -> Vec<String> {
    // Long enough for the slowest kept input on a loaded machine; a stall this long is a hang.
    let stall = Duration::from_secs(60);
    let failing: Vec<usize> = if std::env::var_os(IN_PROCESS).is_some() {
        (0..inputs.len())
            .filter(|&i| inputs[i].run(false).is_err())
            .take(limit)
            .collect()
    } else {
        isolate::failing_jobs(inputs.len(), stall, limit, |i| inputs[i].run(false).is_ok())
    };
    failing
        .into_iter()
        .map(|i| {
            let input = &inputs[i];
            let shown = input.path.strip_prefix(base).unwrap_or(&input.path);
            let why = match input.run(true) {
                Err(report) => report,
                Ok(()) => "failed, or hung for 60 s, in a batch with the inputs before it, \
                           but passes alone"
                    .into(),
            };
            format!("{}: {why}", shown.display())
        })
        .collect()
}
