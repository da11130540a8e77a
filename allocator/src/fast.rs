//! Fast lists: small freed blocks that stay allocated to their neighbours until the heap needs
//! them merged (glibc's fastbin idea, over the thread caches' size classes).
//!
//! A `free` of a block of at most [`FAST_MAX`] bytes (with [`Config::fast_lists`] on) neither
//! coalesces nor touches a neighbour: the block keeps its `USED` header and goes on the list of its
//! size, linked through its first payload word (protected, [`crate::link`]) and marked in its
//! second, as a cached block is (`crate::cache`: a second `free` of it is a double free). A `malloc`
//! of that exact size pops it back without a split. The statistics count a fast block as freed.
//!
//! The lists are *consolidated* — every block freed for real, coalescing with its neighbours —
//! before the heap would grow (so fast blocks never cost the program fresh memory) and when a free
//! leaves a free block of at least [`CONSOLIDATE_AT`] bytes at the end of the top segment (so the
//! top can be trimmed again). A large free area inside the heap does not consolidate (glibc's rule
//! does): the growth check already keeps fast blocks from costing memory, and thread-cache flushes
//! keep hundreds of blocks on the lists, which a consolidation at every such free merged only for
//! refills to split them again (callgrind, the synthetic-mixed replay: 28% of the allocator's
//! instructions).
//!
//! Every block is checked before the heap relies on it: its header (an allocated block of its
//! list's size), its mark and its link (16-aligned inside the heap's memory, or null) are verified
//! when it is popped or consolidated, so a program that writes into a freed block is reported
//! ([`MisuseKind::CorruptFree`](crate::MisuseKind::CorruptFree)), never followed.
//!
//! [`Config::fast_lists`]: crate::Config::fast_lists

use crate::block::{header, of_payload, payload};
use crate::cache::{is_marked, mark, Chain, SMALL_CLASSES as CLASSES};
use crate::error::{Call, Error, Misuse, MisuseKind};
use crate::heap::Heap;
use crate::link;
use crate::source::Source;
use crate::tag::{Tag, MAPPED, PREV_USED, USED};
use crate::walk::Corruption;
use core::ptr;

/// The largest block kept on a fast list: the largest thread-cache class.
pub(crate) const FAST_MAX: usize = 1040;
/// A free that leaves a free block this large at the end of the top segment consolidates the fast
/// lists (glibc's `FASTBIN_CONSOLIDATION_THRESHOLD`, there for a free block anywhere).
pub(crate) const CONSOLIDATE_AT: usize = 64 << 10;

/// The heap's fast lists, one per block size from 32 to [`FAST_MAX`] bytes.
pub(crate) struct FastLists {
    /// Payloads of the first block of each list (null: empty).
    heads: [*mut u8; CLASSES],
    counts: [u32; CLASSES],
    /// Blocks on all lists.
    pub(crate) blocks: usize,
}

impl FastLists {
    /// Empty.
    pub(crate) const fn new() -> FastLists {
        FastLists {
            heads: [ptr::null_mut(); CLASSES],
            counts: [0; CLASSES],
            blocks: 0,
        }
    }
}

/// The list of blocks of `size` bytes (32 to [`FAST_MAX`], a multiple of 16).
#[inline(always)]
fn class(size: usize) -> usize {
    // Clamped so that the compiler knows the index is in bounds (no panic path); a block of
    // another size on the last list would be reported by the walker (invariant 10).
    ((size >> 4) - 2).min(CLASSES - 1)
}

#[cold]
fn corrupt_fast(call: Call, p: *mut u8) -> Error {
    Error::Misuse(Misuse {
        call,
        kind: MisuseKind::CorruptFree,
        addr: p as usize,
    })
}

impl<S: Source> Heap<S> {
    /// Whether a freed block of `size` bytes goes on a fast list.
    #[inline(always)]
    pub(crate) fn fast_takes(&self, size: usize) -> bool {
        self.config.fast_lists && size <= FAST_MAX
    }

