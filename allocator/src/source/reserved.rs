//! A private break inside one `mmap` reservation.
//!
//! The reservation is address space only (`PROT_NONE`, `MAP_NORESERVE`); growing the break opens
//! pages with `mprotect`, shrinking it gives pages back with `madvise(MADV_DONTNEED)`. Because it
//! never calls `sbrk`, a heap over this source can live beside glibc's `malloc` in one process and
//! can never race it for the real break. It is made lazily, on the first growth.

use super::{align_up, Region, Source};
use crate::os::{self, PAGE};
use core::ptr::{self, NonNull};

/// Address space reserved by default: 64 GiB.
pub const DEFAULT_RESERVE: usize = 64 << 30;

/// A private, `mmap`-reserved break and `mmap` for large chunks.
#[derive(Debug)]
pub struct Reserved {
    base: *mut u8,
    cap: usize,
    brk: usize,
    committed: usize,
    /// The highest the break has been since the reservation was made or rewound.
    high: usize,
}

// SAFETY: the reservation is owned by this value alone; moving it to another thread moves that
// ownership with it.
unsafe impl Send for Reserved {}

impl Reserved {
    /// A private break of `DEFAULT_RESERVE` (64 GiB) bytes of address space.
    pub const fn new() -> Reserved {
        Reserved::with_capacity(DEFAULT_RESERVE)
    }

    /// A private break of `cap` bytes of address space (rounded up to a page).
    pub const fn with_capacity(cap: usize) -> Reserved {
        Reserved {
            base: ptr::null_mut(),
            cap: (cap + PAGE - 1) & !(PAGE - 1),
            brk: 0,
            committed: 0,
            high: 0,
        }
    }

    /// How far the break has reached since the reservation was made or last rewound: what
    /// [`rewind`](Reserved::rewind) zeroes.
    pub fn high_water(&self) -> usize {
        self.high
    }

    /// Empties the break for a new heap and keeps its pages: every byte the break reached is
    /// zeroed in place (fresh memory must read as zero), and the break goes back to its start. A
    /// heap made and dropped thousands of times a second (a fuzz target's) then costs a `memset`
    /// of what it used, not a reservation, page faults on every page it touches and an unmap.
    ///
    /// # Safety
    /// Nothing may use memory of this break any more: the heap over it is gone.
    pub unsafe fn rewind(&mut self) {
        if !self.base.is_null() {
            // What the heap left poisoned for AddressSanitizer (its headers, free blocks, the
            // slack of its blocks) is plain memory again for the next heap.
            crate::track::expose(self.base, self.high);
            // SAFETY: [base, base + high) was opened (high <= committed) and is unused (contract).
            unsafe { ptr::write_bytes(self.base, 0, self.high) };
        }
        self.brk = 0;
        self.high = 0;
    }
}

impl Default for Reserved {
    fn default() -> Self {
        Reserved::new()
    }
}

impl Drop for Reserved {
    fn drop(&mut self) {
        if !self.base.is_null() {
            // The addresses may be mapped again by someone else: nothing stays poisoned there.
            crate::track::expose(self.base, self.high);
            // SAFETY: the reservation is ours and the heap that used it is gone.
            unsafe { os::unmap(self.base, self.cap) }
        }
    }
}

// SAFETY: pages are opened from a private reservation that nothing else uses; fresh pages and pages
// given back with MADV_DONTNEED read as zero; ends are page aligned because the base is and every
// growth rounds to a page.
unsafe impl Source for Reserved {
    fn grow(&mut self, len: usize) -> Option<Region> {
        if self.base.is_null() {
            self.base = os::reserve(self.cap)?.as_ptr();
        }
        let len = align_up(len, PAGE)?;
        if len > self.cap - self.brk {
            return None;
        }
        let new_brk = self.brk + len;
        if new_brk > self.committed {
            let upto = align_up(new_brk, 1 << 20).unwrap_or(self.cap).min(self.cap);
            // SAFETY: [committed, upto) lies inside our reservation.
            if !unsafe { os::commit(self.base.add(self.committed), upto - self.committed) } {
                return None;
            }
            self.committed = upto;
        }
        // SAFETY: brk < cap, inside the reservation.
        let start = unsafe { self.base.add(self.brk) };
        self.brk = new_brk;
        self.high = self.high.max(new_brk);
        Some(Region {
            start: NonNull::new(start)?,
            len,
        })
    }

    fn break_is_at(&self, end: usize) -> bool {
        !self.base.is_null() && self.base as usize + self.brk == end
    }

    unsafe fn shrink(&mut self, end: *mut u8, len: usize) -> bool {
        if !self.break_is_at(end as usize) || len > self.brk || len % PAGE != 0 {
            return false;
        }
        self.brk -= len;
        // SAFETY: [brk, brk + len) is ours, page aligned, and unused (contract).
        unsafe { os::release(self.base.add(self.brk), len) };
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The break is where the last growth or shrink left it and nowhere else; before the first
    /// growth there is no break to be at, not even address 0.
    #[test]
    fn the_break_is_at_its_end_only() {
        let mut r = Reserved::with_capacity(1 << 20);
        assert!(!r.break_is_at(0));
        let a = r.grow(100).unwrap();
        let end = a.start.as_ptr() as usize + a.len;
        assert!(r.break_is_at(end));
        assert!(!r.break_is_at(end - PAGE) && !r.break_is_at(end + PAGE));
        // SAFETY: the page below the break is this source's and unused.
        let shrunk_below = unsafe { r.shrink((end - PAGE) as *mut u8, PAGE) };
        assert!(!shrunk_below, "a shrink must start at the break");
        // SAFETY: as above.
        assert!(unsafe { r.shrink(end as *mut u8, PAGE) });
        assert!(r.break_is_at(end - PAGE));
    }
}
