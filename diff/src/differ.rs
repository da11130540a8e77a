//! The differential runner: one trace on two backends, each judged by its own shadow, compared op
//! by op.
//!
//! Compared: success or failure, the `errno` of a failure, and the bytes read back (the zeros of a
//! `calloc`, the prefix a `realloc` preserved), via digests; both shadows fill blocks with the same
//! patterns, since seeds depend only on the op. Not compared, because glibc itself lets them vary:
//! addresses, usable sizes, whether `realloc(p, 0)` returns NULL or a minimal block, and a failure
//! for want of memory where the rules allow one (one backend may simply have less). After such an
//! allowed difference the slot holds different blocks on each side, so its contents are compared
//! again only once both sides hold blocks made by the same op. Where the contract leaves a
//! failure's `errno` unspecified ([`Step::any_errno`]), errnos are not compared.

use crate::backend::Backend;
use crate::op::Trace;
use crate::report::{Failure, Report};
use crate::runner::{drop_quietly, guarded, Outcome, Runner, Step};

fn outcome_text(o: Outcome) -> String {
    match o {
        Outcome::Block => "a block".into(),
        Outcome::Freed => "NULL (freed)".into(),
        Outcome::Done => "done".into(),
        Outcome::Size => "a size".into(),
        Outcome::Failed(e) => format!("failure (errno {e})"),
        Outcome::Misuse => "a misuse report".into(),
        Outcome::Skipped => "nothing".into(),
    }
}

/// Compares two steps of the same op; `None` when they agree as far as glibc's semantics require.
pub fn compare(a: &Step, b: &Step) -> Option<Failure> {
    use Outcome::*;
    let differ = |what: &str| {
        Some(Failure::Divergence {
            what: what.into(),
            left: outcome_text(a.outcome),
            right: outcome_text(b.outcome),
        })
    };
    match (a.outcome, b.outcome) {
        (Skipped, _) | (_, Skipped) => None,
        (Failed(x), Failed(y)) if x != y && !a.any_errno && !b.any_errno => differ("errno"),
        (Failed(_), Failed(_)) => None,
        // A failure the rules allow (its errno was checked) against a success: one backend may
        // have less memory; and outside glibc's contract it may refuse what the other accepts.
        (Failed(e), Block) if a.may_fail && (e == crate::backend::ENOMEM || !a.strict) => None,
        (Block, Failed(e)) if b.may_fail && (e == crate::backend::ENOMEM || !b.strict) => None,
        (Freed, Block) | (Block, Freed) => None,
        (x, y) if x != y => differ("success or failure"),
        _ => {
            if a.prior == b.prior {
                if let (Some(x), Some(y)) = (a.digest, b.digest) {
                    if x != y {
                        return Some(Failure::Divergence {
                            what: "the contents read back".into(),
                            left: format!("digest {x:#018x}"),
                            right: format!("digest {y:#018x}"),
                        });
                    }
                }
            }
            None
        }
    }
}

/// Which backend of a differential.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The first backend (`a`).
    Left,
    /// The second (`b`).
    Right,
}

/// Runs `trace` on `a` and `b` side by side, in this process; reports the first oracle firing on
/// either side, or the first divergence between them.
///
/// When either backend has [`Caps::global_state`](crate::backend::Caps::global_state) (a shared
/// object), the caller should run the differential in a forked child instead ([`crate::isolate`],
/// the layer above).
pub fn diff<A: Backend, B: Backend>(a: A, b: B, trace: &Trace) -> Result<(), Report> {
    diff_watched(a, b, trace, &mut |_, _| {})
}

/// [`diff`], calling `watch(side, i)` before op `i` runs on
/// `side`, and `watch(side, trace.len())` before that side's end-of-trace checks.
pub fn diff_watched<A: Backend, B: Backend>(
    a: A,
    b: B,
    trace: &Trace,
    watch: &mut dyn FnMut(Side, usize),
) -> Result<(), Report> {
    let (an, bn) = (a.name(), b.name());
    let both = format!("{an} vs {bn}");
    let mut ra = Runner::new(a);
    let mut rb = Runner::new(b);
    let mut result = Ok(());
    for (i, op) in trace.ops.iter().enumerate() {
        watch(Side::Left, i);
        let sa = match guarded(|| ra.step(i, op)) {
            Ok(s) => s,
            Err(f) => {
                result = Err(Report::new(an.clone(), trace, i, f));
                break;
            }
        };
        watch(Side::Right, i);
        let sb = match guarded(|| rb.step(i, op)) {
            Ok(s) => s,
            Err(f) => {
                result = Err(Report::new(bn.clone(), trace, i, f));
                break;
            }
        };
        if let Some(f) = compare(&sa, &sb) {
            result = Err(Report::new(both.clone(), trace, i, f));
            break;
        }
    }
    if result.is_ok() {
        watch(Side::Left, trace.len());
        result = guarded(|| ra.finish()).map_err(|f| Report::new(an, trace, trace.len(), f));
    }
    if result.is_ok() {
        watch(Side::Right, trace.len());
        result = guarded(|| rb.finish()).map_err(|f| Report::new(bn, trace, trace.len(), f));
    }
    drop_quietly(ra);
    drop_quietly(rb);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(outcome: Outcome, may_fail: bool) -> Step {
        Step {
            outcome,
            may_fail,
            any_errno: false,
            strict: true,
            digest: None,
            prior: None,
        }
    }

    #[test]
    fn allowed_differences_are_not_divergences() {
        let enomem = Outcome::Failed(libc::ENOMEM);
        assert!(compare(&step(Outcome::Block, true), &step(enomem, true)).is_none());
        assert!(compare(&step(Outcome::Block, false), &step(enomem, false)).is_some());
        assert!(compare(&step(Outcome::Freed, false), &step(Outcome::Block, false)).is_none());
        assert!(compare(
            &step(enomem, false),
            &step(Outcome::Failed(libc::EINVAL), false)
        )
        .is_some());
        // A refused alignment against a block: a divergence from glibc, not under other contracts.
        let einval = Outcome::Failed(libc::EINVAL);
        assert!(compare(&step(einval, true), &step(Outcome::Block, true)).is_some());
        let loose = Step {
            strict: false,
            ..step(einval, true)
        };
        assert!(compare(&loose, &step(Outcome::Block, true)).is_none());
        let any = Step {
            any_errno: true,
            ..step(Outcome::Failed(0), false)
        };
        assert!(compare(&any, &step(enomem, false)).is_none());
        let mut a = step(Outcome::Block, false);
        let mut b = a;
        a.digest = Some(1);
        b.digest = Some(2);
        assert!(compare(&a, &b).is_some());
        b.prior = Some((3, 4));
        assert!(
            compare(&a, &b).is_none(),
            "different blocks before: not comparable"
        );
    }
}
