//! The compact binary form in which an isolated child hands its verdict to its parent: pass, or
//! the backend, op index and [`Failure`] of its report (the parent has the trace already); then
//! the features the child collected for a fuzzer's feedback, a list of numbers (empty unless the
//! caller asked for them, [`super::run_collecting`]).
//!
//! Only the process that forked the writer ever reads it (the same binary), so it carries no
//! version; but it round-trips every failure exactly, so a report made in a child equals the one
//! the same run would make in process. Numbers are 8 bytes little-endian; strings and lists, a
//! length and then their items; enums, a tag byte and then their fields in declaration order. One
//! table (`failures!`) writes both directions for every [`Failure`], so they cannot disagree, and
//! a new variant left out of it does not compile.

use crate::backend::MisuseKind;
use crate::report::{BlockRef, Death, Failure, Report};

/// A value with a wire form.
trait Wire: Sized {
    /// Appends the value to `out`.
    fn put(&self, out: &mut Vec<u8>);
    /// Takes a value from the front of `input`; `None` if it is malformed or cut short.
    fn take(input: &mut &[u8]) -> Option<Self>;
}

impl Wire for u64 {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn take(input: &mut &[u8]) -> Option<u64> {
        let (bytes, rest) = input.split_first_chunk::<8>()?;
        *input = rest;
        Some(u64::from_le_bytes(*bytes))
    }
}

impl Wire for usize {
    fn put(&self, out: &mut Vec<u8>) {
        (*self as u64).put(out);
    }
    fn take(input: &mut &[u8]) -> Option<usize> {
        usize::try_from(u64::take(input)?).ok()
    }
}

impl Wire for i32 {
    fn put(&self, out: &mut Vec<u8>) {
        (i64::from(*self) as u64).put(out);
    }
    fn take(input: &mut &[u8]) -> Option<i32> {
        i32::try_from(u64::take(input)? as i64).ok()
    }
}

impl Wire for u8 {
    fn put(&self, out: &mut Vec<u8>) {
        out.push(*self);
    }
    fn take(input: &mut &[u8]) -> Option<u8> {
        let (&b, rest) = input.split_first()?;
        *input = rest;
        Some(b)
    }
}

impl Wire for String {
    fn put(&self, out: &mut Vec<u8>) {
        self.len().put(out);
        out.extend_from_slice(self.as_bytes());
    }
    fn take(input: &mut &[u8]) -> Option<String> {
        let len = usize::take(input)?;
        if len > input.len() {
            return None;
        }
        let (bytes, rest) = input.split_at(len);
        *input = rest;
        String::from_utf8(bytes.to_vec()).ok()
    }
}

impl<T: Wire> Wire for Vec<T> {
    fn put(&self, out: &mut Vec<u8>) {
        self.len().put(out);
        for item in self {
            item.put(out);
        }
    }
    fn take(input: &mut &[u8]) -> Option<Vec<T>> {
        let len = usize::take(input)?;
        // Every item takes at least a byte, so a malformed length cannot reserve much.
        let mut v = Vec::with_capacity(len.min(input.len()));
        for _ in 0..len {
            v.push(T::take(input)?);
        }
        Some(v)
    }
}

impl<T: Wire> Wire for Option<T> {
    fn put(&self, out: &mut Vec<u8>) {
        match self {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                v.put(out);
            }
        }
    }
    fn take(input: &mut &[u8]) -> Option<Option<T>> {
        match u8::take(input)? {
            0 => Some(None),
            1 => Some(Some(T::take(input)?)),
            _ => None,
        }
    }
}

impl Wire for BlockRef {
    fn put(&self, out: &mut Vec<u8>) {
        self.slot.put(out);
        self.addr.put(out);
        self.size.put(out);
    }
    fn take(input: &mut &[u8]) -> Option<BlockRef> {
        Some(BlockRef {
            slot: Wire::take(input)?,
            addr: Wire::take(input)?,
            size: Wire::take(input)?,
        })
    }
}

