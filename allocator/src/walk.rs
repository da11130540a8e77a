//! The heap walker: checks every numbered invariant of [`crate::heap`] and reports the first one
//! broken, with its number and the address where it broke.
//!
//! [`Heap::check`] reads the whole heap, so it costs time proportional to the heap;
//! [`Heap::check_near`] checks only the blocks around the places an operation touched, in time
//! that does not grow with the heap. The suite runs the local check after every operation and the
//! whole walk every so often and at the end of a trace; production code runs neither. It allocates nothing, so it can run inside the
//! global allocator's lock. It never follows a link or a size it has not bounds-checked first, so
//! a heap corrupted by a stray write is reported, not crashed on.

use crate::binning::{self, bin_of, NBINS};
use crate::block::{footer_before, header};
use crate::heap::{Heap, Segment, SEG_HEAD};
use crate::os::PAGE;
use crate::source::Source;
use crate::tag::{FENCE, MAPPED, MIN_BLOCK, PREV_USED, USED};
use core::fmt;

/// A broken heap invariant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Corruption {
    /// The invariant's number in the module docs of `heap`.
    pub invariant: u8,
    /// Where it broke.
    pub addr: usize,
    /// What was found.
    pub what: &'static str,
}

/// The invariants' short names, by number.
pub const INVARIANTS: [&str; 13] = [
    "",
    "every tag carries a valid check",
    "blocks are well formed and tile their segment",
    "no two adjacent free blocks",
    "PREV_USED tells the truth",
    "free footers equal their headers",
    "free lists hold exactly the free blocks",
    "large chunks are well formed",
    "statistics agree with the heap",
    "fresh memory reads as zero",
    "cached blocks are allocated blocks of their class",
    "free-list links are protected and lead to free blocks of their bin",
    "fast lists hold marked allocated blocks of their size",
];

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = INVARIANTS.get(self.invariant as usize).unwrap_or(&"");
        write!(
            f,
            "invariant {} ({}) broken at {:#x}: {}",
            self.invariant, name, self.addr, self.what
        )
    }
}

impl std::error::Error for Corruption {}

fn corruption(invariant: u8, addr: usize, what: &'static str) -> Corruption {
    Corruption {
        invariant,
        addr,
        what,
    }
}

fn broken(invariant: u8, addr: usize, what: &'static str) -> Result<(), Corruption> {
    Err(corruption(invariant, addr, what))
}

/// What [`Heap::check_block`] found.
enum Walked {
    /// The segment's epilogue.
    Epilogue,
    /// A block of `size` bytes, allocated or free.
    Block { size: usize, used: bool },
}

/// A place an operation touched, for [`Heap::check_near`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Near {
    /// A payload address the operation returned, freed or resized.
    pub addr: usize,
    /// The payload of a block below `addr` that the caller holds (so allocated), where the walk
    /// may start; `None` (or a block of another segment): at the segment's first block.
    pub from: Option<usize>,
    /// Whether `addr` is allocated now: then it must be a block of a segment or a registered
    /// large chunk.
    pub live: bool,
}

/// Bytes past the fresh frontier that [`Heap::check_checkpoint`] compares with zero: where a
/// heap that overruns its top, or a stray write just past it, lands first.
pub const CHECKPOINT_FRESH: usize = 64 << 10;

impl<S: Source> Heap<S> {
    /// Checks every invariant of the heap; the first broken one is returned.
    pub fn check(&self) -> Result<(), Corruption> {
        self.check_walk(usize::MAX)
    }

    /// The whole walk of [`Heap::check`], except that invariant 9 is tested on the first
    /// [`CHECKPOINT_FRESH`] bytes past the fresh frontier only, not on all of the newest
    /// segment's fresh memory (up to its end, often a megabyte or more: comparing all of it was
    /// a third of a fuzz target's time). For the walks a caller makes every so often between
    /// operations; the last walk before a heap is called sound is [`Heap::check`].
    pub fn check_checkpoint(&self) -> Result<(), Corruption> {
        self.check_walk(CHECKPOINT_FRESH)
    }

