//! `tagalloc-diff fuzz --backend X.so`: fuzzing any allocator for a bounded time, with feedback.
//!
//! Traces are in the suite's own op language (clean dialect), so every one is a trace the other
//! commands read and replay. The loop keeps a [`corpus::Corpus`]: it starts from the decodes of a
//! few random byte strings ([`bytes::decode`], as the tagalloc targets decode theirs) and, with
//! `--corpus DIR`, the user's trace files. Each step picks an entry and mutates it with the op
//! mutator the libFuzzer targets use ([`mutate::mutate_trace`]; at most [`MOST_OPS`] ops are kept),
//! or, one step in [`FRESH_ONE_IN`], draws a fresh trace; large requests are folded (see
//! [`QUICK_LIMIT`]). It runs on a fresh backend held to the contract, in a forked child, which
//! sends back the trace's features ([`features`]: what each call did; with an object built with
//! `-fsanitize=fuzzer-no-link`, its edge counters too, [`coverage`]). A passing trace that shows
//! a feature not seen before joins the corpus. All of that is the run's own: the corpus and the
//! features seen are values of [`run`], each trace's notes a value of [`test()`], and the
//! counters read are those of the object under test ([`coverage::Counters`]); only the table of
//! counter ranges the instrumented objects registered when they loaded belongs to the process.
//! Every failure whose [`Signature`] is new is shrunk (to that signature) and saved as a readable
//! trace, and the rest are counted. A shrink takes
//! what is left of the time (at least 2 s, at most 20), so a run may end a little after `--time`.
//!
//! A differential (`--against REF`) gets the same feedback: the features are those of the backend
//! under test (the left side, `--backend`), whose calls are observed and whose counters are read;
//! REF's calls are not observed, and the counters of another instrumented object on the right are
//! not read. Both sides run in one child, in the same interleaving, so a passing trace that makes
//! the object under test do something new joins the corpus as it would alone. (With the same
//! instrumented object on both sides, its counters count both sides' calls: it is one allocator.)
//!
//! With [`Plan::blind`] (`--blind`) there is no feedback: every trace is a fresh draw, their
//! lengths varied so that small traces come often and long ones now and then.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

pub mod corpus;
pub mod coverage;
pub mod features;

use crate::backend::{Backend, Under};
use crate::mutate::{self, Rng};
use crate::op::{Dialect, Trace};
use crate::report::Report;
use crate::shrink::Budget;
use crate::signature::Signature;
use crate::verdict::Judge;
use crate::{bytes, differ, isolate, runner};
use coverage::Counters;
use features::Notes;

/// Most ops a mutant keeps: a mutant grows by insertions and repeats, and a long trace costs a
/// run in proportion; the bugs the fuzzer finds need few ops.
pub const MOST_OPS: usize = 256;
/// One step in this many runs a fresh draw instead of a mutant.
pub const FRESH_ONE_IN: usize = 8;
/// Fresh draws the corpus starts from, besides the user's traces.
pub const FIRST_DRAWS: usize = 8;

/// What a fuzzing run is asked to do.
#[derive(Clone, Debug)]
pub struct Plan {
    /// How long it runs.
    pub time: Duration,
    /// Its random numbers' seed: the same seed, backend and time give the same traces.
    pub seed: u64,
    /// Stop once the first failure is shrunk and saved.
    pub first: bool,
    /// No feedback: independent random draws only.
    pub blind: bool,
    /// Traces the corpus starts with (the user's `--corpus`).
    pub seeds: Vec<Trace>,
}

impl Plan {
    /// A plan for `time` from `seed`, with feedback and no seeds of the user's.
    pub fn new(time: Duration, seed: u64) -> Plan {
        Plan {
            time,
            seed,
            first: false,
            blind: false,
            seeds: Vec::new(),
        }
    }
}

/// What a fuzzing run found.
#[derive(Debug, Default)]
pub struct Found {
    /// Traces run.
    pub runs: usize,
    /// Ops in those traces.
    pub ops: usize,
    /// Seconds spent.
    pub secs: f64,
    /// Seconds of those spent shrinking.
    pub shrink_secs: f64,
    /// Each distinct signature: where its minimal trace was saved, how often it was hit, and
    /// after how many seconds it was first found and shrunk.
    pub signatures: BTreeMap<Signature, (PathBuf, usize, f64)>,
    /// Traces in the corpus at the end.
    pub kept: usize,
    /// Features seen, and how many of them were coverage counters'.
    pub features: (usize, usize),
}

/// Requests that can succeed but exceed [`QUICK_LIMIT`] folded below it: a block of a GiB
/// costs the allocator and the shadow a second of page faults, and a fuzzer that spends its time
/// there tries a few traces a minute. Requests that must fail (above `PTRDIFF_MAX`) stay as
/// they are: they cost nothing and find the missing checks.
pub const QUICK_LIMIT: usize = 4 << 20;

fn fold(v: usize) -> usize {
    if v > QUICK_LIMIT && v <= crate::op::PTRDIFF_MAX {
        QUICK_LIMIT / 2 + v % (QUICK_LIMIT / 2)
    } else {
        v
    }
}

