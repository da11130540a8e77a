//! The real program break and `mmap`: the preload library's source.
//!
//! Moving the break is only safe when no other allocator in the process moves it from another
//! thread at the same time. That holds in the preload build, where tagalloc *is* `malloc`; the
//! preload library checks it at start-up and switches to [`Reserved`](super::Reserved) otherwise.
//! Someone else moving the break from the same thread (a program calling `sbrk` itself) is fine:
//! [`grow`](System::grow) reports where the new memory really starts and the heap starts a new
//! segment when it is not contiguous.

use super::{align_up, Region, Source};
use crate::os::{self, PAGE};
use core::ptr::NonNull;

/// The process's real program break and `mmap`.
#[derive(Debug, Default)]
pub struct System {
    _private: (),
}

impl System {
    /// The real break.
    ///
    /// # Safety
    /// While a heap uses this source, no other thread may move the program break (in practice:
    /// tagalloc must be the process's `malloc`).
    pub const unsafe fn new() -> System {
        System { _private: () }
    }
}

// SAFETY: sbrk and anonymous mmap hand out zeroed, exclusive memory; grow aligns the start to 16 and
// the end to a page; shrink only moves the break when it is where we left it, and the kernel drops
// whole pages above a page-aligned break, so they read as zero when handed out again.
unsafe impl Source for System {
    fn grow(&mut self, len: usize) -> Option<Region> {
        let cur = os::current_break();
        let end = align_up(cur.checked_add(len)?, PAGE)?;
        let total = isize::try_from(end - cur).ok()?;
        // SAFETY: growing never releases memory; no other thread moves the break (constructor).
        let old = unsafe { os::sbrk(total) }?.as_ptr() as usize;
        let start = align_up(old, 16)?;
        let new_end = old + total as usize;
        let len = new_end.checked_sub(start)? & !15;
        // Keep the end page aligned even if the break moved between our two calls.
        let len = len - (start + len) % PAGE;
        Some(Region {
            start: NonNull::new(start as *mut u8)?,
            len,
        })
    }

    fn break_is_at(&self, end: usize) -> bool {
        os::current_break() == end
    }

    unsafe fn shrink(&mut self, end: *mut u8, len: usize) -> bool {
        if os::current_break() != end as usize {
            return false;
        }
        let Ok(dec) = isize::try_from(len) else {
            return false;
        };
        // SAFETY: the released bytes are ours and unused (contract) and the break is at their end.
        unsafe { os::sbrk(-dec) }.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The break is where the kernel says it is, and nowhere else. (Other test threads may move
    /// it through libc's malloc between the two reads, so the positive case is tried again.)
    #[test]
    fn break_is_at_only_the_current_break() {
        // SAFETY: this source is only asked where the break is; it never moves it.
        let s = unsafe { System::new() };
        assert!((0..100).any(|_| s.break_is_at(os::current_break())));
        assert!(!s.break_is_at(0));
        assert!(!s.break_is_at(usize::MAX & !(PAGE - 1)));
    }
}
