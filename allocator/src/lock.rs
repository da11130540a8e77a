//! A mutex that never allocates: one atomic word that names its owner, and the `futex` system call.
//!
//! The word is 0 when the lock is free, and otherwise the owner's thread pointer
//! ([`os::thread_pointer`], at least 16-aligned) with bit 0 set when other threads may be waiting.
//! Taking a free lock is one compare-and-swap that also records the owner, so there is no instant at
//! which the lock is held but its owner unknown: a signal handler that interrupts the owner anywhere
//! can ask [`Lock::held_by_me`] and get the truth. `fork` needs this (see `global`'s fork handlers):
//! a handler that forks while its thread is inside `malloc` must not wait for its own lock.
//!
//! Waiters sleep with `FUTEX_WAIT` on the word's low 32 bits. That half alone does not name the
//! owner, but it is enough to sleep on: a waiter sleeps only while the waiting bit, which is in the
//! low half, is set, and whoever holds the lock with that bit set wakes a waiter when it unlocks.
//!
//! In a child after `fork` the lock can be reset to free, where the thread that held it (the fork
//! handler's thread, or one that no longer exists) will not release it.

use crate::os;
use core::sync::atomic::{AtomicU64, Ordering};

/// Bit 0 of the word: the lock is held and a thread may be waiting for it.
const WAITING: u64 = 1;

/// A futex-based lock without allocation, poisoning or panics, that knows its owner.
#[derive(Debug, Default)]
pub struct Lock {
    word: AtomicU64,
}

/// The calling thread's name in a lock word.
#[inline(always)]
fn me() -> u64 {
    os::thread_pointer() as u64 & !WAITING
}

impl Lock {
    /// An unlocked lock.
    pub const fn new() -> Lock {
        Lock {
            word: AtomicU64::new(0),
        }
    }

    /// Takes the lock, waiting as long as needed. Taking a lock the calling thread holds already
    /// waits forever: check [`held_by_me`](Lock::held_by_me) first where that can happen.
    #[inline]
    pub fn lock(&self) {
        let me = me();
        if self
            .word
            .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_contended(me);
        }
    }

    /// Takes the lock if it is free; returns whether it did.
    #[inline]
    pub fn try_lock(&self) -> bool {
        self.word
            .compare_exchange(0, me(), Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    #[cold]
    fn lock_contended(&self, me: u64) {
        for _ in 0..100 {
            core::hint::spin_loop();
            if self.word.load(Ordering::Relaxed) == 0
                && self
                    .word
                    .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return;
            }
        }
        loop {
            let w = self.word.load(Ordering::Relaxed);
            if w == 0 {
                // Taken with the waiting bit: another thread may still sleep on the word.
                if self
                    .word
                    .compare_exchange(0, me | WAITING, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return;
                }
                continue;
            }
            if w & WAITING == 0
                && self
                    .word
                    .compare_exchange(w, w | WAITING, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            // SAFETY: FUTEX_WAIT on the low half of our own aligned atomic word; it returns at once
            // if that half no longer holds the value with the waiting bit.
            unsafe {
                libc::syscall(
                    libc::SYS_futex,
                    self.futex_word(),
                    libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
                    (w | WAITING) as u32,
                    core::ptr::null::<libc::timespec>(),
                );
            }
        }
    }

    /// Releases the lock (the caller holds it).
    #[inline]
    pub fn unlock(&self) {
        if self.word.swap(0, Ordering::Release) & WAITING != 0 {
            // SAFETY: FUTEX_WAKE on the low half of our own aligned atomic word.
            unsafe {
                libc::syscall(
                    libc::SYS_futex,
                    self.futex_word(),
                    libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
                    1,
                );
            }
        }
    }

    /// Whether the calling thread holds the lock. Exact at any instant, also in a signal handler
    /// that interrupted the owner (ownership is taken and given up in one atomic step).
    #[inline]
    pub fn held_by_me(&self) -> bool {
        self.word.load(Ordering::Relaxed) & !WAITING == me()
    }

    /// The 32-bit half of the word that holds the waiting bit, for the futex calls.
    fn futex_word(&self) -> *mut u32 {
        let p = self.word.as_ptr().cast::<u32>();
        if cfg!(target_endian = "big") {
            p.wrapping_add(1)
        } else {
            p
        }
    }

    /// Forces the lock to unlocked: only for a child process after `fork`, where the lock was held
    /// by the forking thread (the `prepare` handler) and no other thread exists.
    pub fn reset_after_fork(&self) {
        self.word.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::{Lock, WAITING};
    use core::sync::atomic::Ordering;
    use std::sync::Arc;

    #[test]
    fn excludes() {
        struct Shared(Lock, std::cell::UnsafeCell<u64>);
        // SAFETY: the counter is only touched under the lock.
        unsafe impl Sync for Shared {}
        let s = Arc::new(Shared(Lock::new(), std::cell::UnsafeCell::new(0)));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        s.0.lock();
                        // SAFETY: under the lock.
                        unsafe { *s.1.get() += 1 };
                        s.0.unlock();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // SAFETY: all threads joined.
        assert_eq!(unsafe { *s.1.get() }, 80_000);
    }

    #[test]
    fn knows_its_owner() {
        let l = std::sync::Arc::new(Lock::new());
        assert!(!l.held_by_me());
        l.lock();
        assert!(l.held_by_me());
        let other = l.clone();
        let seen = std::thread::spawn(move || other.held_by_me())
            .join()
            .unwrap();
        assert!(!seen, "another thread does not hold it");
        l.unlock();
        assert!(!l.held_by_me());
    }

    /// A thread that finds the lock held marks the word as waited on (and then sleeps on the
    /// futex, to be woken by the unlock) instead of spinning until the lock is free.
    #[test]
    fn a_waiter_marks_the_word_and_is_woken() {
        let l = Arc::new(Lock::new());
        l.lock();
        let other = l.clone();
        let waiter = std::thread::spawn(move || {
            other.lock();
            other.unlock();
        });
        let start = std::time::Instant::now();
        while l.word.load(Ordering::Relaxed) & WAITING == 0 {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(5),
                "the waiting bit was never set"
            );
            std::thread::yield_now();
        }
        l.unlock();
        waiter.join().unwrap();
        assert_eq!(l.word.load(Ordering::Relaxed), 0);
    }
}
