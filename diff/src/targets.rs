//! The library side of the fuzz targets: each target is one function from input bytes to a
//! verdict, so a `fuzz_target!` is three lines and `cargo test` replays corpora through exactly the
//! same code.
//!
//! | target | input | runs |
//! | --- | --- | --- |
//! | [`ops`] | fuzz bytes, [`Dialect::Clean`] | tagalloc (private break), shadow model + heap walker after every op |
//! | [`diff`] | fuzz bytes, [`Dialect::Clean`] | tagalloc against libc, differential |
//! | [`misuse`] | fuzz bytes, [`Dialect::Misuse`] | tagalloc's core heap, then its locked heap with thread caches; every misuse must be reported as the right error, nothing else may be |
//! | [`faults`] | fuzz bytes, [`Dialect::Faults`] | tagalloc on a simulated source, with injected OS failures and foreign `sbrk`: success is correct or failure is a clean `ENOMEM`, heap always valid |
//! | [`locked`] | fuzz bytes, [`Dialect::Clean`] | tagalloc as programs link it: the locked heap with thread caches, transfer cache and lock-free paths; shadow model, heap walker and cache invariants after every op |
//! | [`threads`] | fuzz bytes, [`Dialect::Threads`] | the locked heap on 1–4 threads scheduled by the trace, cross-thread frees, thread exits, `fork` with the child checking its heap |
//! | [`trace_parse`] | text | the parser never panics; what it accepts prints back to the same trace |
//!
//! Every byte input starts with the trace's tunables ([`crate::bytes`]), so every target also
//! fuzzes tagalloc's thresholds, pads and cache limits.
//!
//! A fuzz target calls [`fuzz`] (which panics with the report, minimal trace included):
//!
//! ```ignore
//! #![no_main]
//! libfuzzer_sys::fuzz_target!(|data: &[u8]| tagalloc_diff::targets::fuzz(tagalloc_diff::targets::Target::Ops, data));
//! ```
//!
//! Deterministic: same bytes, same verdict. On failure the trace is shrunk (within
//! [`SHRINK_BUDGET`]) before it is reported.

use std::time::Duration;

use crate::backend::libc::LibcBackend;
use crate::backend::tagalloc::for_trace;
use crate::bytes;
use crate::deadly;
use crate::differ;
use crate::isolate::{self, Isolation};
use crate::op::{Dialect, Trace};
use crate::report::{Failure, Report};
use crate::runner;
use crate::shrink::{self, Budget};
use crate::text;

/// How hard a target shrinks a failing trace before reporting it.
pub const SHRINK_BUDGET: Budget = Budget {
    runs: 2000,
    time: Duration::from_secs(15),
};

/// The fuzz targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// See [`locked`].
    Locked,
    /// See [`threads`].
    Threads,
    /// See [`ops`].
    Ops,
    /// See [`diff`].
    Diff,
    /// See [`misuse`].
    Misuse,
    /// See [`faults`].
    Faults,
    /// See [`trace_parse`].
    TraceParse,
}

impl Target {
    /// Every target, in a fixed order.
    pub const ALL: [Target; 7] = [
        Target::Ops,
        Target::Diff,
        Target::Misuse,
        Target::Faults,
        Target::TraceParse,
        Target::Locked,
        Target::Threads,
    ];

