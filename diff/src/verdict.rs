//! Whole traces judged the way the command line judges them: on fresh backends held to a
//! [`Contract`], each run isolated where the backend needs it, a trace the backend cannot run
//! skipped with the reason, and every failure of a trace found, not just its first.
//!
//! [`Judge::failures`] keeps going past a failure: it notes the report, takes the failing op out
//! of the trace and runs the rest again, until the trace passes, fails only at its end, hangs, or
//! [`MOST_PER_TRACE`] failures are found. Each report keeps the index of its op in the user's
//! trace ([`Found::at`]) beside the trace that produced it, which [`Judge::shrink`] shrinks to a
//! minimal one failing with the same [`Signature`].

use crate::backend::{Backend, Spec, Under};
use crate::isolate::{self, Isolation};
use crate::op::{Dialect, Trace};
use crate::report::Report;
use crate::shadow::rules::Contract;
use crate::shrink::{self, Budget};
use crate::signature::Signature;

/// Most failures [`Judge::failures`] collects from one trace.
pub const MOST_PER_TRACE: usize = 32;
/// Most failures of one signature it collects from one trace (more are the same bug again).
pub const MOST_PER_SIGNATURE: usize = 3;

/// What the traces run on, and under which rules.
#[derive(Clone, Debug)]
pub struct Judge {
    /// The backend judged.
    pub backend: Spec,
    /// The backend it is compared with, for a differential.
    pub against: Option<Spec>,
    /// The rules both are held to.
    pub contract: Contract,
    /// How isolated runs are watched.
    pub iso: Isolation,
    /// How long one shrink may take.
    pub budget: Budget,
}

/// One trace's outcome.
#[derive(Clone, Debug)]
pub enum Verdict {
    /// Every op and the end-of-trace checks passed.
    Pass,
    /// The trace needs what the backend lacks; the reason, in words.
    Skipped(String),
    /// The first oracle that fired.
    Failed(Report),
}

/// A failure found by [`Judge::failures`].
#[derive(Clone, Debug)]
pub struct Found {
    /// Index of the failing op in the trace the user gave (`None`: its end-of-trace checks).
    pub at: Option<usize>,
    /// The report, on the trace that produced it (the user's, less the ops that failed before).
    pub report: Report,
}

impl Judge {
    /// A fresh backend of `spec` for `trace`, held to the contract.
    pub fn open(&self, spec: &Spec, trace: &Trace) -> Result<Box<dyn Backend>, String> {
        Ok(Box::new(Under::new(spec.open(trace)?, self.contract)))
    }

    /// Opens every backend once, so that one that cannot load says so before any trace runs.
    pub fn preflight(&self) -> Result<(), String> {
        let none = Trace::default();
        self.backend.open(&none)?;
        if let Some(spec) = &self.against {
            spec.open(&none)?;
        }
        Ok(())
    }

    /// Why `trace` cannot run here, if it cannot: ops of a dialect the backend lacks.
    pub fn skip_reason(&self, trace: &Trace) -> Result<Option<String>, String> {
        if self.against.is_some() && trace.dialect() != Dialect::Clean {
            return Ok(Some(
                "the differential runs clean traces only (no misuse, fault or thread ops)".into(),
            ));
        }
        let caps = self.backend.open(trace)?.caps();
        let needs = |d: Dialect| trace.ops.iter().find(|op| op.dialect() == d);
        let spec = &self.backend;
        if let (Some(op), false) = (needs(Dialect::Misuse), caps.misuse) {
            return Ok(Some(format!(
                "`{op}` is misuse, which only the tagalloc backend reports ({spec} cannot)"
            )));
        }
        if let (Some(op), false) = (needs(Dialect::Faults), caps.faults) {
            return Ok(Some(format!(
                "`{op}` needs tagalloc's simulated memory source, which {spec} does not run on"
            )));
        }
        Ok(None)
    }

    /// Runs `trace` once (isolated where the backend needs it), without skipping or shrinking.
    pub fn test(&self, trace: &Trace) -> Result<Result<(), Report>, String> {
        let left = self.open(&self.backend, trace)?;
        let result = match &self.against {
            None => isolate::run_where_needed(left, trace, self.iso),
            Some(spec) => {
                let right = self.open(spec, trace)?;
                isolate::diff_where_needed(left, right, trace, self.iso)
            }
        };
        Ok(result.map_err(|mut r| {
            r.contract = self.contract;
            r
        }))
    }

    /// The verdict on `trace`: skipped, or its first failure.
    pub fn verdict(&self, trace: &Trace) -> Result<Verdict, String> {
        if let Some(why) = self.skip_reason(trace)? {
            return Ok(Verdict::Skipped(why));
        }
        Ok(match self.test(trace)? {
            Ok(()) => Verdict::Pass,
            Err(r) => Verdict::Failed(r),
        })
    }

    /// Every failure of `trace`, in order (empty: it passed). `Err`: a backend cannot open.
    pub fn failures(&self, trace: &Trace) -> Result<Vec<Found>, String> {
        let mut t = trace.clone();
        let mut index: Vec<usize> = (0..trace.len()).collect();
        let mut found = Vec::new();
        let mut seen: std::collections::HashMap<Signature, usize> = Default::default();
        while found.len() < MOST_PER_TRACE {
            let Err(report) = self.test(&t)? else { break };
            let i = report.index;
            let count = seen.entry(Signature::of(&report)).or_default();
            *count += 1;
            let stop = report.failure.kind() == "hang" || *count >= MOST_PER_SIGNATURE;
            found.push(Found {
                at: index.get(i).copied(),
                report,
            });
            if i >= t.len() || stop {
                break;
            }
            t.ops.remove(i);
            index.remove(i);
        }
        Ok(found)
    }

    /// The minimal trace failing with the signature of `first` (a report [`Judge::test`] made).
    pub fn shrink(&self, first: &Report) -> Report {
        let mut test = |t: &Trace| self.test(t).unwrap_or(Ok(()));
        shrink::shrink_by(&first.trace, self.budget, &mut test, &Signature::of)
            .unwrap_or_else(|| first.clone())
    }
}
