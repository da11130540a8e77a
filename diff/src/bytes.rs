//! Fuzz bytes: the byte encoding of traces that libFuzzer mutates.
//!
//! Decoding reads the bytes through [`arbitrary::Unstructured`]: first the trace's [`Tunables`], then
//! one op after another until the bytes run out; then it applies [`Trace::fixup`] for the target's
//! dialect. Deterministic: same bytes and
//! dialect, same trace. Every byte string decodes (missing bytes read as zero). One byte format
//! serves every fuzz target; a target's dialect only decides which ops survive the fixup.
//!
//! Layout of the tunables: a byte `m`; `m < 0x80` keeps every default (half of all inputs). Else
//! bit `i` of `m` says that field `i` follows, in order: `mmap_threshold`, `trim_threshold`,
//! `top_pad` (numbers drawn from [`CORNERS`]), `trim_delay` (a small count), `dynamic_threshold`
//! (a byte, odd for on), `cache_limit` (a small count) and `fast_lists` (a byte, odd for on). A small count is a byte `b`:
//! `SMALL_CORNERS[b % len]` below `0x80`, else `b - 0x80`.
//!
//! Layout of one op: an opcode byte (`OPCODES[b % 32]`, weighted towards `malloc`, `free` and
//! `realloc`), then its fields in [`Op`] order:
//! - slot: a byte `b < 0xf8` names slot `b % 16`; `0xf8..` is followed by a LEB128 `v` (at most
//!   three bytes) naming slot `16 + v % (MAX_SLOTS - 16)`;
//! - size, count, offset, byte count ([`SIZES`]) and alignment ([`ALIGNS`]): a tag byte `t`; `t < 128`
//!   is `table[t % len]`; `128..192` is a 14-bit literal (6 bits + 1 byte); `192..224` a 21-bit
//!   literal (5 bits + 2 bytes); `224..` a 64-bit little-endian literal in the next 8 bytes;
//! - small bounded fields (lengths, counts, choices): one byte, reduced modulo the range.
//!
//! [`encode`] writes the shortest of these forms, so `decode(&encode(t), d) == t` for every trace
//! `t` that [`Trace::fixup`] with dialect `d` leaves unchanged.

use arbitrary::{Arbitrary, Unstructured};

use crate::op::FREED_WORDS;
use crate::op::{
    BadCall, BadPtr, Dialect, Foreign, Op, Trace, ALIGNS, MAX_FAIL_NEXT, MAX_OVERWRITE, MAX_SLOTS,
    MAX_THREADS, SIZES,
};
use crate::tunables::{Tunables, CORNERS, SMALL_CORNERS};

/// The kinds of op, as the opcode byte names them (also the custom mutator's op shapes).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    Malloc,
    Calloc,
    Realloc,
    Free,
    PosixMemalign,
    AlignedAlloc,
    Memalign,
    UsableSize,
    Check,
    Misuse,
    Overwrite,
    FailNext,
    ForeignSbrk,
    Thread,
    ThreadExit,
    Fork,
    WriteFreed,
}

/// Opcode byte modulo 40 to kind; repeated kinds are drawn more often.
const OPCODES: [Kind; 40] = {
    use Kind::*;
    [
        Malloc,
        Free,
        Realloc,
        Malloc,
        Free,
        Calloc,
        Malloc,
        Free,
        Realloc,
        PosixMemalign,
        Malloc,
        Free,
        AlignedAlloc,
        Memalign,
        Realloc,
        UsableSize,
        Malloc,
        Free,
        Check,
        Realloc,
        Malloc,
        Calloc,
        Free,
        UsableSize,
        Malloc,
        Misuse,
        Misuse,
        WriteFreed,
        Overwrite,
        FailNext,
        FailNext,
        ForeignSbrk,
        Thread,
        Thread,
        Thread,
        Thread,
        Malloc,
        Free,
        ThreadExit,
        Fork,
    ]
};

fn byte(u: &mut Unstructured<'_>) -> u8 {
    u8::arbitrary(u).unwrap_or(0)
}

fn slot(u: &mut Unstructured<'_>) -> usize {
    let b = byte(u);
    if b < 0xf8 {
        return usize::from(b % 16);
    }
    let mut v = 0usize;
    for i in 0..3 {
        let b = byte(u);
        v |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            break;
        }
    }
    16 + v % (MAX_SLOTS - 16)
}

