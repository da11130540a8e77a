//! The fuzz targets' custom mutator: mutations that speak the op language.
//!
//! libFuzzer mutates bytes; most byte changes to an encoded trace shift every op after them, or
//! land in a size's table index. [`mutate`] instead decodes the input into the trace its target
//! runs ([`crate::bytes`], or text for `trace_parse`), applies one to five op-level [`Mutation`]s
//! (insert, delete, duplicate, repeat on fresh slots, swap, change an op's kind, move a free, retarget a slot, change a
//! size or an alignment towards an allocator's edges ([`edges`]), change the tunables), fixes the
//! trace up for the target's dialect, and encodes it back exactly: decoding the result gives the
//! mutated trace. A share of calls ([`FALLBACK_PERCENT`]) goes to libFuzzer's own byte mutations
//! instead (the `fallback` argument, `libfuzzer_sys::fuzzer_mutate` in a fuzz target), which keep
//! the dictionaries ([`dict`]) and libFuzzer's comparison tracing at work. [`crossover`] splices
//! two traces' ops.
//!
//! Deterministic: the same input, seed and fallback give the same output. A trace that no longer
//! fits in `max_size` bytes loses ops from its end.
//!
//! A fuzz target installs both with one line (`fuzz/src/lib.rs`):
//!
//! ```ignore
//! tagalloc_fuzz::op_mutator!(Target::Ops);
//! ```

pub mod dict;
pub mod edges;
mod ops;

use crate::bytes;
use crate::op::{Dialect, Op, Trace};
use crate::targets::Target;
use crate::text;

/// Percent of [`mutate`] calls handed to libFuzzer's byte mutations, by input kind.
pub const FALLBACK_PERCENT: FallbackPercent = FallbackPercent {
    bytes: 50,
    text: 50,
};

/// The share of calls [`mutate`] hands to libFuzzer's own mutations.
#[derive(Clone, Copy, Debug)]
pub struct FallbackPercent {
    /// For the targets that take fuzz bytes.
    pub bytes: u32,
    /// For `trace_parse`, whose text must also be fuzzed where it does not parse.
    pub text: u32,
}

/// The most mutations one call stacks.
pub const MAX_STACK: usize = 5;

/// One op-level mutation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mutation {
    /// Insert a new op of the dialect (slot from the trace, size at an edge).
    Insert,
    /// Delete a run of one to four ops.
    Delete,
    /// Copy a run of one to four ops, after itself or elsewhere.
    Duplicate,
    /// Repeat a run of one to four ops 2 to 63 times, each copy on the next slots.
    Repeat,
    /// Swap two ops, often neighbours.
    Swap,
    /// Change an op's kind, keeping its slot and size.
    ChangeKind,
    /// Move a `free` (or `realloc` to 0) earlier or later.
    MoveFree,
    /// Make an op name another slot.
    RetargetSlot,
    /// Move a size (or count, offset, byte count) to an edge.
    Size,
    /// Move an alignment to a power of two, its neighbour or a hostile value.
    Align,
    /// Set, change or clear one tunable.
    Tunables,
}

impl Mutation {
    /// Every mutation.
    pub const ALL: [Mutation; 11] = [
        Mutation::Insert,
        Mutation::Delete,
        Mutation::Duplicate,
        Mutation::Repeat,
        Mutation::Swap,
        Mutation::ChangeKind,
        Mutation::MoveFree,
        Mutation::RetargetSlot,
        Mutation::Size,
        Mutation::Align,
        Mutation::Tunables,
    ];

    /// How often each is drawn, relative to the others.
    fn weight(self) -> usize {
        match self {
            Mutation::Size => 4,
            Mutation::Insert => 3,
            Mutation::Align | Mutation::Tunables | Mutation::Repeat => 1,
            _ => 2,
        }
    }
}

/// The mutator's random numbers: splitmix64, seeded by libFuzzer's seed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x6a09_e667_f3bc_c908)
    }

    /// The next 64 random bits.
    pub fn bits(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.bits() % n as u64) as usize
    }
}

/// A mutation drawn by weight.
fn draw(rng: &mut Rng) -> Mutation {
    let total: usize = Mutation::ALL.iter().map(|m| m.weight()).sum();
    let mut r = rng.below(total);
    for m in Mutation::ALL {
        if r < m.weight() {
            return m;
        }
        r -= m.weight();
    }
    Mutation::Insert
}

/// Applies one to [`MAX_STACK`] mutations to `trace` in `dialect` and fixes it up; returns those
/// applied, in order (never empty: an insertion always applies).
pub fn mutate_trace(trace: &mut Trace, dialect: Dialect, rng: &mut Rng) -> Vec<Mutation> {
    let mut applied = Vec::new();
    let mut want = 1;
    while want < MAX_STACK && rng.below(3) == 0 {
        want += 1;
    }
    while applied.len() < want {
        // A mutation with nothing to act on gives way to another; insertion always acts.
        let mut m = Mutation::Insert;
        let acted = (0..8).any(|_| {
            m = draw(rng);
            ops::apply(m, trace, dialect, rng)
        });
        if !acted {
            m = Mutation::Insert;
            ops::apply(m, trace, dialect, rng);
        }
        trace.fixup(dialect);
        applied.push(m);
    }
    applied
}

