//! `fork`: the `pthread_atfork` handlers that keep a child's heap consistent, and why they cannot
//! deadlock.
//!
//! A child of a multi-threaded process has one thread, a copy of the forking one. Had another
//! thread been halfway through changing the heap at the instant of `fork`, the child's heap would
//! be broken forever, so the `prepare` handler takes the heap lock and the transfer-cache lock
//! (every other thread is then outside the heap), the `parent` handler releases them, and the
//! `child` handler resets them to free (their holder is the child's own thread, in the handler).
//!
//! # Order with glibc's locks
//! glibc's `fork` runs the `prepare` handlers first, then takes its stdio list lock
//! (`_IO_list_lock`), then its own `malloc` locks: last, because a thread holding the list lock can
//! wait for a `FILE` lock whose holder is inside `malloc` (`fflush(NULL)` against `printf` that
//! grows a buffer; glibc bug 19431). A `prepare` handler that simply took our locks would hold
//! them while `fork` waits for the list lock: the `fflush(NULL)` thread holds the list lock and
//! waits for the `FILE` lock, whose holder waits in our `malloc` for our lock. So `prepare` takes
//! the list lock itself first, then ours, which is glibc's own order. The list lock is recursive,
//! so `fork` taking it again on the same thread just counts up; in the parent `fork` counts it
//! down before the `parent` handlers run and [`parent`] releases it; in the child `fork` resets
//! it to free before the `child` handlers run, so [`child`] leaves it alone.
//!
//! Our two locks: no thread ever holds both outside these handlers (`global` takes them one at a
//! time), so a `prepare` that holds neither waits only for holders about to release them without
//! waiting for anything. Each lock remembers whether a `fork` took it ([`HEAP_BY_FORK`],
//! [`CENTRAL_BY_FORK`]; only the lock's holder writes its flag), so `parent` and `child` give back
//! exactly what their own `prepare` took, even when two threads fork at once (glibc does not run
//! the `prepare` handlers of concurrent `fork`s one at a time).
//!
//! # When no lock is taken
//! - **A single-threaded process** (glibc's `__libc_single_threaded`): no other thread can be
//!   inside the heap, so the child inherits it exactly as the forking thread sees it; glibc's own
//!   `fork` takes neither its list lock nor its `malloc` locks then. This makes `fork` from a
//!   signal handler work (glibc's `tst-mallocfork2`): the handler may have interrupted its thread
//!   inside `malloc`, holding the heap lock, and taking it again would wait forever.
//! - **A lock the forking thread already holds** ([`Lock::held_by_me`], exact even in a signal
//!   handler): a multi-threaded process whose signal handler forks while its thread is inside
//!   `malloc`. No other thread can be inside the heap then either. The lock is neither taken nor
//!   reset: in the child it stays held by the child's one thread, whose interrupted call resumes
//!   when the handler returns, finishes its change to the heap and releases the lock — which is
//!   what keeps the child's heap consistent (resetting it would let a `malloc` in the child's
//!   handler run on a half-changed heap). The list lock is then not taken either: its holder may be
//!   waiting, through a `FILE` lock, for the heap lock this thread holds. That thread's `fork` will
//!   itself take the list lock after the handlers, the inverse of glibc's order, so while such a
//!   `fork` is under way ([`HOLDER_FORKS`]) a `prepare` of another thread that holds nothing waits
//!   for our locks only with [`Lock::try_lock`], and on failure gives back everything, the list
//!   lock included, and starts over once the other `fork` is done. (Two threads that each fork
//!   from a signal handler that interrupted each its own lock still wait for each other forever:
//!   each needs the lock whose holder is stuck in the other's handler. glibc's own `malloc` stops
//!   earlier: `fork` is not async-signal-safe in a multi-threaded glibc process.)

use crate::global::{CENTRAL_LOCK, LOCK};
use crate::lock::Lock;
use crate::os;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

