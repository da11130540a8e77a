//! Segregated explicit free lists.
//!
//! Free blocks are kept in [`NBINS`] doubly linked lists by size. Bins `0..63` are exact: bin `i`
//! holds blocks of `32 + 16 i` bytes (32 to 1024). Above that, each power of two is split into four
//! bins. A bitmap marks the non-empty bins, so the smallest non-empty bin at or above a size is found
//! with a few `trailing_zeros`, and insertion and removal are O(1).
//!
//! The links live in the free block itself: `next` at `b + 8`, `prev` at `b + 16` (null at the ends),
//! each stored protected with its own address ([`crate::link`]). These functions read and write them;
//! checking a link before following it is the heap's business (`Heap::free_link_ok`), because it
//! takes knowing which memory is the heap's.

use crate::link;
use crate::tag::MIN_BLOCK;
use core::ptr;

/// How many bins there are.
pub const NBINS: usize = 256;
const EXACT: usize = 63;
const EXACT_MAX: usize = MIN_BLOCK + 16 * (EXACT - 1); // 1024

/// The bin that holds free blocks of `size` bytes.
#[inline]
pub const fn bin_of(size: usize) -> usize {
    let b = if size <= EXACT_MAX {
        (size - MIN_BLOCK) / 16
    } else {
        let log = (usize::BITS - 1 - size.leading_zeros()) as usize; // >= 10
        let sub = (size >> (log - 2)) & 3;
        64 + (log - 10) * 4 + sub
    };
    // Both branches are clamped, so that the compiler knows every bin index is in bounds (no
    // bounds check, no panic path); only the ranged bins ever reach the clamp.
    if b < NBINS {
        b
    } else {
        NBINS - 1
    }
}

/// The sizes `[lo, hi)` of ranged bin `bin` (`bin >= 64`, the first ranged bin: bin 63 is never
/// used): `bin_of(s) == bin` for every block size `s` (a multiple of 16) above [`EXACT_MAX`] in
/// that range; the last bin's `hi` is `usize::MAX`.
#[inline]
pub const fn bin_range(bin: usize) -> (usize, usize) {
    let log = 10 + (bin - 64) / 4;
    let sub = (bin - 64) % 4;
    let lo = (4 + sub) << (log - 2);
    if bin == NBINS - 1 {
        (lo, usize::MAX)
    } else {
        (lo, (5 + sub) << (log - 2))
    }
}

/// Whether every block in bin `bin` is at least `size` bytes (true for exact bins that match and any
/// bin above `bin_of(size)`).
#[inline]
pub const fn is_exact(bin: usize) -> bool {
    bin < EXACT
}

/// The heads of the free lists and the bitmap of non-empty bins.
pub struct Bins {
    heads: [*mut u8; NBINS],
    map: [u64; NBINS / 64],
}

/// Reads the `next` link of free block `b`, revealed (unchecked).
///
/// # Safety
/// `b` must be a free block of the heap, at least [`MIN_BLOCK`] bytes.
#[inline]
pub unsafe fn next(b: *mut u8) -> *mut u8 {
    // SAFETY: a free block has its links at b + 8 and b + 16 (contract).
    unsafe { link::load(b.add(8)) }
}

/// Reads the `prev` link of free block `b`, revealed (unchecked).
///
/// # Safety
/// As for [`next`].
#[inline]
pub unsafe fn prev(b: *mut u8) -> *mut u8 {
    // SAFETY: as in `next`.
    unsafe { link::load(b.add(16)) }
}

/// # Safety
/// As for [`next`].
#[inline]
unsafe fn set_next(b: *mut u8, v: *mut u8) {
    // SAFETY: as in `next`.
    unsafe { link::store(b.add(8), v) }
}

/// # Safety
/// As for [`next`].
#[inline]
unsafe fn set_prev(b: *mut u8, v: *mut u8) {
    // SAFETY: as in `next`.
    unsafe { link::store(b.add(16), v) }
}

impl Bins {
    /// Empty bins.
    pub const fn new() -> Bins {
        Bins {
            heads: [ptr::null_mut(); NBINS],
            map: [0; NBINS / 64],
        }
    }

    /// The first block of bin `bin`, or null.
    #[inline]
    pub fn head(&self, bin: usize) -> *mut u8 {
        self.heads[bin]
    }

    /// Pushes free block `b` of `size` bytes onto the front of its bin.
    ///
    /// # Safety
    /// `b` must be a free block of at least [`MIN_BLOCK`] bytes that is in no list.
    #[inline]
    pub unsafe fn insert(&mut self, b: *mut u8, size: usize) {
        let bin = bin_of(size);
        let head = self.heads[bin];
        // SAFETY: b is a free block (contract) and head, if not null, is the bin's first free block.
        unsafe {
            set_next(b, head);
            set_prev(b, ptr::null_mut());
            if !head.is_null() {
                set_prev(head, b);
            }
        }
        self.heads[bin] = b;
        self.map[bin / 64] |= 1 << (bin % 64);
    }