    /// Puts allocated block `b` of `size` bytes on its fast list.
    ///
    /// # Safety
    /// `b` must be an allocated block of a segment, of `size <= FAST_MAX` bytes, that nothing uses.
    #[inline]
    pub(crate) unsafe fn fast_push(&mut self, b: *mut u8, size: usize) {
        let c = class(size);
        let p = payload(b);
        // SAFETY: the payload is the caller's to give up, at least 24 bytes (contract).
        unsafe {
            link::store(p, self.fast.heads[c]);
            crate::track::store(p.add(8).cast(), mark(p) as u64);
        }
        self.fast.heads[c] = p;
        self.fast.counts[c] += 1;
        self.fast.blocks += 1;
        self.stats.sub_live(size - 8);
    }

    /// Whether payload `p` (a link met on a fast list) may be followed: null, or 16-aligned with
    /// a block of `size` bytes inside the heap's memory.
    fn fast_link_ok(&self, p: *mut u8, size: usize) -> bool {
        p.is_null() || (p as usize % 16 == 0 && self.owns((p as usize).wrapping_sub(8), size))
    }

    /// The size of fast block `p` of the list of `size` (in the heap's memory), if it has an
    /// allocated block's header of that size or one sliver (16 bytes) more and carries the mark.
    fn fast_intact(&self, p: *mut u8, size: usize) -> Option<usize> {
        // SAFETY: p lies in the heap's memory with its header before it (checked by the caller).
        let t = unsafe { header(of_payload(p)) }?.with(PREV_USED, false);
        // SAFETY: as above; the block holds at least 24 payload bytes.
        let ok = (t == Tag::new(size, USED) || t == Tag::new(size + 16, USED))
            && unsafe { is_marked(p) };
        ok.then_some(t.size())
    }

    /// Pops a block of the list of `size` bytes (it may be a sliver larger), checked, as an
    /// allocated block; `Ok(None)` when the list is empty.
    #[inline]
    pub(crate) fn fast_pop(&mut self, size: usize) -> Result<Option<*mut u8>, Error> {
        let c = class(size);
        let p = self.fast.heads[c];
        if p.is_null() {
            return Ok(None);
        }
        // The head was checked to lie in the heap when it became the head.
        let Some(actual) = self.fast_intact(p, size) else {
            return Err(corrupt_fast(Call::Malloc, p));
        };
        // SAFETY: p is a checked fast block: its first word is its link.
        let next = unsafe { link::load(p) };
        if !self.fast_link_ok(next, size) || (next.is_null() != (self.fast.counts[c] == 1)) {
            return Err(corrupt_fast(Call::Malloc, p));
        }
        self.fast.heads[c] = next;
        self.fast.counts[c] -= 1;
        self.fast.blocks -= 1;
        // SAFETY: p is ours again; its second word is the mark.
        unsafe { crate::track::store(p.add(8).cast(), 0) };
        self.stats.add_live(actual - 8);
        Ok(Some(of_payload(p)))
    }

    /// Frees every fast block for real (coalescing), emptying the lists first so that none of
    /// those frees lands on a list again.
    #[cold]
    pub(crate) fn consolidate(&mut self) -> Result<(), Error> {
        let heads = self.fast.heads;
        let counts = self.fast.counts;
        self.fast = FastLists::new();
        for c in 0..CLASSES {
            let size = (c + 2) * 16;
            let mut p = heads[c];
            for i in 0..counts[c] {
                let Some(actual) = self.fast_intact(p, size) else {
                    return Err(corrupt_fast(Call::Malloc, p));
                };
                // SAFETY: p is a checked fast block: its first word is its link.
                let next = unsafe { link::load(p) };
                let last = i + 1 == counts[c];
                if !self.fast_link_ok(next, size) || next.is_null() != last {
                    return Err(corrupt_fast(Call::Malloc, p));
                }
                let b = of_payload(p);
                // SAFETY: p is a fast block: allocated, unused, with its mark in its second word.
                unsafe {
                    crate::track::store(p.add(8).cast(), 0);
                    self.stats.add_live(actual - 8);
                    let t = header(b).ok_or_else(|| corrupt_fast(Call::Malloc, p))?;
                    self.coalesce_block(b, t, Call::Malloc)?;
                }
                p = next;
            }
        }
        Ok(())
    }

