//! The misuse dialect on the runner: bad pointers handed to `free`, `realloc` and
//! `malloc_usable_size`, overwrites of the next block's tag, and writes into freed blocks. Only backends that promise to
//! report misuse ([`Caps::misuse`](crate::backend::Caps::misuse)) ever see these; for them, every
//! misuse must come back as the right [`Reply::Misuse`], naming the call and the pointer.

use std::cell::UnsafeCell;

use super::{reply_text, unexpected, Outcome, Runner, Step};
use crate::backend::{Backend, MisuseCall, MisuseKind, Reply, Request};
use crate::op::{BadCall, BadPtr, Foreign, Op, FREED_WORDS};
use crate::report::Failure;
use crate::shadow::{Block, Owner};

/// 64 bytes, 16-aligned, that no allocator handed out: a foreign pointer's target.
#[repr(C, align(16))]
pub(super) struct Area(UnsafeCell<[u8; 64]>);

impl Area {
    pub(super) fn boxed() -> Box<Area> {
        Box::new(Area(UnsafeCell::new([0; 64])))
    }
}

// SAFETY: the runner never writes to an area; it only passes its address to allocators that must
// reject it without touching it.
unsafe impl Sync for Area {}

static STATIC_AREA: Area = Area(UnsafeCell::new([0; 64]));

impl<B: Backend> Runner<B> {
    /// Whether overwriting past `b` or freeing it twice is certain to be detectable: it is carved
    /// from a break segment, not mapped on its own.
    fn in_segment(&self, b: &Block) -> bool {
        b.size.saturating_add(b.align).saturating_add(64) < self.caps.segment_below
    }

    pub(super) fn misuse(&mut self, op: &Op, call: BadCall, bad: BadPtr) -> Result<Step, Failure> {
        if !self.caps.misuse {
            return Ok(Step::new(Outcome::Skipped));
        }
        let local = Area(UnsafeCell::new([0; 64]));
        let (addr, expected): (usize, &[MisuseKind]) = match bad {
            BadPtr::Freed { slot } => {
                let Some(b) = self.shadow.get(slot).copied() else {
                    return Ok(Step::new(Outcome::Skipped));
                };
                // SAFETY: the block is live.
                unsafe { self.shadow.verify(Owner::Slot(slot), &b)? };
                match self.call(Request::Free {
                    ptr: b.addr as *mut u8,
                }) {
                    Reply::Done => {}
                    r => return Err(unexpected(&Op::Free { slot }, &r)),
                }
                self.shadow.remove(Owner::Slot(slot));
                let kinds: &[MisuseKind] = if self.in_segment(&b) && call == BadCall::Free {
                    &[MisuseKind::DoubleFree]
                } else {
                    &[MisuseKind::DoubleFree, MisuseKind::InvalidPointer]
                };
                (b.addr, kinds)
            }
            BadPtr::Interior { slot, offset } => {
                let Some(b) = self.shadow.get(slot).copied() else {
                    return Ok(Step::new(Outcome::Skipped));
                };
                let off = if b.size > 1 {
                    1 + (offset - 1) % (b.size - 1)
                } else {
                    1
                };
                (b.addr + off, &[MisuseKind::InvalidPointer])
            }
            BadPtr::Foreign(kind) => {
                let addr = match kind {
                    Foreign::Stack => local.0.get() as usize + 16,
                    Foreign::Static => STATIC_AREA.0.get() as usize + 16,
                    Foreign::Global => self.global_area.0.get() as usize + 16,
                    Foreign::Wild => 0x10000,
                };
                (addr, &[MisuseKind::InvalidPointer])
            }
        };
        let ptr = addr as *mut u8;
        let (req, want) = match call {
            BadCall::Free => (Request::Free { ptr }, MisuseCall::Free),
            BadCall::Realloc { size } => (Request::Realloc { ptr, size }, MisuseCall::Realloc),
            BadCall::UsableSize => (Request::UsableSize { ptr }, MisuseCall::UsableSize),
        };
        let r = self.call(req);
        // The stack pointer was only valid while `local` lived; keep it alive past the call.
        let _ = &local;
        match r {
            Reply::Misuse(m) if m.call == want && expected.contains(&m.kind) && m.addr == addr => {
                Ok(Step::new(Outcome::Misuse))
            }
            r => Err(Failure::MisuseMissed {
                call: format!("{op} ({:?} {addr:#x})", want),
                expected: expected.to_vec(),
                reply: reply_text(&r),
            }),
        }
    }

