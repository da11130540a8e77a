//! The heap: segments of boundary-tagged blocks, free lists, and large chunks, over one [`Source`].
//!
//! # Layout
//! Memory from the source's break is organised in *segments*. A segment starts with a small
//! `Segment` record, then blocks back to back, then an *epilogue*: a fencepost tag of size 0 with
//! `USED | FENCE`, so no block ever coalesces past the end. The first block of a segment has
//! `PREV_USED` set, so none coalesces past the start. Growing the break extends the last segment
//! when the new memory is contiguous with it (the old epilogue becomes part of a block) and starts a
//! new segment otherwise (someone else moved the break). When the break cannot grow, a segment is
//! mapped instead.
//!
//! # Large chunks
//! A request at or above [`Config::mmap_threshold`] is a *large chunk*: its own mapping `M` of
//! `len` bytes:
//!
//! ```text
//!  M                        P - 16      P - 8     P (payload, aligned)        M + len
//!  |  (alignment slack)     |  lead     | header  | ...usable...               |
//! ```
//!
//! `lead` is the distance from `M` to the header, so `free` finds the mapping again; the header's
//! size is the usable bytes, `len - lead - 8`, and it has `USED | MAPPED` set. Every live chunk's
//! payload address is in an [`AddrMap`] kept in memory mapped from the heap's source, so `free` of a
//! pointer outside every segment is judged without touching memory that may not be mapped.
//!
//! # Invariants
//! The heap walker ([`Heap::check`]) checks each by its number:
//!
//! 1. Every header, every free block's footer and every epilogue carries a valid check.
//! 2. Every block is at least `MIN_BLOCK` bytes, a multiple of 16, starts 8 modulo 16 (so payloads
//!    are 16-aligned) and lies inside its segment; the blocks tile the segment exactly up to its
//!    epilogue.
//! 3. No two free blocks are adjacent (free coalesces with both neighbours).
//! 4. Each block's `PREV_USED` bit tells truly whether the block before it is allocated; the first
//!    block of a segment has it set.
//! 5. Every free block's footer equals its header.
//! 6. Every free block is linked, with consistent `next`/`prev` links, in the bin of its size; every
//!    bin holds exactly its free blocks; the bitmap marks exactly the non-empty bins.
//! 7. Every large chunk in the registry has a valid `USED | MAPPED` header and a page-aligned mapping.
//! 8. The statistics agree with the heap: live blocks and bytes, segments, large chunks, and bytes
//!    held from the break.
//! 9. Memory past the fresh frontier of the newest segment reads as zero (what lets `calloc` skip
//!    clearing memory fresh from the OS).
//! 10. Every block in a thread cache or the transfer cache of a [`LockedHeap`](crate::LockedHeap)
//!     is an allocated block of a segment (a break segment, or a mapped one when the break cannot
//!     grow), of its list's size class (or up to one sliver
//!     larger, as a refill may take it), carrying the cached mark; every list holds exactly its
//!     count of blocks, within its limit, which has grown no further than its bound (checked by
//!     [`LockedHeap::check`](crate::LockedHeap::check), for the calling thread's cache).
//! 11. Every free-list link is stored protected with its own address (`crate::link`); revealed,
//!     it is null or points, 8 modulo 16 and inside the heap's memory, at a free block of the same
//!     bin (what `malloc` and `free` check before following one).
//! 12. Every block on a fast list (`crate::fast`) is an allocated block of a segment of its
//!     list's size (or one 16-byte sliver more, as in invariant 10), carrying the cached mark, linked through a protected link that reveals
//!     null or a block in the heap's memory; each list holds exactly its count, their total is
//!     the recorded one, and the statistics count these blocks as freed (none with
//!     [`Config::fast_lists`] off).

use crate::addrmap::AddrMap;
use crate::binning::{self, bin_of, is_exact, Bins};
use crate::block::{self, footer_before, header, payload, set_footer, set_header};
use crate::error::{Call, Error, Misuse, MisuseKind};
use crate::family::kind_of;
use crate::fast::{FastLists, CONSOLIDATE_AT};
use crate::os::PAGE;
use crate::source::{align_up, Source};
use crate::stats::Stats;
use crate::tag::{block_size, Tag, ALIGN, FENCE, MAPPED, MAX_SIZE, MIN_BLOCK, PREV_USED, USED};
use crate::track;
use core::cell::Cell;
use core::ptr;

/// Tunables, glibc's defaults in [`Config::DEFAULT`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Requests of at least this many bytes are mapped on their own.
    pub mmap_threshold: usize,
    /// Free space at the end of the last segment beyond this is given back to the break.
    pub trim_threshold: usize,
    /// Extra bytes asked for whenever the break grows, and kept when trimming.
    pub top_pad: usize,
    /// glibc's dynamic threshold: freeing a large chunk bigger than the mmap threshold (up to
    /// [`MMAP_THRESHOLD_MAX`]) raises the threshold to its size and the trim threshold to twice
    /// that, so a program that keeps allocating blocks of that size gets them from the heap instead
    /// of paying two system calls and fresh pages for each. Likewise, when the break must grow
    /// again right after a trim (a program whose heap swings up and down by more than the trim
    /// threshold, round after round), the trim threshold doubles (up to twice
    /// [`MMAP_THRESHOLD_MAX`]), so the swing stops costing a `brk` and fresh pages each time.
    pub dynamic_threshold: bool,
    /// How many frees in a row must leave the top above the trim threshold, and no smaller than
    /// the free before, before it is trimmed: a program that frees the top and soon allocates it
    /// again (a common rhythm) then keeps its pages instead of giving them back and faulting them
    /// in again. 0 trims at once.
    pub trim_delay: u32,
    /// Blocks each thread cache keeps per size class to start with, below the built-in table's
    /// limits (`u32::MAX`: the table alone; at least 1); a class that keeps taking the lock grows
    /// to four times that (twice for a medium class), within the built-in bound. Read by
    /// [`LockedHeap`](crate::LockedHeap) when it takes the thread caches; the heap itself has no
    /// caches.
    pub cache_limit: u32,
    /// Whether freed blocks of up to 1040 bytes go on the fast lists (`crate::fast`): kept
    /// allocated to their neighbours, reused by the next request of their exact size, and
    /// coalesced in bulk only when the heap would grow or a large free area forms.
    pub fast_lists: bool,
}

/// The largest mmap threshold the dynamic adjustment reaches: 32 MiB, as glibc on 64-bit.
pub const MMAP_THRESHOLD_MAX: usize = 32 << 20;

impl Config {
    /// 128 KiB for each threshold and the pad, dynamic adjustment on: as glibc.
    pub const DEFAULT: Config = Config {
        mmap_threshold: 128 << 10,
        trim_threshold: 128 << 10,
        top_pad: 128 << 10,
        dynamic_threshold: true,
        trim_delay: 16,
        cache_limit: u32::MAX,
        fast_lists: true,
    };
}

impl Default for Config {
    fn default() -> Self {
        Config::DEFAULT
    }
}

/// The record at the start of every segment.
#[repr(C)]
pub(crate) struct Segment {
    /// The next older segment, or null.
    pub next: *mut Segment,
    /// One past the segment's last byte (its epilogue ends there).
    pub end: usize,
    /// Whether the segment was mapped (a fallback when the break could not grow).
    pub mapped: bool,
}

/// Bytes from a segment's start to its first block's header (keeps payloads 16-aligned).
pub(crate) const SEG_HEAD: usize = 40;
/// The smallest useful segment: record, one minimum block, epilogue.
const SEG_MIN: usize = SEG_HEAD + MIN_BLOCK + 8;

/// The largest request glibc accepts.
pub(crate) const PTRDIFF_MAX: usize = isize::MAX as usize;

/// A pointer handed to `free`, `realloc` or `malloc_usable_size`, found to be one of ours.
pub(crate) enum Found {
    /// A block in a segment.
    Block(*mut u8, Tag),
    /// A large chunk: its header and tag (whose size is the usable bytes after the header).
    Chunk(*mut u8, Tag),
}

impl Found {
    /// The bytes the caller may use.
    pub(crate) fn usable(&self) -> usize {
        match *self {
            Found::Block(_, t) => t.size() - 8,
            Found::Chunk(_, t) => t.size(),
        }
    }
}

