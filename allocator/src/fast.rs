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
//! A consolidation of many blocks (the heap holding at most [`WALK_SHARE`] allocated blocks per
//! fast block) tags them all pending, then walks the segments in address order and merges each
//! run of pending and free blocks into one free block; a few are freed one by one instead.
//!
//! Every block is checked before the heap relies on it: its header (an allocated block of its
//! list's size), its mark and its link (16-aligned inside the heap's memory, or null) are verified
//! when it is popped or consolidated, so a program that writes into a freed block is reported
//! ([`MisuseKind::CorruptFree`](crate::MisuseKind::CorruptFree)), never followed.
//!
//! [`Config::fast_lists`]: crate::Config::fast_lists

use crate::block::{header, of_payload, payload, set_header};
use crate::cache::{is_marked, mark, Chain, SMALL_CLASSES as CLASSES};
use crate::error::{Call, Error, Misuse, MisuseKind};
use crate::heap::{corrupt, Heap, SEG_HEAD};
use crate::link;
use crate::source::Source;
use crate::tag::{Tag, FENCE, MAPPED, MIN_BLOCK, PREV_USED, USED};
use crate::walk::Corruption;
use core::ptr;

/// The largest block kept on a fast list: the largest thread-cache class.
pub(crate) const FAST_MAX: usize = 1040;
/// A free that leaves a free block this large at the end of the top segment consolidates the fast
/// lists (glibc's `FASTBIN_CONSOLIDATION_THRESHOLD`, there for a free block anywhere).
pub(crate) const CONSOLIDATE_AT: usize = 64 << 10;
/// A consolidation walks the segments in address order when the heap holds at most this many
/// allocated blocks per fast block (the walk reads every block up to the highest fast block; a
/// block-by-block consolidation costs some twenty times a walk's step per fast block).
const WALK_SHARE: usize = 8;
/// The header flags of a fast block during [`Heap::consolidate_in_order`]: a fencepost's flags
/// on a block with a size, which no block has otherwise (the heap walker reports it, invariant 2).
const PENDING: u64 = USED | FENCE;

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
        self.fast_tag(p, size).map(Tag::size)
    }

    /// As [`fast_intact`](Self::fast_intact), returning the block's whole tag.
    #[inline(always)]
    fn fast_tag(&self, p: *mut u8, size: usize) -> Option<Tag> {
        // SAFETY: p lies in the heap's memory with its header before it (checked by the caller).
        let t = unsafe { header(of_payload(p)) }?;
        let u = t.with(PREV_USED, false);
        // SAFETY: as above; the block holds at least 24 payload bytes.
        let ok = (u == Tag::new(size, USED) || u == Tag::new(size + 16, USED))
            && unsafe { is_marked(p) };
        ok.then_some(t)
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

    /// Frees every fast block for real, coalescing: in address order
    /// ([`consolidate_in_order`](Self::consolidate_in_order)) when the fast lists hold a good
    /// share of the heap's blocks, else block by block
    /// ([`consolidate_each`](Self::consolidate_each)), which costs nothing for the blocks that
    /// are not on a list.
    #[cold]
    pub(crate) fn consolidate(&mut self) -> Result<(), Error> {
        if self.stats.live_blocks <= WALK_SHARE * self.fast.blocks {
            self.consolidate_in_order()
        } else {
            self.consolidate_each()
        }
    }

    /// Frees every fast block for real in two passes. The first drains the lists
    /// ([`drain_fast`](Self::drain_fast)) and rewrites each block's header as [`PENDING`]. The second walks the segments that hold them in address order, up to
    /// the highest one, and merges each run of pending blocks, with the free blocks around it,
    /// into one free block: one bin insertion per run instead of an unlink and an insertion per
    /// block, and memory read in order instead of the lists' scattered order (callgrind, the
    /// synthetic-mixed replay: 83.3M instructions for 259k blocks block by block).
    fn consolidate_in_order(&mut self) -> Result<(), Error> {
        let total = self.fast.blocks;
        let (mut lo, mut hi) = (usize::MAX, 0);
        self.drain_fast(|_, b, t| {
            // SAFETY: b is a checked fast block, the heap's again: its header is the heap's
            // to rewrite, its payload unused.
            unsafe {
                set_header(
                    b,
                    Tag::new(t.size(), PENDING | (t.has(PREV_USED) as u64 * PREV_USED)),
                )
            };
            lo = lo.min(b as usize);
            hi = hi.max(b as usize);
            Ok(())
        })?;
        let mut found = 0;
        let mut seg = self.segments;
        while !seg.is_null() {
            // SAFETY: seg is a live segment record.
            let (end, next) = unsafe { ((*seg).end, (*seg).next) };
            if (seg as usize) < hi && end > lo {
                // The walk starts at the lowest pending block when it lies in this segment (or
                // at the free block before it): what lies below holds none.
                let from = if (seg as usize) < lo && lo < end {
                    let b = lo as *mut u8;
                    // SAFETY: lo is a pending block, its header checked and written above; a
                    // clear PREV_USED bit means a free block ends just before it.
                    unsafe {
                        let t = header(b).ok_or_else(|| corrupt(Call::Malloc, b))?;
                        if t.has(PREV_USED) {
                            lo
                        } else {
                            lo - self.free_before(b, Call::Malloc)?.size()
                        }
                    }
                } else {
                    seg as usize + SEG_HEAD
                };
                // SAFETY: as above; `from` is a block of the segment.
                found += unsafe { self.merge_pending(from, end, hi)? };
            }
            seg = next;
        }
        // A pending block the walk did not meet lies outside every segment: a forged list.
        if found != total {
            return Err(corrupt_fast(Call::Malloc, lo as *mut u8));
        }
        Ok(())
    }

    /// Merges each run of [`PENDING`] blocks of the segment ending at `end`, with the free
    /// blocks before, between and after them, into one free block in its bin, walking from its
    /// block `from` up to the first allocated block past `hi`; returns how many pending
    /// blocks it met. Every header is verified, and every free block unlinked with the checks of
    /// [`coalesce_block`](Self::coalesce_block).
    ///
    /// # Safety
    /// `from` must be a block of a live segment ending at `end`, not inside a run of pending
    /// blocks (the segment's first block, a pending block or a free one after an allocated one),
    /// inside a consolidation: the pending blocks are the fast blocks taken off the lists.
    unsafe fn merge_pending(&mut self, from: usize, end: usize, hi: usize) -> Result<usize, Error> {
        let epi = end - 8;
        let mut b = from;
        // The open run: its start (0: none), size, PREV_USED bit, and whether it is so far one
        // free block still in its bin (left there unless a pending block follows it).
        let (mut run, mut run_size, mut run_pu, mut lone) = (0usize, 0usize, false, false);
        let mut found = 0;
        loop {
            let bp = b as *mut u8;
            // SAFETY: b is the segment's first block or lies past a checked block, at or before
            // the epilogue.
            let t = unsafe { header(bp) }.ok_or_else(|| corrupt(Call::Malloc, bp))?;
            let size = t.size();
            let fence = b == epi;
            if fence {
                if size != 0 || !t.has(USED | FENCE) {
                    return Err(corrupt(Call::Malloc, bp));
                }
            } else if size < MIN_BLOCK || size % 16 != 0 || b + size > epi || t.has(MAPPED) {
                return Err(corrupt(Call::Malloc, bp));
            }
            let pending = !fence && t.has(PENDING);
            let free = !fence && !t.has(USED);
            if free && t.has(FENCE) {
                return Err(corrupt(Call::Malloc, bp));
            }
            if pending || free {
                if pending {
                    found += 1;
                }
                if run == 0 {
                    (run, run_size, run_pu, lone) = (b, size, t.has(PREV_USED), free);
                } else {
                    if free && lone {
                        // Two free blocks side by side.
                        return Err(corrupt(Call::Malloc, bp));
                    }
                    if lone {
                        self.unlink(run as *mut u8, run_size, Call::Malloc)?;
                        lone = false;
                    }
                    if free {
                        self.unlink(bp, size, Call::Malloc)?;
                    }
                    run_size += size;
                }
            } else {
                if run != 0 && !lone {
                    // SAFETY: the run's blocks are free or pending, none in a bin now: they are
                    // the heap's to rewrite as one free block; bp is the block after it.
                    unsafe {
                        set_header(bp, t.with(PREV_USED, false));
                        self.settle(run as *mut u8, run_size, run_pu);
                    }
                }
                run = 0;
                if fence || b > hi {
                    return Ok(found);
                }
            }
            b += size;
        }
    }

    /// Frees every fast block for real (coalescing) one by one, emptying the lists first so that
    /// none of those frees lands on a list again.
    fn consolidate_each(&mut self) -> Result<(), Error> {
        self.drain_fast(|h, b, t| {
            h.stats.add_live(t.size() - 8);
            // SAFETY: b is a checked fast block, allocated and unused.
            unsafe { h.coalesce_block(b, t, Call::Malloc) }.map(|_| ())
        })
    }

    /// Empties the fast lists first (so that no free made by `each` lands on one again), then
    /// walks them: checks each block and its link as [`fast_pop`](Self::fast_pop) does, clears
    /// its mark, and hands `each` the block and its tag, its link read already.
    fn drain_fast(
        &mut self,
        mut each: impl FnMut(&mut Self, *mut u8, Tag) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let heads = self.fast.heads;
        let counts = self.fast.counts;
        self.fast = FastLists::new();
        for c in 0..CLASSES {
            let size = (c + 2) * 16;
            let mut p = heads[c];
            for i in 0..counts[c] {
                let Some(t) = self.fast_tag(p, size) else {
                    return Err(corrupt_fast(Call::Malloc, p));
                };
                // SAFETY: p is a checked fast block: its first word is its link.
                let next = unsafe { link::load(p) };
                if !self.fast_link_ok(next, size) || next.is_null() != (i + 1 == counts[c]) {
                    return Err(corrupt_fast(Call::Malloc, p));
                }
                // SAFETY: p is a fast block: allocated, unused, its mark in its second word.
                unsafe { crate::track::store(p.add(8).cast(), 0) };
                each(self, of_payload(p), t)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::heap::Config;
    use crate::source::Sim;

    /// A heap that never trims, so both consolidations leave the same blocks.
    fn heap() -> Heap<Sim> {
        Heap::with_config(
            Sim::new(32 << 20),
            Config {
                trim_threshold: 1 << 30,
                dynamic_threshold: false,
                ..Config::DEFAULT
            },
        )
    }

    /// The blocks of the heap's only segment: offset from its start, size, allocated.
    fn layout(h: &Heap<Sim>) -> Vec<(usize, usize, bool)> {
        let seg = h.segments;
        // SAFETY: a live segment record; the walk follows checked headers up to its epilogue.
        let epi = unsafe { (*seg).end } - 8;
        let mut b = seg as usize + SEG_HEAD;
        let mut out = Vec::new();
        while b < epi {
            // SAFETY: as above.
            let t = unsafe { header(b as *mut u8) }.unwrap();
            out.push((b - seg as usize, t.size(), t.has(USED)));
            b += t.size();
        }
        out
    }

    /// Small blocks of many sizes, some medium ones between them, most of both freed: runs of
    /// fast blocks next to free blocks on both sides, and live blocks between the runs.
    fn build(h: &mut Heap<Sim>) -> Vec<*mut u8> {
        let sizes = [24, 100, 40, 1000, 2000, 200, 24, 520, 3000, 64];
        let blocks: Vec<_> = (0..600)
            .map(|i| h.malloc(sizes[i % sizes.len()]).unwrap().as_ptr())
            .collect();
        let _guard = h.malloc(16).unwrap();
        let mut kept = Vec::new();
        for (i, &p) in blocks.iter().enumerate() {
            if i % 7 == 3 {
                kept.push(p);
            } else {
                // SAFETY: a live block of this heap, freed once.
                unsafe { h.free(p) }.unwrap();
            }
        }
        kept
    }

    #[test]
    fn in_order_consolidation_leaves_the_blocks_block_by_block_does() {
        let (mut a, mut b) = (heap(), heap());
        build(&mut a);
        build(&mut b);
        assert!(a.fast.blocks > 300, "{}", a.fast.blocks);
        let before = layout(&a);
        assert_eq!(before, layout(&b));
        a.consolidate_in_order().unwrap();
        b.consolidate_each().unwrap();
        assert_eq!(a.fast.blocks, 0);
        assert_eq!(a.check(), Ok(()));
        assert_eq!(b.check(), Ok(()));
        let after = layout(&a);
        assert_eq!(after, layout(&b));
        assert!(
            after.len() < before.len() / 3,
            "runs merged: {}",
            after.len()
        );
        assert_eq!(a.stats(), b.stats());
    }

    #[test]
    fn in_order_consolidation_merges_the_lowest_fast_block_with_the_free_block_before_it() {
        let mut h = heap();
        let _first = h.malloc(100).unwrap();
        let a = h.malloc(2000).unwrap().as_ptr();
        let p = h.malloc(100).unwrap().as_ptr();
        let _guard = h.malloc(100).unwrap();
        for x in [a, p] {
            // SAFETY: a live block of this heap, freed once: a into a bin, p onto a fast list.
            unsafe { h.free(x) }.unwrap();
        }
        assert_eq!(h.fast.blocks, 1);
        h.consolidate_in_order().unwrap();
        assert_eq!(h.check(), Ok(()));
        let b = of_payload(a);
        // SAFETY: b is the header of a's old block, now the merged free block's.
        let t = unsafe { header(b) }.unwrap();
        assert!(!t.has(USED));
        assert_eq!(b as usize + t.size(), of_payload(p) as usize + 112);
    }

    #[test]
    fn in_order_consolidation_reports_a_fast_block_written_after_free() {
        let mut h = heap();
        let p = h.malloc(100).unwrap().as_ptr();
        let _guard = h.malloc(100).unwrap();
        // SAFETY: a live block of this heap, freed once.
        unsafe { h.free(p) }.unwrap();
        // SAFETY: p's payload is the heap's memory; the write after free is the point.
        unsafe { p.add(8).cast::<u64>().write(7) };
        assert_eq!(h.consolidate_in_order(), Err(corrupt_fast(Call::Malloc, p)));
    }

    #[test]
    fn in_order_consolidation_reports_a_header_overwritten_between_fast_blocks() {
        let mut h = heap();
        let p = h.malloc(100).unwrap().as_ptr();
        let live = h.malloc(100).unwrap().as_ptr();
        let q = h.malloc(100).unwrap().as_ptr();
        let _guard = h.malloc(100).unwrap();
        for x in [p, q] {
            // SAFETY: a live block of this heap, freed once.
            unsafe { h.free(x) }.unwrap();
        }
        let b = of_payload(live);
        // SAFETY: b is live's header, in the heap's memory; the overflow into it is the point.
        unsafe { b.cast::<u64>().write(0x1234) };
        assert_eq!(h.consolidate_in_order(), Err(corrupt(Call::Malloc, b)));
    }
}