    /// The whole walk, invariant 9 for at most `fresh` bytes past the fresh frontier.
    fn check_walk(&self, fresh: usize) -> Result<(), Corruption> {
        let mut free_per_bin = [0u32; NBINS];
        let mut live_blocks = 0usize;
        let mut live_bytes = 0usize;
        let mut brk_bytes = 0usize;
        let mut segments = 0usize;
        let mut seg = self.segments;
        while !seg.is_null() {
            segments += 1;
            // SAFETY: seg is a live segment record.
            let (end, next, mapped) = unsafe { ((*seg).end, (*seg).next, (*seg).mapped) };
            if !mapped {
                brk_bytes += end - seg as usize;
            }
            self.check_segment(seg, &mut free_per_bin, &mut live_blocks, &mut live_bytes)?;
            seg = next;
            if segments > self.stats.segments {
                return broken(8, seg as usize, "more segments linked than counted");
            }
        }
        self.check_lists(&free_per_bin)?;
        let (chunks, chunk_bytes) = self.check_chunks()?;
        live_blocks += chunks;
        live_bytes += chunk_bytes;
        // Fast blocks are allocated to the walk but freed to the statistics.
        let (fast_blocks, fast_bytes) = self.check_fast()?;
        let live_blocks = live_blocks.saturating_sub(fast_blocks);
        let live_bytes = live_bytes.saturating_sub(fast_bytes);
        let s = &self.stats;
        if s.live_blocks != live_blocks {
            return broken(8, 0, "live_blocks differs from the allocated blocks found");
        }
        if s.live_bytes != live_bytes {
            return broken(8, 0, "live_bytes differs from the allocated bytes found");
        }
        if s.segments != segments {
            return broken(8, 0, "segments differs from the segments linked");
        }
        if s.brk_bytes < brk_bytes {
            return broken(8, 0, "brk_bytes is less than the break segments hold");
        }
        self.check_fresh_within(fresh)
    }

    /// Checks what an operation near `near` could have broken, in time that does not grow with
    /// the heap: for each place, the blocks from the allocated block below it (or its segment's
    /// start) up to the first allocated block past it, every check of invariants 1 to 6 and 11
    /// the whole walk makes on a block, the segment's epilogue and top, or the large chunk's
    /// registry entry (7); then, once, the bitmap against the bins' heads (6), the registry's
    /// count against the statistics (8), and the first page past the fresh frontier (9).
    ///
    /// It sees less than [`Heap::check`] (free-list lengths, the statistics' sums, all of the
    /// fresh memory), so a caller that uses it between operations still runs the whole walk
    /// from time to time and before it calls a heap sound.
    pub fn check_near(&self, near: &[Near]) -> Result<(), Corruption> {
        for n in near {
            self.check_one_near(n)?;
        }
        // A bitmap word at a time against the heads, then the non-empty bins' heads only: the
        // fuzz targets run this after every operation, where a test per bin was a sixth of them.
        for word in 0..NBINS / 64 {
            let occupied = self.bins.occupied(word);
            let differ = occupied ^ self.bins.map_word(word);
            if differ != 0 {
                let bin = word * 64 + differ.trailing_zeros() as usize;
                broken(6, bin, "bitmap disagrees with the bin")?;
            }
            let mut bits = occupied;
            while bits != 0 {
                let bin = word * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let head = self.bins.head(bin);
                let first_in_line = self.free_link_ok(head, bin)
                    // SAFETY: read only once the head is known to be a free block of this bin.
                    && unsafe { binning::prev(head) }.is_null();
                if !first_in_line {
                    broken(
                        6,
                        head as usize,
                        "bin head is not a free block of its bin first in line",
                    )?;
                }
            }
        }
        if self.large.len() != self.stats.mapped_chunks {
            broken(8, 0, "mapped_chunks differs from the registry")?;
        }
        self.check_fresh_within(PAGE)
    }

