//! What memory checkers see of tagalloc's blocks: AddressSanitizer's poisoning and valgrind's
//! client requests.
//!
//! A checker that only sees `mmap` and `brk` thinks every byte of the heap may be touched. Two
//! builds tell it more, and every other build compiles this module to nothing (each function is
//! an empty `#[inline(always)]` one, or the plain memory access):
//!
//! - **AddressSanitizer** (`cfg(tagalloc_asan)`, set by `build.rs` exactly when the crate is built
//!   with `-Zsanitizer=address`, as `cargo +nightly fuzz` builds it): every byte of a segment but
//!   its record is *poisoned* except the bytes of live payloads a caller asked for. Headers,
//!   footers, free blocks, blocks in the thread caches, on the fast lists and in the transfer
//!   cache, and the slack between a request and its block's end are poisoned; [`handed`]
//!   unpoisons exactly `[p, p + n)` when a block is handed out for `n` bytes, [`taken`] poisons
//!   the usable bytes again when it comes back, and `malloc_usable_size` unpoisons the usable
//!   bytes it reports (the caller may then use them). A large chunk has its lead word, header and
//!   alignment gap poisoned, not its payload or the page slack after it (its usable size runs to
//!   the mapping's end): poisoning writes a shadow byte per 8 bytes, and for mappings of
//!   megabytes that cost several times the rest of a fuzz run. A stray access, by a caller or by
//!   tagalloc itself, stops at once with ASan's report. tagalloc's own reads and writes of its
//!   metadata inside poisoned memory go through [`load`] and [`store`], which in this build are
//!   inline assembly that ASan does not instrument, so the shadow is never toggled around them
//!   (no cost, and no window in which a racing thread's stray write would pass).
//! - **valgrind** (the `valgrind` feature): client requests, the instruction sequence memcheck
//!   recognises and that does nothing on a real CPU. [`handed`] is `VALGRIND_MALLOCLIKE_BLOCK`,
//!   [`taken`] `VALGRIND_FREELIKE_BLOCK` (so memcheck reports leaks, uses after free and double
//!   frees of tagalloc's blocks), fresh segments are marked no-access, and error reporting is
//!   switched off while tagalloc itself runs ([`Inside`]): its metadata lives in memory the caller
//!   may not touch.
//!
//! Memory goes back to the source unpoisoned ([`expose`]), so whoever maps it next finds it clean.

#[cfg(feature = "valgrind")]
mod valgrind;

#[cfg(tagalloc_asan)]
extern "C" {
    fn __asan_poison_memory_region(addr: *const u8, size: usize);
    fn __asan_unpoison_memory_region(addr: *const u8, size: usize);
}

/// Whether this build poisons blocks for AddressSanitizer.
pub const ASAN: bool = cfg!(tagalloc_asan);

/// Whether this build tells valgrind about blocks (the `valgrind` feature).
pub const VALGRIND: bool = cfg!(feature = "valgrind");

/// Whether a block is a segment block or a large chunk: ASan poisons a large chunk's lead word
/// and header only (see the module docs), valgrind sees both alike.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A block of a segment.
    Block,
    /// A large chunk, mapped on its own.
    Chunk,
}

/// `[p, p + n)` is handed to a caller who asked for `n` bytes: addressable (ASan, a segment
/// block; a chunk's payload always is), a block of `n` bytes, defined if `zeroed` (valgrind).
#[inline(always)]
pub(crate) fn handed(kind: Kind, p: *mut u8, n: usize, zeroed: bool) {
    let _ = (kind, p, n, zeroed);
    #[cfg(tagalloc_asan)]
    if kind == Kind::Block {
        // SAFETY: the runtime only changes its shadow of the range, which is tagalloc's memory.
        unsafe { __asan_unpoison_memory_region(p, n) };
    }
    #[cfg(feature = "valgrind")]
    valgrind::malloclike(p, n, zeroed);
}

/// The block at `p`, of `usable` usable bytes, comes back from its caller: no byte of it may be
/// touched by anyone but tagalloc from now on (a chunk's mapping is about to go).
#[inline(always)]
pub(crate) fn taken(kind: Kind, p: *mut u8, usable: usize) {
    let _ = (kind, p, usable);
    #[cfg(tagalloc_asan)]
    if kind == Kind::Block {
        // SAFETY: as in `handed`.
        unsafe { __asan_poison_memory_region(p, usable) };
    }
    #[cfg(feature = "valgrind")]
    valgrind::freelike(p);
}

/// The live block at `p`, of `old_usable` usable bytes, now holds `n` bytes for its caller (a
/// `realloc` in place); the first `kept` bytes keep their contents.
#[inline(always)]
pub(crate) fn resized(kind: Kind, p: *mut u8, old_usable: usize, n: usize, kept: usize) {
    let _ = (kind, p, old_usable, n, kept);
    #[cfg(tagalloc_asan)]
    if kind == Kind::Block {
        // SAFETY: as in `handed`.
        unsafe {
            __asan_poison_memory_region(p, old_usable);
            __asan_unpoison_memory_region(p, n);
        }
    }
    #[cfg(feature = "valgrind")]
    valgrind::resized(p, n, kept);
}

/// The live chunk at `p` moved to `q`, where it holds `n` bytes for its caller, its first `kept`
/// as they were (`mremap` moved the contents; the old mapping is gone).
#[inline(always)]
pub(crate) fn moved(p: *mut u8, q: *mut u8, n: usize, kept: usize) {
    let _ = (p, q, n, kept);
    #[cfg(feature = "valgrind")]
    {
        valgrind::freelike(p);
        valgrind::malloclike(q, n, false);
        valgrind::defined(q, kept);
    }
}

