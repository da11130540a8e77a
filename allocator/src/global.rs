//! `TagAlloc`: tagalloc as a Rust `#[global_allocator]`, and the locked heap under it.
//!
//! A [`LockedHeap`] is a heap behind a lock, shared by threads. [`TagAlloc`] is one over a
//! [`Reserved`] private break, so it never calls `sbrk` and can live beside glibc's `malloc` (which
//! Rust's runtime, C libraries and the test harness still use) without racing it from any thread.
//! The preload library uses a `LockedHeap` over its own source. All instances share one
//! process-wide [`Lock`], taken by `pthread_atfork` handlers around `fork`, so a child of a
//! multi-threaded parent finds every heap consistent and unlocked.
//!
//! ```no_run
//! #[global_allocator]
//! static GLOBAL: tagalloc::TagAlloc = tagalloc::TagAlloc::new();
//! ```

use crate::error::Error;
use crate::heap::Heap;
use crate::lock::Lock;
use crate::os;
use crate::source::{Reserved, Source};
use crate::stats::Stats;
use crate::walk::Corruption;
use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr;
use core::sync::atomic::{AtomicBool, Ordering};

static LOCK: Lock = Lock::new();
static ATFORK: AtomicBool = AtomicBool::new(false);

extern "C" fn prepare() {
    LOCK.lock();
}
extern "C" fn parent() {
    LOCK.unlock();
}
extern "C" fn child() {
    LOCK.reset_after_fork();
}

/// Registers the fork handlers once per process. Called outside the lock: `pthread_atfork` may
/// itself allocate.
fn register_atfork() {
    if !ATFORK.swap(true, Ordering::AcqRel) {
        // SAFETY: the handlers are plain functions that stay valid for the life of the process.
        unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
    }
}

/// Prints a misuse as one `tagalloc: ...` line on stderr with raw `write(2)` and aborts.
#[cold]
pub fn die(e: Error) -> ! {
    let mut buf = [0u8; 128];
    let n = match e {
        Error::Misuse(m) => m.write_line(&mut buf),
        _ => {
            let msg = b"tagalloc: internal error\n";
            buf[..msg.len()].copy_from_slice(msg);
            msg.len()
        }
    };
    os::write_stderr(&buf[..n]);
    os::abort()
}

/// A heap behind the process-wide lock, safe to share between threads and across `fork`.
pub struct LockedHeap<S: Source> {
    heap: UnsafeCell<Heap<S>>,
}

/// The thread-safe tagalloc heap for `#[global_allocator]`, over a private break.
pub type TagAlloc = LockedHeap<Reserved>;

// SAFETY: the heap is only touched with the process-wide lock held.
unsafe impl<S: Source + Send> Sync for LockedHeap<S> {}

impl TagAlloc {
    /// A new, empty allocator (nothing is reserved until the first allocation).
    pub const fn new() -> TagAlloc {
        LockedHeap::with_source(Reserved::new())
    }
}

impl<S: Source> LockedHeap<S> {
    /// A locked heap over `source`.
    pub const fn with_source(source: S) -> LockedHeap<S> {
        LockedHeap {
            heap: UnsafeCell::new(Heap::new(source)),
        }
    }

    /// Runs `f` on the heap with the lock held (registering the fork handlers on first use).
    /// `f` must not allocate from this heap (it would deadlock).
    pub fn with<R>(&self, f: impl FnOnce(&mut Heap<S>) -> R) -> R {
        register_atfork();
        LOCK.lock();
        // SAFETY: the lock gives exclusive access to the heap.
        let r = f(unsafe { &mut *self.heap.get() });
        LOCK.unlock();
        r
    }

    /// The heap's statistics.
    pub fn stats(&self) -> Stats {
        self.with(|h| h.stats())
    }

    /// Runs the heap walker.
    pub fn check(&self) -> Result<(), Corruption> {
        self.with(|h| h.check())
    }
}

impl Default for TagAlloc {
    fn default() -> Self {
        TagAlloc::new()
    }
}

fn or_null(r: Result<core::ptr::NonNull<u8>, Error>) -> *mut u8 {
    match r {
        Ok(p) => p.as_ptr(),
        Err(Error::Misuse(m)) => die(Error::Misuse(m)),
        Err(_) => ptr::null_mut(),
    }
}

// SAFETY: every method forwards to the heap under the lock; the heap returns blocks of at least the
// requested size, aligned to at least 16 and to `layout.align()` (through memalign above 16), and
// never hands out a block twice.
unsafe impl<S: Source + Send> GlobalAlloc for LockedHeap<S> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= 16 {
            self.with(|h| or_null(h.malloc(layout.size())))
        } else {
            self.with(|h| or_null(h.memalign(layout.align(), layout.size())))
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= 16 {
            self.with(|h| or_null(h.calloc(1, layout.size())))
        } else {
            let p = self.with(|h| or_null(h.memalign(layout.align(), layout.size())));
            if !p.is_null() {
                // SAFETY: p has at least layout.size() bytes.
                unsafe { ptr::write_bytes(p, 0, layout.size()) };
            }
            p
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: GlobalAlloc's contract: ptr came from this allocator and is not used again.
        if let Err(e) = self.with(|h| unsafe { h.free(ptr) }) {
            die(e)
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.align() <= 16 {
            // SAFETY: GlobalAlloc's contract: ptr is live and new_size is non-zero.
            match self.with(|h| unsafe { h.realloc(ptr, new_size) }) {
                Ok(Some(p)) => p.as_ptr(),
                Ok(None) => ptr::null_mut(),
                Err(Error::Misuse(m)) => die(Error::Misuse(m)),
                Err(_) => ptr::null_mut(),
            }
        } else {
            // SAFETY: the new layout has a valid size for this alignment (GlobalAlloc contract).
            let new =
                unsafe { self.alloc(Layout::from_size_align_unchecked(new_size, layout.align())) };
            if !new.is_null() {
                // SAFETY: both blocks are live and hold at least the smaller size.
                unsafe {
                    ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                    self.dealloc(ptr, layout);
                }
            }
            new
        }
    }
}