fn number(u: &mut Unstructured<'_>, table: &[usize]) -> usize {
    let t = byte(u);
    match t {
        0..=127 => table[usize::from(t) % table.len()],
        128..=191 => usize::from(t - 128) << 8 | usize::from(byte(u)),
        192..=223 => usize::from(t - 192) << 16 | usize::from(byte(u)) << 8 | usize::from(byte(u)),
        _ => {
            let mut v = [0u8; 8];
            for b in &mut v {
                *b = byte(u);
            }
            u64::from_le_bytes(v) as usize
        }
    }
}

fn small(u: &mut Unstructured<'_>) -> u8 {
    let b = byte(u);
    if b < 0x80 {
        SMALL_CORNERS[usize::from(b) % SMALL_CORNERS.len()]
    } else {
        b - 0x80
    }
}

fn tunables(u: &mut Unstructured<'_>) -> Tunables {
    let m = byte(u);
    let mut t = Tunables::default();
    if m < 0x80 {
        return t;
    }
    let has = |bit: u8| m & (1 << bit) != 0;
    let size = |u: &mut Unstructured<'_>| Some(number(u, CORNERS).min(u32::MAX as usize) as u32);
    if has(0) {
        t.mmap_threshold = size(u);
    }
    if has(1) {
        t.trim_threshold = size(u);
    }
    if has(2) {
        t.top_pad = size(u);
    }
    if has(3) {
        t.trim_delay = Some(small(u));
    }
    if has(4) {
        t.dynamic_threshold = Some(byte(u) % 2 == 1);
    }
    if has(5) {
        t.cache_limit = Some(small(u));
    }
    if has(6) {
        t.fast_lists = Some(byte(u) % 2 == 1);
    }
    t
}

fn op(u: &mut Unstructured<'_>) -> Op {
    match OPCODES[usize::from(byte(u)) % OPCODES.len()] {
        Kind::Malloc => Op::Malloc {
            slot: slot(u),
            size: number(u, SIZES),
        },
        Kind::Calloc => Op::Calloc {
            slot: slot(u),
            count: number(u, SIZES),
            size: number(u, SIZES),
        },
        Kind::Realloc => Op::Realloc {
            slot: slot(u),
            size: number(u, SIZES),
        },
        Kind::Free => Op::Free { slot: slot(u) },
        Kind::PosixMemalign => Op::PosixMemalign {
            slot: slot(u),
            align: number(u, ALIGNS),
            size: number(u, SIZES),
        },
        Kind::AlignedAlloc => Op::AlignedAlloc {
            slot: slot(u),
            align: number(u, ALIGNS),
            size: number(u, SIZES),
        },
        Kind::Memalign => Op::Memalign {
            slot: slot(u),
            align: number(u, ALIGNS),
            size: number(u, SIZES),
        },
        Kind::UsableSize => Op::UsableSize { slot: slot(u) },
        Kind::Check => Op::Check,
        Kind::Misuse => {
            let call = match byte(u) % 3 {
                0 => BadCall::Free,
                1 => BadCall::Realloc {
                    size: number(u, SIZES),
                },
                _ => BadCall::UsableSize,
            };
            let ptr = match byte(u) % 3 {
                0 => BadPtr::Freed { slot: slot(u) },
                1 => BadPtr::Interior {
                    slot: slot(u),
                    offset: number(u, SIZES),
                },
                _ => BadPtr::Foreign(Foreign::ALL[usize::from(byte(u)) % Foreign::ALL.len()]),
            };
            Op::Misuse { call, ptr }
        }
        Kind::Overwrite => Op::Overwrite {
            slot: slot(u),
            len: 1 + usize::from(byte(u)) % MAX_OVERWRITE,
        },
        Kind::WriteFreed => Op::WriteFreed {
            slot: slot(u),
            word: usize::from(byte(u)) % FREED_WORDS,
        },
        Kind::FailNext => Op::FailNext {
            count: 1 + usize::from(byte(u)) % MAX_FAIL_NEXT,
        },
        Kind::ForeignSbrk => Op::ForeignSbrk {
            bytes: number(u, SIZES),
        },
        Kind::Thread => Op::Thread {
            thread: usize::from(byte(u)) % MAX_THREADS,
        },
        Kind::ThreadExit => Op::ThreadExit,
        Kind::Fork => Op::Fork,
    }
}

/// Decodes all remaining bytes of `u` as a trace of `dialect` (see the module docs).
pub fn decode_from(u: &mut Unstructured<'_>, dialect: Dialect) -> Trace {
    let config = tunables(u);
    let mut ops = Vec::new();
    while !u.is_empty() && ops.len() < crate::op::MAX_OPS {
        ops.push(op(u));
    }
    Trace::new(ops).with_config(config).fixed(dialect)
}

