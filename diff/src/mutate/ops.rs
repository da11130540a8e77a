//! Mutations of a decoded trace, one [`Mutation`] at a time, in the target's dialect.
//!
//! Each mutation either changes the trace and returns `true`, or finds nothing to act on (a
//! deletion in an empty trace, a free moved in a trace without one) and returns `false` with the
//! trace untouched. New ops and values come from the dialect's own op set and from
//! [`super::edges`]; slots are mostly taken from the trace, so a new `free` or `realloc` names a
//! block that exists. The caller fixes the trace up for its dialect afterwards.

use tagalloc::layout::{block_size, HEADER};
use tagalloc::os::PAGE;
use tagalloc::Config;

use super::edges;
use super::{Mutation, Rng};
use crate::bytes::{kind_of, Kind};
use crate::op::{
    BadCall, BadPtr, Dialect, Foreign, Op, Trace, FREED_WORDS, MAX_FAIL_NEXT, MAX_FOREIGN_SBRK,
    MAX_OVERWRITE, MAX_SLOTS, MAX_THREADS,
};

/// The clean ops, weighted towards the calls that move blocks.
const CLEAN: &[Kind] = &[
    Kind::Malloc,
    Kind::Malloc,
    Kind::Malloc,
    Kind::Free,
    Kind::Free,
    Kind::Free,
    Kind::Realloc,
    Kind::Realloc,
    Kind::Calloc,
    Kind::PosixMemalign,
    Kind::AlignedAlloc,
    Kind::Memalign,
    Kind::UsableSize,
    Kind::Check,
];

/// The ops a dialect adds to the clean ones.
fn own(dialect: Dialect) -> &'static [Kind] {
    match dialect {
        Dialect::Clean => &[],
        Dialect::Misuse => &[Kind::Misuse, Kind::Overwrite, Kind::WriteFreed],
        Dialect::Faults => &[Kind::FailNext, Kind::ForeignSbrk],
        Dialect::Threads => &[Kind::Thread, Kind::Thread, Kind::ThreadExit, Kind::Fork],
        Dialect::All => &[
            Kind::Misuse,
            Kind::Overwrite,
            Kind::WriteFreed,
            Kind::FailNext,
            Kind::ForeignSbrk,
            Kind::Thread,
            Kind::ThreadExit,
            Kind::Fork,
        ],
    }
}

/// A shape of `dialect`: a dialect's own ops a third of the time, so they are not drowned.
fn shape(rng: &mut Rng, dialect: Dialect) -> Kind {
    let extra = own(dialect);
    if !extra.is_empty() && rng.below(3) == 0 {
        extra[rng.below(extra.len())]
    } else {
        CLEAN[rng.below(CLEAN.len())]
    }
}

/// A slot for a new or retargeted op: mostly one the trace already names, sometimes a fresh one.
fn slot(rng: &mut Rng, trace: &Trace) -> usize {
    let named: Vec<usize> = trace.ops.iter().filter_map(Op::slot).collect();
    match rng.below(10) {
        0..=6 if !named.is_empty() => named[rng.below(named.len())],
        7 => named.iter().max().map_or(0, |&m| (m + 1) % MAX_SLOTS),
        _ => rng.below(16),
    }
}

/// A size for a new op: an edge, near the size of some op of the trace.
fn size(rng: &mut Rng, trace: &Trace) -> usize {
    let near = sized(trace, rng).map_or(0, |(_, s)| s);
    edges::size(rng, trace, near)
}

/// A random op of the trace that has a size, and that size.
fn sized(trace: &Trace, rng: &mut Rng) -> Option<(usize, usize)> {
    let found: Vec<(usize, usize)> = trace
        .ops
        .iter()
        .enumerate()
        .filter_map(|(i, op)| size_of(op).map(|s| (i, s)))
        .collect();
    (!found.is_empty()).then(|| found[rng.below(found.len())])
}