static ATFORK: AtomicBool = AtomicBool::new(false);

/// Set by a `prepare` that took the heap lock (so only while the lock is held, by its holder).
static HEAP_BY_FORK: AtomicBool = AtomicBool::new(false);
/// Set by a `prepare` that took the transfer-cache lock.
static CENTRAL_BY_FORK: AtomicBool = AtomicBool::new(false);
/// The thread (its [`os::thread_pointer`]) whose `prepare` took the stdio list lock, or 0.
static STDIO_BY_FORK: AtomicUsize = AtomicUsize::new(0);
/// `fork`s under way whose thread held one of our locks when it called `fork` (module docs).
static HOLDER_FORKS: AtomicUsize = AtomicUsize::new(0);

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod glibc {
    extern "C" {
        /// Non-zero while the process has never had a second thread (glibc 2.32 and later).
        pub static __libc_single_threaded: core::ffi::c_char;
        /// glibc's stdio list lock, a recursive lock (exported since glibc 2.2.5).
        pub fn _IO_list_lock();
        pub fn _IO_list_unlock();
    }
}

/// Whether the process has only ever had one thread.
fn single_threaded() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: a byte glibc writes only when the process creates its first thread; reading it
        // with a volatile load sees the current value.
        unsafe { core::ptr::addr_of!(glibc::__libc_single_threaded).read_volatile() != 0 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

fn stdio_lock() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: glibc's list lock is recursive and taken the same way by `fork` itself.
    unsafe {
        glibc::_IO_list_lock()
    };
}

fn stdio_unlock() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: called only by the thread that took it in `prepare`.
    unsafe {
        glibc::_IO_list_unlock()
    };
}

fn me() -> usize {
    os::thread_pointer() as usize
}

/// Takes `lock` and sets its flag, waiting as long as needed.
fn take(lock: &Lock, by_fork: &AtomicBool) {
    lock.lock();
    by_fork.store(true, Ordering::Relaxed);
}

/// Takes `lock` and sets its flag, unless a holder's `fork` is under way first; returns whether
/// it took it.
fn take_unless_holder_forks(lock: &Lock, by_fork: &AtomicBool) -> bool {
    loop {
        if lock.try_lock() {
            by_fork.store(true, Ordering::Relaxed);
            return true;
        }
        if HOLDER_FORKS.load(Ordering::Acquire) != 0 {
            return false;
        }
        // SAFETY: sched_yield has no preconditions.
        unsafe { libc::sched_yield() };
    }
}

/// Gives back `lock` if a `fork` of this thread took it (`reset`: in the child, where its waiters
/// are gone).
fn give_back(lock: &Lock, by_fork: &AtomicBool, reset: bool) {
    if lock.held_by_me() && by_fork.load(Ordering::Relaxed) {
        by_fork.store(false, Ordering::Relaxed);
        if reset {
            lock.reset_after_fork();
        } else {
            lock.unlock();
        }
    }
}

extern "C" fn prepare() {
    if single_threaded() {
        return;
    }
    if LOCK.held_by_me() || CENTRAL_LOCK.held_by_me() {
        // Announced before waiting for anything, so a `prepare` that holds the other lock backs off.
        HOLDER_FORKS.fetch_add(1, Ordering::AcqRel);
        if !CENTRAL_LOCK.held_by_me() {
            take(&CENTRAL_LOCK, &CENTRAL_BY_FORK);
        }
        if !LOCK.held_by_me() {
            take(&LOCK, &HEAP_BY_FORK);
        }
        return;
    }
    loop {
        stdio_lock();
        STDIO_BY_FORK.store(me(), Ordering::Relaxed);
        if take_unless_holder_forks(&CENTRAL_LOCK, &CENTRAL_BY_FORK) {
            if take_unless_holder_forks(&LOCK, &HEAP_BY_FORK) {
                return;
            }
            give_back(&CENTRAL_LOCK, &CENTRAL_BY_FORK, false);
        }
        STDIO_BY_FORK.store(0, Ordering::Relaxed);
        stdio_unlock();
        while HOLDER_FORKS.load(Ordering::Acquire) != 0 {
            // SAFETY: sched_yield has no preconditions.
            unsafe { libc::sched_yield() };
        }
    }
}