/// Decodes fuzz bytes as a trace of `dialect`.
pub fn decode(data: &[u8], dialect: Dialect) -> Trace {
    decode_from(&mut Unstructured::new(data), dialect)
}

impl<'a> Arbitrary<'a> for Trace {
    /// Takes every remaining byte, like [`Arbitrary::arbitrary_take_rest`], in [`Dialect::All`].
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(decode_from(u, Dialect::All))
    }

    fn arbitrary_take_rest(mut u: Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(decode_from(&mut u, Dialect::All))
    }
}

/// The kind of `op`.
pub(crate) fn kind_of(op: &Op) -> Kind {
    match op {
        Op::Malloc { .. } => Kind::Malloc,
        Op::Calloc { .. } => Kind::Calloc,
        Op::Realloc { .. } => Kind::Realloc,
        Op::Free { .. } => Kind::Free,
        Op::PosixMemalign { .. } => Kind::PosixMemalign,
        Op::AlignedAlloc { .. } => Kind::AlignedAlloc,
        Op::Memalign { .. } => Kind::Memalign,
        Op::UsableSize { .. } => Kind::UsableSize,
        Op::Check => Kind::Check,
        Op::Misuse { .. } => Kind::Misuse,
        Op::Overwrite { .. } => Kind::Overwrite,
        Op::FailNext { .. } => Kind::FailNext,
        Op::ForeignSbrk { .. } => Kind::ForeignSbrk,
        Op::WriteFreed { .. } => Kind::WriteFreed,
        Op::Thread { .. } => Kind::Thread,
        Op::ThreadExit => Kind::ThreadExit,
        Op::Fork => Kind::Fork,
    }
}

fn put_small(out: &mut Vec<u8>, v: u8) {
    match SMALL_CORNERS.iter().position(|&c| c == v) {
        Some(i) => out.push(i as u8),
        None => out.push(0x80 + v.min(0x7f)),
    }
}

fn put_tunables(out: &mut Vec<u8>, t: &Tunables) {
    let fields = [
        t.mmap_threshold.is_some(),
        t.trim_threshold.is_some(),
        t.top_pad.is_some(),
        t.trim_delay.is_some(),
        t.dynamic_threshold.is_some(),
        t.cache_limit.is_some(),
        t.fast_lists.is_some(),
    ];
    if !fields.contains(&true) {
        out.push(0);
        return;
    }
    let mask = fields
        .iter()
        .enumerate()
        .fold(0x80u8, |m, (i, &on)| if on { m | 1 << i } else { m });
    out.push(mask);
    for v in [t.mmap_threshold, t.trim_threshold, t.top_pad]
        .into_iter()
        .flatten()
    {
        put_number(out, CORNERS, v as usize);
    }
    if let Some(v) = t.trim_delay {
        put_small(out, v);
    }
    if let Some(on) = t.dynamic_threshold {
        out.push(u8::from(on));
    }
    if let Some(v) = t.cache_limit {
        put_small(out, v);
    }
    if let Some(on) = t.fast_lists {
        out.push(u8::from(on));
    }
}

fn put_slot(out: &mut Vec<u8>, slot: usize) {
    if slot < 16 {
        out.push(slot as u8);
        return;
    }
    out.push(0xf8);
    let mut v = slot - 16;
    loop {
        let low = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(low);
            return;
        }
        out.push(low | 0x80);
    }
}

fn put_number(out: &mut Vec<u8>, table: &[usize], v: usize) {
    if let Some(i) = table.iter().position(|&t| t == v) {
        out.push(i as u8);
    } else if v < 1 << 14 {
        out.extend([128 + (v >> 8) as u8, v as u8]);
    } else if v < 1 << 21 {
        out.extend([192 + (v >> 16) as u8, (v >> 8) as u8, v as u8]);
    } else {
        out.push(224);
        out.extend((v as u64).to_le_bytes());
    }
}

/// Encodes a fixed-up trace as fuzz bytes that [`decode`] turns back into the same trace.
pub fn encode(trace: &Trace) -> Vec<u8> {
    let mut out = Vec::new();
    put_tunables(&mut out, &trace.config);
    for op in &trace.ops {
        put_op(&mut out, op);
    }
    out
}

/// The bytes of one fixed-up op, as [`encode`] writes it after the tunables.
pub fn encode_op(op: &Op) -> Vec<u8> {
    let mut out = Vec::new();
    put_op(&mut out, op);
    out
}