    /// Unlinks free block `b` of `size` bytes from its bin. Returns `false`, changing nothing, when
    /// the links around `b` do not point back at it (the list was corrupted).
    ///
    /// # Safety
    /// `b` must be a free block of at least [`MIN_BLOCK`] bytes whose links were checked
    /// (`Heap::free_link_ok`): null or free blocks of the heap.
    #[inline]
    pub unsafe fn remove(&mut self, b: *mut u8, size: usize) -> bool {
        let bin = bin_of(size);
        // SAFETY: b is a free block (contract); its neighbours in the list are free blocks too, as
        // long as the links are intact, which is what is checked before any write.
        unsafe {
            let n = next(b);
            let p = prev(b);
            let back_ok = if p.is_null() {
                self.heads[bin] == b
            } else {
                next(p) == b
            };
            let fwd_ok = n.is_null() || prev(n) == b;
            if !(back_ok && fwd_ok) {
                return false;
            }
            if p.is_null() {
                self.heads[bin] = n;
                if n.is_null() {
                    self.map[bin / 64] &= !(1 << (bin % 64));
                }
            } else {
                set_next(p, n);
            }
            if !n.is_null() {
                set_prev(n, p);
            }
        }
        true
    }

    /// The first non-empty bin at or above `bin`, if any.
    #[inline]
    pub fn nonempty_from(&self, bin: usize) -> Option<usize> {
        let mut word = bin / 64;
        let mut bits = self.map[word] & (!0u64 << (bin % 64));
        loop {
            if bits != 0 {
                return Some(word * 64 + bits.trailing_zeros() as usize);
            }
            word += 1;
            if word == self.map.len() {
                return None;
            }
            bits = self.map[word];
        }
    }

    /// Whether bin `bin` is marked non-empty in the bitmap.
    pub fn marked(&self, bin: usize) -> bool {
        self.map[bin / 64] & (1 << (bin % 64)) != 0
    }

    /// Word `word` of the bitmap: bit `i` marks bin `64 * word + i` non-empty.
    pub fn map_word(&self, word: usize) -> u64 {
        self.map[word]
    }

    /// The bins `64 * word ..` whose head is not null, as a bitmap word (what
    /// [`Bins::map_word`] should be). One pass over 64 heads without a branch, for the checks
    /// the walker makes after every operation.
    pub fn occupied(&self, word: usize) -> u64 {
        let mut bits = 0u64;
        for (i, head) in self.heads[word * 64..word * 64 + 64].iter().enumerate() {
            bits |= u64::from(!head.is_null()) << i;
        }
        bits
    }
}

impl Default for Bins {
    fn default() -> Self {
        Bins::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bin_ranges_are_the_sizes_bin_of_sends_there() {
        let mut size = EXACT_MAX + 16;
        while size < 1 << 40 {
            let bin = bin_of(size);
            let (lo, hi) = bin_range(bin);
            assert!(
                lo <= size && size < hi,
                "size {size} bin {bin} range {lo}..{hi}"
            );
            size += 16 + size / 64;
            size &= !15;
        }
        for bin in 64..NBINS - 1 {
            let (lo, hi) = bin_range(bin);
            assert_eq!(bin_of(hi.max(lo + 16)), bin + 1, "bin {bin}");
            assert_eq!(bin_of(hi - 16), bin, "bin {bin}");
            if bin > 64 {
                assert_eq!(bin_of(lo - 16), bin - 1, "bin {bin}");
            }
        }
        assert_eq!(bin_range(NBINS - 1).1, usize::MAX);
    }

    #[test]
    fn bins_are_monotonic_and_exact_below_1k() {
        assert_eq!(bin_of(32), 0);
        assert_eq!(bin_of(48), 1);
        assert_eq!(bin_of(1024), 62);
        assert_eq!(bin_of(1040), 64);
        let mut last = 0;
        let mut s = 32;
        while s < 1 << 40 {
            let b = bin_of(s);
            assert!(b >= last && b < NBINS, "size {s}");
            last = b;
            s += s / 7 / 16 * 16 + 16;
        }
        assert_eq!(bin_of(usize::MAX & !15), NBINS - 1);
    }

    #[test]
    fn occupied_is_the_bitmap_word_of_the_non_empty_heads() {
        let mut mem = [0u64; 16];
        let base = mem.as_mut_ptr().cast::<u8>();
        let mut bins = Bins::new();
        assert_eq!((0..NBINS / 64).map(|w| bins.occupied(w)).sum::<u64>(), 0);
        // SAFETY: each "block" is 24 bytes of `mem` for its links at +8 and +16, in no list.
        unsafe {
            bins.insert(base, 32); // bin 0
            bins.insert(base.add(32), 1040); // bin 64
            bins.insert(base.add(64), usize::MAX & !15); // the last bin
        }
        assert_eq!(bins.occupied(0), 1);
        assert_eq!(bins.occupied(1), 1);
        assert_eq!(bins.occupied(NBINS / 64 - 1), 1 << 63);
        for w in 0..NBINS / 64 {
            assert_eq!(bins.occupied(w), bins.map_word(w), "word {w}");
        }
        // SAFETY: the block is bin 64's only one.
        assert!(unsafe { bins.remove(base.add(32), 1040) });
        assert_eq!((bins.occupied(1), bins.map_word(1)), (0, 0));
    }

    #[test]
    fn every_block_in_a_higher_bin_is_larger() {
        // The lower bound of each log bin exceeds every size of the bins below it.
        for s in (1040..1 << 20).step_by(16) {
            let b = bin_of(s);
            assert!(bin_of(s - 16) <= b);
        }
    }
}