    fn check_one_near(&self, n: &Near) -> Result<(), Corruption> {
        let Some(seg) = self.segment_of(n.addr) else {
            if self.large.contains(n.addr) {
                return self.check_chunk(n.addr).map(|_| ());
            }
            if n.live {
                broken(
                    2,
                    n.addr,
                    "a block just returned is in no segment and no large chunk",
                )?;
            }
            return Ok(());
        };
        // SAFETY: seg is a live segment record.
        let epi = unsafe { (*seg).end } - 8;
        let first = seg as usize + SEG_HEAD;
        let at = n.addr - 8;
        // Start at the allocated block below when it lies in the same segment (its PREV_USED bit
        // is then unknown), else at the segment's first block.
        let (mut b, mut prev_used) = match n.from {
            Some(p) if p % 16 == 0 && p >= first + 8 && p - 8 < at => (p - 8, None),
            _ => (first, Some(true)),
        };
        loop {
            match self.check_block(b, prev_used, epi)? {
                Walked::Epilogue => break,
                Walked::Block { size, used } => {
                    prev_used = Some(used);
                    if b > at && used {
                        break;
                    }
                    b += size;
                }
            }
        }
        self.check_top(epi)
    }

    /// The epilogue at `epi`, and the segment's last block when it is free (found from its
    /// footer; an allocated last block is found only by walking).
    fn check_top(&self, epi: usize) -> Result<(), Corruption> {
        // SAFETY: epi is the epilogue of a live segment.
        let Some(t) = (unsafe { header(epi as *mut u8) }) else {
            return broken(1, epi, "header fails its check");
        };
        if !t.has(FENCE) || !t.has(USED) || t.size() != 0 {
            broken(2, epi, "epilogue is not a fencepost")?;
        }
        if t.has(PREV_USED) {
            return Ok(());
        }
        // SAFETY: a clear PREV_USED bit promises a free block, with its footer, just below.
        let Some(f) = (unsafe { footer_before(epi as *mut u8) }) else {
            return broken(1, epi - 8, "footer fails its check");
        };
        match epi.checked_sub(f.size()) {
            Some(top) if f.size() >= MIN_BLOCK && self.owns(top, MIN_BLOCK) => {
                self.check_block(top, None, epi).map(|_| ())
            }
            _ => broken(
                2,
                epi - 8,
                "the top's footer names a block outside its segment",
            ),
        }
    }

    /// The segment whose blocks hold payload address `p`.
    fn segment_of(&self, p: usize) -> Option<*mut Segment> {
        let mut seg = self.segments;
        while !seg.is_null() {
            // SAFETY: seg is a live segment record.
            let (end, next) = unsafe { ((*seg).end, (*seg).next) };
            if p >= seg as usize + SEG_HEAD + 8 && p < end {
                return Some(seg);
            }
            seg = next;
        }
        None
    }

    fn check_segment(
        &self,
        seg: *mut Segment,
        free_per_bin: &mut [u32; NBINS],
        live_blocks: &mut usize,
        live_bytes: &mut usize,
    ) -> Result<(), Corruption> {
        // SAFETY: seg is a live segment record.
        let epi = unsafe { (*seg).end } - 8;
        let mut b = seg as usize + SEG_HEAD;
        let mut prev_used = Some(true);
        loop {
            match self.check_block(b, prev_used, epi)? {
                Walked::Epilogue => return Ok(()),
                Walked::Block { size, used: true } => {
                    *live_blocks += 1;
                    *live_bytes += size - 8;
                    prev_used = Some(true);
                    b += size;
                }
                Walked::Block { size, used: false } => {
                    free_per_bin[bin_of(size)] += 1;
                    prev_used = Some(false);
                    b += size;
                }
            }
        }
    }