impl Wire for MisuseKind {
    fn put(&self, out: &mut Vec<u8>) {
        out.push(match self {
            MisuseKind::InvalidPointer => 0,
            MisuseKind::DoubleFree => 1,
            MisuseKind::CorruptTag => 2,
            MisuseKind::CorruptFree => 3,
        });
    }
    fn take(input: &mut &[u8]) -> Option<MisuseKind> {
        Some(match u8::take(input)? {
            0 => MisuseKind::InvalidPointer,
            1 => MisuseKind::DoubleFree,
            2 => MisuseKind::CorruptTag,
            3 => MisuseKind::CorruptFree,
            _ => return None,
        })
    }
}

impl Wire for Death {
    fn put(&self, out: &mut Vec<u8>) {
        match *self {
            Death::Signal(s) => {
                out.push(0);
                s.put(out);
            }
            Death::Exit(status) => {
                out.push(1);
                status.put(out);
            }
            Death::Hang(ms) => {
                out.push(2);
                ms.put(out);
            }
        }
    }
    fn take(input: &mut &[u8]) -> Option<Death> {
        Some(match u8::take(input)? {
            0 => Death::Signal(Wire::take(input)?),
            1 => Death::Exit(Wire::take(input)?),
            2 => Death::Hang(Wire::take(input)?),
            _ => return None,
        })
    }
}

/// Writes [`Wire`] for [`Failure`] from one table of `tag Variant { fields in order }`.
macro_rules! failures {
    ($($tag:literal $name:ident { $($field:ident),* })*) => {
        impl Wire for Failure {
            fn put(&self, out: &mut Vec<u8>) {
                match self {
                    $(Failure::$name { $($field),* } => {
                        out.push($tag);
                        $($field.put(out);)*
                    })*
                }
            }
            fn take(input: &mut &[u8]) -> Option<Failure> {
                Some(match u8::take(input)? {
                    $($tag => Failure::$name { $($field: Wire::take(input)?),* },)*
                    _ => return None,
                })
            }
        }
    };
}

failures! {
    0 Overlap { new, old }
    1 Misaligned { block, align, rule }
    2 ContentChanged { block, offset, found, expected }
    3 CallocNotZero { block, offset, found }
    4 ReallocLostPrefix { block, old, offset, found, expected }
    5 UsableTooSmall { block, usable }
    6 UsableOfNull { usable }
    7 NullWhereSuccessRequired { call, errno, rule }
    8 SuccessWhereFailureRequired { call, addr, rule }
    9 WrongErrno { call, errno, allowed, rule }
    10 UnexpectedReply { call, reply }
    11 HeapCheck { message }
    12 MisuseMissed { call, expected, reply }
    13 Panic { message }
    14 Divergence { what, left, right }
    15 TextRoundTrip { message }
    16 Crashed { death }
    17 CachedWhileLive { block }
    18 ForkChild { message }
}

/// What a child found: pass, or a failure on `backend` at op `index`.
pub(super) type Verdict = Result<(), (String, usize, Failure)>;

/// The message a child sends: its length (4 bytes little-endian), then the verdict.
pub(super) fn message(result: &Result<(), Report>, features: &[u64]) -> Vec<u8> {
    let mut out = vec![0; 4];
    match result {
        Ok(()) => out.push(0),
        Err(r) => {
            out.push(1);
            r.backend.put(&mut out);
            r.index.put(&mut out);
            r.failure.put(&mut out);
        }
    }
    features.len().put(&mut out);
    for f in features {
        f.put(&mut out);
    }
    let len = u32::try_from(out.len() - 4).expect("a verdict under 4 GiB");
    out[..4].copy_from_slice(&len.to_le_bytes());
    out
}

/// The verdict in `buf`, once the whole message has arrived (`None` before that).
pub(super) fn complete(buf: &[u8]) -> Option<&[u8]> {
    let (len, rest) = buf.split_first_chunk::<4>()?;
    rest.get(..u32::from_le_bytes(*len) as usize)
}