/// A boundary-tag heap over a memory source.
///
/// All methods take `&mut self`: a heap is single-threaded; [`TagAlloc`](crate::TagAlloc) and the
/// preload library wrap one in a lock.
pub struct Heap<S: Source> {
    pub(crate) source: S,
    pub(crate) config: Config,
    pub(crate) bins: Bins,
    pub(crate) segments: *mut Segment,
    /// The break segment the break was last left at: the one growth may extend and trim shrinks.
    pub(crate) top: *mut Segment,
    /// The newest segment, whose memory past `fresh + 32` (but its last 16 bytes) reads as zero.
    pub(crate) fresh_seg: *mut Segment,
    pub(crate) fresh: usize,
    /// The live large chunks, by payload address.
    pub(crate) large: AddrMap,
    pub(crate) stats: Stats,
    /// The lowest start of a break segment (0 before the first).
    pub(crate) brk_lo: usize,
    /// Frees in a row that left the top trimmable and no smaller (see [`Config::trim_delay`]),
    /// and the top's size after the last of them.
    pub(crate) trim_ticks: u32,
    pub(crate) trim_last: usize,
    /// Whether the last change of the break was a trim (see [`Config::dynamic_threshold`]).
    pub(crate) trimmed: bool,
    /// The payloads of the last [`UNMAPPED`] large chunks freed, so a second `free` of one is
    /// named a double free rather than an invalid pointer (its memory is gone; this is all that
    /// is left of it). A slot is overwritten in turn.
    pub(crate) unmapped: [usize; UNMAPPED],
    pub(crate) unmapped_next: usize,
    /// The addresses `[lo, hi)` the last trims gave back to the break (successive trims of the
    /// top join up): a block freed there went with them, so a second `free` of a pointer into
    /// that range is named a double free, not an invalid pointer, as for [`Heap::unmapped`].
    pub(crate) released: (usize, usize),
    /// Small freed blocks awaiting reuse or consolidation (`crate::fast`).
    pub(crate) fast: FastLists,
    /// Gives blocks held outside the heap back to it before the heap grows for a large request
    /// ([`RECLAIM_AT`] or more) while a quarter of it is free: the calling thread's cache, set by
    /// [`LockedHeap`](crate::LockedHeap) for one call and taken by the first such growth. Returns
    /// whether it gave any back. Cached blocks stay allocated to the heap, so each one can split
    /// a free area that a later large request needed whole; the heap then grew while its free
    /// memory, cached blocks included, would have served the request (the replayed threads
    /// trace: 36.5 MB of break for 19.4 MB live at most; with the caches off, 28.9 MB). The hook
    /// is an `unsafe fn`, whose contract the setter keeps.
    pub(crate) reclaim: Option<Reclaim<S>>,
    /// The segment the last link checked outside the break range lay in (`Heap::owns`): links
    /// mostly lead into the same few segments, so the next check usually looks at it alone.
    pub(crate) owns_hit: Cell<*mut Segment>,
}

/// The smallest block whose growth of the heap [`Heap::reclaim`] is asked to spare.
pub(crate) const RECLAIM_AT: usize = 64 << 10;

/// A hook that gives blocks held outside the heap back to it ([`Heap::reclaim`]).
pub(crate) type Reclaim<S> = unsafe fn(&mut Heap<S>) -> Result<bool, Error>;

/// How many freed large chunks the heap remembers.
pub(crate) const UNMAPPED: usize = 32;

// SAFETY: the heap owns all memory its pointers refer to; moving it to another thread moves that
// ownership, and the source moves with it.
unsafe impl<S: Source + Send> Send for Heap<S> {}

#[inline]
fn misuse(call: Call, kind: MisuseKind, addr: *mut u8) -> Error {
    Error::Misuse(Misuse {
        call,
        kind,
        addr: addr as usize,
    })
}

#[inline]
pub(crate) fn corrupt(call: Call, addr: *mut u8) -> Error {
    misuse(call, MisuseKind::CorruptTag, addr)
}

/// A free block `b` (or a link in it) failed its checks: named by its payload.
#[cold]
fn corrupt_free(call: Call, b: *mut u8) -> Error {
    misuse(call, MisuseKind::CorruptFree, payload(b))
}

impl<S: Source> Heap<S> {
    /// An empty heap with glibc's default thresholds.
    pub const fn new(source: S) -> Heap<S> {
        Heap::with_config(source, Config::DEFAULT)
    }

    /// An empty heap with the given thresholds.
    pub const fn with_config(source: S, config: Config) -> Heap<S> {
        Heap {
            source,
            config,
            bins: Bins::new(),
            segments: ptr::null_mut(),
            top: ptr::null_mut(),
            fresh_seg: ptr::null_mut(),
            fresh: 0,
            large: AddrMap::new(),
            stats: Stats::ZERO,
            brk_lo: 0,
            trim_ticks: 0,
            trim_last: 0,
            trimmed: false,
            unmapped: [0; UNMAPPED],
            unmapped_next: 0,
            released: (0, 0),
            fast: FastLists::new(),
            reclaim: None,
            owns_hit: Cell::new(ptr::null_mut()),
        }
    }

    /// The address range `[lo, hi)` from the first break segment's start to the top segment's end:
    /// all of it is mapped (break segments and whatever others put between them), so a lock-free
    /// reader may read a word at any 8-aligned address inside it. `(0, 0)` before the first growth.
    pub(crate) fn break_range(&self) -> (usize, usize) {
        if self.top.is_null() {
            (0, 0)
        } else {
            // SAFETY: top is a live segment record.
            (self.brk_lo, unsafe { (*self.top).end })
        }
    }

    /// The memory source.
    pub fn source(&self) -> &S {
        &self.source
    }

    /// The memory source, to steer it (fault injection with [`Sim`](crate::source::Sim)).
    pub fn source_mut(&mut self) -> &mut S {
        &mut self.source
    }

    /// The thresholds in force.
    pub fn config(&self) -> Config {
        self.config
    }

    /// A copy of the statistics.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    // ---------------------------------------------------------------------------------------------
    // Allocation.

    /// Allocates `n` payload bytes (the caller has checked `n <= PTRDIFF_MAX`), from a segment below
    /// the mmap threshold and as a large chunk at or above it. Returns the payload.
    pub(crate) fn alloc(&mut self, n: usize) -> Result<*mut u8, Error> {
        if n >= self.config.mmap_threshold {
            return self.map_chunk(n, ALIGN);
        }
        let need = block_size(n).ok_or(Error::OutOfMemory)?;
        if self.fast_takes(need) {
            if let Some(b) = self.fast_pop(need)? {
                return Ok(payload(b));
            }
        }
        let b = self.take(need)?;
        // SAFETY: `take` returned a free block of at least `need` bytes, unlinked.
        unsafe { self.place(b, need)? };
        Ok(payload(b))
    }

    /// Allocates up to `count` blocks for `n`-byte requests, as a thread cache's refill wants them,
    /// and hands each payload to `each`; returns how many, or the error when not even one could be
    /// had. Below the mmap threshold, each free block found is carved into as many of the blocks as
    /// it holds, one after another (one search, one unlink and one split per free block, not per
    /// block); the blocks are the same allocated blocks `alloc` makes, the last one taking a sliver
    /// too small to split off, as `place` does. `each` runs once the whole run is carved, so it may
    /// free what it is given.
    pub(crate) fn alloc_many(
        &mut self,
        n: usize,
        count: usize,
        mut each: impl FnMut(&mut Self, *mut u8),
    ) -> Result<usize, Error> {
        if n >= self.config.mmap_threshold {
            for got in 0..count {
                match self.alloc(n) {
                    Ok(p) => each(self, p),
                    Err(e) if got == 0 => return Err(e),
                    Err(_) => return Ok(got),
                }
            }
            return Ok(count);
        }
        let need = block_size(n).ok_or(Error::OutOfMemory)?;
        let mut got = 0;
        while got < count {
            let b = match self.take(need) {
                Ok(b) => b,
                Err(e) if got == 0 => return Err(e),
                Err(_) => break,
            };
            // SAFETY: `take` returned an unlinked free block of at least `need` bytes; the `k - 1`
            // blocks carved at its start and the rest, at least `need` bytes, all lie inside it.
            let k = unsafe {
                let t = header(b).ok_or_else(|| corrupt(Call::Malloc, b))?;
                let s = t.size();
                let k = (s / need).min(count - got);
                let mut pu = t.has(PREV_USED) as u64 * PREV_USED;
                let mut cur = b;
                for _ in 1..k {
                    set_header(cur, Tag::new(need, USED | pu));
                    pu = PREV_USED;
                    cur = cur.add(need);
                }
                if k > 1 {
                    self.stats.add_live_many(k - 1, (k - 1) * (need - 8));
                    set_header(cur, Tag::new(s - (k - 1) * need, PREV_USED));
                }
                self.place(cur, need)?;
                self.touch(b, (k - 1) * need);
                k
            };
            for i in 0..k {
                // SAFETY: block i of the run starts `i * need` bytes into it.
                each(self, payload(unsafe { b.add(i * need) }));
            }
            got += k;
        }
        Ok(got)
    }