    /// Checks the block (or epilogue) at `b` of the segment whose epilogue is at `epi`: its tags
    /// (invariants 1, 2, 5), its `PREV_USED` bit against `prev_used` when that is known (4), no
    /// free block after a free one (3), and a free block's links (6, 11): only what the block and
    /// the blocks its links name hold, so the whole walk and the local one share it.
    fn check_block(
        &self,
        b: usize,
        prev_used: Option<bool>,
        epi: usize,
    ) -> Result<Walked, Corruption> {
        if b % 16 != 8 {
            broken(2, b, "block does not start 8 modulo 16")?;
        }
        // SAFETY: b lies inside the segment (checked against `epi` below before moving on).
        let Some(t) = (unsafe { header(b as *mut u8) }) else {
            return Err(corruption(1, b, "header fails its check"));
        };
        if prev_used.is_some_and(|p| p != t.has(PREV_USED)) {
            broken(4, b, "PREV_USED bit disagrees with the block before")?;
        }
        if b == epi {
            if !t.has(FENCE) || !t.has(USED) || t.size() != 0 {
                broken(2, b, "epilogue is not a fencepost")?;
            }
            return Ok(Walked::Epilogue);
        }
        if t.has(FENCE) || t.has(MAPPED) {
            broken(2, b, "fencepost or large-chunk tag inside a segment")?;
        }
        let size = t.size();
        if size < MIN_BLOCK || size % 16 != 0 {
            broken(2, b, "block size below the minimum or not a multiple of 16")?;
        }
        if b + size > epi {
            broken(2, b, "block runs past its segment's epilogue")?;
        }
        if t.has(USED) {
            return Ok(Walked::Block { size, used: true });
        }
        if prev_used == Some(false) || (prev_used.is_none() && !t.has(PREV_USED)) {
            broken(3, b, "free block follows a free block")?;
        }
        // SAFETY: the footer is the block's last word, inside the segment.
        match unsafe { footer_before((b + size) as *mut u8) } {
            None => broken(1, b + size - 8, "footer fails its check")?,
            Some(f) if f != t => broken(5, b + size - 8, "footer differs from header")?,
            Some(_) => {}
        }
        let bin = bin_of(size);
        // SAFETY: a free block of at least MIN_BLOCK bytes has its links.
        let (next, prev) = unsafe { (binning::next(b as *mut u8), binning::prev(b as *mut u8)) };
        if !self.free_link_ok(next, bin) || !self.free_link_ok(prev, bin) {
            broken(
                11,
                b,
                "a link, revealed, is not null nor a free block of its bin",
            )?;
        }
        // SAFETY: both links were just checked to be null or free blocks of the heap.
        let linked_back = unsafe {
            (prev.is_null() && self.bins.head(bin) == b as *mut u8)
                || (!prev.is_null() && binning::next(prev) == b as *mut u8)
        };
        // SAFETY: as above.
        let linked_fwd = unsafe { next.is_null() || binning::prev(next) == b as *mut u8 };
        if !linked_back || !linked_fwd {
            broken(6, b, "free block is not consistently linked in its bin")?;
        }
        Ok(Walked::Block { size, used: false })
    }

