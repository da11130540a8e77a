//! A simulated operating system, for tests: fault injection and foreign break moves.
//!
//! The "break" moves inside one zeroed arena and "mappings" are separate zeroed regions: pages
//! mapped once from the kernel (under Miri, allocations from the Rust global allocator, so a heap
//! over `Sim` runs there too). Nothing a heap does to a `Sim` reaches the real break. Tests steer it: [`Sim::fail_next`] makes the next OS requests fail (any of grow, map,
//! remap), and [`Sim::foreign_sbrk`] moves the break as another allocator on the same thread would.

use super::{align_up, Region, Source};
use crate::os::PAGE;
#[cfg(miri)]
use std::alloc::{self, Layout};
use std::ptr::NonNull;

/// A simulated break and mappings with fault injection.
#[derive(Debug)]
pub struct Sim {
    arena: NonNull<u8>,
    cap: usize,
    brk: usize,
    fail: usize,
    requests: u64,
    maps: Vec<(usize, usize)>,
}

// SAFETY: the arena and the mappings are owned by this value alone.
unsafe impl Send for Sim {}

impl Sim {
    /// A simulated break over an arena of `cap` bytes (rounded up to a page).
    ///
    /// # Panics
    /// If the arena cannot be allocated (this is test machinery, not an allocation path).
    pub fn new(cap: usize) -> Sim {
        let cap = align_up(cap.max(PAGE), PAGE).expect("arena size");
        let arena = zeroed(cap).expect("the simulated arena");
        Sim {
            arena,
            cap,
            brk: 0,
            fail: 0,
            requests: 0,
            maps: Vec::new(),
        }
    }

    /// Makes the next `n` OS requests (grow, map, remap) fail.
    pub fn fail_next(&mut self, n: usize) {
        self.fail = n;
    }

    /// How many injected failures are still pending.
    pub fn pending_failures(&self) -> usize {
        self.fail
    }

    /// Moves the break up by `bytes` as someone else would (the next growth is not contiguous);
    /// returns `false` if the arena is too small.
    pub fn foreign_sbrk(&mut self, bytes: usize) -> bool {
        if bytes > self.cap - self.brk {
            return false;
        }
        self.brk += bytes;
        true
    }

    /// OS requests seen so far (failed ones included).
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// Bytes of the arena below the break.
    pub fn break_offset(&self) -> usize {
        self.brk
    }

    /// Live simulated mappings.
    pub fn mappings(&self) -> usize {
        self.maps.len()
    }

    fn request(&mut self) -> bool {
        self.requests += 1;
        if self.fail > 0 {
            self.fail -= 1;
            false
        } else {
            true
        }
    }

    fn base(&self) -> usize {
        self.arena.as_ptr() as usize
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        for &(addr, len) in &self.maps {
            // SAFETY: each entry is a live region made by `zeroed` with this length.
            unsafe { give_back(addr as *mut u8, len) }
        }
        // SAFETY: the arena was made by `zeroed` with this length.
        unsafe { give_back(self.arena.as_ptr(), self.cap) }
    }
}

/// `len` bytes (a multiple of the page size) of zeroed, page-aligned memory: pages mapped from the
/// kernel, zeroed lazily as they are touched, so making a large simulated arena costs nothing
/// until it is used; under Miri, an allocation from the Rust global allocator.
fn zeroed(len: usize) -> Option<NonNull<u8>> {
    #[cfg(not(miri))]
    {
        crate::os::map(len)
    }
    #[cfg(miri)]
    {
        let layout = Layout::from_size_align(len, PAGE).ok()?;
        // SAFETY: a non-zero size.
        NonNull::new(unsafe { alloc::alloc_zeroed(layout) })
    }
}

/// Gives back memory from [`zeroed`].
///
/// # Safety
/// `p` and `len` must be exactly a region from `zeroed`, unused afterwards.
unsafe fn give_back(p: *mut u8, len: usize) {
    #[cfg(not(miri))]
    // SAFETY: forwarded contract.
    unsafe {
        crate::os::unmap(p, len)
    }
    #[cfg(miri)]
    // SAFETY: forwarded contract: the layout `zeroed` used.
    unsafe {
        alloc::dealloc(p, Layout::from_size_align_unchecked(len, PAGE))
    }
}

// SAFETY: the arena and mappings are zeroed allocations owned by this value; regions start 16
// aligned and end page aligned (the arena is page aligned); shrink zeroes what it releases.
unsafe impl Source for Sim {
    fn grow(&mut self, len: usize) -> Option<Region> {
        if !self.request() {
            return None;
        }
        let start = align_up(self.brk, 16)?;
        let end = align_up(self.brk.checked_add(len)?, PAGE)?;
        if end > self.cap {
            return None;
        }
        self.brk = end;
        // SAFETY: start < cap, inside the arena.
        let p = unsafe { self.arena.as_ptr().add(start) };
        Some(Region {
            start: NonNull::new(p)?,
            len: end - start,
        })
    }

    fn break_is_at(&self, end: usize) -> bool {
        self.base() + self.brk == end
    }

    unsafe fn shrink(&mut self, end: *mut u8, len: usize) -> bool {
        if !self.break_is_at(end as usize) || len > self.brk {
            return false;
        }
        self.brk -= len;
        // SAFETY: [brk, brk + len) is inside the arena and unused (contract); zero it as the kernel
        // would hand it out again.
        unsafe { self.arena.as_ptr().add(self.brk).write_bytes(0, len) };
        true
    }

    fn map(&mut self, len: usize) -> Option<NonNull<u8>> {
        if !self.request() || len == 0 {
            return None;
        }
        let p = zeroed(align_up(len, PAGE)?)?;
        self.maps.push((p.as_ptr() as usize, len));
        Some(p)
    }

    unsafe fn unmap(&mut self, ptr: *mut u8, len: usize) {
        let Some(i) = self
            .maps
            .iter()
            .position(|&(a, l)| a == ptr as usize && l == len)
        else {
            return;
        };
        self.maps.swap_remove(i);
        // SAFETY: the entry was a live region from `zeroed` of this length.
        unsafe { give_back(ptr, len) }
    }

    unsafe fn remap(&mut self, ptr: *mut u8, old: usize, new: usize) -> Option<NonNull<u8>> {
        let p = self.map(new)?;
        // SAFETY: both are live allocations of at least min(old, new) bytes and do not overlap.
        unsafe { p.as_ptr().copy_from_nonoverlapping(ptr, old.min(new)) };
        // SAFETY: forwarded contract.
        unsafe { self.unmap(ptr, old) };
        Some(p)
    }
}