/// The size field of an op, if it has one.
fn size_of(op: &Op) -> Option<usize> {
    match *op {
        Op::Malloc { size, .. }
        | Op::Realloc { size, .. }
        | Op::Calloc { size, .. }
        | Op::PosixMemalign { size, .. }
        | Op::AlignedAlloc { size, .. }
        | Op::Memalign { size, .. }
        | Op::Misuse {
            call: BadCall::Realloc { size },
            ..
        } => Some(size),
        Op::Misuse {
            ptr: BadPtr::Interior { offset, .. },
            ..
        } => Some(offset),
        Op::ForeignSbrk { bytes } => Some(bytes),
        _ => None,
    }
}

/// An op of `shape` on `slot` with `size` (fields the shape lacks are drawn).
fn make(rng: &mut Rng, shape: Kind, slot: usize, size: usize) -> Op {
    match shape {
        Kind::Malloc => Op::Malloc { slot, size },
        Kind::Calloc => {
            let (count, size) = match rng.below(4) {
                0 => edges::calloc_overflow(rng),
                1 => (size, 1 + rng.below(16)),
                _ => (1 + rng.below(16), size),
            };
            Op::Calloc { slot, count, size }
        }
        Kind::Realloc if rng.below(8) == 0 => Op::Realloc { slot, size: 0 },
        Kind::Realloc => Op::Realloc { slot, size },
        Kind::Free => Op::Free { slot },
        Kind::PosixMemalign => Op::PosixMemalign {
            slot,
            align: edges::align(rng, 16),
            size,
        },
        Kind::AlignedAlloc => Op::AlignedAlloc {
            slot,
            align: edges::align(rng, 16),
            size,
        },
        Kind::Memalign => Op::Memalign {
            slot,
            align: edges::align(rng, 16),
            size,
        },
        Kind::UsableSize => Op::UsableSize { slot },
        Kind::Check => Op::Check,
        Kind::Misuse => {
            let call = match rng.below(3) {
                0 => BadCall::Free,
                1 => BadCall::Realloc { size },
                _ => BadCall::UsableSize,
            };
            let ptr = match rng.below(3) {
                0 => BadPtr::Freed { slot },
                1 => BadPtr::Interior {
                    slot,
                    offset: edges::align(rng, 16).max(1),
                },
                _ => BadPtr::Foreign(Foreign::ALL[rng.below(Foreign::ALL.len())]),
            };
            Op::Misuse { call, ptr }
        }
        Kind::Overwrite => Op::Overwrite {
            slot,
            len: 1 + rng.below(MAX_OVERWRITE),
        },
        Kind::WriteFreed => Op::WriteFreed {
            slot,
            word: rng.below(FREED_WORDS),
        },
        Kind::FailNext => Op::FailNext {
            count: 1 + rng.below(MAX_FAIL_NEXT),
        },
        Kind::ForeignSbrk => Op::ForeignSbrk {
            bytes: size.min(MAX_FOREIGN_SBRK),
        },
        Kind::Thread => Op::Thread {
            thread: rng.below(MAX_THREADS),
        },
        Kind::ThreadExit => Op::ThreadExit,
        Kind::Fork => Op::Fork,
    }
}

/// Whether `op` gives its block back: `free`, or `realloc` to 0.
fn frees(op: &Op) -> bool {
    matches!(op, Op::Free { .. } | Op::Realloc { size: 0, .. })
}

/// A run `start..end` of at most four ops of a non-empty trace.
fn run(rng: &mut Rng, len: usize) -> (usize, usize) {
    let start = rng.below(len);
    let n = 1 + rng.below(4.min(len - start));
    (start, start + n)
}