    fn check_lists(&self, free_per_bin: &[u32; NBINS]) -> Result<(), Corruption> {
        for (bin, &expected) in free_per_bin.iter().enumerate() {
            let mut n = 0u32;
            let mut b = self.bins.head(bin);
            let mut prev = core::ptr::null_mut();
            while !b.is_null() {
                if n >= expected {
                    return broken(
                        6,
                        b as usize,
                        "bin holds more blocks than the heap has free",
                    );
                }
                if !self.free_link_ok(b, bin) && !b.is_null() {
                    // Not a valid free block of this bin: say which invariant, without reading
                    // memory that may not be the heap's.
                    if (b as usize) % 16 != 8 || !self.owns(b as usize, MIN_BLOCK) {
                        return broken(11, b as usize, "free list leads outside the heap");
                    }
                }
                // SAFETY: b lies inside the heap's memory (checked above, or a bin head).
                let Some(t) = (unsafe { header(b) }) else {
                    return broken(6, b as usize, "free list points at a bad header");
                };
                if t.has(USED) || bin_of(t.size()) != bin {
                    return broken(
                        6,
                        b as usize,
                        "free list holds a block of another bin or in use",
                    );
                }
                // SAFETY: b is a free block.
                if unsafe { binning::prev(b) } != prev {
                    return broken(6, b as usize, "prev link does not point back");
                }
                prev = b;
                // SAFETY: b is a free block.
                b = unsafe { binning::next(b) };
                n += 1;
            }
            if n != expected {
                return broken(
                    6,
                    bin,
                    "bin holds fewer blocks than the heap has free of its size",
                );
            }
            if self.bins.marked(bin) != (n > 0) {
                return broken(6, bin, "bitmap disagrees with the bin");
            }
        }
        Ok(())
    }

    fn check_chunks(&self) -> Result<(usize, usize), Corruption> {
        let mut res = Ok(());
        let mut count = 0;
        let mut bytes = 0;
        self.large.for_each(|p, _| {
            if res.is_err() {
                return;
            }
            count += 1;
            match self.check_chunk(p) {
                Ok(size) => bytes += size,
                Err(c) => res = Err(c),
            }
        });
        res?;
        if count != self.large.len() {
            broken(7, 0, "registry count differs from its entries")?;
        }
        if count != self.stats.mapped_chunks {
            broken(8, 0, "mapped_chunks differs from the registry")?;
        }
        Ok((count, bytes))
    }

    /// Checks the registered large chunk with payload `p` (invariant 7); its usable bytes.
    fn check_chunk(&self, p: usize) -> Result<usize, Corruption> {
        let h = p - 8;
        // SAFETY: registered payloads have their lead word and header before them.
        let (t, lead) = unsafe {
            (
                header(h as *mut u8),
                crate::track::load((h - 8) as *const u64) as usize,
            )
        };
        match t {
            Some(t) if t.has(USED | MAPPED) && !t.has(FENCE) => {
                if p % 16 != 0 || (h - lead) % PAGE != 0 || (lead + 8 + t.size()) % PAGE != 0 {
                    broken(7, h, "large chunk's mapping is not page aligned")?;
                }
                Ok(t.size())
            }
            _ => Err(corruption(
                7,
                h,
                "large chunk's header is not a valid USED|MAPPED tag",
            )),
        }
    }

