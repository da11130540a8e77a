//! The shrinker: from a failing trace to a minimal one that fails the same way.
//!
//! "The same way" is the same oracle ([`Failure::kind`](crate::report::Failure::kind)), or with
//! [`shrink_by`] the same key (a [`Signature`](crate::signature::Signature)), so the shrinker does
//! not slide from one bug to another. Passes, repeated until none helps or the
//! budget runs out: cut everything after the failing op; drop chunks of ops (halving the chunk
//! size, as delta debugging does); drop every op naming one slot; make numbers smaller (sizes,
//! counts, alignments, towards 0 and round values); renumber slots from 0 in order of first use;
//! put the trace's tunables back to their defaults one by one.
//! Every accepted candidate failed when run, so the result always still fails, and it is never
//! longer than the input.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::op::{Op, Trace};
use crate::report::Report;
use crate::tunables::Tunables;

/// How much work a shrink may do.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Most candidate traces run.
    pub runs: usize,
    /// Most wall-clock time.
    pub time: Duration,
}

impl Default for Budget {
    /// 3,000 runs or 20 seconds.
    fn default() -> Budget {
        Budget {
            runs: 3000,
            time: Duration::from_secs(20),
        }
    }
}

struct Shrinker<'a, K: PartialEq> {
    test: &'a mut dyn FnMut(&Trace) -> Result<(), Report>,
    key: &'a dyn Fn(&Report) -> K,
    kind: K,
    best: Trace,
    report: Report,
    runs: usize,
    budget: Budget,
    start: Instant,
}

impl<K: PartialEq> Shrinker<'_, K> {
    fn exhausted(&self) -> bool {
        self.runs >= self.budget.runs || self.start.elapsed() >= self.budget.time
    }

    /// Runs `candidate`; keeps it if it fails the same way.
    fn try_keep(&mut self, candidate: Trace) -> bool {
        if self.exhausted() || candidate.len() > self.best.len() || candidate == self.best {
            return false;
        }
        self.runs += 1;
        match (self.test)(&candidate) {
            Err(r) if (self.key)(&r) == self.kind => {
                self.best = candidate;
                self.report = r;
                true
            }
            _ => false,
        }
    }

    /// A candidate: `ops` in the best trace's configuration.
    fn with_ops(&self, ops: Vec<Op>) -> Trace {
        Trace::new(ops).with_config(self.best.config)
    }

    /// Puts each tunable back to its default, one at a time.
    fn default_tunables(&mut self) -> bool {
        let mut changed = false;
        let clears: [fn(&mut Tunables); 7] = [
            |t| t.mmap_threshold = None,
            |t| t.trim_threshold = None,
            |t| t.top_pad = None,
            |t| t.trim_delay = None,
            |t| t.dynamic_threshold = None,
            |t| t.cache_limit = None,
            |t| t.fast_lists = None,
        ];
        for clear in clears {
            let mut config = self.best.config;
            clear(&mut config);
            if config != self.best.config {
                changed |= self.try_keep(self.best.clone().with_config(config));
            }
        }
        changed
    }

    fn cut_after_failure(&mut self) -> bool {
        let keep = self.report.index + 1;
        if keep < self.best.len() {
            let t = self.with_ops(self.best.ops[..keep].to_vec());
            return self.try_keep(t);
        }
        false
    }

    fn drop_chunks(&mut self) -> bool {
        let mut changed = false;
        let mut chunk = self.best.len() / 2;
        while chunk >= 1 && !self.exhausted() {
            let mut i = 0;
            while i < self.best.len() && !self.exhausted() {
                let mut ops = self.best.ops.clone();
                let end = (i + chunk).min(ops.len());
                ops.drain(i..end);
                if self.try_keep(self.with_ops(ops)) {
                    changed = true;
                } else {
                    i += chunk;
                }
            }
            chunk /= 2;
        }
        changed
    }

    fn drop_slots(&mut self) -> bool {
        let slots: BTreeSet<usize> = self.best.ops.iter().filter_map(Op::slot).collect();
        let mut changed = false;
        for s in slots {
            let ops = self
                .best
                .ops
                .iter()
                .filter(|op| op.slot() != Some(s))
                .copied()
                .collect();
            changed |= self.try_keep(self.with_ops(ops));
        }
        changed
    }

    fn smaller_numbers(&mut self) -> bool {
        let mut changed = false;
        for i in 0..self.best.len() {
            let nums = self.best.ops[i].numbers();
            for (j, &v) in nums.iter().enumerate() {
                for c in candidates(v) {
                    if self.exhausted() {
                        return changed;
                    }
                    let mut ops = self.best.ops.clone();
                    ops[i] = ops[i].with_number(j, c);
                    if ops[i] != self.best.ops[i] && self.try_keep(self.with_ops(ops)) {
                        changed = true;
                        break;
                    }
                }
            }
        }
        changed
    }

    fn renumber_slots(&mut self) -> bool {
        let mut map = std::collections::HashMap::new();
        let ops: Vec<Op> = self
            .best
            .ops
            .iter()
            .map(|op| match op.slot() {
                Some(s) => {
                    let n = map.len();
                    op.with_slot(*map.entry(s).or_insert(n))
                }
                None => *op,
            })
            .collect();
        self.try_keep(self.with_ops(ops))
    }
}