    /// Allocates `n` bytes aligned to `align` (a power of two above 16). Returns the payload.
    pub(crate) fn alloc_aligned(&mut self, align: usize, n: usize) -> Result<*mut u8, Error> {
        let align = if broken!(MemalignHalfAlign) && align >= 4096 {
            align / 2
        } else {
            align
        };
        if n >= self.config.mmap_threshold {
            return self.map_chunk(n, align);
        }
        let need = block_size(n).ok_or(Error::OutOfMemory)?;
        let total = need
            .checked_add(align)
            .and_then(|t| t.checked_add(MIN_BLOCK))
            .filter(|&t| t <= MAX_SIZE)
            .ok_or(Error::OutOfMemory)?;
        let mut b = self.take(total)?;
        let p = payload(b) as usize;
        let mut gap = align_up(p, align).ok_or(Error::OutOfMemory)? - p;
        if gap != 0 && gap < MIN_BLOCK && !broken!(MemalignSmallGap) {
            gap += align;
        }
        if gap != 0 {
            // SAFETY: b is an unlinked free block of at least `total` bytes, so the leading gap and
            // the rest (at least `need + 16` bytes, see the module docs) both lie inside it.
            unsafe {
                let t = header(b).ok_or_else(|| corrupt(Call::Malloc, b))?;
                let lead = Tag::new(gap, t.has(PREV_USED) as u64 * PREV_USED);
                set_header(b, lead);
                set_footer(b, lead);
                self.bins.insert(b, gap);
                b = b.add(gap);
                set_header(b, Tag::new(t.size() - gap, 0));
            }
        }
        // SAFETY: b is now a block of at least `need` bytes that is in no list.
        unsafe { self.place(b, need)? };
        Ok(payload(b))
    }

    /// A free block of at least `need` bytes, unlinked from its bin; grows the heap if none is free.
    /// The fast lists are consolidated first, before the heap grows, and for a large request the
    /// calling thread's cache may be given back ([`Heap::reclaim`]).
    fn take(&mut self, need: usize) -> Result<*mut u8, Error> {
        for _ in 0..3 {
            if let Some(b) = self.find(need)? {
                return Ok(b);
            }
            if self.fast.blocks > 0 {
                self.consolidate()?;
                if let Some(b) = self.find(need)? {
                    return Ok(b);
                }
            }
            // Only for a large request: a small one fits between the blocks a cache pins, and
            // the caches refill at a cost (a program that grows the heap often would pay it
            // each time).
            if need >= RECLAIM_AT && self.reclaim.is_some() && self.fragmented() {
                if let Some(b) = self.take_reclaimed(need)? {
                    return Ok(b);
                }
            }
            self.grow(need)?;
        }
        Err(Error::OutOfMemory)
    }

    /// Whether a quarter or more of the break the heap holds is free (or on the fast lists): then
    /// blocks pinned by a cache are likely what keeps a large request from fitting.
    #[inline]
    fn fragmented(&self) -> bool {
        let s = &self.stats;
        s.brk_bytes.saturating_sub(s.live_bytes) >= s.brk_bytes / 4
    }

    /// Runs the [`Heap::reclaim`] hook (taken, so it runs once per call and cannot re-enter
    /// itself), then looks again for a free block of `need` bytes.
    #[cold]
    #[inline(never)]
    fn take_reclaimed(&mut self, need: usize) -> Result<Option<*mut u8>, Error> {
        let Some(reclaim) = self.reclaim.take() else {
            return Ok(None);
        };
        // SAFETY: the hook was set for this call, by a caller that keeps its contract
        // (`LockedHeap`).
        if !unsafe { reclaim(self) }? {
            return Ok(None);
        }
        if self.fast.blocks > 0 {
            self.consolidate()?;
        }
        self.find(need)
    }

    /// The tag of a block met on a free list, checked to be a free block.
    fn free_tag(&self, b: *mut u8) -> Result<Tag, Error> {
        // SAFETY: blocks on the free lists lie inside our segments (their links were checked
        // before they were followed, and bin heads are only ever set to free blocks).
        let t = unsafe { header(b) }.ok_or_else(|| corrupt_free(Call::Malloc, b))?;
        if t.has(USED) || t.has(FENCE) || t.has(MAPPED) || t.size() < MIN_BLOCK {
            return Err(corrupt_free(Call::Malloc, b));
        }
        Ok(t)
    }

    /// Unlinks free block `b` of `size` bytes, after checking both its links (a use after free
    /// overwrites them) and that they point back at it. Inlined: `realloc`'s growth in place
    /// calls it for nearly every block it grows into.
    #[inline(always)]
    pub(crate) fn unlink(&mut self, b: *mut u8, size: usize, call: Call) -> Result<(), Error> {
        // SAFETY: b is a free block of `size` bytes (checked by the caller's tag check).
        let (n, p) = unsafe { (binning::next(b), binning::prev(b)) };
        if !self.link_in_heap(n) || !self.link_in_heap(p) {
            return Err(corrupt_free(call, b));
        }
        // SAFETY: as above; its links lead to free blocks of the heap or are null.
        if unsafe { self.bins.remove(b, size) } {
            Ok(())
        } else {
            Err(corrupt_free(call, b))
        }
    }

    /// Finds and unlinks a free block of at least `need` bytes: exact bins take their head; in a
    /// ranged bin the best fit among its first 8 blocks; failing that, the head of the first
    /// non-empty bin above, every block of which is large enough.
    fn find(&mut self, need: usize) -> Result<Option<*mut u8>, Error> {
        let bin = bin_of(need);
        let mut from = bin;
        if !is_exact(bin) {
            let mut best = ptr::null_mut();
            let mut best_size = usize::MAX;
            let mut b = self.bins.head(bin);
            let mut seen = 0;
            let (lo, hi) = binning::bin_range(bin);
            while !b.is_null() && seen < 8 {
                // Every block met is checked, so an overwritten one is caught by this malloc
                // whether or not it would have been chosen: its header here, cheaply (free, not
                // a fence or a chunk, a size of this bin: what any overwrite but a forged header
                // breaks), its link below before it is followed. The chosen block's header is
                // then verified whole, check included, before anything relies on it.
                // SAFETY: b is the bin's head or a checked link: inside the heap's memory.
                let t = unsafe { block::header_unchecked(b) };
                let s = t.size();
                if t.has(USED) || t.has(FENCE) || t.has(MAPPED) || s < lo || s >= hi {
                    return Err(corrupt_free(Call::Malloc, b));
                }
                if s >= need && s < best_size {
                    best = b;
                    best_size = s;
                    if s == need {
                        break;
                    }
                }
                // SAFETY: b is on a free list: its links are readable.
                let next = unsafe { binning::next(b) };
                if !self.link_in_heap(next) {
                    return Err(corrupt_free(Call::Malloc, b));
                }
                b = next;
                seen += 1;
            }
            if !best.is_null() {
                if self.free_tag(best)?.size() != best_size {
                    return Err(corrupt_free(Call::Malloc, best));
                }
                self.unlink(best, best_size, Call::Malloc)?;
                return Ok(Some(best));
            }
            from = bin + 1;
        }
        let Some(i) = self.bins.nonempty_from(from.min(binning::NBINS - 1)) else {
            return Ok(None);
        };
        if i < from {
            return Ok(None);
        }
        let b = self.bins.head(i);
        let s = self.free_tag(b)?.size();
        if s < need {
            return Ok(None);
        }
        self.unlink(b, s, Call::Malloc)?;
        Ok(Some(b))
    }

    /// Marks block `b` allocated with `need` bytes, splitting off the rest as a free block when it
    /// is at least `MIN_BLOCK`.
    ///
    /// # Safety
    /// `b` must be a block of the heap, at least `need` bytes, in no free list, whose header holds its
    /// size and `PREV_USED` bit (its `USED` bit is ignored).
    unsafe fn place(&mut self, b: *mut u8, need: usize) -> Result<(), Error> {
        // SAFETY: b is a block of the heap (contract), so its header, the block after it and a
        // split point inside it are all inside its segment.
        unsafe {
            let t = header(b).ok_or_else(|| corrupt(Call::Malloc, b))?;
            let s = t.size();
            let pu = t.has(PREV_USED) as u64 * PREV_USED;
            let used = if s - need >= MIN_BLOCK || (broken!(SplitSliver) && s - need >= 16) {
                set_header(b, Tag::new(need, USED | pu));
                let r = b.add(need);
                let rt = Tag::new(s - need, PREV_USED);
                set_header(r, rt);
                set_footer(r, rt);
                self.bins.insert(r, s - need);
                need
            } else {
                let next = b.add(s);
                let nt = header(next).ok_or_else(|| corrupt(Call::Malloc, next))?;
                if !broken!(PlaceNoPrevUsed) {
                    set_header(next, nt.with(PREV_USED, true));
                }
                set_header(b, Tag::new(s, USED | pu));
                s
            };
            self.stats.add_live(used - 8);
            self.touch(b, used);
        }
        Ok(())
    }

