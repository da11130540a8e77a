//! Memory sources: where a heap's memory comes from.
//!
//! A [`Source`] offers the two things an allocator needs from an operating system: a *break* that
//! grows and shrinks at one end (for heap segments), and independent *mappings* (for large chunks
//! and for segments when the break cannot grow). Three sources implement it:
//!
//! - [`System`]: the process's real program break (`sbrk`) and `mmap`. Only the preload library uses
//!   it, because only there is tagalloc the process's `malloc` and so the only user of `brk`.
//! - [`Reserved`]: a private break inside one large `mmap` reservation. What `#[global_allocator]`,
//!   tests and fuzzers use: it can never race glibc's `sbrk`, from any thread, because it never calls
//!   `sbrk` at all.
//! - [`Sim`]: a simulated break and mappings in memory of its own, with fault injection (the next
//!   requests fail) and simulated foreign moves of the break. Under Miri its memory comes from the
//!   Rust allocator, so a heap over it runs there.

mod reserved;
mod sim;
mod system;

pub use reserved::Reserved;
pub use sim::Sim;
pub use system::System;

use core::ptr::NonNull;

/// A run of fresh memory handed out by [`Source::grow`].
#[derive(Clone, Copy, Debug)]
pub struct Region {
    /// The first byte, 16-byte aligned.
    pub start: NonNull<u8>,
    /// The length in bytes; `start + len` is page aligned.
    pub len: usize,
}

/// Where a heap gets its memory.
///
/// # Safety
/// Implementations promise: memory from [`grow`](Source::grow) and [`map`](Source::map) is
/// readable, writable, reads as zero, is used by nothing else until given back, and stays valid
/// until given back; regions from `grow` start 16-byte aligned and end page aligned; after a
/// successful [`shrink`](Source::shrink) the released bytes read as zero if `grow` hands them out
/// again; mappings are page aligned.
pub unsafe trait Source {
    /// Moves the break up by at least `len` bytes. The region is contiguous with the previous one
    /// exactly when its start equals that region's end (nobody else moved the break in between).
    fn grow(&mut self, len: usize) -> Option<Region>;

    /// Whether the break is still at `end` (nobody moved it since we left it there).
    fn break_is_at(&self, end: usize) -> bool;

    /// Moves the break down by `len` bytes (a multiple of the page size) if it is at `end`;
    /// returns whether it did.
    ///
    /// # Safety
    /// `[end - len, end)` must be memory this source handed out through `grow` and that holds
    /// nothing the caller still needs.
    unsafe fn shrink(&mut self, end: *mut u8, len: usize) -> bool;

    /// Maps `len` bytes (a multiple of the page size) on their own. By default, anonymous `mmap`.
    fn map(&mut self, len: usize) -> Option<NonNull<u8>> {
        crate::os::map(len)
    }

    /// Gives back a mapping from [`map`](Source::map) or [`remap`](Source::remap). By default,
    /// `munmap`.
    ///
    /// # Safety
    /// `ptr` and `len` must describe exactly one live mapping of this source, unused afterwards.
    unsafe fn unmap(&mut self, ptr: *mut u8, len: usize) {
        // SAFETY: forwarded contract.
        unsafe { crate::os::unmap(ptr, len) }
    }

    /// Resizes a mapping, moving it if needed and keeping its contents; `None` leaves it untouched.
    /// By default, `mremap`.
    ///
    /// # Safety
    /// As for [`unmap`](Source::unmap); on success the old address must not be used again.
    unsafe fn remap(&mut self, ptr: *mut u8, old: usize, new: usize) -> Option<NonNull<u8>> {
        // SAFETY: forwarded contract.
        unsafe { crate::os::remap(ptr, old, new) }
    }
}

/// Rounds `n` up to a multiple of `align` (a power of two), or `None` on overflow.
#[inline]
pub(crate) const fn align_up(n: usize, align: usize) -> Option<usize> {
    match n.checked_add(align - 1) {
        Some(v) => Some(v & !(align - 1)),
        None => None,
    }
}
