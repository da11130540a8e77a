//! The heap walker: checks every numbered invariant of [`crate::heap`] and reports the first one
//! broken, with its number and the address where it broke.
//!
//! It reads the whole heap, so it costs time proportional to the heap: the suite runs it after
//! every operation; production code never does. It allocates nothing, so it can run inside the
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

fn broken(invariant: u8, addr: usize, what: &'static str) -> Result<(), Corruption> {
    Err(Corruption {
        invariant,
        addr,
        what,
    })
}

impl<S: Source> Heap<S> {
    /// Checks every invariant of the heap; the first broken one is returned.
    pub fn check(&self) -> Result<(), Corruption> {
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
        self.check_fresh()
    }

    fn check_segment(
        &self,
        seg: *mut Segment,
        free_per_bin: &mut [u32; NBINS],
        live_blocks: &mut usize,
        live_bytes: &mut usize,
    ) -> Result<(), Corruption> {
        // SAFETY: seg is a live segment record.
        let end = unsafe { (*seg).end };
        let epi = end - 8;
        let mut b = seg as usize + SEG_HEAD;
        let mut prev_used = true;
        loop {
            if b % 16 != 8 {
                return broken(2, b, "block does not start 8 modulo 16");
            }
            // SAFETY: b lies inside the segment (checked against `epi` below before moving on).
            let Some(t) = (unsafe { header(b as *mut u8) }) else {
                return broken(1, b, "header fails its check");
            };
            if t.has(PREV_USED) != prev_used {
                return broken(4, b, "PREV_USED bit disagrees with the block before");
            }
            if b == epi {
                if !t.has(FENCE) || !t.has(USED) || t.size() != 0 {
                    return broken(2, b, "epilogue is not a fencepost");
                }
                return Ok(());
            }
            if t.has(FENCE) || t.has(MAPPED) {
                return broken(2, b, "fencepost or large-chunk tag inside a segment");
            }
            let size = t.size();
            if size < MIN_BLOCK || size % 16 != 0 {
                return broken(2, b, "block size below the minimum or not a multiple of 16");
            }
            if b + size > epi {
                return broken(2, b, "block runs past its segment's epilogue");
            }
            if t.has(USED) {
                *live_blocks += 1;
                *live_bytes += size - 8;
            } else {
                if !prev_used {
                    return broken(3, b, "free block follows a free block");
                }
                // SAFETY: the footer is the block's last word, inside the segment.
                match unsafe { footer_before((b + size) as *mut u8) } {
                    None => return broken(1, b + size - 8, "footer fails its check"),
                    Some(f) if f != t => {
                        return broken(5, b + size - 8, "footer differs from header")
                    }
                    Some(_) => {}
                }
                let bin = bin_of(size);
                free_per_bin[bin] += 1;
                // SAFETY: a free block of at least MIN_BLOCK bytes has its links.
                let (next, prev) =
                    unsafe { (binning::next(b as *mut u8), binning::prev(b as *mut u8)) };
                if !self.free_link_ok(next, bin) || !self.free_link_ok(prev, bin) {
                    return broken(
                        11,
                        b,
                        "a link, revealed, is not null nor a free block of its bin",
                    );
                }
                // SAFETY: both links were just checked to be null or free blocks of the heap.
                let linked_back = unsafe {
                    (prev.is_null() && self.bins.head(bin) == b as *mut u8)
                        || (!prev.is_null() && binning::next(prev) == b as *mut u8)
                };
                // SAFETY: as above.
                let linked_fwd = unsafe { next.is_null() || binning::prev(next) == b as *mut u8 };
                if !linked_back || !linked_fwd {
                    return broken(6, b, "free block is not consistently linked in its bin");
                }
            }
            prev_used = t.has(USED);
            b += size;
        }
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
            let h = p - 8;
            count += 1;
            // SAFETY: registered payloads have their lead word and header before them.
            let (t, lead) = unsafe { (header(h as *mut u8), ((h - 8) as *const usize).read()) };
            match t {
                Some(t) if t.has(USED | MAPPED) && !t.has(FENCE) => {
                    if p % 16 != 0 || (h - lead) % PAGE != 0 || (lead + 8 + t.size()) % PAGE != 0 {
                        res = broken(7, h, "large chunk's mapping is not page aligned");
                    }
                    bytes += t.size();
                }
                _ => res = broken(7, h, "large chunk's header is not a valid USED|MAPPED tag"),
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

    fn check_fresh(&self) -> Result<(), Corruption> {
        let seg = self.fresh_seg;
        if seg.is_null() {
            return Ok(());
        }
        let (_, clean) = self.clean_frontier();
        // SAFETY: seg is a live segment record.
        let end = unsafe { (*seg).end } - 16;
        // Compared a page at a time with libc's memcmp: this runs after every operation of the
        // fuzz targets, where a word-by-word loop would be instrumented compare by compare.
        static ZERO: [u8; 4096] = [0; 4096];
        let mut a = (clean + 7) & !7;
        while a < end {
            let n = (end - a).min(ZERO.len());
            // SAFETY: [a, a + n) lies inside the newest segment; ZERO holds n bytes.
            let differs =
                unsafe { libc::memcmp(a as *const libc::c_void, ZERO.as_ptr().cast(), n) } != 0;
            if differs {
                // SAFETY: as above, word by word to name the first non-zero one.
                let at = (a..a + n)
                    .step_by(8)
                    .find(|&w| unsafe { (w as *const u64).read() } != 0)
                    .unwrap_or(a);
                return broken(9, at, "memory past the fresh frontier is not zero");
            }
            a += n;
        }
        Ok(())
    }
}