    /// Invariant 9 for at most `span` bytes past the fresh frontier.
    fn check_fresh_within(&self, span: usize) -> Result<(), Corruption> {
        let seg = self.fresh_seg;
        if seg.is_null() {
            return Ok(());
        }
        let (_, clean) = self.clean_frontier();
        // SAFETY: seg is a live segment record.
        let end = unsafe { (*seg).end } - 16;
        let end = end.min(clean.saturating_add(span));
        // Compared a page at a time with libc's memcmp: this runs after every operation of the
        // fuzz targets, where a word-by-word loop would be instrumented compare by compare.
        static ZERO: [u8; 4096] = [0; 4096];
        let mut a = (clean + 7) & !7;
        while a < end {
            let n = (end - a).min(ZERO.len());
            // The page is free memory, poisoned in ASan builds, and memcmp is one ASan checks.
            crate::track::expose(a as *mut u8, n);
            // SAFETY: [a, a + n) lies inside the newest segment; ZERO holds n bytes.
            let differs =
                unsafe { libc::memcmp(a as *const libc::c_void, ZERO.as_ptr().cast(), n) } != 0;
            crate::track::hide(a as *mut u8, n);
            if differs {
                // SAFETY: as above, word by word to name the first non-zero one.
                let at = (a..a + n)
                    .step_by(8)
                    .find(|&w| unsafe { crate::track::load(w as *const u64) } != 0)
                    .unwrap_or(a);
                return broken(9, at, "memory past the fresh frontier is not zero");
            }
            a += n;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Near;
    use crate::block::{header, set_header};
    use crate::source::Sim;
    use crate::tag::{Tag, FENCE, PREV_USED, USED};
    use crate::Heap;

    /// A free block's footer that passes its check but differs from the header is invariant 5,
    /// reported at the footer (the block's last word).
    #[test]
    fn a_footer_unlike_its_header_is_reported_at_the_footer() {
        let mut h = Heap::new(Sim::new(1 << 20));
        let _a = h.malloc(1100).unwrap();
        let b = h.malloc(1200).unwrap().as_ptr();
        let _c = h.malloc(1300).unwrap();
        // SAFETY: b is live and freed once; its footer is then rewritten with a valid tag of the
        // same size and other flags.
        let (blk, size) = unsafe {
            h.free(b).unwrap();
            let blk = b.sub(8);
            let t = header(blk).unwrap();
            assert!(t.has(PREV_USED));
            crate::block::set_footer(blk, Tag::new(t.size(), 0));
            (blk as usize, t.size())
        };
        let e = h.check().unwrap_err();
        assert_eq!((e.invariant, e.addr), (5, blk + size - 8), "{e}");
    }

    /// A large chunk whose lead word and size were both shifted by 16 bytes still ends on a page
    /// boundary, but no longer starts on one: invariant 7.
    #[test]
    fn a_large_chunk_not_starting_on_a_page_is_reported() {
        let mut h = Heap::new(Sim::new(1 << 20));
        let p = h.malloc(200 << 10).unwrap().as_ptr();
        let hd = p.wrapping_sub(8);
        // SAFETY: p is a live large chunk: its header and lead word precede it in its mapping.
        unsafe {
            let t = header(hd).unwrap();
            assert!(t.has(crate::tag::MAPPED));
            let lead = hd.sub(8).cast::<u64>();
            lead.write(lead.read() + 16);
            set_header(hd, Tag::new(t.size() - 16, USED | crate::tag::MAPPED));
        }
        let e = h.check().unwrap_err();
        assert_eq!((e.invariant, e.addr), (7, hd as usize), "{e}");
    }

    #[test]
    fn the_local_check_sees_a_broken_footer_next_to_the_touched_block() {
        let mut h = Heap::new(Sim::new(1 << 20));
        // Blocks above the fast lists' sizes, so that the free below coalesces and writes tags.
        let a = h.malloc(1100).unwrap().as_ptr() as usize;
        let b = h.malloc(1200).unwrap().as_ptr() as usize;
        let c = h.malloc(1300).unwrap().as_ptr() as usize;
        let d = h.malloc(1400).unwrap().as_ptr() as usize;
        let last = h.malloc(1500).unwrap().as_ptr() as usize;
        // SAFETY: b is live and freed once.
        unsafe { h.free(b as *mut u8).unwrap() };
        let near = [Near {
            addr: b,
            from: Some(a),
            live: false,
        }];
        assert_eq!(h.check_near(&near), Ok(()));
        // The freed block's footer is the word before c's header.
        let footer = (c - 16) as *mut usize;
        // SAFETY: the footer lies inside the heap's own memory.
        unsafe { footer.write(footer.read() ^ 0x10) };
        let e = h.check_near(&near).unwrap_err();
        assert!(matches!(e.invariant, 1 | 5), "{e}");
        // Far from the damage, the local check sees nothing; the whole walk does.
        let far = [Near {
            addr: last,
            from: Some(d),
            live: true,
        }];
        assert_eq!(h.check_near(&far), Ok(()));
        assert!(h.check().is_err());
    }

    /// An epilogue whose tag passes its check but is not a fencepost (allocated, size 0) is
    /// invariant 2 broken, whichever part of it is wrong: for the whole walk, and for the local
    /// check of a block far below it, whose walk stops at the next allocated block and then looks
    /// at the segment's top.
    #[test]
    fn the_walker_reports_an_epilogue_that_is_not_a_fencepost() {
        let mut h = Heap::new(Sim::new(1 << 20));
        let p = h.malloc(100).unwrap().as_ptr();
        let q = h.malloc(100).unwrap().as_ptr();
        let near = [Near {
            addr: p as usize,
            from: None,
            live: true,
        }];
        assert_eq!(h.check_near(&near), Ok(()));
        // SAFETY: the heap has one segment, a live record; its epilogue is its last word.
        let epi = unsafe { (*h.segments).end - 8 } as *mut u8;
        // SAFETY: as above.
        let t = unsafe { header(epi) }.unwrap();
        assert!(t.has(FENCE) && t.has(USED) && t.size() == 0);
        for bad in [
            t.with(USED, false),
            Tag::new(16, 0).with(FENCE, true).with(USED, true),
        ] {
            let bad = bad.with(PREV_USED, t.has(PREV_USED));
            // SAFETY: the epilogue word is the heap's own memory; restored below.
            unsafe { set_header(epi, bad) };
            for e in [h.check_near(&near).unwrap_err(), h.check().unwrap_err()] {
                assert_eq!((e.invariant, e.addr), (2, epi as usize), "{bad:?}: {e}");
            }
        }
        // SAFETY: as above.
        unsafe { set_header(epi, t) };
        assert_eq!(h.check(), Ok(()));
        for r in [p, q] {
            // SAFETY: live blocks, freed once.
            unsafe { h.free(r) }.unwrap();
        }
    }

    /// A block just returned whose payload lies inside a segment's record, below its first
    /// block's payload, is in no segment: the local check reports it (invariant 2), while the
    /// first block's own payload passes.
    #[test]
    fn the_local_check_reports_a_live_block_inside_a_segment_record() {
        let mut h = Heap::new(Sim::new(1 << 20));
        let p = h.malloc(100).unwrap().as_ptr() as usize;
        let first = h.segments as usize + crate::heap::SEG_HEAD + 8;
        assert_eq!(p, first, "the first block of the heap's only segment");
        let at = |addr| Near {
            addr,
            from: None,
            live: true,
        };
        assert_eq!(h.check_near(&[at(p)]), Ok(()));
        let inside = first - 16;
        let e = h.check_near(&[at(inside)]).unwrap_err();
        assert_eq!((e.invariant, e.addr), (2, inside), "{e}");
    }

    #[test]
    fn a_checkpoint_walk_sees_fresh_memory_near_the_frontier_and_the_whole_walk_all_of_it() {
        let mut h = Heap::new(Sim::new(4 << 20));
        // A segment with more fresh memory past its frontier than a checkpoint compares.
        let _ = h.malloc(100).unwrap();
        let (_, clean) = h.clean_frontier();
        // SAFETY: fresh_seg is the heap's live newest segment.
        let end = unsafe { (*h.fresh_seg).end } - 16;
        let near = (clean + 64 + 7) & !7;
        let far = ((clean + super::CHECKPOINT_FRESH + 4096) & !7).min(end - 8);
        assert!(
            far >= clean + super::CHECKPOINT_FRESH,
            "the segment is too small"
        );
        assert_eq!((h.check(), h.check_checkpoint()), (Ok(()), Ok(())));
        for (at, checkpoint_sees) in [(far, false), (near, true)] {
            crate::track::expose(at as *mut u8, 8);
            // SAFETY: fresh memory inside the newest segment, past every block.
            unsafe { (at as *mut u64).write(1) };
            assert_eq!(h.check().map_err(|c| (c.invariant, c.addr)), Err((9, at)));
            assert_eq!(h.check_checkpoint().is_err(), checkpoint_sees, "at {at:#x}");
            // SAFETY: as above.
            unsafe { (at as *mut u64).write(0) };
            crate::track::hide(at as *mut u8, 8);
        }
        assert_eq!(h.check(), Ok(()));
    }
}