    /// Moves the fresh frontier past a block that was just handed out.
    #[inline]
    fn touch(&mut self, b: *mut u8, size: usize) {
        let end = b as usize + size;
        let seg = self.fresh_seg as usize;
        if end > self.fresh && (b as usize) > seg && !self.fresh_seg.is_null() {
            // SAFETY: fresh_seg is a live segment record.
            if b as usize <= unsafe { (*self.fresh_seg).end } {
                self.fresh = end;
            }
        }
    }

    /// Adds at least `need` bytes of free memory: extends the top segment when the break grows
    /// contiguously, starts a new segment when it does not, maps a segment when it cannot grow.
    fn grow(&mut self, need: usize) -> Result<(), Error> {
        crate::cache::ensure_key();
        let want = need
            .checked_add(SEG_MIN + 16)
            .and_then(|w| w.checked_add(self.config.top_pad))
            .ok_or(Error::OutOfMemory)?;
        if let Some(region) = self.source.grow(want) {
            self.stats.add_brk(region.len);
            if core::mem::take(&mut self.trimmed) && self.config.dynamic_threshold {
                let c = &mut self.config;
                c.trim_threshold = c
                    .trim_threshold
                    .saturating_mul(2)
                    .min(2 * MMAP_THRESHOLD_MAX);
            }
            let start = region.start.as_ptr();
            // SAFETY: top, if set, is a live segment record.
            if !self.top.is_null() && unsafe { (*self.top).end } == start as usize {
                // SAFETY: the region is fresh memory right after the top segment.
                return unsafe { self.extend(self.top, region.len) };
            }
            if region.len < SEG_MIN {
                return Err(Error::OutOfMemory);
            }
            // SAFETY: the region is fresh memory from the source, owned by us from now on.
            self.top = unsafe { self.new_segment(start, region.len, false) };
            if self.brk_lo == 0 || (start as usize) < self.brk_lo {
                self.brk_lo = start as usize;
            }
            return Ok(());
        }
        // Mapped segments grow geometrically (1 MiB, 2 MiB, ... 64 MiB), so a process whose break
        // cannot grow (a hard brk limit; valgrind's 8 MiB client break) keeps few segments and
        // `locate` stays short.
        let floor = (1usize << 20) << self.stats.brk_fallbacks.min(6);
        let len = align_up(want.max(floor), PAGE).ok_or(Error::OutOfMemory)?;
        let p = self.source.map(len).ok_or(Error::OutOfMemory)?;
        self.stats.brk_fallbacks += 1;
        self.stats.add_mmap(len);
        // SAFETY: a fresh mapping, owned by us from now on.
        unsafe { self.new_segment(p.as_ptr(), len, true) };
        Ok(())
    }

    /// Makes `[start, start + len)` a new segment holding one free block.
    ///
    /// # Safety
    /// The memory must be fresh (zeroed) memory from the source that nothing else uses, 16-aligned,
    /// `len >= SEG_MIN` and a multiple of 16.
    unsafe fn new_segment(&mut self, start: *mut u8, len: usize, mapped: bool) -> *mut Segment {
        let seg = start.cast::<Segment>();
        // The record is plain memory; the rest no caller may touch until it is handed out.
        track::expose(start, SEG_HEAD);
        // SAFETY: the memory is ours (contract).
        track::hide(unsafe { start.add(SEG_HEAD) }, len - SEG_HEAD);
        // SAFETY: the memory is ours and large enough for the record, a block and the epilogue.
        unsafe {
            seg.write(Segment {
                next: self.segments,
                end: start as usize + len,
                mapped,
            });
            let b = start.add(SEG_HEAD);
            let t = Tag::new(len - SEG_HEAD - 8, PREV_USED);
            set_header(b, t);
            set_footer(b, t);
            set_header(start.add(len - 8), Tag::new(0, USED | FENCE));
            self.bins.insert(b, t.size());
            self.fresh = b as usize;
        }
        self.segments = seg;
        self.fresh_seg = seg;
        self.stats.segments += 1;
        seg
    }

    /// Extends segment `seg` by `len` bytes of fresh memory that start at its end.
    ///
    /// # Safety
    /// `[seg.end, seg.end + len)` must be fresh memory from the source that nothing else uses.
    unsafe fn extend(&mut self, seg: *mut Segment, len: usize) -> Result<(), Error> {
        // SAFETY: seg is a live segment; its epilogue and the block before it are inside it, and the
        // new memory follows it (contract).
        unsafe {
            let old_end = (*seg).end;
            track::hide(old_end as *mut u8, len);
            let epi = (old_end - 8) as *mut u8;
            let et = header(epi)
                .filter(|t| t.has(FENCE))
                .ok_or_else(|| corrupt(Call::Malloc, epi))?;
            let mut b = epi;
            let mut size = len;
            let mut pu = et.has(PREV_USED);
            if !pu {
                let pt = self.free_before(epi, Call::Malloc)?;
                b = epi.sub(pt.size());
                self.unlink(b, pt.size(), Call::Malloc)?;
                size += pt.size();
                pu = pt.has(PREV_USED);
                // The old footer and epilogue are now inside a free block: clear them so memory
                // past the fresh frontier stays zero (invariant 9).
                track::store(epi.sub(8).cast(), 0);
                track::store(epi.cast(), 0);
            }
            let t = Tag::new(size, pu as u64 * PREV_USED);
            set_header(b, t);
            set_footer(b, t);
            (*seg).end = old_end + len;
            set_header((old_end + len - 8) as *mut u8, Tag::new(0, USED | FENCE));
            self.bins.insert(b, size);
        }
        Ok(())
    }