/// libFuzzer's custom mutator for `target`: mutates `data[..size]` in place into at most
/// `max_size` bytes and returns the new size. `data` holds at least `max(size, max_size)` bytes;
/// `fallback` is libFuzzer's own mutation with the same contract.
pub fn mutate(
    target: Target,
    data: &mut [u8],
    size: usize,
    max_size: usize,
    seed: u32,
    fallback: impl FnOnce(&mut [u8], usize, usize) -> usize,
) -> usize {
    let mut rng = Rng::new(u64::from(seed));
    let share = match target.dialect() {
        Some(_) => FALLBACK_PERCENT.bytes,
        None => FALLBACK_PERCENT.text,
    };
    let mutated = if rng.below(100) < share as usize {
        None
    } else {
        let input = &data[..size.min(data.len())];
        match target.dialect() {
            Some(d) => {
                let mut trace = bytes::decode(input, d);
                mutate_trace(&mut trace, d, &mut rng);
                fit_bytes(trace, max_size)
            }
            None => text::parse_bytes(input).ok().and_then(|mut trace| {
                mutate_trace(&mut trace, Dialect::All, &mut rng);
                fit_text(trace, max_size)
            }),
        }
    };
    match mutated {
        Some(out) if out.len() <= data.len() => {
            data[..out.len()].copy_from_slice(&out);
            out.len()
        }
        _ => fallback(data, size, max_size),
    }
}

/// libFuzzer's custom crossover for `target`: a trace made of ops of `a` and of `b` (for
/// `trace_parse`, lines of each), written to `out`; returns its length.
pub fn crossover(target: Target, a: &[u8], b: &[u8], out: &mut [u8], seed: u32) -> usize {
    let mut rng = Rng::new(u64::from(seed) ^ 0xc0ff_ee00);
    let spliced = match target.dialect() {
        Some(d) => {
            let (ta, tb) = (bytes::decode(a, d), bytes::decode(b, d));
            let mut trace = splice(&ta, &tb, &mut rng);
            trace.fixup(d);
            fit_bytes(trace, out.len()).unwrap_or_default()
        }
        None => splice_lines(a, b, out.len(), &mut rng),
    };
    out[..spliced.len()].copy_from_slice(&spliced);
    spliced.len()
}

/// A prefix of `a`, a run of `b`, and often the rest of `a`; the tunables of either.
fn splice(a: &Trace, b: &Trace, rng: &mut Rng) -> Trace {
    let i = rng.below(a.len() + 1);
    let j = rng.below(b.len() + 1);
    let k = j + rng.below(b.len() - j + 1);
    let mut ops: Vec<Op> = a.ops[..i].to_vec();
    ops.extend_from_slice(&b.ops[j..k]);
    if rng.below(2) == 0 {
        ops.extend_from_slice(&a.ops[i..]);
    }
    let config = if rng.below(2) == 0 {
        a.config
    } else {
        b.config
    };
    Trace::new(ops).with_config(config)
}

/// The first lines of `a` and the last lines of `b`, at most `max` bytes.
fn splice_lines(a: &[u8], b: &[u8], max: usize, rng: &mut Rng) -> Vec<u8> {
    let lines = |d: &[u8]| d.split_inclusive(|&c| c == b'\n').count();
    let (na, nb) = (lines(a), lines(b));
    let head = a.split_inclusive(|&c| c == b'\n').take(rng.below(na + 1));
    let tail = b.split_inclusive(|&c| c == b'\n').skip(rng.below(nb + 1));
    let mut out: Vec<u8> = head.chain(tail).flatten().copied().collect();
    out.truncate(max);
    out
}

/// The fuzz bytes of `trace`, cut to its first ops that fit in `max` bytes (`None` if not even
/// the tunables fit).
fn fit_bytes(mut trace: Trace, max: usize) -> Option<Vec<u8>> {
    let head = bytes::encode(&Trace::default().with_config(trace.config)).len();
    let lens = trace.ops.iter().map(|op| bytes::encode_op(op).len());
    trace.ops.truncate(fitting(head, lens, max)?);
    let out = bytes::encode(&trace);
    (out.len() <= max).then_some(out)
}

/// The text of `trace`, cut to its first ops that fit in `max` bytes.
fn fit_text(mut trace: Trace, max: usize) -> Option<Vec<u8>> {
    let head = Trace::default().with_config(trace.config).to_string().len();
    let lens = trace.ops.iter().map(|op| op.to_string().len() + 1);
    trace.ops.truncate(fitting(head, lens, max)?);
    let out = trace.to_string().into_bytes();
    (out.len() <= max).then_some(out)
}

/// How many of the items, `head` bytes and then `lens` each, fit in `max` bytes.
fn fitting(head: usize, lens: impl Iterator<Item = usize>, max: usize) -> Option<usize> {
    let mut used = head;
    if used > max {
        return None;
    }
    let mut n = 0;
    for len in lens {
        used += len;
        if used > max {
            break;
        }
        n += 1;
    }
    Some(n)
}

#[cfg(test)]
mod tests;