/// Smaller values to try in place of `v`, smallest first.
fn candidates(v: usize) -> Vec<usize> {
    let mut c: Vec<usize> = [
        0,
        1,
        8,
        16,
        24,
        32,
        64,
        128,
        1024,
        4096,
        1 << 17,
        v >> 1,
        v & v.wrapping_sub(1),
        v.saturating_sub(1),
    ]
    .into_iter()
    .filter(|&c| c < v)
    .collect();
    c.sort_unstable();
    c.dedup();
    c
}

/// Shrinks `trace`, which `test` reports as failing, to a minimal trace that `test` reports as
/// failing with the same oracle. Returns that trace's report (with
/// [`Report::shrunk_from`] set), or `None` if `trace` does not fail at all.
pub fn shrink(
    trace: &Trace,
    budget: Budget,
    test: &mut dyn FnMut(&Trace) -> Result<(), Report>,
) -> Option<Report> {
    shrink_by(trace, budget, test, &|r: &Report| r.failure.kind())
}

/// [`shrink`], keeping only candidates whose report has the same `key` as the first (the
/// keep-going runs use the failure's [`Signature`](crate::signature::Signature)).
pub fn shrink_by<K: PartialEq>(
    trace: &Trace,
    budget: Budget,
    test: &mut dyn FnMut(&Trace) -> Result<(), Report>,
    key: &dyn Fn(&Report) -> K,
) -> Option<Report> {
    let report = test(trace).err()?;
    let mut s = Shrinker {
        kind: key(&report),
        key,
        test,
        best: trace.clone(),
        report,
        runs: 0,
        budget,
        start: Instant::now(),
    };
    loop {
        let mut changed = s.cut_after_failure();
        changed |= s.drop_chunks();
        changed |= s.drop_slots();
        changed |= s.smaller_numbers();
        changed |= s.renumber_slots();
        changed |= s.default_tunables();
        if !changed || s.exhausted() {
            break;
        }
    }
    let mut report = s.report;
    report.trace = s.best;
    report.shrunk_from = Some(trace.len());
    Some(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Failure;

    #[test]
    fn shrinks_to_the_ops_that_matter() {
        // "Fails" when the trace mallocs 1000 or more bytes into some slot and later frees slot 7.
        let mut test = |t: &Trace| -> Result<(), Report> {
            let big = t
                .ops
                .iter()
                .position(|op| matches!(op, Op::Malloc { size, .. } if *size >= 1000));
            let free7 = t.ops.iter().rposition(|op| *op == Op::Free { slot: 7 });
            match (big, free7) {
                (Some(b), Some(f)) if b < f => Err(Report::new(
                    "toy",
                    t,
                    f,
                    Failure::HeapCheck {
                        message: "toy".into(),
                    },
                )),
                _ => Ok(()),
            }
        };
        let mut ops = Vec::new();
        for i in 0..40 {
            ops.push(Op::Malloc {
                slot: i % 5,
                size: 3000 + i,
            });
            ops.push(Op::Free { slot: (i + 2) % 9 });
        }
        let t = Trace::new(ops);
        let r = shrink(&t, Budget::default(), &mut test).unwrap();
        assert_eq!(r.trace.len(), 2, "{}", r.trace);
        assert_eq!(r.trace.ops[1], Op::Free { slot: 7 }, "{}", r.trace);
        assert!(
            matches!(r.trace.ops[0], Op::Malloc { size: 1000, .. }),
            "{}",
            r.trace
        );
        assert_eq!(r.shrunk_from, Some(80));
    }
}