    pub(super) fn overwrite(&mut self, slot: usize, len: usize) -> Result<Step, Failure> {
        let Some(b) = self.shadow.get(slot).copied() else {
            return Ok(Step::new(Outcome::Skipped));
        };
        if !self.caps.misuse || !self.in_segment(&b) {
            return Ok(Step::new(Outcome::Skipped));
        }
        let usable = match self.call(Request::UsableSize {
            ptr: b.addr as *mut u8,
        }) {
            Reply::Size(u) if u >= b.size => u,
            _ => return Ok(Step::new(Outcome::Skipped)),
        };
        let at = (b.addr + usable) as *mut u8;
        for i in 0..len.min(crate::op::MAX_OVERWRITE) {
            // SAFETY: this is the deliberate overflow of the misuse dialect: at most one tag's
            // worth of bytes past the usable end of a segment block, which lands on the next
            // block's tag inside the heap's own (simulated) memory, never outside it. Done out of
            // AddressSanitizer's sight (the tag is poisoned): tagalloc must be the one to report.
            unsafe { tagalloc::track::tamper(at.add(i), 0xff) };
        }
        self.corrupted = true;
        if self.caps.walker && self.backend.check().is_ok() {
            return Err(Failure::MisuseMissed {
                call: format!("heap walker after overwrite {slot} {len}"),
                expected: vec![MisuseKind::CorruptTag],
                reply: "no corruption found".into(),
            });
        }
        match self.call(Request::Free {
            ptr: b.addr as *mut u8,
        }) {
            Reply::Misuse(m) if m.call == MisuseCall::Free && m.kind == MisuseKind::CorruptTag => {
                Ok(Step::new(Outcome::Misuse))
            }
            r => Err(Failure::MisuseMissed {
                call: format!("free(slot {slot}) after overwrite {slot} {len}"),
                expected: vec![MisuseKind::CorruptTag],
                reply: reply_text(&r),
            }),
        }
    }

    /// [`Op::WriteFreed`]: frees the slot's block, writes into it, then allocates blocks of its
    /// size up to four times. Each reply must be a block that overlaps no live one, or a report of
    /// the damage by `malloc`; with no report, the heap walker (when the backend has one) may
    /// report it instead, or find nothing wrong (the write hit memory nothing reads: a block that
    /// merged into a free neighbour). The trace ends here either way.
    pub(super) fn write_freed(&mut self, slot: usize, word: usize) -> Result<Step, Failure> {
        let Some(b) = self.shadow.get(slot).copied() else {
            return Ok(Step::new(Outcome::Skipped));
        };
        if !self.caps.misuse || !self.in_segment(&b) {
            return Ok(Step::new(Outcome::Skipped));
        }
        // SAFETY: the block is live.
        unsafe { self.shadow.verify(Owner::Slot(slot), &b)? };
        let op = Op::Free { slot };
        match self.call(Request::Free {
            ptr: b.addr as *mut u8,
        }) {
            Reply::Done => {}
            r => return Err(unexpected(&op, &r)),
        }
        self.shadow.remove(Owner::Slot(slot));
        let (from, len) = match word % FREED_WORDS {
            0 => (b.addr - 8, 8),
            1 => (b.addr, 8),
            2 => (b.addr + 8, 8),
            _ => (b.addr, b.size.clamp(16, 64)),
        };
        for i in 0..len {
            let at = (from + i) as *mut u8;
            // SAFETY: the deliberate use after free of the misuse dialect: the freed segment block's
            // header word, or at most 64 bytes of its payload (a segment block has at least 24
            // usable bytes, and at least its size), all inside the heap's own (simulated) memory.
            // Out of AddressSanitizer's sight, as in `overwrite`.
            unsafe { tagalloc::track::tamper(at, 0xa5) };
        }
        self.corrupted = true;
        let what = format!("malloc({}) after write_freed {slot} {word}", b.size);
        let expected = vec![MisuseKind::CorruptFree, MisuseKind::CorruptTag];
        for _ in 0..4 {
            match self.call(Request::Malloc { size: b.size }) {
                Reply::Misuse(m) if m.call == MisuseCall::Malloc && expected.contains(&m.kind) => {
                    return Ok(Step::new(Outcome::Misuse));
                }
                Reply::Ptr(p) => {
                    // Its extent is what was asked: the freed block's usable size says nothing
                    // of this one (it may come from another class, the damaged block untouched).
                    let got = Block {
                        addr: p.as_ptr() as usize,
                        usable: None,
                        ..b
                    };
                    if let Some((_, live)) = self.shadow.overlapping(&got) {
                        return Err(Failure::MisuseMissed {
                            call: what,
                            expected,
                            reply: format!(
                                "{:#x}, overlapping the live block at {:#x}",
                                got.addr, live.addr
                            ),
                        });
                    }
                }
                Reply::Null { .. } => {}
                r => {
                    return Err(Failure::MisuseMissed {
                        call: what,
                        expected,
                        reply: reply_text(&r),
                    })
                }
            }
        }
        if self.caps.walker && self.backend.check().is_err() {
            return Ok(Step::new(Outcome::Misuse));
        }
        Ok(Step::new(Outcome::Done))
    }
}
