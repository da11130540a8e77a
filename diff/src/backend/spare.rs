//! A private break kept for the next backend: [`Spare`].
//!
//! A fuzz target builds a fresh tagalloc heap for every input. Over a fresh [`Reserved`] that is a
//! reservation of 64 GiB of address space, an `mprotect` per MiB it grows, a page fault on every
//! page the trace touches and an unmap at the end: in an AddressSanitizer build of `ops`, 40 % of
//! the CPU time was the kernel's. A [`Spare`] is a `Reserved` that, once its heap is gone, is
//! rewound ([`Reserved::rewind`]: zeroed in place, as fresh memory must read) and kept for the
//! next backend, which then starts on pages that are already there. At most [`KEEP`] are kept
//! (the locked backend and the core one can be alive at once), and only those that grew no more
//! than [`MAX_REUSED`], so a trace that grew a huge break neither costs the next one a huge
//! `memset` nor keeps its pages resident.

use std::ptr::NonNull;
use std::sync::Mutex;

use tagalloc::source::{Region, Reserved, Source};

use super::tagalloc::TestSource;
use super::Fault;

/// Rewound breaks kept at most.
pub const KEEP: usize = 2;
/// A break that reached further than this is unmapped, not kept.
pub const MAX_REUSED: usize = 32 << 20;

static POOL: Mutex<Vec<Reserved>> = Mutex::new(Vec::new());

/// A private break ([`Reserved`]) taken from the pool of rewound ones, or fresh; given back to it
/// when dropped.
#[derive(Debug)]
pub struct Spare(Reserved);

impl Spare {
    /// A kept break if there is one, else a fresh one.
    pub fn take() -> Spare {
        let kept = POOL
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .pop();
        Spare(kept.unwrap_or_default())
    }
}

impl Drop for Spare {
    fn drop(&mut self) {
        let mut r = std::mem::take(&mut self.0);
        if r.high_water() > MAX_REUSED {
            return; // dropped: unmapped
        }
        // SAFETY: a Spare is only dropped with the heap over it (the heap owns its source and
        // drops it last), so nothing uses the break any more.
        unsafe { r.rewind() };
        let mut pool = POOL.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if pool.len() < KEEP {
            pool.push(r);
        }
    }
}

// SAFETY: every call is delegated unchanged to the `Reserved`, which keeps `Source`'s promises; a
// rewound one hands out only zeroed memory again, from the start of its break.
unsafe impl Source for Spare {
    fn grow(&mut self, len: usize) -> Option<Region> {
        self.0.grow(len)
    }

    fn break_is_at(&self, end: usize) -> bool {
        self.0.break_is_at(end)
    }

    unsafe fn shrink(&mut self, end: *mut u8, len: usize) -> bool {
        // SAFETY: the caller's contract is forwarded unchanged.
        unsafe { self.0.shrink(end, len) }
    }

    fn map(&mut self, len: usize) -> Option<NonNull<u8>> {
        self.0.map(len)
    }

    unsafe fn unmap(&mut self, ptr: *mut u8, len: usize) {
        // SAFETY: the caller's contract is forwarded unchanged.
        unsafe { self.0.unmap(ptr, len) }
    }

    unsafe fn remap(&mut self, ptr: *mut u8, old: usize, new: usize) -> Option<NonNull<u8>> {
        // SAFETY: the caller's contract is forwarded unchanged.
        unsafe { self.0.remap(ptr, old, new) }
    }
}

impl TestSource for Spare {
    const NAME: &'static str = "tagalloc-reserved";
    fn inject(&mut self, _: Fault) -> bool {
        false
    }
    fn pending(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_break_starts_again_zeroed_at_the_same_place() {
        let first = {
            let mut s = Spare::take();
            let r = s.grow(3 << 20).expect("grow");
            // SAFETY: the region is ours and 3 MiB long.
            unsafe { r.start.as_ptr().write_bytes(0xa5, r.len) };
            r.start.as_ptr() as usize
        };
        // Other tests of this binary may take the kept one first; try a few times.
        let again = (0..KEEP + 1).find_map(|_| {
            let mut s = Spare::take();
            let r = s.grow(3 << 20).expect("grow");
            let start = r.start.as_ptr();
            // SAFETY: as above.
            let bytes = unsafe { std::slice::from_raw_parts(start, r.len) };
            assert!(
                bytes.iter().all(|&b| b == 0),
                "a rewound break handed out dirty memory"
            );
            (start as usize == first).then_some(())
        });
        assert!(again.is_some(), "the break was not kept");
    }
}