/// What `parent` and `child` share: give back our locks, and say whether this thread was a
/// holder's `fork` (its lock is still held: it stays with the interrupted call) and whether its
/// `prepare` took the stdio list lock.
fn after(reset: bool) -> (bool, bool) {
    let holder = (LOCK.held_by_me() && !HEAP_BY_FORK.load(Ordering::Relaxed))
        || (CENTRAL_LOCK.held_by_me() && !CENTRAL_BY_FORK.load(Ordering::Relaxed));
    give_back(&LOCK, &HEAP_BY_FORK, reset);
    give_back(&CENTRAL_LOCK, &CENTRAL_BY_FORK, reset);
    let stdio = STDIO_BY_FORK.load(Ordering::Relaxed) == me();
    if stdio {
        STDIO_BY_FORK.store(0, Ordering::Relaxed);
    }
    (holder, stdio)
}

extern "C" fn parent() {
    // The parent's threads are the ones `prepare` saw: its answer is the same now.
    if single_threaded() {
        return;
    }
    let (holder, stdio) = after(false);
    if holder {
        HOLDER_FORKS.fetch_sub(1, Ordering::AcqRel);
    }
    if stdio {
        stdio_unlock();
    }
}

extern "C" fn child() {
    // No `single_threaded` test here: the child is single-threaded whatever `prepare` saw; the
    // flags say what it took.
    after(true);
    // The child's one thread is this one: no other `fork` is under way here. The stdio list lock
    // was reset by `fork` itself (module docs).
    HOLDER_FORKS.store(0, Ordering::Relaxed);
}

/// Registers the fork handlers once per process. Called outside the locks: `pthread_atfork` may
/// itself allocate.
#[inline]
pub(crate) fn register_atfork() {
    if !ATFORK.load(Ordering::Relaxed) && !ATFORK.swap(true, Ordering::AcqRel) {
        // SAFETY: the handlers are plain functions that stay valid for the life of the process.
        unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
    }
}

#[cfg(all(test, not(miri)))]
mod tests {
    use super::*;

    /// A thread that forks while it holds only the transfer cache's lock (say, from a signal
    /// handler inside a transfer) is a holder's `fork`: `prepare` announces it and takes the heap
    /// lock, and `parent` must see it as one, give the heap lock back and withdraw the
    /// announcement, or every later `fork` of the process would wait for it for ever.
    #[test]
    fn a_fork_by_the_transfer_cache_holder_is_withdrawn_in_the_parent() {
        // The handlers do nothing in a single-threaded process; glibc marks it multi-threaded
        // for good once a thread is created.
        std::thread::spawn(|| {}).join().unwrap();
        assert!(!single_threaded());
        CENTRAL_LOCK.lock();
        prepare();
        assert_eq!(
            HOLDER_FORKS.load(Ordering::Acquire),
            1,
            "prepare announced the holder"
        );
        assert!(LOCK.held_by_me(), "prepare took the heap lock");
        parent();
        let left = HOLDER_FORKS.load(Ordering::Acquire);
        let heap_held = LOCK.held_by_me();
        let central_held = CENTRAL_LOCK.held_by_me();
        if heap_held {
            HEAP_BY_FORK.store(false, Ordering::Relaxed);
            LOCK.unlock();
        }
        CENTRAL_LOCK.unlock();
        HOLDER_FORKS.store(0, Ordering::Release);
        assert_eq!(left, 0, "parent withdrew the holder's announcement");
        assert!(!heap_held, "parent gave the heap lock back");
        assert!(central_held, "the interrupted transfer keeps its lock");
    }
}
