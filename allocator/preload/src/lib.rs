//! The preload face of tagalloc: `libtagalloc.so` exports the C `malloc` family.
//!
//! `LD_PRELOAD=target/release/libtagalloc.so PROGRAM` runs `PROGRAM` on tagalloc: every call to
//! `malloc`, `free`, `calloc`, `realloc`, `reallocarray`, `posix_memalign`, `aligned_alloc`,
//! `memalign`, `valloc`, `pvalloc` and `malloc_usable_size` lands here, on one heap behind one lock.
//! Failures set `errno` as glibc does; a misuse (double free, invalid pointer, overwritten tag)
//! prints one `tagalloc: ...` line on stderr and aborts. With `TAGALLOC_STATS=1` the statistics are
//! printed on stderr when the process exits.
//!
//! Which break: when this library *is* the process's `malloc` (preloaded), nothing else moves the
//! program break, so the heap uses the real one ([`System`]). When it was `dlopen`ed beside glibc's
//! `malloc` (the suite's `dylib` backend does this), glibc still owns the break and may move it
//! from any thread, so the heap uses a private [`Reserved`] break instead. The choice is made on
//! the first growth by asking the dynamic linker's resolution of `malloc` whether it is ours.
//!
//! With `TAGALLOC_TRACE=FILE`, every call is also recorded as a text trace (see [`trace`]).

#![allow(clippy::missing_safety_doc)]

use core::ffi::{c_int, c_void};
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicI32, Ordering};
use core_alloc::global::{die, LockedHeap};
use core_alloc::os;
use core_alloc::source::{Region, Reserved, Source, System};
use core_alloc::Error;

mod trace;
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod unwind;

/// The real break when tagalloc is the process's `malloc`, a private one otherwise.
struct Break {
    /// 0: not decided yet; 1: the real break; 2: a private break.
    mode: u8,
    // Built with `System::new`, whose contract (no other thread moves the break) holds in mode 1.
    system: System,
    reserved: Reserved,
}

impl Break {
    fn decide(&mut self) -> u8 {
        if self.mode == 0 {
            self.mode = if interposed() { 1 } else { 2 };
        }
        self.mode
    }
}

/// Whether this library is the process's `malloc`. The GOT entry for `malloc` holds whatever the
/// dynamic linker bound the name to: our own export when we were loaded at start-up ahead of libc
/// (`LD_PRELOAD`), glibc's when we were `dlopen`ed beside it.
fn interposed() -> bool {
    let bound: unsafe extern "C" fn(usize) -> *mut c_void = libc::malloc;
    let ours: unsafe extern "C" fn(usize) -> *mut c_void = malloc;
    bound as usize == ours as usize
}

// SAFETY: forwards to System (only in mode 1, where tagalloc is the process's malloc and so the only
// mover of the break) or to Reserved; both uphold the Source contract, and a heap never switches
// between them because the mode is decided once, before the first growth.
unsafe impl Source for Break {
    fn grow(&mut self, len: usize) -> Option<Region> {
        if self.decide() == 1 {
            self.system.grow(len)
        } else {
            self.reserved.grow(len)
        }
    }
    fn break_is_at(&self, end: usize) -> bool {
        match self.mode {
            1 => self.system.break_is_at(end),
            _ => self.reserved.break_is_at(end),
        }
    }
    unsafe fn shrink(&mut self, end: *mut u8, len: usize) -> bool {
        // SAFETY: forwarded contract.
        unsafe {
            match self.mode {
                1 => self.system.shrink(end, len),
                _ => self.reserved.shrink(end, len),
            }
        }
    }
    // Mappings: the default `mmap`, `munmap` and `mremap`.
}

static HEAP: LockedHeap<Break> = LockedHeap::with_source(Break {
    mode: 0,
    // SAFETY: only used in mode 1, where this library is the process's malloc (see `Break`).
    system: unsafe { System::new() },
    reserved: Reserved::new(),
});

/// The pointer on success; on failure `errno` is set and NULL returned; a misuse aborts.
#[inline]
fn finish(r: Result<NonNull<u8>, Error>) -> *mut c_void {
    match r {
        Ok(p) => p.as_ptr().cast(),
        Err(e) => fail(e),
    }
}

#[cold]
fn fail(e: Error) -> *mut c_void {
    if let Error::Misuse(_) = e {
        // Keep the trace of a program that is about to abort: it is the one worth replaying.
        trace::finish();
        die(e)
    }
    os::set_errno(e.errno());
    ptr::null_mut()
}

/// C `malloc`.
#[no_mangle]
pub extern "C" fn malloc(size: usize) -> *mut c_void {
    if !trace::on() {
        let p = HEAP.malloc_cached(size);
        if !p.is_null() {
            return p.cast();
        }
    }
    malloc_slow(size)
}

