//! A simulated operating system, for tests: fault injection and foreign break moves.
//!
//! The "break" moves inside one zeroed arena and "mappings" are separate zeroed allocations, all
//! taken from the Rust global allocator, so a heap over `Sim` needs no system calls and runs under
//! Miri. Tests steer it: [`Sim::fail_next`] makes the next OS requests fail (any of grow, map,
//! remap), and [`Sim::foreign_sbrk`] moves the break as another allocator on the same thread would.

use super::{align_up, Region, Source};
use crate::os::PAGE;
use std::alloc::{self, Layout};
use std::ptr::NonNull;

/// A simulated break and mappings with fault injection.
#[derive(Debug)]
pub struct Sim {
    /// The allocation holding the arena; `arena` is its first page-aligned byte.
    raw: NonNull<u8>,
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
        // Asked with 16-byte alignment (a page more, the base rounded up to a page), so the system
        // allocator can hand out lazily zeroed pages instead of clearing an aligned block.
        let layout = Layout::from_size_align(cap + PAGE, 16).expect("arena layout");
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        let raw = NonNull::new(raw).unwrap_or_else(|| alloc::handle_alloc_error(layout));
        let offset = raw.as_ptr().align_offset(PAGE);
        // SAFETY: offset < PAGE, inside the allocation.
        let arena = unsafe { NonNull::new_unchecked(raw.as_ptr().add(offset)) };
        Sim {
            raw,
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
            // SAFETY: each entry is a live allocation made by `map` with this layout.
            unsafe {
                alloc::dealloc(
                    addr as *mut u8,
                    Layout::from_size_align_unchecked(len, PAGE),
                )
            }
        }
        // SAFETY: the arena was allocated in `new` with this layout.
        unsafe {
            alloc::dealloc(
                self.raw.as_ptr(),
                Layout::from_size_align_unchecked(self.cap + PAGE, 16),
            )
        }
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
        let layout = Layout::from_size_align(len, PAGE).ok()?;
        // SAFETY: non-zero size.
        let p = NonNull::new(unsafe { alloc::alloc_zeroed(layout) })?;
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
        // SAFETY: the entry was a live allocation of this layout.
        unsafe { alloc::dealloc(ptr, Layout::from_size_align_unchecked(len, PAGE)) }
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