    /// Splices `chain`, a thread cache's batch of `class` (marked, linked, each block of the
    /// class's size or a sliver more), onto its fast list whole, after checking every block and
    /// link; `Err` names the block that failed (nothing is changed then).
    pub(crate) fn fast_attach(&mut self, class: usize, chain: Chain) -> Result<(), *mut u8> {
        let size = (class + 2) * 16;
        let mut p = chain.first;
        let mut bytes = 0;
        if !self.fast_link_ok(p, size) || p.is_null() {
            return Err(p);
        }
        for i in 0..chain.len {
            bytes += self.fast_intact(p, size).ok_or(p)? - 8;
            if i + 1 < chain.len {
                // SAFETY: p is a checked marked block: its first word is its link.
                let next = unsafe { link::load(p) };
                if next.is_null() || !self.fast_link_ok(next, size) {
                    return Err(p);
                }
                p = next;
            }
        }
        if p != chain.last {
            return Err(p);
        }
        // SAFETY: the last block is a checked block of the chain: its first word is its link.
        unsafe { link::store(chain.last, self.fast.heads[class]) };
        self.fast.heads[class] = chain.first;
        self.fast.counts[class] += chain.len;
        self.fast.blocks += chain.len as usize;
        self.stats.sub_live_many(chain.len as usize, bytes);
        Ok(())
    }

    /// Detaches up to `n` blocks of the list of `class` as a chain for a thread cache (they stay
    /// marked), after checking each; `Ok(None)` when the list is empty.
    pub(crate) fn fast_detach(&mut self, class: usize, n: usize) -> Result<Option<Chain>, Error> {
        let size = (class + 2) * 16;
        let first = self.fast.heads[class];
        let n = n.min(self.fast.counts[class] as usize);
        if first.is_null() || n == 0 {
            return Ok(None);
        }
        let (mut p, mut last, mut bytes) = (first, first, 0);
        for _ in 0..n {
            // p was checked to lie in the heap (the head, or a link checked below).
            bytes += self
                .fast_intact(p, size)
                .ok_or_else(|| corrupt_fast(Call::Malloc, p))?
                - 8;
            last = p;
            // SAFETY: p is a checked fast block: its first word is its link.
            p = unsafe { link::load(p) };
            if !self.fast_link_ok(p, size) {
                return Err(corrupt_fast(Call::Malloc, last));
            }
        }
        let left = self.fast.counts[class] - n as u32;
        if p.is_null() != (left == 0) {
            return Err(corrupt_fast(Call::Malloc, last));
        }
        self.fast.heads[class] = p;
        self.fast.counts[class] = left;
        self.fast.blocks -= n;
        self.stats.add_live_many(n, bytes);
        Ok(Some(Chain {
            first,
            last,
            len: n as u32,
        }))
    }

    /// Invariant 12 over the fast lists; returns the blocks and payload bytes they hold (which
    /// the statistics count as freed).
    pub(crate) fn check_fast(&self) -> Result<(usize, usize), Corruption> {
        let broken = |addr: *mut u8, what| {
            Err(Corruption {
                invariant: 12,
                addr: addr as usize,
                what,
            })
        };
        let (mut blocks, mut bytes) = (0, 0);
        for c in 0..CLASSES {
            let size = (c + 2) * 16;
            let mut p = self.fast.heads[c];
            for _ in 0..self.fast.counts[c] {
                if p.is_null() || !self.fast_link_ok(p, size) {
                    return broken(p, "a fast list leads outside the heap");
                }
                // SAFETY: p lies in the heap's memory (checked above).
                let t = unsafe { header(of_payload(p)) };
                let Some(t) = t.filter(|t| {
                    t.has(USED) && !t.has(MAPPED) && (t.size() == size || t.size() == size + 16)
                }) else {
                    return broken(
                        p,
                        "a fast block is not an allocated block of its list's size",
                    );
                };
                // SAFETY: as above.
                if !unsafe { is_marked(p) } {
                    return broken(p, "a fast block lost its mark");
                }
                blocks += 1;
                bytes += t.size() - 8;
                // SAFETY: a checked fast block: its first word is its link.
                p = unsafe { link::load(p) };
            }
            if !p.is_null() {
                return broken(p, "a fast list is longer than its count");
            }
        }
        if blocks != self.fast.blocks {
            return broken(
                ptr::null_mut(),
                "the fast lists' total differs from their counts",
            );
        }
        if !self.config.fast_lists && blocks != 0 {
            return broken(ptr::null_mut(), "fast blocks with fast lists off");
        }
        Ok((blocks, bytes))
    }
}