/// Applies `m` to `trace` (in `dialect`); `false` when the trace has nothing it applies to.
pub fn apply(m: Mutation, trace: &mut Trace, dialect: Dialect, rng: &mut Rng) -> bool {
    let len = trace.ops.len();
    match m {
        Mutation::Insert => {
            let shape = shape(rng, dialect);
            let (slot, size) = (slot(rng, trace), size(rng, trace));
            let op = make(rng, shape, slot, size);
            trace.ops.insert(rng.below(len + 1), op);
        }
        Mutation::Delete if len > 0 => {
            let (a, b) = run(rng, len);
            trace.ops.drain(a..b);
        }
        Mutation::Duplicate if len > 0 => {
            let (a, b) = run(rng, len);
            let copy: Vec<Op> = trace.ops[a..b].to_vec();
            let at = if rng.below(2) == 0 {
                b
            } else {
                rng.below(len + 1)
            };
            trace.ops.splice(at..at, copy);
        }
        Mutation::Repeat if len > 0 => {
            // Copy `k` renamed: slot `s` becomes `s + k` (modulo the slots), so `malloc 0 24`
            // repeated allocates blocks 1, 2, 3... and a repeated `free 0` frees them again:
            // full caches, long free lists, batches through the transfer cache.
            let (a, b) = run(rng, len);
            let times = 2 + edges::small_count(rng, 62);
            let mut copies = Vec::new();
            for k in 1..=times {
                copies.extend(trace.ops[a..b].iter().map(|op| match op.slot() {
                    Some(s) => op.with_slot((s + k) % MAX_SLOTS),
                    None => *op,
                }));
            }
            trace.ops.splice(b..b, copies);
        }
        Mutation::Swap if len > 1 => {
            let i = rng.below(len);
            let j = if rng.below(2) == 0 {
                (i + 1) % len
            } else {
                rng.below(len)
            };
            if i == j {
                return false;
            }
            trace.ops.swap(i, j);
        }
        Mutation::ChangeKind if len > 0 => {
            let i = rng.below(len);
            let old = trace.ops[i];
            let new = shape(rng, dialect);
            if new == kind_of(&old) {
                return false;
            }
            let slot = old.slot().unwrap_or_else(|| slot(rng, trace));
            let size = size_of(&old).unwrap_or_else(|| size(rng, trace));
            trace.ops[i] = make(rng, new, slot, size);
        }
        Mutation::MoveFree => {
            let found: Vec<usize> = (0..len).filter(|&i| frees(&trace.ops[i])).collect();
            if found.is_empty() {
                return false;
            }
            let from = found[rng.below(found.len())];
            let op = trace.ops.remove(from);
            // Often just across a neighbour or two; sometimes anywhere.
            let to = match rng.below(3) {
                0 => from.saturating_sub(1 + rng.below(3)),
                1 => (from + 1 + rng.below(3)).min(len - 1),
                _ => rng.below(len),
            };
            trace.ops.insert(to, op);
            if to == from {
                return false;
            }
        }
        Mutation::RetargetSlot => {
            let with: Vec<usize> = (0..len)
                .filter(|&i| trace.ops[i].slot().is_some())
                .collect();
            if with.is_empty() {
                return false;
            }
            let i = with[rng.below(with.len())];
            let new = slot(rng, trace);
            if trace.ops[i].slot() == Some(new) {
                return false;
            }
            trace.ops[i] = trace.ops[i].with_slot(new);
        }
        Mutation::Size => {
            let Some((i, old)) = sized(trace, rng) else {
                return false;
            };
            trace.ops[i] = with_size(trace.ops[i], rng, trace, old);
            if let Some(size) = fitted(trace, i, rng) {
                trace.ops[i] = trace.ops[i].with_number(0, size);
            }
        }
        Mutation::Align => {
            let with: Vec<usize> = (0..len)
                .filter(|&i| align_of(&trace.ops[i]).is_some())
                .collect();
            if with.is_empty() {
                return false;
            }
            let i = with[rng.below(with.len())];
            let old = align_of(&trace.ops[i]).unwrap_or(16);
            trace.ops[i] = trace.ops[i].with_number(0, edges::align(rng, old));
        }
        Mutation::Tunables => tunables(trace, rng),
        _ => return false,
    }
    true
}