/// `malloc` past a cache hit: the locked heap, a refill, a report, or the trace.
#[cold]
#[inline(never)]
fn malloc_slow(size: usize) -> *mut c_void {
    if trace::on() {
        return traced("malloc", &[size], || HEAP.malloc(size));
    }
    finish(HEAP.malloc(size))
}

/// An allocating call made and recorded under the trace lock.
#[cold]
#[inline(never)]
fn traced(
    op: &str,
    args: &[usize],
    call: impl FnOnce() -> Result<NonNull<u8>, Error>,
) -> *mut c_void {
    let mut c = trace::enter();
    let r = call();
    c.alloc(op, args, &r);
    drop(c);
    finish(r)
}

/// C `calloc`.
#[no_mangle]
pub extern "C" fn calloc(count: usize, size: usize) -> *mut c_void {
    if !trace::on() {
        let p = HEAP.calloc_cached(count, size);
        if !p.is_null() {
            return p.cast();
        }
    }
    calloc_slow(count, size)
}

/// `calloc` past a cache hit: the locked heap, a refill, a report, or the trace.
#[cold]
#[inline(never)]
fn calloc_slow(count: usize, size: usize) -> *mut c_void {
    if trace::on() {
        return traced("calloc", &[count, size], || HEAP.calloc(count, size));
    }
    finish(HEAP.calloc(count, size))
}

/// C `free`; keeps `errno`.
#[no_mangle]
pub unsafe extern "C" fn free(p: *mut c_void) {
    if p.is_null() {
        return;
    }
    // SAFETY: C's contract for free: p came from this allocator and is not used again; anything
    // else is detected and reported (by `free_slow`, which `free_cached` leaves it to).
    if !trace::on() && unsafe { HEAP.free_cached(p.cast()) } {
        return;
    }
    // SAFETY: forwarded contract.
    unsafe { free_slow(p) }
}

/// `free` past the thread cache: the locked heap, a flush, a report, or the trace.
///
/// # Safety
/// As for `free`.
#[cold]
#[inline(never)]
unsafe fn free_slow(p: *mut c_void) {
    if trace::on() {
        // SAFETY: forwarded contract.
        return unsafe { traced_free(p) };
    }
    // SAFETY: forwarded contract. `LockedHeap::free` keeps errno.
    if let Err(e) = unsafe { HEAP.free(p.cast()) } {
        die(e)
    }
}

/// `free` recorded under the trace lock.
///
/// # Safety
/// As for `free`.
#[cold]
#[inline(never)]
unsafe fn traced_free(p: *mut c_void) {
    let mut c = trace::enter();
    c.free(p);
    // SAFETY: as for free.
    let r = unsafe { HEAP.free(p.cast()) };
    drop(c);
    if let Err(e) = r {
        fail(e);
    }
}

/// C `cfree`, an old alias of `free`.
#[no_mangle]
pub unsafe extern "C" fn cfree(p: *mut c_void) {
    // SAFETY: forwarded contract.
    unsafe { free(p) }
}

fn realloc_result(r: Result<Option<NonNull<u8>>, Error>) -> *mut c_void {
    match r {
        Ok(Some(p)) => p.as_ptr().cast(),
        Ok(None) => ptr::null_mut(),
        Err(e) => fail(e),
    }
}

/// C `realloc`; `realloc(p, 0)` frees `p` and, like `free`, keeps `errno`.
#[no_mangle]
pub unsafe extern "C" fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    if size == 0 && !p.is_null() {
        // SAFETY: forwarded contract.
        return unsafe { realloc_to_free(p) };
    }
    // SAFETY: forwarded contract.
    unsafe { realloc_any(p, size) }
}

/// `realloc(p, 0)` of a non-null `p`: a `free`, which never changes `errno`. Out of line, so the
/// common path saves no registers for it.
///
/// # Safety
/// As for `realloc`.
#[cold]
#[inline(never)]
unsafe fn realloc_to_free(p: *mut c_void) -> *mut c_void {
    let saved = os::errno();
    // SAFETY: forwarded contract.
    let r = unsafe { realloc_any(p, 0) };
    os::set_errno(saved);
    r
}

/// `realloc` proper.
///
/// # Safety
/// As for `realloc`.
#[inline(always)]
unsafe fn realloc_any(p: *mut c_void, size: usize) -> *mut c_void {
    if trace::on() {
        let mut c = trace::enter();
        // SAFETY: as below.
        let r = unsafe { HEAP.realloc(p.cast(), size) };
        c.realloc(p, size, &r);
        drop(c);
        return realloc_result(r);
    }
    // SAFETY: C's contract for realloc; misuse is detected and reported.
    realloc_result(unsafe { HEAP.realloc(p.cast(), size) })
}