/// Reads a verdict and the features the child collected; `None` if it is malformed.
pub(super) fn verdict(mut input: &[u8]) -> Option<(Verdict, Vec<u64>)> {
    let v = match u8::take(&mut input)? {
        0 => Ok(()),
        1 => Err((
            String::take(&mut input)?,
            usize::take(&mut input)?,
            Failure::take(&mut input)?,
        )),
        _ => return None,
    };
    let features = Vec::take(&mut input)?;
    input.is_empty().then_some((v, features))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::Trace;

    fn samples() -> Vec<Failure> {
        let b = BlockRef {
            slot: Some(3),
            addr: 0x7f00_1234_5670,
            size: usize::MAX,
        };
        let leaked = BlockRef { slot: None, ..b };
        let s = |t: &str| t.to_string();
        vec![
            Failure::Overlap {
                new: b,
                old: leaked,
            },
            Failure::Misaligned {
                block: b,
                align: 16,
                rule: s("aligned"),
            },
            Failure::ContentChanged {
                block: b,
                offset: 7,
                found: 0xff,
                expected: 0,
            },
            Failure::CallocNotZero {
                block: b,
                offset: 0,
                found: 0xd0,
            },
            Failure::ReallocLostPrefix {
                block: b,
                old: leaked,
                offset: 9,
                found: 1,
                expected: 2,
            },
            Failure::UsableTooSmall {
                block: b,
                usable: 8,
            },
            Failure::UsableOfNull { usable: 1 },
            Failure::NullWhereSuccessRequired {
                call: s("malloc(24)"),
                errno: libc::ENOMEM,
                rule: s("owed"),
            },
            Failure::SuccessWhereFailureRequired {
                call: s("malloc(SIZE_MAX)"),
                addr: 16,
                rule: s("too large"),
            },
            Failure::WrongErrno {
                call: s("memalign(3, 8)"),
                errno: -1,
                allowed: vec![libc::EINVAL, libc::ENOMEM],
                rule: String::new(),
            },
            Failure::UnexpectedReply {
                call: s("free(slot 0)"),
                reply: s("size 3"),
            },
            Failure::HeapCheck {
                message: s("invariant 3 (no two adjacent free blocks) broken at 0x10 — é"),
            },
            Failure::MisuseMissed {
                call: s("free(freed)"),
                expected: vec![MisuseKind::DoubleFree, MisuseKind::InvalidPointer],
                reply: s("done"),
            },
            Failure::Panic { message: s("") },
            Failure::Divergence {
                what: s("errno"),
                left: s("a"),
                right: s("b"),
            },
            Failure::TextRoundTrip { message: s("x") },
            Failure::Crashed {
                death: Death::Signal(libc::SIGSEGV),
            },
            Failure::Crashed {
                death: Death::Exit(3),
            },
            Failure::Crashed {
                death: Death::Hang(2000),
            },
        ]
    }

    #[test]
    fn every_failure_round_trips() {
        let trace = Trace::new(Vec::new());
        for f in samples() {
            let r = Report::new("/tmp/mm.so", &trace, 41, f.clone());
            let msg = message(&Err(r), &[7, u64::MAX]);
            let body = complete(&msg).expect("complete");
            assert_eq!(
                verdict(body),
                Some((
                    Err(("/tmp/mm.so".to_string(), 41, f.clone())),
                    vec![7, u64::MAX]
                )),
                "{f:?}"
            );
            // Cut short anywhere: never complete, and never a different verdict.
            for cut in 0..msg.len() {
                assert!(complete(&msg[..cut]).is_none());
                let v = verdict(&body[..cut.min(body.len() - 1)]);
                assert!(v.is_none(), "{f:?} cut at {cut}: {v:?}");
            }
        }
        let pass = message(&Ok(()), &[]);
        assert_eq!(
            verdict(complete(&pass).unwrap()),
            Some((Ok(()), Vec::new()))
        );
    }
}