    /// The target's name (its `fuzz/fuzz_targets/NAME.rs` and `corpus/NAME/`).
    pub fn name(self) -> &'static str {
        match self {
            Target::Ops => "ops",
            Target::Diff => "diff",
            Target::Misuse => "misuse",
            Target::Faults => "faults",
            Target::TraceParse => "trace_parse",
            Target::Locked => "locked",
            Target::Threads => "threads",
        }
    }

    /// The target called `name`.
    pub fn from_name(name: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The dialect its fuzz bytes decode in (`None`: the input is text).
    pub fn dialect(self) -> Option<Dialect> {
        match self {
            Target::Ops | Target::Diff | Target::Locked => Some(Dialect::Clean),
            Target::Threads => Some(Dialect::Threads),
            Target::Misuse => Some(Dialect::Misuse),
            Target::Faults => Some(Dialect::Faults),
            Target::TraceParse => None,
        }
    }

    /// Runs the target on one input.
    pub fn run(self, data: &[u8]) -> Result<(), Report> {
        match self {
            Target::TraceParse => trace_parse(data),
            _ => self.run_trace(&self.decode(data)),
        }
    }

    /// Decodes an input as this target does (text for `trace_parse`, empty if it does not parse).
    pub fn decode(self, data: &[u8]) -> Trace {
        match self.dialect() {
            Some(d) => bytes::decode(data, d),
            None => text::parse_bytes(data).unwrap_or_default(),
        }
    }

    /// Runs an already decoded trace as this target does, shrinking it on failure.
    pub fn run_trace(self, trace: &Trace) -> Result<(), Report> {
        let mut test = |t: &Trace| self.check(t);
        match test(trace) {
            Ok(()) => Ok(()),
            Err(first) => Err(shrink::shrink(trace, SHRINK_BUDGET, &mut test).unwrap_or(first)),
        }
    }

    /// Runs the target on one input as [`Target::run`] does, but the input and every candidate of
    /// the shrinker in a forked child: a crash of the allocator is a report too.
    pub fn run_isolated(self, data: &[u8]) -> Result<(), Report> {
        let trace = self.decode(data);
        let mut test = |t: &Trace| self.check_isolated(t);
        match test(&trace) {
            Ok(()) => Ok(()),
            Err(first) => Err(shrink::shrink(&trace, SHRINK_BUDGET, &mut test).unwrap_or(first)),
        }
    }

    /// Runs a trace once as [`Target::check`] does, in a forked child, so a crash is a report.
    pub fn check_isolated(self, trace: &Trace) -> Result<(), Report> {
        let iso = Isolation::default();
        match self {
            Target::Diff => isolate::diff(for_trace(trace, false), LibcBackend::new(), trace, iso),
            Target::TraceParse => round_trip(trace),
            Target::Misuse => {
                isolate::run(for_trace(trace, false), trace, iso)?;
                isolate::run(for_trace(trace, true), trace, iso)
            }
            Target::Ops | Target::Faults => isolate::run(for_trace(trace, false), trace, iso),
            Target::Locked | Target::Threads => isolate::run(for_trace(trace, true), trace, iso),
        }
    }

    /// Runs a trace once, without shrinking.
    pub fn check(self, trace: &Trace) -> Result<(), Report> {
        match self {
            Target::Diff => differ::diff(for_trace(trace, false), LibcBackend::new(), trace),
            Target::TraceParse => round_trip(trace),
            // Misuse on the core heap and through the thread caches, whose checks differ.
            Target::Misuse => {
                runner::run(for_trace(trace, false), trace)?;
                runner::run(for_trace(trace, true), trace)
            }
            Target::Ops | Target::Faults => runner::run(for_trace(trace, false), trace),
            Target::Locked | Target::Threads => runner::run(for_trace(trace, true), trace),
        }
    }
}

/// `ops`: a trace on tagalloc, shadow model plus heap walker after every op.
pub fn ops(data: &[u8]) -> Result<(), Report> {
    Target::Ops.run(data)
}

/// `diff`: the same trace on tagalloc and on libc, differential.
pub fn diff(data: &[u8]) -> Result<(), Report> {
    Target::Diff.run(data)
}

/// `misuse`: traces that also free twice, free interior and foreign pointers and overwrite tags.
pub fn misuse(data: &[u8]) -> Result<(), Report> {
    Target::Misuse.run(data)
}

/// `faults`: traces interleaved with failing OS requests and foreign break moves.
pub fn faults(data: &[u8]) -> Result<(), Report> {
    Target::Faults.run(data)
}

/// `locked`: a trace on the locked heap with its thread caches, as programs link tagalloc.
pub fn locked(data: &[u8]) -> Result<(), Report> {
    Target::Locked.run(data)
}