fn put_op(out: &mut Vec<u8>, op: &Op) {
    let kind = kind_of(op);
    let code = OPCODES.iter().position(|&k| k == kind).unwrap_or(0);
    out.push(code as u8);
    match *op {
        Op::Malloc { slot, size } | Op::Realloc { slot, size } => {
            put_slot(out, slot);
            put_number(out, SIZES, size);
        }
        Op::Calloc { slot, count, size } => {
            put_slot(out, slot);
            put_number(out, SIZES, count);
            put_number(out, SIZES, size);
        }
        Op::Free { slot } | Op::UsableSize { slot } => put_slot(out, slot),
        Op::PosixMemalign { slot, align, size }
        | Op::AlignedAlloc { slot, align, size }
        | Op::Memalign { slot, align, size } => {
            put_slot(out, slot);
            put_number(out, ALIGNS, align);
            put_number(out, SIZES, size);
        }
        Op::Misuse { call, ptr } => {
            match call {
                BadCall::Free => out.push(0),
                BadCall::Realloc { size } => {
                    out.push(1);
                    put_number(out, SIZES, size);
                }
                BadCall::UsableSize => out.push(2),
            }
            match ptr {
                BadPtr::Freed { slot } => {
                    out.push(0);
                    put_slot(out, slot);
                }
                BadPtr::Interior { slot, offset } => {
                    out.push(1);
                    put_slot(out, slot);
                    put_number(out, SIZES, offset);
                }
                BadPtr::Foreign(kind) => {
                    out.push(2);
                    out.push(Foreign::ALL.iter().position(|&k| k == kind).unwrap_or(0) as u8);
                }
            }
        }
        Op::Overwrite { slot, len } => {
            put_slot(out, slot);
            out.push((len.saturating_sub(1) % MAX_OVERWRITE) as u8);
        }
        Op::WriteFreed { slot, word } => {
            put_slot(out, slot);
            out.push((word % FREED_WORDS) as u8);
        }
        Op::FailNext { count } => out.push((count.saturating_sub(1) % MAX_FAIL_NEXT) as u8),
        Op::ForeignSbrk { bytes } => put_number(out, SIZES, bytes),
        Op::Thread { thread } => out.push(thread as u8),
        Op::ThreadExit | Op::Fork | Op::Check => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_an_opcode() {
        for k in [
            Kind::Malloc,
            Kind::Calloc,
            Kind::Realloc,
            Kind::Free,
            Kind::PosixMemalign,
            Kind::AlignedAlloc,
            Kind::Memalign,
            Kind::UsableSize,
            Kind::Check,
            Kind::Misuse,
            Kind::Overwrite,
            Kind::FailNext,
            Kind::ForeignSbrk,
            Kind::Thread,
            Kind::ThreadExit,
            Kind::Fork,
            Kind::WriteFreed,
        ] {
            assert!(OPCODES.contains(&k), "{k:?}");
        }
    }

    #[test]
    fn empty_and_short_inputs_decode() {
        assert!(decode(&[], Dialect::All).is_empty());
        assert!(decode(&[0], Dialect::All).is_empty());
        assert_eq!(
            decode(&[0, 0], Dialect::All).ops,
            vec![Op::Malloc { slot: 0, size: 0 }]
        );
        assert_eq!(
            decode(&[0, 0, 0xf8], Dialect::All).ops,
            vec![Op::Malloc { slot: 16, size: 0 }]
        );
    }

    #[test]
    fn tunables_round_trip_and_reach_corners() {
        let t = Trace::new(vec![Op::Thread { thread: 2 }, Op::Fork, Op::ThreadExit]).with_config(
            Tunables {
                mmap_threshold: Some(4096),
                trim_threshold: Some(12345),
                top_pad: Some(0),
                trim_delay: Some(50),
                dynamic_threshold: Some(false),
                cache_limit: Some(1),
                fast_lists: Some(false),
            },
        );
        assert_eq!(decode(&encode(&t), Dialect::Threads), t);
        // A set field drawn from the corner table takes two bytes.
        let t = decode(&[0x84, 0], Dialect::Clean);
        assert_eq!(t.config.top_pad, Some(CORNERS[0] as u32));
        assert_eq!(t.config.mmap_threshold, None);
    }

    #[test]
    fn literals_of_every_width_round_trip() {
        for (slot, size) in [
            (0, 3),
            (17, 300),
            (4000, 20_000),
            (MAX_SLOTS - 1, 1 << 30),
            (15, usize::MAX - 3),
        ] {
            let t = Trace::new(vec![Op::Malloc { slot, size }]);
            assert_eq!(decode(&encode(&t), Dialect::Clean), t);
        }
    }
}
