//! Protected links: every pointer stored inside a freed block (the heap's free-list links, the
//! thread caches' and transfer cache's links) is kept scrambled with the address it is stored at,
//! the scheme glibc calls safe-linking:
//!
//! ```text
//! stored = (pos >> 12) ^ ptr          ptr = (pos >> 12) ^ stored
//! ```
//!
//! A program that writes into a block after freeing it overwrites these words. Without the
//! protection it could plant an address there and have `malloc` hand it out. With it, a planted
//! value reveals as that value scrambled with bits of an address the program does not know, which
//! nearly never lands on a 16-aligned address inside the heap; a zeroed or patterned word reveals
//! as a misaligned or far-away pointer. Every link is *checked* before it is followed (the checks
//! live beside their lists: [`Heap::free_link_ok`] for the bins, `cache` for the caches): aligned,
//! inside memory tagalloc owns, and pointing at a block whose tags say it is free (or cached).
//! A failed check is a [`MisuseKind::CorruptFree`](crate::MisuseKind::CorruptFree) report.
//!
//! A stored null is `pos >> 12`, never 0: a word cleared to zero does not read as the end of a list.

use crate::binning::bin_of;
use crate::block::header;
use crate::heap::{Heap, Segment, SEG_HEAD};
use crate::source::Source;
use crate::tag::{FENCE, MAPPED, MIN_BLOCK, USED};

/// The word stored at `pos` for a link to `ptr`.
#[inline(always)]
pub(crate) fn protect(pos: *mut u8, ptr: *mut u8) -> usize {
    ((pos as usize) >> 12) ^ ptr as usize
}

/// The link stored as `word` at `pos`.
#[inline(always)]
pub(crate) fn reveal(pos: *mut u8, word: usize) -> *mut u8 {
    (((pos as usize) >> 12) ^ word) as *mut u8
}

/// Reads the link stored at `pos`.
///
/// # Safety
/// `pos` must be 8-aligned and readable for 8 bytes.
#[inline(always)]
pub(crate) unsafe fn load(pos: *mut u8) -> *mut u8 {
    // SAFETY: readable and aligned (contract).
    reveal(pos, unsafe { crate::track::load(pos.cast()) } as usize)
}

/// Stores a link to `ptr` at `pos`.
///
/// # Safety
/// `pos` must be 8-aligned and writable for 8 bytes, and hold no word anyone else still needs.
#[inline(always)]
pub(crate) unsafe fn store(pos: *mut u8, ptr: *mut u8) {
    // SAFETY: writable and aligned (contract).
    unsafe { crate::track::store(pos.cast(), protect(pos, ptr) as u64) }
}

impl<S: Source> Heap<S> {
    /// Whether `[a, a + len)` lies inside memory the heap may read: the break range (break
    /// segments and whatever lies mapped between them, see `break_range`) or a mapped segment.
    pub(crate) fn owns(&self, a: usize, len: usize) -> bool {
        let Some(e) = a.checked_add(len) else {
            return false;
        };
        let (lo, hi) = self.break_range();
        if a >= lo && e <= hi {
            return true;
        }
        // SAFETY: segment records live as long as the heap (segments are never given back).
        let inside = |seg: *mut Segment| unsafe { a >= seg as usize + SEG_HEAD && e <= (*seg).end };
        let hit = self.owns_hit.get();
        if !hit.is_null() && inside(hit) {
            return true;
        }
        let mut seg = self.segments;
        while !seg.is_null() {
            if inside(seg) {
                self.owns_hit.set(seg);
                return true;
            }
            // SAFETY: seg is a live segment record.
            seg = unsafe { (*seg).next };
        }
        false
    }

    /// Whether `b`, revealed from a link, may be read through: null, or 8 modulo 16 with a whole
    /// minimum block inside the heap's memory. Enough before `Bins::remove`, which then checks that
    /// the neighbours' links point back at the block: a forged link that passes both would have to
    /// name a heap address whose own protected link reveals to the block, which takes knowing the
    /// heap's addresses. [`free_link_ok`](Heap::free_link_ok) adds the header check.
    #[inline]
    pub(crate) fn link_in_heap(&self, b: *mut u8) -> bool {
        b.is_null() || (b as usize % 16 == 8 && self.owns(b as usize, MIN_BLOCK))
    }

    /// Whether `b`, revealed from a link of a block in bin `bin`, may be followed: null (the end of
    /// the list), or a block 8 modulo 16 inside the heap's memory whose header is a valid free
    /// block's of that bin.
    pub(crate) fn free_link_ok(&self, b: *mut u8, bin: usize) -> bool {
        if b.is_null() {
            return true;
        }
        let a = b as usize;
        if a % 16 != 8 || !self.owns(a, MIN_BLOCK) {
            return false;
        }
        // SAFETY: the header lies inside the heap's memory (checked above).
        match unsafe { header(b) } {
            Some(t) => {
                !t.has(USED)
                    && !t.has(FENCE)
                    && !t.has(MAPPED)
                    && t.size() >= MIN_BLOCK
                    && bin_of(t.size()) == bin
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_scrambling() {
        let pos = 0x5555_1234_5008usize as *mut u8;
        let ptr = 0x5555_1234_9a18usize as *mut u8;
        assert_eq!(reveal(pos, protect(pos, ptr)), ptr);
        assert_ne!(protect(pos, ptr), ptr as usize, "stored scrambled");
        assert!(
            !reveal(pos, 0).is_null(),
            "a zeroed word is not a null link"
        );
        assert_ne!(reveal(pos, 0) as usize % 16, 8, "nor an aligned block");
    }
}
