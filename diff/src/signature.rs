//! A failure's signature: what kind of oracle fired, on which kind of op, for what size of
//! request. Two failures with one signature are taken for one bug: a keep-going run shrinks one
//! trace per signature and lists the others beside it, and the shrinker accepts only candidates
//! that fail with the signature it started from, so it cannot slide from one bug to another
//! (from a `memalign(64, SIZE_MAX)` errno report to a `memalign(0, 1 MiB)` one, say).

use std::fmt;

use crate::op::PTRDIFF_MAX;
use crate::report::Report;

/// A failure kind × op kind × size class.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Signature {
    /// [`Failure::kind`](crate::report::Failure::kind).
    pub kind: &'static str,
    /// The failing op's name (`malloc`, `free`...), or `end` for the end-of-trace checks.
    pub op: String,
    /// [`size_class`] of the bytes the op asked for.
    pub size: &'static str,
}

/// The class of a request of `bytes`: `-` (none), `0`, `small` (up to 256), `medium` (up to
/// 64 KiB), `large` (up to 256 MiB), `huge` (up to `PTRDIFF_MAX`), `impossible` (above).
pub fn size_class(bytes: usize, allocates: bool) -> &'static str {
    match bytes {
        _ if !allocates => "-",
        0 => "0",
        1..=256 => "small",
        257..=0x1_0000 => "medium",
        0x1_0001..=0x1000_0000 => "large",
        _ if bytes <= PTRDIFF_MAX => "huge",
        _ => "impossible",
    }
}

impl Signature {
    /// The signature of `report`.
    pub fn of(report: &Report) -> Signature {
        let (op, size) = match report.op() {
            None => ("end".to_string(), "-"),
            Some(op) => {
                let allocates = op.requested() > 0
                    || matches!(
                        op,
                        crate::op::Op::Malloc { .. }
                            | crate::op::Op::Calloc { .. }
                            | crate::op::Op::Realloc { .. }
                            | crate::op::Op::PosixMemalign { .. }
                            | crate::op::Op::AlignedAlloc { .. }
                            | crate::op::Op::Memalign { .. }
                    );
                (op.name(), size_class(op.requested(), allocates))
            }
        };
        Signature {
            kind: report.failure.kind(),
            op,
            size,
        }
    }

    /// The signature as a file-name part: `kind-op-size`.
    pub fn slug(&self) -> String {
        let size = if self.size == "-" { "none" } else { self.size };
        format!("{}-{}-{size}", self.kind, self.op)
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} on {} ({} size)", self.kind, self.op, self.size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Failure;
    use crate::text;

    #[test]
    fn signatures_tell_op_kinds_and_size_classes_apart() {
        let t = text::parse("memalign 0 64 SIZE_MAX\nmemalign 1 0 0x100000\nfree 1\n").unwrap();
        let f = Failure::HeapCheck {
            message: "x".into(),
        };
        let sig = |i| Signature::of(&Report::new("b", &t, i, f.clone()));
        assert_eq!(sig(0).size, "impossible");
        assert_eq!(sig(1).size, "large");
        assert_ne!(sig(0), sig(1));
        assert_eq!((sig(2).op.as_str(), sig(2).size), ("free", "-"));
        assert_eq!(sig(3).op, "end");
        assert_eq!(sig(1).slug(), "heap-check-memalign-large");
        assert_eq!(size_class(0, true), "0");
    }
}