/// `op` with its size replaced by an edge near `old` (a `calloc` may get an overflowing pair).
fn with_size(op: Op, rng: &mut Rng, trace: &Trace, old: usize) -> Op {
    let new = edges::size(rng, trace, old);
    match op {
        Op::Malloc { slot, .. } => Op::Malloc { slot, size: new },
        Op::Realloc { slot, .. } => Op::Realloc { slot, size: new },
        Op::Calloc { slot, .. } if rng.below(3) == 0 => {
            let (count, size) = edges::calloc_overflow(rng);
            Op::Calloc { slot, count, size }
        }
        Op::Calloc { slot, count, .. } if rng.below(2) == 0 => Op::Calloc {
            slot,
            count,
            size: new,
        },
        Op::Calloc { slot, size, .. } => Op::Calloc {
            slot,
            count: new,
            size,
        },
        Op::PosixMemalign { .. } | Op::AlignedAlloc { .. } | Op::Memalign { .. } => {
            op.with_number(1, new)
        }
        Op::Misuse {
            call: BadCall::Realloc { .. },
            ptr,
        } => Op::Misuse {
            call: BadCall::Realloc { size: new },
            ptr,
        },
        Op::Misuse {
            call,
            ptr: BadPtr::Interior { slot, .. },
        } => Op::Misuse {
            call,
            ptr: BadPtr::Interior { slot, offset: new },
        },
        Op::ForeignSbrk { .. } => Op::ForeignSbrk {
            bytes: new.min(MAX_FOREIGN_SBRK),
        },
        op => op,
    }
}

/// Half the time, for a `realloc` of a block the trace allocated earlier: a size at the edges of
/// that block (its usable bytes ± 1, a tag past them, half of them), where in-place resizing
/// decides.
fn fitted(trace: &Trace, i: usize, rng: &mut Rng) -> Option<usize> {
    let Op::Realloc { slot, .. } = trace.ops[i] else {
        return None;
    };
    if rng.below(2) == 0 {
        return None;
    }
    let before = trace.ops[..i]
        .iter()
        .rev()
        .find(|op| op.slot() == Some(slot))?;
    let size = match *before {
        Op::Malloc { size, .. }
        | Op::Realloc { size, .. }
        | Op::PosixMemalign { size, .. }
        | Op::AlignedAlloc { size, .. }
        | Op::Memalign { size, .. } => size,
        Op::Calloc { count, size, .. } => count.checked_mul(size)?,
        _ => return None,
    };
    let usable = block_size(size)? - HEADER;
    let edge = match rng.below(4) {
        0 => usable / 2,
        _ => usable,
    };
    Some(
        edge.saturating_add_signed([-1, 0, 1, 2, 8, 9][rng.below(6)])
            .max(1),
    )
}

fn align_of(op: &Op) -> Option<usize> {
    match *op {
        Op::PosixMemalign { align, .. }
        | Op::AlignedAlloc { align, .. }
        | Op::Memalign { align, .. } => Some(align),
        _ => None,
    }
}

/// Sets, changes or clears one tunable; or, a quarter of the time, sets several at once to their
/// harshest corners (small pads, trimming at once, tiny caches, a page-sized mmap threshold),
/// where bugs hide that need two of them together.
fn tunables(trace: &mut Trace, rng: &mut Rng) {
    let t = &mut trace.config;
    if rng.below(4) == 0 {
        let pads = [0, 16, PAGE as u32 - 16, PAGE as u32 + 16];
        for field in 0..5 {
            if rng.below(2) == 0 {
                continue;
            }
            match field {
                0 => t.top_pad = Some(pads[rng.below(pads.len())]),
                1 => t.trim_threshold = Some(pads[rng.below(2)]),
                2 => t.trim_delay = Some(rng.below(2) as u8),
                3 => t.cache_limit = Some(1 + rng.below(2) as u8),
                _ => t.mmap_threshold = Some(PAGE as u32 * (1 + rng.below(2) as u32)),
            }
        }
        return;
    }
    let clear = rng.below(5) == 0;
    match rng.below(6) {
        0 => t.mmap_threshold = (!clear).then(|| edges::tunable_size(rng)),
        1 => t.trim_threshold = (!clear).then(|| edges::tunable_size(rng)),
        2 => t.top_pad = (!clear).then(|| edges::tunable_size(rng)),
        3 => t.trim_delay = (!clear).then(|| edges::tunable_small(rng)),
        4 => {
            let on = t
                .dynamic_threshold
                .unwrap_or(Config::DEFAULT.dynamic_threshold);
            t.dynamic_threshold = (!clear).then_some(!on);
        }
        _ => t.cache_limit = (!clear).then(|| edges::tunable_small(rng)),
    }
}