fn quick(mut trace: Trace) -> Trace {
    use crate::op::Op;
    for op in &mut trace.ops {
        match op {
            Op::Malloc { size, .. }
            | Op::Realloc { size, .. }
            | Op::PosixMemalign { size, .. }
            | Op::AlignedAlloc { size, .. }
            | Op::Memalign { size, .. } => *size = fold(*size),
            Op::Calloc { count, size, .. } => {
                let total = count.saturating_mul(*size);
                if fold(total) != total {
                    *count = 1 + *count % 64;
                    *size = fold(*size) % (QUICK_LIMIT / 64);
                }
            }
            _ => {}
        }
    }
    trace
}

/// A fresh trace: random bytes, 8 bytes to 1 KiB long (most of them short), decoded.
fn draw(rng: &mut Rng) -> Trace {
    let len = 8 << rng.below(8);
    let data: Vec<u8> = (0..len).map(|_| rng.bits() as u8).collect();
    quick(bytes::decode(&data, Dialect::Clean))
}

/// A mutant of `trace` by the op mutator, cut to [`MOST_OPS`] ops.
fn mutant(trace: &Trace, rng: &mut Rng) -> Trace {
    let mut t = trace.clone();
    mutate::mutate_trace(&mut t, Dialect::Clean, rng);
    t.ops.truncate(MOST_OPS);
    quick(t)
}

/// Runs `trace` once as [`Judge::test`] does (a differential with [`Judge::against`]), and
/// returns the features it showed: the calls of the backend under test, and the counters of
/// `coverage` (none for a run that crashed).
pub fn test(
    judge: &Judge,
    trace: &Trace,
    coverage: &Counters,
) -> Result<(Result<(), Report>, Vec<u64>), String> {
    let notes = Rc::new(RefCell::new(Notes::default()));
    let seen = Rc::clone(&notes);
    let left = Under::new(judge.backend.open(trace)?, judge.contract).observed(Box::new(
        move |req, reply| seen.borrow_mut().observe(req, reply),
    ));
    let collect = || notes.take().features(coverage);
    let global = left.caps().global_state;
    let (result, features) = match &judge.against {
        None if global => isolate::run_collecting(left, trace, judge.iso, collect),
        None => (runner::run(left, trace), collect()),
        Some(spec) => {
            let right = judge.open(spec, trace)?;
            if global || right.caps().global_state {
                isolate::diff_collecting(left, right, trace, judge.iso, collect)
            } else {
                (differ::diff(left, right, trace), collect())
            }
        }
    };
    let result = result.map_err(|mut r| {
        r.contract = judge.contract;
        r
    });
    Ok((result, features))
}

/// Fuzzes `judge`'s backend as `plan` says, saving minimal traces under `save` and reporting to
/// `out` as it goes. `Err`: the backend cannot open, or a trace cannot be saved.
pub fn run(judge: &Judge, plan: &Plan, save: &Path, out: &mut dyn Write) -> Result<Found, String> {
    let io = |e: std::io::Error| format!("writing the report: {e}");
    let start = Instant::now();
    let time = plan.time;
    let mut rng = Rng::new(plan.seed);
    let feedback = !plan.blind;
    let coverage = coverage::of(&judge.backend)?;
    let mut corpus = corpus::Corpus::default();
    // The first traces run: the user's, then a few draws (in this order: popped from the end).
    let mut queue: Vec<Trace> = Vec::new();
    if feedback {
        queue.extend((0..FIRST_DRAWS).map(|_| draw(&mut rng)));
        queue.extend(plan.seeds.iter().rev().map(|t| quick(t.clone())));
    }
    let mut found = Found::default();
    while start.elapsed() < time && (!plan.first || found.signatures.is_empty()) {
        let trace = match queue.pop() {
            Some(t) => t,
            None => match corpus.pick(&mut rng) {
                Some(t) if feedback && rng.below(FRESH_ONE_IN) != 0 => mutant(t, &mut rng),
                _ => draw(&mut rng),
            },
        };
        found.runs += 1;
        found.ops += trace.len();
        let result = if feedback {
            let (result, features) = test(judge, &trace, &coverage)?;
            if result.is_ok() {
                corpus.offer(&trace, &features);
            }
            result
        } else {
            judge.test(&trace)?
        };
        let Err(first) = result else {
            continue;
        };
        let sig = Signature::of(&first);
        if let Some(entry) = found.signatures.get_mut(&sig) {
            entry.1 += 1;
            continue;
        }
        // The shrink may take what is left of the time, within 2 and 20 s.
        let left = time.saturating_sub(start.elapsed());
        let shrinker = Judge {
            budget: Budget {
                time: left.clamp(Duration::from_secs(2), Duration::from_secs(20)),
                ..judge.budget
            },
            ..judge.clone()
        };
        let t0 = Instant::now();
        let min = shrinker.shrink(&first);
        found.shrink_secs += t0.elapsed().as_secs_f64();
        std::fs::create_dir_all(save).map_err(|e| format!("{}: {e}", save.display()))?;
        let file = save.join(format!("fuzz-{}.trace", sig.slug()));
        std::fs::write(&file, min.regression()).map_err(|e| format!("{}: {e}", file.display()))?;
        let at = start.elapsed().as_secs_f64();
        writeln!(
            out,
            "{at:.1} s, trace {}: new failure ({sig}), {} ops shrunk to {}, saved to {}:\n{min}",
            found.runs,
            trace.len(),
            min.trace.len(),
            file.display()
        )
        .map_err(io)?;
        found.signatures.insert(sig, (file, 1, at));
    }
    found.secs = start.elapsed().as_secs_f64();
    found.kept = corpus.len();
    found.features = corpus.features();
    Ok(found)
}