/// C `reallocarray`.
#[no_mangle]
pub unsafe extern "C" fn reallocarray(p: *mut c_void, count: usize, size: usize) -> *mut c_void {
    if trace::on() {
        // Recorded as the realloc it is; an overflowing product as a failed realloc of SIZE_MAX.
        let mut c = trace::enter();
        // SAFETY: as below.
        let r = unsafe { HEAP.reallocarray(p.cast(), count, size) };
        c.realloc(p, count.saturating_mul(size), &r);
        drop(c);
        return realloc_result(r);
    }
    // SAFETY: as for realloc.
    realloc_result(unsafe { HEAP.reallocarray(p.cast(), count, size) })
}

/// C `posix_memalign`: returns 0, `EINVAL` or `ENOMEM`. As glibc's: a refused alignment leaves
/// `errno` alone; a failure to allocate also sets `errno` to `ENOMEM` (glibc's inner allocation
/// sets it, and its `tst-malloc-thread-fail` checks it).
#[no_mangle]
pub unsafe extern "C" fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> c_int {
    let saved = os::errno();
    let r = if trace::on() {
        let mut c = trace::enter();
        let r = HEAP.posix_memalign(align, size);
        c.alloc("posix_memalign", &[align, size], &r);
        r
    } else {
        HEAP.posix_memalign(align, size)
    };
    os::set_errno(saved);
    match r {
        Ok(p) => {
            // SAFETY: C's contract: out points at writable storage for a pointer.
            unsafe { out.write(p.as_ptr().cast()) };
            0
        }
        Err(Error::Misuse(m)) => die(Error::Misuse(m)),
        Err(Error::InvalidArgument) => libc::EINVAL,
        Err(e) => {
            os::set_errno(e.errno());
            e.errno()
        }
    }
}

/// C11 `aligned_alloc`.
#[no_mangle]
pub extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    if trace::on() {
        return traced("aligned_alloc", &[align, size], || {
            HEAP.aligned_alloc(align, size)
        });
    }
    finish(HEAP.aligned_alloc(align, size))
}

/// C `memalign`.
#[no_mangle]
pub extern "C" fn memalign(align: usize, size: usize) -> *mut c_void {
    if trace::on() {
        return traced("memalign", &[align, size], || HEAP.memalign(align, size));
    }
    finish(HEAP.memalign(align, size))
}

/// C `valloc`.
#[no_mangle]
pub extern "C" fn valloc(size: usize) -> *mut c_void {
    if trace::on() {
        return traced("memalign", &[os::PAGE, size], || HEAP.valloc(size));
    }
    finish(HEAP.valloc(size))
}

/// C `pvalloc`.
#[no_mangle]
pub extern "C" fn pvalloc(size: usize) -> *mut c_void {
    if trace::on() {
        let rounded = size
            .checked_add(os::PAGE - 1)
            .map_or(usize::MAX, |s| s & !(os::PAGE - 1));
        return traced("memalign", &[os::PAGE, rounded], || HEAP.pvalloc(size));
    }
    finish(HEAP.pvalloc(size))
}

/// C `malloc_usable_size`.
#[no_mangle]
pub unsafe extern "C" fn malloc_usable_size(p: *mut c_void) -> usize {
    if trace::on() {
        let mut c = trace::enter();
        c.usable_size(p);
    }
    // SAFETY: invalid pointers are detected and reported.
    match unsafe { HEAP.usable_size(p.cast()) } {
        Ok(n) => n,
        Err(e) => die(e),
    }
}

/// Where the statistics go at exit when `TAGALLOC_STATS` was set (to anything but empty or `0`)
/// at start-up: a private duplicate of stderr, because programs such as coreutils close stderr
/// in their own exit handlers, before this library's destructor runs. -1: not wanted.
static STATS_FD: AtomicI32 = AtomicI32::new(-1);

extern "C" fn at_start() {
    // SAFETY: getenv with a NUL-terminated name; the result is only read, before main.
    let wanted = unsafe {
        let v = libc::getenv(c"TAGALLOC_STATS".as_ptr());
        !v.is_null() && *v != 0 && !(*v == b'0' as libc::c_char && *v.add(1) == 0)
    };
    if wanted {
        // SAFETY: duplicating fd 2 to a free descriptor at or above 100, closed on exec.
        let fd = unsafe { libc::fcntl(2, libc::F_DUPFD_CLOEXEC, 100) };
        STATS_FD.store(if fd >= 0 { fd } else { 2 }, Ordering::Relaxed);
    }
    if interposed() {
        // SAFETY: a library bound ahead of libc was loaded at start-up, so its TLS is static.
        unsafe { core_alloc::cache::use_static_tls() };
    }
    trace::start();
}

extern "C" fn at_exit() {
    trace::finish();
    let fd = STATS_FD.load(Ordering::Relaxed);
    if fd >= 0 {
        let stats = HEAP.stats();
        stats.write_lines(&mut |b| os::write_fd(fd, b));
    }
}

#[used]
#[link_section = ".init_array"]
static AT_START: extern "C" fn() = at_start;

#[used]
#[link_section = ".fini_array"]
static AT_EXIT: extern "C" fn() = at_exit;