/// `threads`: a trace on the locked heap, its ops handed to 1–4 threads in trace order.
pub fn threads(data: &[u8]) -> Result<(), Report> {
    Target::Threads.run(data)
}

/// `trace_parse`: arbitrary bytes as a text trace.
pub fn trace_parse(data: &[u8]) -> Result<(), Report> {
    match text::parse_bytes(data) {
        Err(_) => Ok(()),
        Ok(t) => Target::TraceParse.run_trace(&t),
    }
}

fn round_trip(t: &Trace) -> Result<(), Report> {
    let fail = |message: String| {
        Err(Report::new(
            "text",
            t,
            t.len(),
            Failure::TextRoundTrip { message },
        ))
    };
    if t.clone().fixed(Dialect::All) != *t {
        return fail("the parser accepted a trace that fixup changes".into());
    }
    let printed = t.to_string();
    match text::parse(&printed) {
        Ok(back) if back == *t => Ok(()),
        Ok(_) => fail(format!(
            "printed text parses to a different trace:\n{printed}"
        )),
        Err(e) => fail(format!("printed text does not parse ({e}):\n{printed}")),
    }
}

/// What a fuzz target calls: runs `target` on `data` and panics with the report if an oracle
/// fires. A panic inside the allocator is reported the same way ([`runner::quiet_guarded_panics`]),
/// and so is a deadly signal, by a fresh process that replays the input in isolation
/// ([`crate::deadly`]).
pub fn fuzz(target: Target, data: &[u8]) {
    runner::quiet_guarded_panics();
    #[cfg(feature = "broken")]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(select_broken_from_env);
    }
    if deadly::explaining() {
        explain(target, data);
    }
    deadly::install();
    deadly::arm(data);
    let result = target.run(data);
    deadly::disarm();
    if let Err(report) = result {
        deadly::reported();
        panic!("tagalloc-diff {} target:\n{report}", target.name());
    }
}

/// Switches on the broken variant named by `TAGALLOC_BROKEN` (feature `broken`); an unknown
/// name is an error that ends the process with the list of names.
#[cfg(feature = "broken")]
pub fn select_broken_from_env() {
    use tagalloc::broken;
    let Ok(name) = std::env::var("TAGALLOC_BROKEN") else {
        return;
    };
    match broken::by_name(&name) {
        Some(v) => broken::select(v),
        None => {
            let names: Vec<_> = broken::Variant::ALL.iter().map(|v| v.name()).collect();
            eprintln!(
                "TAGALLOC_BROKEN={name}: no such variant (correct, {})",
                names.join(", ")
            );
            std::process::exit(2);
        }
    }
}

/// Explains an input that crashed the fuzz target: runs it, and every candidate of the shrinker,
/// in a forked child, prints the report, and ends the process.
fn explain(target: Target, data: &[u8]) -> ! {
    let text = match target.run_isolated(data) {
        Ok(()) => format!(
            "tagalloc-diff {} target: the input crashed the fuzzer, but not when replayed alone \
             in a fresh child process (the crash needs the fuzzer's process state):\n{}",
            target.name(),
            target.decode(data)
        ),
        Err(report) => format!("tagalloc-diff {} target crashed:\n{report}", target.name()),
    };
    eprintln!("{text}");
    // SAFETY: ends this helper process at once; libFuzzer's exit handlers would call a clean
    // exit from inside the target a crash of its own.
    unsafe { libc::_exit(0) }
}

/// Replays a readable regression trace: on tagalloc's core heap (unless it names threads), on
/// the locked heap with its thread caches, and differentially against libc when it has only
/// clean ops.
pub fn replay(trace: &Trace) -> Result<(), Report> {
    if !trace.uses(Dialect::Threads) {
        runner::run(for_trace(trace, false), trace)?;
    }
    runner::run(for_trace(trace, true), trace)?;
    if trace.dialect() == Dialect::Clean {
        differ::diff(for_trace(trace, false), LibcBackend::new(), trace)?;
    }
    Ok(())
}