/// `malloc_usable_size` told the caller it may use `[p, p + usable)` of a segment block.
#[inline(always)]
pub(crate) fn widened(p: *mut u8, usable: usize) {
    let _ = (p, usable);
    #[cfg(tagalloc_asan)]
    // SAFETY: as in `handed`.
    unsafe {
        __asan_unpoison_memory_region(p, usable)
    };
}

/// `[p, p + len)` is tagalloc's own (fresh segment memory, a chunk's mapping): no caller may touch
/// it.
#[inline(always)]
pub(crate) fn hide(p: *mut u8, len: usize) {
    let _ = (p, len);
    #[cfg(tagalloc_asan)]
    // SAFETY: as in `handed`.
    unsafe {
        __asan_poison_memory_region(p, len)
    };
    #[cfg(feature = "valgrind")]
    valgrind::noaccess(p, len);
}

/// `[p, p + len)` is about to be given back to the source, copied by it, or used as plain memory
/// by tagalloc (a segment record): addressable again for ASan, whatever it held. (valgrind follows
/// `munmap`, `mremap` and `brk` itself.)
#[inline(always)]
pub(crate) fn expose(p: *mut u8, len: usize) {
    let _ = (p, len);
    #[cfg(tagalloc_asan)]
    // SAFETY: as in `handed`.
    unsafe {
        __asan_unpoison_memory_region(p, len)
    };
}

/// Loads the word at `p`: tagalloc's read of its own metadata, which may lie in poisoned memory.
/// In an ASan build a single `mov` that ASan does not see (on x86-64 also a relaxed atomic load,
/// as the caches' header reads need); elsewhere a plain read.
///
/// # Safety
/// `p` must be 8-aligned and readable for 8 bytes.
#[inline(always)]
pub(crate) unsafe fn load(p: *const u64) -> u64 {
    #[cfg(tagalloc_asan)]
    {
        let v: u64;
        // SAFETY: readable and aligned (contract); the asm reads those 8 bytes and nothing else.
        unsafe {
            core::arch::asm!("mov {v}, qword ptr [{p}]", p = in(reg) p, v = out(reg) v,
                options(nostack, preserves_flags, readonly));
        }
        v
    }
    #[cfg(not(tagalloc_asan))]
    // SAFETY: readable and aligned (contract).
    unsafe {
        p.read()
    }
}

/// Loads the word at `p` atomically (relaxed), as [`load`]: for words another thread may rewrite
/// under the heap's lock (a cached block's header).
///
/// # Safety
/// As for [`load`].
#[inline(always)]
pub(crate) unsafe fn load_atomic(p: *mut u64) -> u64 {
    #[cfg(tagalloc_asan)]
    // SAFETY: forwarded contract; an aligned `mov` is atomic on x86-64.
    unsafe {
        load(p)
    }
    #[cfg(not(tagalloc_asan))]
    // SAFETY: forwarded contract.
    unsafe {
        core::sync::atomic::AtomicU64::from_ptr(p).load(core::sync::atomic::Ordering::Relaxed)
    }
}

/// Stores `v` at `p`: tagalloc's write of its own metadata, as [`load`].
///
/// # Safety
/// `p` must be 8-aligned and writable for 8 bytes, and hold no word anyone else still needs.
#[inline(always)]
pub(crate) unsafe fn store(p: *mut u64, v: u64) {
    #[cfg(tagalloc_asan)]
    // SAFETY: writable and aligned (contract); the asm writes those 8 bytes and nothing else.
    unsafe {
        core::arch::asm!("mov qword ptr [{p}], {v}", p = in(reg) p, v = in(reg) v,
            options(nostack, preserves_flags));
    }
    #[cfg(not(tagalloc_asan))]
    // SAFETY: writable and aligned (contract).
    unsafe {
        p.write(v)
    }
}

/// Flips the bits `mask` of the byte at `p` without AddressSanitizer seeing the access: for test
/// harnesses that corrupt tagalloc's memory on purpose (a write after free, an overflow onto the
/// next block's tag) to check that tagalloc reports it. The poisoning is left as it was.
///
/// # Safety
/// `p` must be readable and writable, and the damage must be what the caller means to test.
#[inline]
pub unsafe fn tamper(p: *mut u8, mask: u8) {
    #[cfg(tagalloc_asan)]
    // SAFETY: readable and writable (contract); the asm touches that byte alone.
    unsafe {
        core::arch::asm!("xor byte ptr [{p}], {m}", p = in(reg) p, m = in(reg_byte) mask,
            options(nostack));
    }
    #[cfg(not(tagalloc_asan))]
    // SAFETY: readable and writable (contract).
    unsafe {
        p.write(p.read() ^ mask)
    }
}

/// While a value lives, memcheck reports nothing this thread does (valgrind builds; nothing
/// otherwise): tagalloc's entry points hold one, since tagalloc reads and writes its metadata in
/// memory no caller may touch.
pub(crate) struct Inside(());

impl Inside {
    /// Enters tagalloc.
    #[inline(always)]
    pub(crate) fn enter() -> Inside {
        #[cfg(feature = "valgrind")]
        valgrind::errors(false);
        Inside(())
    }
}

impl Drop for Inside {
    #[inline(always)]
    fn drop(&mut self) {
        #[cfg(feature = "valgrind")]
        valgrind::errors(true);
    }
}