    /// The tag of the free block that ends just before block `b`, checked through both its footer
    /// and its header.
    ///
    /// # Safety
    /// `b` must be a block or epilogue of the heap whose `PREV_USED` bit is clear.
    pub(crate) unsafe fn free_before(&self, b: *mut u8, call: Call) -> Result<Tag, Error> {
        // SAFETY: a clear PREV_USED bit means a free block, with its footer, ends just before b.
        unsafe {
            let ft = footer_before(b).ok_or_else(|| corrupt(call, b.sub(8)))?;
            let s = ft.size();
            if s < MIN_BLOCK || s % 16 != 0 {
                return Err(corrupt(call, b.sub(8)));
            }
            let p = b.sub(s);
            let pt = header(p).ok_or_else(|| corrupt(call, p))?;
            if pt.size() != s || pt.has(USED) || pt.has(FENCE) {
                return Err(corrupt(call, p));
            }
            Ok(pt)
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Large chunks.

    /// Maps a large chunk for `n` payload bytes aligned to `align`.
    fn map_chunk(&mut self, n: usize, align: usize) -> Result<*mut u8, Error> {
        let slack = if align > ALIGN { align } else { 0 };
        let len = n
            .checked_add(16 + slack)
            .and_then(|l| align_up(l, PAGE))
            .filter(|&l| l <= MAX_SIZE)
            .ok_or(Error::OutOfMemory)?;
        let mut delta = 0;
        if !self.large.reserve_one(&mut self.source, &mut delta) {
            return Err(Error::OutOfMemory);
        }
        self.note_table(delta);
        let m = self.source.map(len).ok_or(Error::OutOfMemory)?.as_ptr();
        let p = align_up(m as usize + 16, align).ok_or(Error::OutOfMemory)?;
        // The alignment gap, the lead word and the header (`crate::track`: not the payload).
        track::hide(m, p - m as usize);
        let h = (p - 8) as *mut u8;
        let lead = h as usize - m as usize;
        let t = Tag::new(
            len - lead - 8 + if broken!(LargeUsableLong) { 16 } else { 0 },
            USED | MAPPED,
        );
        // SAFETY: the lead word and header lie inside the fresh mapping (p + n <= m + len).
        unsafe {
            track::store(h.sub(8).cast(), lead as u64);
            set_header(h, t);
        }
        self.large.insert_unchecked(p, 0);
        self.stats.add_mmap(len);
        self.stats.mapped_chunks += 1;
        self.stats.add_live(t.size());
        Ok(p as *mut u8)
    }

    fn note_table(&mut self, delta: isize) {
        if delta > 0 {
            self.stats.add_mmap(delta as usize);
        } else {
            self.stats.mmap_bytes -= delta.unsigned_abs();
        }
    }

    /// The mapping `(start, len)` of the large chunk with header `h` and tag `t`.
    ///
    /// # Safety
    /// `h` must be the header of a registered large chunk.
    unsafe fn chunk_mapping(
        &self,
        h: *mut u8,
        t: Tag,
        call: Call,
    ) -> Result<(*mut u8, usize), Error> {
        // SAFETY: a registered chunk has its lead word just before its header.
        let lead = unsafe { track::load(h.sub(8).cast()) } as usize;
        let m = (h as usize).wrapping_sub(lead);
        let len = lead + 8 + t.size();
        if lead < 8 || m % PAGE != 0 || len % PAGE != 0 {
            return Err(corrupt(call, h));
        }
        Ok((m as *mut u8, len))
    }

    // ---------------------------------------------------------------------------------------------
    // Finding and freeing.

    /// Finds the block or chunk whose payload is `p`, or says what is wrong with `p`.
    pub(crate) fn locate(&self, p: *mut u8, call: Call) -> Result<Found, Error> {
        let a = p as usize;
        if a % ALIGN != 0 {
            return Err(misuse(call, MisuseKind::InvalidPointer, p));
        }
        let mut seg = self.segments;
        while !seg.is_null() {
            // SAFETY: seg is a live segment record.
            let (start, end, next) = unsafe { (seg as usize, (*seg).end, (*seg).next) };
            if a > start + SEG_HEAD && a < end {
                return self.locate_in(seg, p, call);
            }
            seg = next;
        }
        if self.large.contains(a) {
            let h = block::of_payload(p);
            // SAFETY: registered payloads have their header just before them.
            let t = unsafe { header(h) }.ok_or_else(|| corrupt(call, h))?;
            if !t.has(USED | MAPPED) {
                return Err(corrupt(call, h));
            }
            return Ok(Found::Chunk(h, t));
        }
        let (lo, hi) = self.released;
        if self.unmapped.contains(&a) || (a >= lo && a < hi) {
            return Err(misuse(call, MisuseKind::DoubleFree, p));
        }
        Err(misuse(call, MisuseKind::InvalidPointer, p))
    }

    fn locate_in(&self, seg: *mut Segment, p: *mut u8, call: Call) -> Result<Found, Error> {
        let b = block::of_payload(p);
        // SAFETY: p lies inside the segment past its record, so b is readable.
        match unsafe { header(b) } {
            None => Err(self.diagnose(seg, p, call)),
            Some(t) if t.has(FENCE) || t.has(MAPPED) => {
                Err(misuse(call, MisuseKind::InvalidPointer, p))
            }
            Some(t) if !t.has(USED) => Err(misuse(call, MisuseKind::DoubleFree, p)),
            Some(t) => {
                // SAFETY: seg is a live segment record.
                let end = unsafe { (*seg).end };
                if t.size() < MIN_BLOCK || b as usize + t.size() > end - 8 {
                    return Err(corrupt(call, b));
                }
                // A small block carrying the mark sits on a fast list or in a cache: freed.
                // SAFETY: a block of at least MIN_BLOCK bytes has 24 readable payload bytes.
                if t.size() <= crate::fast::FAST_MAX && unsafe { crate::cache::is_marked(p) } {
                    return Err(misuse(call, MisuseKind::DoubleFree, p));
                }
                Ok(Found::Block(b, t))
            }
        }
    }

    /// Why `p`, inside segment `seg`, has no valid header: walks the segment (slow, but only on
    /// the way to reporting an error) to tell a block whose tag was overwritten from a pointer that
    /// was never a block.
    #[cold]
    fn diagnose(&self, seg: *mut Segment, p: *mut u8, call: Call) -> Error {
        let b = block::of_payload(p) as usize;
        // SAFETY: walking the live segment from its first block, stopping at the first bad tag.
        unsafe {
            let end = (*seg).end - 8;
            let mut cur = seg as usize + SEG_HEAD;
            while cur < b && cur < end {
                match header(cur as *mut u8) {
                    Some(t) if t.size() >= MIN_BLOCK && !t.has(FENCE) => cur += t.size(),
                    _ => return corrupt(call, cur as *mut u8),
                }
            }
            if cur == b {
                corrupt(call, b as *mut u8)
            } else {
                misuse(call, MisuseKind::InvalidPointer, p)
            }
        }
    }

    /// Frees what [`locate`](Heap::locate) found.
    pub(crate) fn release(&mut self, found: Found, call: Call) -> Result<(), Error> {
        match found {
            Found::Block(b, t) => {
                // SAFETY: locate checked b is an allocated block of a segment.
                unsafe { self.free_block(b, t, call) }
            }
            Found::Chunk(h, t) => {
                // SAFETY: locate checked h is a registered chunk.
                let (m, len) = unsafe { self.chunk_mapping(h, t, call)? };
                self.large.remove(payload(h) as usize);
                self.stats.sub_live(t.size());
                self.stats.mapped_chunks -= 1;
                self.stats.mmap_bytes -= len;
                track::expose(m, payload(h) as usize - m as usize);
                // SAFETY: the whole mapping was ours and is unused now.
                unsafe { self.source.unmap(m, len) };
                let i = self.unmapped_next % UNMAPPED;
                self.unmapped[i] = payload(h) as usize;
                self.unmapped_next = (i + 1) % UNMAPPED;
                let c = &mut self.config;
                if c.dynamic_threshold && len > c.mmap_threshold && len <= MMAP_THRESHOLD_MAX {
                    c.mmap_threshold = len;
                    c.trim_threshold = 2 * len;
                }
                Ok(())
            }
        }
    }

    /// Frees allocated block `b`: onto its fast list when it is small, else for real
    /// ([`coalesce_block`](Self::coalesce_block)), consolidating the fast lists when that leaves
    /// a large free block at the end of the top segment.
    ///
    /// # Safety
    /// `b` must be an allocated block of a segment, with tag `t`.
    unsafe fn free_block(&mut self, b: *mut u8, t: Tag, call: Call) -> Result<(), Error> {
        let size = t.size();
        // Every block `realloc` frees (the one it moved out of, or `realloc(p, 0)`'s) is freed for
        // real: a moved-out block lies beside blocks that grow (a buffer grown a little at a time
        // leaves one behind at every move), and on a fast list it would stay allocated to them
        // and make them move too.
        if self.fast_takes(size) && call != Call::Realloc {
            // The block after it must be intact, as the coalescing path checks.
            let next = b.wrapping_add(size);
            // SAFETY: b is an allocated block (contract): the block after it is in its segment.
            let nt = unsafe { header(next) }.ok_or_else(|| corrupt(call, next))?;
            if !nt.has(PREV_USED) {
                return Err(corrupt(call, next));
            }
            // SAFETY: as above, and size <= FAST_MAX (fast_takes).
            unsafe { self.fast_push(b, size) };
            return Ok(());
        }
        // SAFETY: forwarded contract.
        let (total, at_top) = unsafe { self.coalesce_block(b, t, call)? };
        if at_top && total >= CONSOLIDATE_AT && self.fast.blocks > 0 {
            self.consolidate()?;
        }
        Ok(())
    }

    /// Frees allocated block `b` for real, coalescing with free neighbours, trimming the top;
    /// returns the size of the free block it merged into (before any trim), and whether that
    /// block is the last of the top segment (what a trim gives back).
    ///
    /// # Safety
    /// `b` must be an allocated block of a segment, with tag `t`.
    pub(crate) unsafe fn coalesce_block(
        &mut self,
        b: *mut u8,
        t: Tag,
        call: Call,
    ) -> Result<(usize, bool), Error> {
        let size = t.size();
        // SAFETY: b is an allocated block (contract): the block after it, and (when PREV_USED is
        // clear) the free block before it, are inside the same segment.
        unsafe {
            let next = b.add(size);
            let nt = header(next).ok_or_else(|| corrupt(call, next))?;
            if !nt.has(PREV_USED) {
                return Err(corrupt(call, next));
            }
            let mut start = b;
            let mut total = size;
            let mut pu = t.has(PREV_USED);
            let mut prev = None;
            if !pu {
                let pt = self.free_before(b, call)?;
                prev = Some(pt);
                start = b.sub(pt.size());
                total += pt.size();
                pu = pt.has(PREV_USED);
            }
            let next_free = !nt.has(USED) && !nt.has(FENCE) && !broken!(NoCoalesceNext);
            if next_free && nt.size() < MIN_BLOCK {
                return Err(corrupt(call, next));
            }
            // All checks passed: change the heap.
            if let Some(pt) = prev {
                self.unlink(start, pt.size(), call)?;
            }
            if next_free {
                self.unlink(next, nt.size(), call)?;
                total += nt.size();
            } else {
                set_header(next, nt.with(PREV_USED, false));
            }
            // Leave b's own header marked free, so a second free of it is caught as one.
            set_header(b, t.with(USED, false));
            self.stats.sub_live(size - 8);
            let at_top = self.settle(start, total, pu);
            Ok((total, at_top))
        }
    }

    /// Makes `[start, start + total)` one free block in its bin, its `PREV_USED` bit `pu`,
    /// trimming the top first when the block ends the top segment and the trim policy says so
    /// ([`Config::trim_delay`]); returns whether it ends the top segment.
    ///
    /// # Safety
    /// The range must be blocks of one segment that nothing uses and no list holds, the block
    /// after it must already say its predecessor is free, and `total >= MIN_BLOCK`.
    pub(crate) unsafe fn settle(&mut self, start: *mut u8, mut total: usize, pu: bool) -> bool {
        let end = start as usize + total + 8;
        // SAFETY: top, when not null, is a live segment record.
        let at_top = !self.top.is_null() && end == unsafe { (*self.top).end };
        // SAFETY: the range is free and the caller's to rewrite (contract); a trim gives back
        // only its tail past the pad.
        unsafe {
            if at_top && total >= self.config.trim_threshold {
                // The top shrank since the last such free: it was allocated from; count afresh.
                if total < self.trim_last {
                    self.trim_ticks = 0;
                }
                self.trim_last = total;
                if self.trim_ticks >= self.config.trim_delay {
                    self.trim_ticks = 0;
                    total = self.trim(total);
                    self.trim_last = total;
                } else {
                    self.trim_ticks += 1;
                }
            } else {
                self.trim_ticks = 0;
            }
            let mt = Tag::new(total, pu as u64 * PREV_USED);
            set_header(start, mt);
            set_footer(start, mt);
            self.bins.insert(start, total);
        }
        at_top
    }

    /// Gives back to the break the free space past `top_pad` of the top segment's last block, free,
    /// unlinked and `total` bytes long. Returns the block's new size; the caller rewrites its tags.
    ///
    /// # Safety
    /// As described: the top segment's last block is free, unlinked and `total` bytes long.
    unsafe fn trim(&mut self, total: usize) -> usize {
        let keep = MIN_BLOCK + self.config.top_pad;
        let release = if broken!(TrimSmallPad) && self.config.top_pad < PAGE {
            align_up(total.saturating_sub(keep), PAGE).unwrap_or(0)
        } else {
            total.saturating_sub(keep) & !(PAGE - 1)
        };
        if release == 0 {
            return total;
        }
        // SAFETY: top is a live segment record.
        let end = unsafe { (*self.top).end };
        if !self.source.break_is_at(end) {
            return total;
        }
        let tail = (end - release) as *mut u8;
        track::expose(tail, release);
        // SAFETY: the released tail is part of free block b, which nothing uses.
        if !unsafe { self.source.shrink(end as *mut u8, release) } {
            track::hide(tail, release);
            return total;
        }
        let new_end = end - release;
        self.released = if self.released.0 == end {
            (new_end, self.released.1)
        } else {
            (new_end, end)
        };
        // SAFETY: the top segment now ends at new_end; its epilogue goes in its last word, after b.
        unsafe {
            (*self.top).end = new_end;
            set_header((new_end - 8) as *mut u8, Tag::new(0, USED | FENCE));
        }
        self.stats.brk_bytes -= release;
        self.stats.trims += 1;
        self.trimmed = true;
        total - release
    }

    // ---------------------------------------------------------------------------------------------
    // Resizing.

    /// Resizes the block or chunk `found` (payload `p`) to `n` bytes (`0 < n <= PTRDIFF_MAX`).
    /// What the sanitizers see of the block follows it (`crate::track`).
    pub(crate) fn resize(&mut self, p: *mut u8, found: Found, n: usize) -> Result<*mut u8, Error> {
        match found {
            Found::Block(b, t) if n < self.config.mmap_threshold => {
                let need = block_size(n).ok_or(Error::OutOfMemory)?;
                // SAFETY: locate checked b is an allocated block with tag t.
                match unsafe { self.resize_in_place(b, t, need) }? {
                    Some(q) => {
                        let old = found.usable();
                        track::resized(track::Kind::Block, q, old, n, old.min(n));
                        Ok(q)
                    }
                    None => self.move_to(p, found, n),
                }
            }
            Found::Chunk(h, t) if n >= self.config.mmap_threshold => self.remap_chunk(p, h, t, n),
            _ => self.move_to(p, found, n),
        }
    }

    /// Allocates `n` bytes elsewhere, copies, frees the old block. On failure the old block stays.
    ///
    /// A block that must move to *grow* gets a quarter more room than asked (when that stays below
    /// the mmap threshold or is a mapping, whose untouched pages cost nothing): a buffer grown a
    /// little at a time, as string builders do, then moves O(log n) times instead of at every
    /// step, and the copying stops dominating. `malloc_usable_size` reports the room.
    fn move_to(&mut self, p: *mut u8, found: Found, n: usize) -> Result<*mut u8, Error> {
        let old_usable = found.usable();
        let roomy = n.saturating_add(n / 4);
        let thr = self.config.mmap_threshold;
        let (q, asked) = if n > old_usable && roomy <= PTRDIFF_MAX && (roomy < thr || n >= thr) {
            match self.alloc(roomy) {
                Ok(q) => (q, roomy),
                Err(_) => (self.alloc(n)?, n),
            }
        } else {
            (self.alloc(n)?, n)
        };
        track::handed(kind_of(asked, thr), q, n, false);
        if let Found::Block(..) = found {
            // The copy reads the old block's slack too, which the caller may not have been given.
            track::widened(p, old_usable);
        }
        // SAFETY: both payloads are live, distinct, and at least this long.
        unsafe { ptr::copy_nonoverlapping(p, q, old_usable.min(n)) };
        // The allocation may have changed the old block's neighbours (and so its PREV_USED bit):
        // read its header afresh. It is still the block `locate` found, allocated: nothing but
        // that bit changes in an allocated block's header while another block is allocated.
        let found = match found {
            // SAFETY: b is the header of the allocated block `locate` found, inside its segment.
            Found::Block(b, _) => match unsafe { header(b) } {
                Some(t) if t.has(USED) => Found::Block(b, t),
                _ => return Err(corrupt(Call::Realloc, b)),
            },
            chunk => chunk,
        };
        self.give_back(p, found, Call::Realloc)?;
        Ok(q)
    }

    /// Shrinks block `b` to `need` bytes, or grows it into a free next block; `None` when neither
    /// fits.
    ///
    /// # Safety
    /// `b` is an allocated block of a segment with tag `t`.
    unsafe fn resize_in_place(
        &mut self,
        b: *mut u8,
        t: Tag,
        need: usize,
    ) -> Result<Option<*mut u8>, Error> {
        let s = t.size();
        let pu = t.has(PREV_USED) as u64 * PREV_USED;
        // SAFETY: b is allocated (contract); the block after it is inside the segment.
        unsafe {
            let next = b.add(s);
            let nt = header(next).ok_or_else(|| corrupt(Call::Realloc, next))?;
            let next_free = !nt.has(USED) && !nt.has(FENCE);
            let avail = if next_free { s + nt.size() } else { s };
            if avail < need {
                return Ok(None);
            }
            if next_free {
                self.unlink(next, nt.size(), Call::Realloc)?;
            }
            let after = b.add(avail);
            let rest = avail - need;
            let used = if rest >= MIN_BLOCK {
                set_header(b, Tag::new(need, USED | pu));
                let r = b.add(need);
                let rt = Tag::new(rest, PREV_USED);
                set_header(r, rt);
                set_footer(r, rt);
                if !next_free {
                    set_header(next, nt.with(PREV_USED, false));
                }
                self.bins.insert(r, rest);
                need
            } else {
                set_header(b, Tag::new(avail, USED | pu));
                if next_free {
                    let at = header(after).ok_or_else(|| corrupt(Call::Realloc, after))?;
                    set_header(after, at.with(PREV_USED, true));
                }
                avail
            };
            self.stats.live_bytes = self.stats.live_bytes + used - s;
            self.stats.peak_live_bytes = self.stats.peak_live_bytes.max(self.stats.live_bytes);
            self.touch(b, used);
            Ok(Some(payload(b)))
        }
    }

    /// Resizes a large chunk with `mremap` (only for chunks with the plain 16-byte alignment).
    fn remap_chunk(&mut self, p: *mut u8, h: *mut u8, t: Tag, n: usize) -> Result<*mut u8, Error> {
        // SAFETY: locate checked h is a registered chunk.
        let (m, len) = unsafe { self.chunk_mapping(h, t, Call::Realloc)? };
        if m as usize + 16 != p as usize {
            return self.move_to(p, Found::Chunk(h, t), n);
        }
        let new_len = n
            .checked_add(16)
            .and_then(|l| align_up(l, PAGE))
            .filter(|&l| l <= MAX_SIZE)
            .ok_or(Error::OutOfMemory)?;
        let kept = t.size().min(n);
        if new_len == len || (new_len < len && new_len > len / 2) {
            // Fits, or shrinks by less than half: keep the mapping (glibc keeps it too).
            track::resized(track::Kind::Chunk, p, t.size(), n, kept);
            return Ok(p);
        }
        // Growing: a quarter more room, as in `move_to`; untouched pages of a mapping cost nothing.
        let new_len = if new_len > len {
            align_up(new_len + new_len / 4, PAGE)
                .filter(|&l| l <= MAX_SIZE)
                .unwrap_or(new_len)
        } else {
            new_len
        };
        // The source may copy the whole mapping, and then it leaves, or grows in place.
        track::expose(m, 16);
        // SAFETY: (m, len) is exactly the chunk's mapping.
        let Some(nm) = (unsafe { self.source.remap(m, len, new_len) }) else {
            // The chunk stays.
            track::hide(m, 16);
            return Err(Error::OutOfMemory);
        };
        let nm = nm.as_ptr();
        track::hide(nm, 16);
        self.large.remove(p as usize);
        // Removing one entry always leaves room to insert one.
        self.large.insert_unchecked(nm as usize + 16, 0);
        let nt = Tag::new(new_len - 16, USED | MAPPED);
        // SAFETY: the new mapping starts with the lead word (copied) and then the header.
        unsafe { set_header(nm.add(8), nt) };
        self.stats.mmap_bytes -= len;
        self.stats.add_mmap(new_len);
        self.stats.live_bytes = self.stats.live_bytes + new_len - len;
        self.stats.peak_live_bytes = self.stats.peak_live_bytes.max(self.stats.live_bytes);
        // SAFETY: 16 bytes into the new mapping is its payload.
        let q = unsafe { nm.add(16) };
        if q == p {
            track::resized(track::Kind::Chunk, p, t.size(), n, kept);
        } else {
            track::moved(p, q, n, kept);
        }
        Ok(q)
    }

    // ---------------------------------------------------------------------------------------------
    // calloc support.

    /// Where memory that reads as zero starts, before an allocation: (newest segment, address).
    pub(crate) fn clean_frontier(&self) -> (*mut Segment, usize) {
        (self.fresh_seg, self.fresh + 32)
    }

    /// Zeroes the first `n` bytes of block payload `p`, skipping what is known to read as zero
    /// already given the frontier taken before it was allocated.
    ///
    /// # Safety
    /// `p` must be the payload of an allocated segment block of at least `n` usable bytes.
    pub(crate) unsafe fn zero_dirty(
        &self,
        p: *mut u8,
        n: usize,
        (seg, clean): (*mut Segment, usize),
    ) {
        let a = p as usize;
        let e = a + n;
        let mut zero_to = e;
        if !seg.is_null() && seg == self.fresh_seg && a > seg as usize {
            // SAFETY: seg is a live segment record.
            let end = unsafe { (*seg).end };
            if a < end {
                // Invariant 9: past `clean` only the segment's last 16 bytes may be non-zero.
                // (max and min, not `clamp`, which has a panic path: a <= e anyway.)
                zero_to = clean.max(a).min(e);
                let tail = end - 16;
                if e > tail {
                    let from = tail.max(zero_to);
                    // SAFETY: [from, e) lies inside the payload.
                    unsafe { ptr::write_bytes(from as *mut u8, 0, e - from) };
                }
            }
        }
        // SAFETY: [a, zero_to) lies inside the payload.
        unsafe { ptr::write_bytes(p, 0, zero_to - a) };
        if broken!(CallocPastBlock) {
            let b = block::of_payload(p);
            // SAFETY: p is an allocated segment block (contract): its header is readable, and the
            // byte past its end is the first of the next block's header, inside the segment. The
            // plain store is the planted defect.
            unsafe {
                if let Some(t) = header(b) {
                    b.add(t.size()).write(0);
                }
            }
        }
    }
}

impl<S: Source> Drop for Heap<S> {
    fn drop(&mut self) {
        // Give back what was mapped; the break belongs to the source, which drops it (or cannot).
        let mut maps = [0usize; 64];
        loop {
            let mut k = 0;
            self.large.for_each(|p, _| {
                if k < maps.len() {
                    maps[k] = p;
                    k += 1;
                }
            });
            if k == 0 {
                break;
            }
            for &p in &maps[..k] {
                let h = block::of_payload(p as *mut u8);
                // SAFETY: registered chunks have valid headers unless the caller corrupted them,
                // in which case the mapping is leaked rather than guessed.
                if let Some(t) = unsafe { header(h) } {
                    // SAFETY: a registered chunk.
                    if let Ok((m, len)) = unsafe { self.chunk_mapping(h, t, Call::Free) } {
                        track::expose(m, p - m as usize);
                        // SAFETY: the chunk's whole mapping; the heap is going away.
                        unsafe { self.source.unmap(m, len) };
                    }
                }
                self.large.remove(p);
            }
        }
        // SAFETY: the table was mapped from this source.
        unsafe { self.large.release(&mut self.source) };
        self.owns_hit.set(ptr::null_mut());
        let mut seg = self.segments;
        while !seg.is_null() {
            // SAFETY: seg is a live segment record; a mapped one is unmapped as a whole.
            unsafe {
                let next = (*seg).next;
                let len = (*seg).end - seg as usize;
                // Break segments too: the source may hand the memory to someone else.
                track::expose(seg.cast(), len);
                if (*seg).mapped {
                    self.source.unmap(seg.cast(), len);
                }
                seg = next;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{Region, Sim};
    use core::ptr::NonNull;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// What a [`Ledger`] saw: the mappings live now, and the unmaps that matched no mapping.
    #[derive(Default)]
    struct Books {
        live: Vec<(usize, usize)>,
        strays: Vec<(usize, usize)>,
    }

    /// A [`Sim`] that keeps books of its mappings where the test can read them after the heap
    /// that owns the source is gone.
    struct Ledger {
        sim: Sim,
        books: Rc<RefCell<Books>>,
    }

    // SAFETY: every call goes to the Sim, which keeps the promises.
    unsafe impl Source for Ledger {
        fn grow(&mut self, len: usize) -> Option<Region> {
            self.sim.grow(len)
        }

        fn break_is_at(&self, end: usize) -> bool {
            self.sim.break_is_at(end)
        }

        unsafe fn shrink(&mut self, end: *mut u8, len: usize) -> bool {
            // SAFETY: forwarded contract.
            unsafe { self.sim.shrink(end, len) }
        }

        fn map(&mut self, len: usize) -> Option<NonNull<u8>> {
            let p = self.sim.map(len)?;
            self.books
                .borrow_mut()
                .live
                .push((p.as_ptr() as usize, len));
            Some(p)
        }

        unsafe fn unmap(&mut self, ptr: *mut u8, len: usize) {
            let mut books = self.books.borrow_mut();
            match books.live.iter().position(|&m| m == (ptr as usize, len)) {
                Some(i) => {
                    books.live.swap_remove(i);
                }
                None => books.strays.push((ptr as usize, len)),
            }
            // SAFETY: forwarded contract.
            unsafe { self.sim.unmap(ptr, len) }
        }

        unsafe fn remap(&mut self, ptr: *mut u8, old: usize, new: usize) -> Option<NonNull<u8>> {
            let p = self.map(new)?;
            // SAFETY: both are live mappings of at least min(old, new) bytes, distinct; the old
            // one is given back whole (forwarded contract).
            unsafe {
                p.as_ptr().copy_from_nonoverlapping(ptr, old.min(new));
                self.unmap(ptr, old);
            }
            Some(p)
        }
    }

    /// Dropping a heap gives back every mapping it made, each whole: its large chunks, the
    /// registry's table and the segments it mapped when the break could not grow.
    #[test]
    fn drop_unmaps_chunks_table_and_mapped_segments_whole() {
        let books = Rc::new(RefCell::new(Books::default()));
        let source = Ledger {
            sim: Sim::new(256 << 10),
            books: Rc::clone(&books),
        };
        let mut h = Heap::new(source);
        // More than the 256 KiB break holds, in blocks below the mmap threshold: mapped segments.
        for _ in 0..40 {
            h.malloc(10_000).unwrap();
        }
        h.malloc(1 << 20).unwrap();
        let s = h.stats();
        assert!(
            s.brk_fallbacks > 0 && s.segments > 1 && s.mapped_chunks == 1,
            "{s:?}"
        );
        assert!(books.borrow().live.len() >= 3);
        drop(h);
        let books = books.borrow();
        assert_eq!(books.strays, [], "unmaps of no mapping");
        assert_eq!(books.live, [], "mappings left behind");
    }

    /// A header that passes its check but whose size runs past the end of its segment (a forged
    /// tag) makes `free` report a corrupt tag at that block, before anything reads past the
    /// segment for the block's neighbour.
    #[test]
    fn free_reports_a_block_that_runs_past_its_segment() {
        let mut h = Heap::new(Sim::new(1 << 20));
        let p = h.malloc(2000).unwrap().as_ptr();
        let guard = h.malloc(2000).unwrap().as_ptr();
        let b = block::of_payload(p);
        // SAFETY: b is the header of the live block p.
        let t = unsafe { header(b) }.unwrap();
        // SAFETY: the heap has one segment, a live record, holding p.
        let end = unsafe { (*h.segments).end };
        assert!((b as usize) < end);
        let long = Tag::new((end - b as usize + 15) & !15, USED).with(PREV_USED, t.has(PREV_USED));
        // SAFETY: b is p's header, in the heap's memory; it is restored below.
        unsafe { set_header(b, long) };
        // SAFETY: p is in the heap's memory; the forged header is the point.
        assert_eq!(unsafe { h.free(p) }, Err(corrupt(Call::Free, b)));
        // SAFETY: as above.
        unsafe { set_header(b, t) };
        assert_eq!(h.check(), Ok(()));
        for q in [p, guard] {
            // SAFETY: live blocks of this heap, freed once.
            unsafe { h.free(q) }.unwrap();
        }
    }

    /// A heap of 1 MiB of simulated memory, fast lists off: every free coalesces and bins.
    fn heap_without_fast_lists() -> Heap<Sim> {
        Heap::with_config(
            Sim::new(1 << 20),
            Config {
                fast_lists: false,
                ..Config::default()
            },
        )
    }

    /// The head of a larger bin, taken without a search, is checked to be a free block: a header
    /// overwritten into a fence (or a mapped chunk's) is reported, not split and handed out.
    #[test]
    fn a_larger_bins_head_with_a_fence_or_mapped_header_is_reported() {
        for flag in [FENCE, MAPPED] {
            let mut h = heap_without_fast_lists();
            let big = h.malloc(5000).unwrap().as_ptr();
            let _guard = h.malloc(100).unwrap();
            let b = block::of_payload(big);
            // SAFETY: big is a live block of this heap; once freed, its header is rewritten with
            // its own size and valid check bits, as a stray write that knew the format would.
            unsafe {
                h.free(big).unwrap();
                let size = header(b).unwrap().size();
                set_header(b, Tag::new(size, flag));
            }
            let e = h.malloc(100).unwrap_err();
            assert!(
                matches!(e, Error::Misuse(m) if m.kind == MisuseKind::CorruptFree),
                "{flag:#x}: {e:?}"
            );
        }
    }

    /// A block whose memory a trim gave back to the break is freed: a second `free` of it is a
    /// double free, also once the pointer lies past the segment's end (found by the fuzzer:
    /// `posix_memalign(4096, 0)`, free, free, under trim_threshold=31).
    #[test]
    fn a_second_free_of_a_block_trimmed_away_is_a_double_free() {
        let mut h = Heap::with_config(
            Sim::new(1 << 20),
            Config {
                trim_threshold: 31,
                top_pad: 0,
                trim_delay: 0,
                fast_lists: false,
                ..Config::default()
            },
        );
        let _low = h.malloc(100).unwrap();
        let p = h.posix_memalign(4096, 0).unwrap().as_ptr();
        let q = h.malloc(20000).unwrap().as_ptr();
        // SAFETY: both are live blocks of this heap.
        unsafe {
            h.free(q).unwrap();
            h.free(p).unwrap();
        }
        assert!(h.stats().trims > 0);
        for x in [p, q] {
            // SAFETY: a misuse is reported, never followed.
            let e = unsafe { h.free(x) }.unwrap_err();
            assert!(
                matches!(e, Error::Misuse(m) if m.kind == MisuseKind::DoubleFree),
                "{x:?}: {e:?}"
            );
        }
        h.check().unwrap();
    }

    /// Best fit inside a bin: a larger block at the bin's head does not stop the search, an exact
    /// fit behind it is what `malloc` gets (only an exact size ends the search early).
    #[test]
    fn find_takes_the_exact_fit_behind_a_larger_block_of_its_bin() {
        let mut h = heap_without_fast_lists();
        // Blocks of 2048 and 2064 bytes: one ranged bin, kept apart by live guards.
        let exact = h.malloc(2040).unwrap().as_ptr();
        let _guard = h.malloc(100).unwrap();
        let larger = h.malloc(2056).unwrap().as_ptr();
        let _guard = h.malloc(100).unwrap();
        assert_eq!(binning::bin_of(2048), binning::bin_of(2064));
        // SAFETY: both are live blocks of this heap; the larger one is freed last, so it heads
        // the bin.
        unsafe {
            h.free(exact).unwrap();
            h.free(larger).unwrap();
        }
        assert_eq!(h.malloc(2040).unwrap().as_ptr(), exact);
        assert_eq!(h.malloc(2056).unwrap().as_ptr(), larger);
        h.check().unwrap();
    }

    /// A refill's blocks are carved from each free block found, as many as it holds: a free block
    /// of three blocks and a 16-byte sliver gives three adjacent blocks, the last taking the
    /// sliver; the rest come from the top. Every block is a valid allocated block, counted live,
    /// and each may be freed as soon as it is handed out.
    #[test]
    fn alloc_many_carves_runs_from_the_free_blocks_it_finds() {
        let mut h = heap_without_fast_lists();
        let need = block_size(1000).unwrap();
        let hole = h.malloc(3 * need + 16 - 8).unwrap().as_ptr();
        let guard = h.malloc(100).unwrap().as_ptr();
        // SAFETY: hole is a live block of this heap.
        unsafe { h.free(hole) }.unwrap();
        let live = h.stats().live_blocks;
        let mut got = Vec::new();
        assert_eq!(h.alloc_many(1000, 5, |_, p| got.push(p as usize)), Ok(5));
        let hole = hole as usize;
        assert_eq!(&got[..3], &[hole, hole + need, hole + 2 * need]);
        let sizes: Vec<usize> = got
            .iter()
            .map(|&p| {
                // SAFETY: each is a live block's payload.
                unsafe { header(block::of_payload(p as *mut u8)) }
                    .unwrap()
                    .size()
            })
            .collect();
        assert_eq!(sizes, [need, need, need + 16, need, need]);
        assert!(
            got[3] > guard as usize && got[4] == got[3] + need,
            "{got:x?}"
        );
        assert_eq!(h.stats().live_blocks, live + 5);
        assert_eq!(h.check(), Ok(()));
        for &p in &got {
            // SAFETY: p is a live block of this heap, freed once.
            unsafe { h.free(p as *mut u8) }.unwrap();
        }
        assert_eq!(h.check(), Ok(()));
        // Freed as they come, in the middle of the runs they were carved from.
        let mut n = 0;
        assert_eq!(
            h.alloc_many(1000, 7, |h, p| {
                n += 1;
                if n % 2 == 0 {
                    // SAFETY: p was just handed out by this heap.
                    unsafe { h.free(p) }.unwrap();
                }
            }),
            Ok(7)
        );
        assert_eq!(h.check(), Ok(()));
        assert_eq!(h.stats().live_blocks, live + 4);
    }

    /// A `realloc` that moves a block re-reads its header after allocating the new one: when
    /// that allocation freed the old block behind its back (here a forged fast-list entry, a
    /// block of a sliver more than the list's size carrying a forged mark, is consolidated),
    /// the block itself is reported corrupt, rather than freed a second time (which would name
    /// the block after it).
    #[test]
    fn a_move_that_finds_its_old_block_freed_reports_it() {
        let mut h = Heap::with_config(
            Sim::new(1 << 20),
            Config {
                top_pad: 0,
                ..Config::DEFAULT
            },
        );
        let r = h.malloc(1032).unwrap().as_ptr();
        let q = h.malloc(1032).unwrap().as_ptr();
        let _guard = h.malloc(24).unwrap();
        // A block of 1056 bytes: too large for the fast lists' double-free check in `locate`.
        let p = h.malloc(1048).unwrap().as_ptr();
        let _guard2 = h.malloc(24).unwrap();
        // SAFETY: r and q are live blocks of this heap, freed once: the fast list of 1040 bytes
        // holds q, then r.
        unsafe {
            h.free(r).unwrap();
            h.free(q).unwrap();
        }
        // SAFETY: q is a fast block and p a live block of the heap, each with 24+ payload bytes;
        // forging the list (q, then p) is the point.
        unsafe {
            crate::link::store(q, p);
            crate::link::store(p, ptr::null_mut());
            p.add(8).cast::<usize>().write(crate::cache::mark(p));
        }
        // Too large for the free memory: the move's allocation consolidates the fast lists.
        // SAFETY: p is live (to `locate`); the misuse above is what is under test.
        let e = unsafe { h.realloc(p, 8000) }.unwrap_err();
        assert_eq!(e, corrupt(Call::Realloc, block::of_payload(p)));
    }
}
