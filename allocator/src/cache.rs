//! Per-thread caches of small and medium blocks: the lock-free fast path of
//! [`LockedHeap`](crate::LockedHeap).
//!
//! Each thread keeps, for each size class, a short singly linked list of blocks it freed: exact
//! classes for small blocks (32 to 1040 bytes), eight classes per power of two for medium ones
//! (1152 to 32768 bytes; a medium request is rounded up to its class, at most an eighth more, so
//! that the blocks freed are the sizes later requests take). `malloc` of a cached size pops one
//! without taking the heap's lock; `free` of a block of a class's size pushes it. Medium blocks
//! keep the heap's bins out of most medium requests too: without the caches, every one of them
//! paid a best-fit search, a split, and a coalesce on free, each with the hardening's checks. When a list is empty the thread refills it with a batch: a whole
//! batch another thread gave back, from the transfer cache (`Central`, under its own short lock),
//! or else blocks from the heap under the heap's lock. When a list is full, half of it goes back:
//! to the transfer cache when several threads share the caches, to the heap otherwise (a small
//! class's half onto the heap's fast list, a medium class's freed for real). On thread
//! exit the cache is given back the same way, through a `pthread` key destructor; and the
//! calling thread's whole cache is, under the heap's lock, before the heap would grow for a
//! large request while much of it is free (`Heap::reclaim`: cached blocks pin free areas).
//!
//! The thread's cache is found through `thread_local!`, or, when the library is known to live in
//! static TLS (preloaded), at a fixed offset from the thread pointer ([`use_static_tls`]).
//!
//! To the heap, a cached block is still allocated (its header keeps `USED`): the heap walker and
//! the statistics count it as live. The thread that caches a block owns its payload, never its
//! header, which the heap may rewrite under the lock when a neighbour changes. A cached block holds
//! the next link in its first payload word, protected ([`crate::link`]), and `KEY ^ address` in its
//! second, where `KEY` is random per process; a `free` that finds that mark is a double free. The
//! mark is cleared whenever a block leaves the cache.
//!
//! # Checks before a link is followed
//! A program that writes into a block after freeing it writes into a cached block. So a block is
//! handed out only after its own words are checked ([`intact`]: its mark, and its header, read
//! atomically, is an allocated tag of its class; the slow path verifies its check bits too), and the link it holds is checked before it
//! becomes the list's head ([`Follow`]): null, or 16-aligned inside the heap's break range
//! (`LockedHeap` publishes it). A link outside that range may still be a block of a mapped segment
//! (when the break cannot grow); the caller asks the heap under its lock. Every head has thus been
//! checked to lie in the heap's memory before any of its words is read. Chains between the caches
//! are walked with the same check. A failed check is reported by the caller as a corrupted free
//! block; the hot paths only decline, and the slow path judges.
//!
//! Only one `LockedHeap` per process caches (the first one used that asks for it, normally the
//! global allocator or the preload library's heap); others take the lock on every call. If the
//! owner is dropped, an epoch change makes every thread discard, not return, its cache.

use crate::heap::SEG_HEAD;
use crate::link;
use crate::tag::{Tag, MAPPED, MIN_BLOCK, PREV_USED, USED};
use crate::track;
use crate::transfer::{attach, detach};
pub(crate) use crate::transfer::{Central, Chain};
use crate::walk::Corruption;
use core::cell::UnsafeCell;
use core::ptr;
use core::sync::atomic::{AtomicIsize, AtomicU32, AtomicUsize, Ordering};

/// Small classes: exact block sizes of 32, 48, ... 1040 bytes (requests up to 1032 bytes, the
/// range glibc's tcache covers). These are also the heap's fast-list sizes.
pub(crate) const SMALL_CLASSES: usize = 64;
/// Medium classes: eight per power of two, blocks of 1152, 1280, ... 2048, 2304, ... 32768 bytes
/// (requests up to 32760). A medium request is rounded up to its class's block (at most 1/8 more),
/// so that blocks freed come back in the sizes later requests take.
pub(crate) const MEDIUM_CLASSES: usize = 40;
/// All classes cached: [`SMALL_CLASSES`] then [`MEDIUM_CLASSES`].
pub(crate) const CLASSES: usize = SMALL_CLASSES + MEDIUM_CLASSES;
/// The largest block a class holds.
pub(crate) const MAX_BLOCK: usize = 32 << 10;

/// The block size of each class. A table, so the hot path does not compute it.
const BLOCKS: [u32; CLASSES] = {
    let mut t = [0u32; CLASSES];
    let mut class = 0;
    while class < CLASSES {
        t[class] = if class < SMALL_CLASSES {
            ((class + 2) * 16) as u32
        } else {
            let k = class - SMALL_CLASSES;
            let e = 10 + k / 8;
            ((1 << e) + (k % 8 + 1) * (1 << (e - 3))) as u32
        };
        class += 1;
    }
    t
};

/// Blocks a class holds at most: about 8 KiB worth for a small class, between 4 and 64 blocks (64
/// of 128 bytes or less, 16 of 512, 8 of 1024), so small blocks rarely take a lock; about 16 KiB
/// worth for a medium one, between 2 and 16 blocks (14 of 1152 bytes, 4 of 4096, 2 of 8192 and
/// more). A thread holds at most about 0.5 MiB of small blocks and 0.8 MiB of medium ones.
#[inline(always)]
pub(crate) const fn limit(class: usize) -> u32 {
    LIMITS[class]
}

const LIMITS: [u32; CLASSES] = {
    let mut t = [0u32; CLASSES];
    let mut class = 0;
    while class < CLASSES {
        let (budget, lo, hi) = if class < SMALL_CLASSES {
            (8192, 4, 64)
        } else {
            (16384, 2, 16)
        };
        let n = budget / BLOCKS[class] as usize;
        t[class] = if n < lo {
            lo
        } else if n > hi {
            hi
        } else {
            n
        } as u32;
        class += 1;
    }
    t
};

/// The most blocks a class may come to hold ([`ThreadCache::trip`]): four times its starting
/// [`limit`] for a small class, at most 256 (32 KiB worth of blocks of 128 bytes), twice for a
/// medium one. A thread holds at most about 2 MiB of small blocks and 1.6 MiB of medium ones, and
/// only in the classes it churns through.
#[inline]
pub(crate) const fn max_limit(class: usize) -> u32 {
    let n = if class < SMALL_CLASSES {
        LIMITS[class] * 4
    } else {
        LIMITS[class] * 2
    };
    if n > 256 {
        256
    } else {
        n
    }
}

/// How far a class may grow under the owner's cap `cap` on starting limits: to four times its
/// starting limit (twice for a medium class), within [`max_limit`].
#[inline]
const fn bound(class: usize, cap: u32) -> u32 {
    let start = if LIMITS[class] < cap {
        LIMITS[class]
    } else {
        cap
    };
    let start = if start < 1 { 1 } else { start };
    let n = start.saturating_mul(if class < SMALL_CLASSES { 4 } else { 2 });
    if n < max_limit(class) {
        n
    } else {
        max_limit(class)
    }
}

/// Times a class's limit has grown, in any thread, since the process started ([`growths`]).
static GROWTHS: AtomicUsize = AtomicUsize::new(0);

/// How many times a thread-cache class's limit has grown ([`ThreadCache::trip`]) in this process:
/// a statistic, which the suite's tests read to see that the fuzz targets' corpora reach growth.
pub fn growths() -> usize {
    GROWTHS.load(Ordering::Relaxed)
}

/// Lock trips (refills of an empty class, flushes of a full one) after which a class's limit
/// doubles.
const TRIPS_TO_GROW: u8 = 16;

/// The owner's cap on blocks per class ([`Config::cache_limit`](crate::Config::cache_limit)),
/// applied to [`limit`] when a cache is (re)set for the owner's epoch.
static CAP: AtomicU32 = AtomicU32::new(u32::MAX);

/// One past the largest request the caches serve under a heap whose mmap threshold starts at
/// `mmap_threshold`: requests whose class's blocks would be large chunks are not cached, so every
/// cached block is a block of a break segment. (The threshold only ever rises.)
pub(crate) const fn cache_end(mmap_threshold: usize) -> usize {
    let mut class = CLASSES;
    while class > 0 {
        if usable_of(class - 1) < mmap_threshold {
            return usable_of(class - 1) + 1;
        }
        class -= 1;
    }
    0
}

/// The class of a request of `n` bytes, at most the usable bytes of the largest class (32760).
#[inline(always)]
pub(crate) fn class_of(n: usize) -> usize {
    class_and_block(n).0
}

/// The class of a request of `n` bytes (as [`class_of`]) and the block size of that class: a
/// small request's computed, a medium one's looked up (off the small path).
#[inline(always)]
fn class_and_block(n: usize) -> (usize, usize) {
    let n = if broken!(CacheClassEdge) {
        n.saturating_sub(7)
    } else {
        n
    };
    let block = (n + 23) & !15;
    let block = if block < 32 { 32 } else { block };
    if block <= 1040 {
        ((block >> 4) - 2, block)
    } else {
        // Clamped here, not in `medium`, so that the compiler knows the class is in bounds.
        let (class, block) = medium(block);
        (class.min(CLASSES - 1), block)
    }
}

/// The medium class of a block of `block` bytes (1041 to [`MAX_BLOCK`]; the last class for
/// more) and that class's block.
#[inline(never)]
fn medium(block: usize) -> (usize, usize) {
    let c = medium_class(block.min(MAX_BLOCK)).min(CLASSES - 1);
    (c, block_of(c))
}

/// The medium class whose block is the smallest at least `block` bytes (1041 to [`MAX_BLOCK`]):
/// `block - 1` lies in `[2^e, 2^(e+1))`, a power split in eight steps of `2^(e-3)`.
#[inline(always)]
const fn medium_class(block: usize) -> usize {
    let b = block - 1;
    let e = (usize::BITS - 1 - b.leading_zeros()) as usize;
    SMALL_CLASSES + (e - 10) * 8 + ((b >> (e - 3)) - 8)
}

/// The class whose blocks are `size` bytes, or `size - 16` (a refill may take a block one sliver
/// larger than its class: the heap does not split off less than a minimum block), for a block of
/// 32 to [`MAX_BLOCK`] + 16 bytes, a multiple of 16; `None` if no class has that size.
#[inline(always)]
pub(crate) fn class_of_block(size: usize) -> Option<usize> {
    if size <= 1040 {
        return Some((size >> 4) - 2);
    }
    let c = medium_class(size);
    if c < CLASSES && block_of(c) == size {
        return Some(c);
    }
    if size - 16 > 1040 {
        let c = medium_class(size - 16);
        if c < CLASSES && block_of(c) == size - 16 {
            return Some(c);
        }
    }
    None
}

/// `class`, clamped to the last class: every caller passes a class, so this changes nothing but
/// lets the compiler drop the bounds checks of the per-class arrays, and with them the panic paths
/// the preload library must not have (debug builds assert instead).
#[inline(always)]
pub(crate) const fn bounded(class: usize) -> usize {
    debug_assert!(class < CLASSES);
    if class < CLASSES {
        class
    } else {
        CLASSES - 1
    }
}

/// The block size of `class`.
#[inline(always)]
pub(crate) const fn block_of(class: usize) -> usize {
    BLOCKS[bounded(class)] as usize
}

/// The usable bytes of blocks of `class`.
#[inline(always)]
pub(crate) const fn usable_of(class: usize) -> usize {
    block_of(class) - 8
}

/// What the last local check of a thread cache saw ([`crate::LockedHeap::check_near_seen`]):
/// which cache, and each class's head, count and limit, so that the next one checks only the
/// classes where one of them changed since. Kept by the checker, one per thread it checks from.
#[derive(Clone, Debug)]
pub struct Seen {
    /// The cache's address (0: none seen yet).
    cache: usize,
    heads: [*mut u8; CLASSES],
    counts: [u32; CLASSES],
    limits: [u32; CLASSES],
}

// SAFETY: the heads are only compared with a cache's, never followed.
unsafe impl Send for Seen {}

impl Seen {
    /// Nothing seen: the next check walks every list.
    pub const fn new() -> Seen {
        Seen {
            cache: 0,
            heads: [ptr::null_mut(); CLASSES],
            counts: [0; CLASSES],
            limits: [0; CLASSES],
        }
    }
}

/// Classes compared at once by [`ThreadCache::check_changed`] before it looks at each.
const SEEN_CHUNK: usize = 8;

/// Element types without padding: every byte of a value is initialised.
trait Plain: Copy {}
impl Plain for u32 {}
impl Plain for *mut u8 {}

/// The bytes of `v`.
fn bytes_of<T: Plain>(v: &[T]) -> &[u8] {
    // SAFETY: the slice's memory is readable for its size, and a `Plain` type has no padding, so
    // every byte is initialised; the bytes live as long as `v`.
    unsafe { core::slice::from_raw_parts(v.as_ptr().cast::<u8>(), core::mem::size_of_val(v)) }
}

impl Default for Seen {
    fn default() -> Seen {
        Seen::new()
    }
}

/// One thread's cache.
pub(crate) struct ThreadCache {
    /// The epoch this cache was filled in (0: never used).
    epoch: usize,
    heads: [*mut u8; CLASSES],
    counts: [u32; CLASSES],
    /// Blocks each class holds at most in this epoch: [`limit`] capped by the owner's
    /// `cache_limit`, at least 1, to start; grown by [`ThreadCache::trip`] up to its [`bound`].
    limits: [u32; CLASSES],
    /// Lock trips of each class since its limit last grew ([`ThreadCache::trip`]).
    trips: [u8; CLASSES],
    /// Calls served here since the counts were last merged into the heap's statistics.
    pub(crate) mallocs: u64,
    pub(crate) callocs: u64,
    pub(crate) frees: u64,
    pub(crate) reallocs: u64,
}

impl ThreadCache {
    /// An empty cache of no epoch (set up on first use).
    const fn new() -> ThreadCache {
        ThreadCache {
            epoch: 0,
            heads: [ptr::null_mut(); CLASSES],
            counts: [0; CLASSES],
            limits: LIMITS,
            trips: [0; CLASSES],
            mallocs: 0,
            callocs: 0,
            frees: 0,
            reallocs: 0,
        }
    }
}

thread_local! {
    static CACHE: UnsafeCell<ThreadCache> = const { UnsafeCell::new(ThreadCache::new()) };
}

static OWNER: AtomicUsize = AtomicUsize::new(0);
static FLUSH: AtomicUsize = AtomicUsize::new(0);
static EPOCH: AtomicUsize = AtomicUsize::new(1);
static KEY: AtomicUsize = AtomicUsize::new(0);
static PKEY: AtomicUsize = AtomicUsize::new(usize::MAX);

/// Gives a whole cache back to its owner heap (type-erased `LockedHeap::<S>::flush_all`).
pub(crate) type FlushFn = unsafe fn(owner: usize, cache: &mut ThreadCache);

/// The distance from the thread pointer to this thread's cache, when the cache is known to live in
/// static TLS (0: unknown; ask `thread_local!`, which in a shared object costs a call to
/// `__tls_get_addr`). See [`use_static_tls`].
static TLS_OFFSET: AtomicIsize = AtomicIsize::new(0);

/// The calling thread's cache.
#[inline(always)]
fn cache() -> *mut ThreadCache {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    {
        let off = TLS_OFFSET.load(Ordering::Relaxed);
        if off != 0 {
            return crate::os::thread_pointer().wrapping_offset(off).cast();
        }
    }
    CACHE.with(|c| c.get())
}

/// Reaches the thread caches at a fixed offset from the thread pointer, as the initial-exec TLS
/// model does, instead of through `__tls_get_addr`.
///
/// # Safety
/// This module's thread-local storage must be static TLS: the object that holds this code was
/// loaded at program start-up (an executable, a library it links, or an `LD_PRELOAD` library),
/// not with `dlopen`. Static TLS lies at the same offset from every thread's thread pointer.
pub unsafe fn use_static_tls() {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    {
        let addr = CACHE.with(|c| c.get()) as isize;
        let off = addr.wrapping_sub(crate::os::thread_pointer() as isize);
        TLS_OFFSET.store(off, Ordering::Relaxed);
    }
}

/// Runs `f` on the calling thread's cache, first discarding it if its owner has changed.
#[inline]
pub(crate) fn with<R>(f: impl FnOnce(&mut ThreadCache) -> R) -> R {
    // SAFETY: the cache is this thread's own, and no caller re-enters `with` from inside `f`
    // (nothing under `f` allocates through the caching heap).
    let c = unsafe { &mut *cache() };
    let epoch = EPOCH.load(Ordering::Relaxed);
    if c.epoch != epoch {
        c.reset(epoch);
    }
    f(c)
}

/// The calling thread's cache, if it was set up in the current epoch (a stale cache holds no
/// blocks of the owner's). Unlike [`with`] it never sets a cache up, whose
/// `pthread_setspecific` may allocate, so it may be called under the heap's lock.
pub(crate) fn current() -> Option<*mut ThreadCache> {
    let c = cache();
    // SAFETY: the cache is this thread's own; only its epoch is read.
    (unsafe { (*c).epoch } == EPOCH.load(Ordering::Relaxed)).then_some(c)
}

/// The heap's break range `[lo, hi)`, where cached blocks normally lie (see the module docs), in
/// the form the hot path checks with one subtraction, one rotation and one comparison.
#[derive(Clone, Copy)]
pub(crate) struct Range {
    /// The first payload address a block of the range can have (past the first segment's record;
    /// payloads are 16-aligned, so this is too).
    pub(crate) first: usize,
    /// The 16-byte slots from `first` to the range's end: a payload `q` of the range is
    /// `first + 16 * k` with `k < slots` (0: no range yet).
    pub(crate) slots: usize,
}

impl Range {
    /// The range for the break range `[lo, hi)` (computed when it is published, not per call).
    pub(crate) const fn of(lo: usize, hi: usize) -> Range {
        let first = lo.wrapping_add(SEG_HEAD + 8).wrapping_add(15) & !15;
        Range {
            first,
            slots: hi.saturating_sub(first).div_ceil(16),
        }
    }

    /// Whether payload `q` is 16-aligned and inside the range. The rotation moves the low four
    /// bits of the offset to the top, so a misaligned `q` compares as huge, as does one below
    /// `first` (the subtraction wraps).
    #[inline(always)]
    pub(crate) fn holds(self, q: *mut u8) -> bool {
        (q as usize).wrapping_sub(self.first).rotate_right(4) < self.slots
    }
}

/// What the check of a link says.
pub(crate) enum Follow {
    /// Null or inside the break range: follow it.
    Yes(*mut u8),
    /// 16-aligned but outside the break range: follow it only if the heap owns it (a block of a
    /// mapped segment).
    AskHeap(*mut u8),
    /// Not a cached block's payload: the block holding the link was written to.
    No,
}

/// The link stored in cached payload `p`, checked.
///
/// # Safety
/// `p` must be a cached block's payload inside the heap's memory.
#[inline(always)]
pub(crate) unsafe fn follow(p: *mut u8, range: Range) -> Follow {
    // SAFETY: p is readable (contract); its first word is its link.
    let next = unsafe { link::load(p) };
    if next.is_null() || range.holds(next) {
        Follow::Yes(next)
    } else if next as usize % 16 == 0 {
        Follow::AskHeap(next)
    } else {
        Follow::No
    }
}

/// Whether cached payload `p` of `class` still carries its mark, and a header that is an
/// allocated block's of its class: its size, or 16 bytes more (a refill takes blocks from the heap,
/// which does not split off a remainder smaller than a block). The header's check bits are
/// verified too: this is the slow path's test, which judges and reports; the hot path
/// ([`pop_hot`]) makes the same test without the check bits.
///
/// # Safety
/// `p` must lie inside the heap's memory, 16-aligned, with 24 readable bytes after it and 8 before.
pub(crate) unsafe fn intact(p: *mut u8, class: usize) -> bool {
    // SAFETY: readable (contract). The header may be rewritten concurrently by the heap under the
    // lock (its PREV_USED bit), so it is read atomically; either value decodes.
    let (mark_word, word) = unsafe { (track::load(p.add(8).cast()) as usize, header_word(p)) };
    let size = block_of(class);
    mark_word == mark(p)
        && Tag::decode(p as usize - 8, word).is_some_and(|t| {
            let t = t.with(PREV_USED, false);
            t == Tag::new(size, USED) || t == Tag::new(size + 16, USED)
        })
}

/// The header word of cached payload `p`, read atomically (the heap may set or clear its
/// `PREV_USED` bit under the lock while the block is cached).
///
/// # Safety
/// `p - 8` must be readable and 8-aligned.
#[inline(always)]
unsafe fn header_word(p: *mut u8) -> u64 {
    // SAFETY: readable and aligned (contract).
    unsafe { track::load_atomic(p.sub(8).cast()) }
}

/// The hot path of `malloc`: pops a block of the class of `size` from the calling thread's cache and counts
/// the call, or returns null (empty class, a stale cache the slow path must reset first, or a
/// check that failed, which the slow path judges and reports).
///
/// The checks are those of [`follow`] and [`intact`], less two that guard nothing popping relies
/// on (each costs several per cent of a `malloc`-heavy program): the header's check bits (the
/// hash is a multiply) and the mark. What is checked is the link, and the header's size and flags,
/// which are what popping depends on and what an overwrite changes all but surely. A header
/// forged with the right size and flags but no valid check is still caught when the block is next
/// freed, whose lock-free path decodes the header in full; a write that changes only the mark (the
/// double-free test of `free`, cleared here anyway) corrupts nothing, and is still reported by the
/// slow path ([`ThreadCache::pop`]) and by the heap walker (invariant 10) while the block is
/// cached. The tests are computed together and taken with one branch.
#[inline(always)]
pub(crate) fn pop_hot(size: usize, zeroed: bool, range: impl FnOnce() -> Range) -> *mut u8 {
    {
        // SAFETY: as in `with`. Found first: finding it may call out (`__tls_get_addr`), and
        // nothing else is live yet that would have to be kept across the call.
        let c = unsafe { &mut *cache() };
        let (class, block) = class_and_block(size);
        let range = range();
        // `get`, not an index: a class out of bounds is taken as an empty class, not a panic.
        let Some(&p) = c.heads.get(class) else {
            return ptr::null_mut();
        };
        if p.is_null() || c.epoch != EPOCH.load(Ordering::Relaxed) {
            return ptr::null_mut();
        }
        // SAFETY: p is this thread's head: checked to lie in the heap's memory (module docs), with
        // its link and mark in its first two words and its header before it.
        let (next, word) = unsafe { (link::load(p), header_word(p)) };
        let ok = (next.is_null() | range.holds(next)) & Tag::is_allocated_of(word, block);
        if !ok {
            return ptr::null_mut();
        }
        c.heads[class] = next;
        // SAFETY: p is a cached block of this thread: its second word is the mark.
        unsafe { track::store(p.add(8).cast(), 0) };
        c.counts[class] -= 1;
        if zeroed {
            c.callocs += 1;
        } else {
            c.mallocs += 1;
        }
        p
    }
}

/// Counts a `realloc` served without the lock.
#[inline]
pub(crate) fn count_realloc() {
    // SAFETY: as in `with`.
    let c = unsafe { &mut *cache() };
    c.reallocs += 1;
}

/// The hot path of `free`: pushes block `p` of `class` and counts the call, or returns `false`
/// (full class, or a stale cache) for the slow path.
///
/// # Safety
/// As for [`ThreadCache::push`].
#[inline(always)]
pub(crate) unsafe fn push_hot(class: usize, p: *mut u8) -> bool {
    {
        // SAFETY: as in `with`.
        let c = unsafe { &mut *cache() };
        if c.counts[class] >= c.limits[class] || c.epoch != EPOCH.load(Ordering::Relaxed) {
            return false;
        }
        let mark = if broken!(CachePushNoMark) { 0 } else { mark(p) };
        // SAFETY: the caller hands over the payload (at least 24 bytes).
        unsafe {
            link::store(p, c.heads[class]);
            track::store(p.add(8).cast(), mark as u64);
        }
        c.heads[class] = p;
        c.counts[class] += 1;
        c.frees += 1;
        true
    }
}

/// Makes `owner` the caching heap if none is; returns whether `owner` is it. `cap` bounds the
/// blocks per class of every cache filled for it.
#[inline]
pub(crate) fn claim(owner: usize, flush: FlushFn, cap: u32) -> bool {
    let cur = OWNER.load(Ordering::Acquire);
    if cur == owner {
        return true;
    }
    if cur != 0 {
        return false;
    }
    claim_slow(owner, flush, cap)
}

/// Whether `owner` is the caching heap already (the hot paths' test: they leave claiming to the
/// slow path, so that nothing on them calls out).
#[inline(always)]
pub(crate) fn claimed(owner: usize) -> bool {
    OWNER.load(Ordering::Acquire) == owner
}

#[cold]
fn claim_slow(owner: usize, flush: FlushFn, cap: u32) -> bool {
    FLUSH.store(flush as usize, Ordering::Relaxed);
    CAP.store(cap.max(1), Ordering::Relaxed);
    ensure_key();
    if PKEY.load(Ordering::Relaxed) == usize::MAX {
        let mut k: libc::pthread_key_t = 0;
        // SAFETY: pthread_key_create writes the key; the destructor stays valid for the process.
        if unsafe { libc::pthread_key_create(&mut k, Some(thread_exit)) } == 0 {
            PKEY.store(k as usize, Ordering::Relaxed);
        }
    }
    OWNER
        .compare_exchange(0, owner, Ordering::AcqRel, Ordering::Acquire)
        .map_or_else(|cur| cur == owner, |_| true)
}

/// Gives up ownership (the owner is going away): every cache becomes stale and is discarded, and
/// the count of threads using the caches starts again from zero, so the next owner starts from the
/// same state as a new process would.
pub(crate) fn release(owner: usize) {
    if OWNER
        .compare_exchange(owner, 0, Ordering::AcqRel, Ordering::Relaxed)
        .is_ok()
    {
        EPOCH.fetch_add(1, Ordering::AcqRel);
        THREADS.store(0, Ordering::Relaxed);
    }
}

/// Draws the process's mark key if none is drawn yet (the caches and the heap's fast lists share
/// it: a block on either carries the same mark).
#[cold]
pub(crate) fn ensure_key() {
    if KEY.load(Ordering::Relaxed) == 0 {
        let _ = KEY.compare_exchange(0, random_key(), Ordering::Relaxed, Ordering::Relaxed);
    }
}

/// The mark key: the kernel's `AT_RANDOM` bytes mixed with an address (under Miri, which has no
/// `getauxval`, the address alone: the key only has to be non-zero and fixed for the process).
fn random_key() -> usize {
    #[cfg(not(miri))]
    // SAFETY: AT_RANDOM points at 16 random bytes the kernel gave the process.
    let bytes = unsafe { libc::getauxval(libc::AT_RANDOM) } as *const u8;
    #[cfg(miri)]
    let bytes: *const u8 = ptr::null();
    let mut k = 0x9E37_79B9_7F4A_7C15usize;
    if !bytes.is_null() {
        // SAFETY: 16 readable bytes (above); read 8 of the second half, unaligned.
        k ^= unsafe { bytes.add(8).cast::<usize>().read_unaligned() };
    }
    k ^= &KEY as *const _ as usize;
    k | 1
}

extern "C" fn thread_exit(_: *mut libc::c_void) {
    let owner = OWNER.load(Ordering::Acquire);
    let flush = FLUSH.load(Ordering::Relaxed);
    if owner == 0 || flush == 0 {
        return;
    }
    // SAFETY: FLUSH holds a `FlushFn` stored by `claim_slow` for this owner.
    let flush: FlushFn = unsafe { core::mem::transmute::<usize, FlushFn>(flush) };
    with(|c| {
        // SAFETY: the owner is live (it would have released ownership before going away).
        unsafe { flush(owner, c) }
    });
    // `with` counted this thread in the current epoch; a release in between may have reset it.
    let _ = THREADS.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
}

/// Threads whose cache is in use in the current epoch (set up and not yet exited).
static THREADS: AtomicUsize = AtomicUsize::new(0);

/// Whether more than one thread uses the caches: only then is the transfer cache worth its
/// blocks, which cannot coalesce while they wait there.
pub(crate) fn shared() -> bool {
    THREADS.load(Ordering::Relaxed) > 1
}

/// The mark a cached block carries in its second payload word.
#[inline]
pub(crate) fn mark(p: *mut u8) -> usize {
    KEY.load(Ordering::Relaxed) ^ p as usize
}

/// Whether payload `p` carries the cached-block mark.
///
/// # Safety
/// `p` must be readable for 16 bytes.
#[inline]
pub(crate) unsafe fn is_marked(p: *mut u8) -> bool {
    // SAFETY: readable (contract).
    unsafe { track::load(p.add(8).cast()) as usize == mark(p) }
}

impl ThreadCache {
    /// Detaches up to `n` blocks of `class`, still marked (see [`detach`]).
    pub(crate) fn take_chain(
        &mut self,
        class: usize,
        n: usize,
        range: Range,
        ask_heap: impl FnMut(*mut u8) -> bool,
    ) -> Result<Option<Chain>, *mut u8> {
        let class = bounded(class);
        detach(
            &mut self.heads[class],
            &mut self.counts[class],
            n,
            range,
            ask_heap,
        )
    }

    /// Adds `chain` to `class` (the caller keeps the class within its limit). A chain another
    /// thread gave back may be longer than this thread's limit (its class had grown,
    /// [`ThreadCache::trip`]): the limit grows to hold it, within [`max_limit`].
    pub(crate) fn put_chain(&mut self, class: usize, chain: Chain) {
        let class = bounded(class);
        let len = chain.len;
        if len > self.limits[class] {
            self.limits[class] = len.min(max_limit(class));
        }
        attach(&mut self.heads[class], &mut self.counts[class], chain);
    }
}

impl ThreadCache {
    /// Counts a lock trip of `class`: a refill of it empty, or a flush of it full. Every
    /// [`TRIPS_TO_GROW`]th doubles its limit, up to its [`bound`] (four times its start, twice
    /// for a medium class, under the owner's cap on starting limits), so that a
    /// class the program allocates and frees in batches larger than the cache holds (sh6bench's
    /// shape, glibc's bench-malloc-simple) takes the lock less often for each block, while classes
    /// it uses lightly keep their small limits.
    pub(crate) fn trip(&mut self, class: usize) {
        let class = bounded(class);
        self.trips[class] += 1;
        if self.trips[class] >= TRIPS_TO_GROW {
            self.trips[class] = 0;
            let grown = self.limits[class]
                .saturating_mul(2)
                .min(bound(class, CAP.load(Ordering::Relaxed)));
            if grown > self.limits[class] {
                GROWTHS.fetch_add(1, Ordering::Relaxed);
            }
            self.limits[class] = grown;
        }
    }

    /// Blocks a refill takes, and a flush gives back: half the class's limit, at least one.
    #[inline]
    pub(crate) fn batch(&self, class: usize) -> usize {
        (self.limits[bounded(class)] as usize / 2).max(1)
    }

    fn reset(&mut self, epoch: usize) {
        THREADS.fetch_add(1, Ordering::Relaxed);
        let cap = CAP.load(Ordering::Relaxed);
        for class in 0..CLASSES {
            self.limits[class] = limit(class).min(cap).max(1);
        }
        self.trips = [0; CLASSES];
        self.heads = [ptr::null_mut(); CLASSES];
        self.counts = [0; CLASSES];
        self.epoch = epoch;
        let k = PKEY.load(Ordering::Relaxed);
        if k != usize::MAX {
            // SAFETY: a key made by pthread_key_create; any non-null value makes the destructor run.
            unsafe {
                libc::pthread_setspecific(k as libc::pthread_key_t, 1 as *const libc::c_void)
            };
        }
    }

    /// Pops a block of `class`, clearing its mark, after the checks of the module docs: `Ok(None)`
    /// when the class is empty, `Err` naming the cached block whose words or link failed.
    /// `ask_heap` judges a link outside the break range.
    #[inline]
    pub(crate) fn pop(
        &mut self,
        class: usize,
        range: Range,
        ask_heap: impl FnMut(*mut u8) -> bool,
    ) -> Result<Option<*mut u8>, *mut u8> {
        let p = match self.heads.get(class) {
            Some(&p) if !p.is_null() => p,
            _ => return Ok(None),
        };
        // SAFETY: p is this thread's head: checked to lie in the heap's memory (module docs).
        if !unsafe { intact(p, class) } {
            return Err(p);
        }
        let mut ask_heap = ask_heap;
        // SAFETY: as above.
        let next = match unsafe { follow(p, range) } {
            Follow::Yes(next) => next,
            Follow::AskHeap(next) if ask_heap(next) => next,
            _ => return Err(p),
        };
        self.heads[class] = next;
        // SAFETY: p is a cached block of this thread: its second word is the mark.
        unsafe { track::store(p.add(8).cast(), 0) };
        self.counts[class] -= 1;
        Ok(Some(p))
    }

    /// Pushes block `p` of `class`, unless the class is full.
    ///
    /// # Safety
    /// `p` must be an allocated block of the owner heap, of `class`, that nothing else uses.
    #[inline]
    pub(crate) unsafe fn push(&mut self, class: usize, p: *mut u8) -> bool {
        let class = bounded(class);
        if self.counts[class] >= self.limits[class] {
            return false;
        }
        // SAFETY: the caller hands over the payload (at least 24 bytes).
        unsafe {
            link::store(p, self.heads[class]);
            track::store(p.add(8).cast(), mark(p) as u64);
        }
        self.heads[class] = p;
        self.counts[class] += 1;
        true
    }
}

/// Invariant 10 for one cached block `p` of `class`: it lies in the break range `[lo, hi)`, its
/// header says it is an allocated (not mapped) block of the class's size, and it carries the mark.
/// Nothing is read at `p` before it is known to lie in the range.
fn check_cached(p: *mut u8, class: usize, owns: Owns) -> Result<(), Corruption> {
    let broken = |what| {
        Err(Corruption {
            invariant: 10,
            addr: p as usize,
            what,
        })
    };
    let a = p as usize;
    if a % 16 != 0 || a < 16 || !owns(a - 8, 24) {
        return broken("a cached block outside the heap's segments");
    }
    // SAFETY: a - 8 .. a + 16 lies inside the heap's segments, which are mapped.
    let word = unsafe { track::load(p.sub(8).cast()) };
    let Some(t) = Tag::decode(a - 8, word) else {
        return broken("a cached block's header fails its check");
    };
    if !t.has(USED) || t.has(MAPPED) {
        return broken("a cached block is not an allocated block of a segment");
    }
    // A refill may take a block up to one sliver larger than the class (the heap does not split
    // off less than a minimum block); it serves the class as well.
    let size = usable_of(class) + 8;
    if t.size() < size || t.size() >= size + MIN_BLOCK {
        return broken("a cached block is in the list of another size class");
    }
    // SAFETY: 16 readable bytes at p (inside the range, above).
    if !unsafe { is_marked(p) } {
        return broken("a cached block lost its mark");
    }
    Ok(())
}

/// Whether `[addr, addr + len)` lies inside the heap's segments (`Heap::owns`, asked under the
/// heap's lock): what the cache checks test a cached block's words against before reading them.
pub(crate) type Owns<'a> = &'a dyn Fn(usize, usize) -> bool;

/// Walks `len` blocks of a list from `first`, checking each; returns the last one visited.
pub(crate) fn check_list(
    first: *mut u8,
    len: usize,
    class: usize,
    owns: Owns,
) -> Result<*mut u8, Corruption> {
    let mut p = first;
    let mut last = ptr::null_mut();
    for _ in 0..len {
        check_cached(p, class, owns)?;
        last = p;
        // SAFETY: p is a checked cached block: its first word is its link.
        p = unsafe { link::load(p) };
    }
    Ok(last)
}

impl ThreadCache {
    /// Invariant 10 over this cache: every list holds exactly `counts[class]` checked blocks of
    /// its class, within its limit, and ends there.
    pub(crate) fn check(&self, owns: Owns) -> Result<(), Corruption> {
        for class in 0..CLASSES {
            self.check_class(class, owns)?;
        }
        Ok(())
    }

    /// [`ThreadCache::check`], except that the classes whose head, count and limit are those
    /// `seen` recorded of this same cache are not checked again; then records this cache's heads,
    /// counts and limits in `seen`.
    ///
    /// A class whose head, count and limit are all as recorded is skipped whole: its limit tests
    /// read nothing else, so they would pass again. The classes are compared [`SEEN_CHUNK`] at a
    /// time as bytes first (one `memcmp` each, not a comparison per field and class: under a
    /// fuzzer's comparison tracing the per-class loop over every class was an eighth of the
    /// `locked` target's time), then one by one inside a chunk that differs.
    pub(crate) fn check_changed(&self, owns: Owns, seen: &mut Seen) -> Result<(), Corruption> {
        let same = seen.cache == self as *const ThreadCache as usize;
        // Recorded only once every list passed, so a failed one is walked again next time.
        seen.cache = 0;
        let mut lo = 0;
        while lo < CLASSES {
            let hi = if lo + SEEN_CHUNK < CLASSES {
                lo + SEEN_CHUNK
            } else {
                CLASSES
            };
            let (heads, counts, limits) = (
                self.heads.get(lo..hi).unwrap_or(&[]),
                self.counts.get(lo..hi).unwrap_or(&[]),
                self.limits.get(lo..hi).unwrap_or(&[]),
            );
            let unchanged = same
                && bytes_of(heads) == bytes_of(seen.heads.get(lo..hi).unwrap_or(&[]))
                && bytes_of(counts) == bytes_of(seen.counts.get(lo..hi).unwrap_or(&[]))
                && bytes_of(limits) == bytes_of(seen.limits.get(lo..hi).unwrap_or(&[]));
            if !unchanged {
                for class in lo..hi {
                    let class = bounded(class);
                    if !same
                        || seen.heads[class] != self.heads[class]
                        || seen.counts[class] != self.counts[class]
                        || seen.limits[class] != self.limits[class]
                    {
                        self.check_class(class, owns)?;
                    }
                }
            }
            lo = hi;
        }
        seen.heads = self.heads;
        seen.counts = self.counts;
        seen.limits = self.limits;
        seen.cache = self as *const ThreadCache as usize;
        Ok(())
    }

    /// Invariant 10 for one class: its limit and its list.
    fn check_class(&self, class: usize, owns: Owns) -> Result<(), Corruption> {
        let n = self.counts[class];
        if self.limits[class] > max_limit(class) {
            return Err(Corruption {
                invariant: 10,
                addr: self.heads[class] as usize,
                what: "a thread cache class's limit grew past its bound",
            });
        }
        if n > self.limits[class] {
            return Err(Corruption {
                invariant: 10,
                addr: self.heads[class] as usize,
                what: "a thread cache class holds more blocks than its limit",
            });
        }
        let last = check_list(self.heads[class], n as usize, class, owns)?;
        let end = if n == 0 {
            self.heads[class]
        } else {
            // SAFETY: last is a checked cached block: its first word is its link.
            unsafe { link::load(last) }
        };
        if !end.is_null() {
            return Err(Corruption {
                invariant: 10,
                addr: end as usize,
                what: "a thread cache list is longer than its count",
            });
        }
        Ok(())
    }

    /// Calls `f` with every block in this cache.
    pub(crate) fn for_each(&self, f: &mut dyn FnMut(*mut u8)) {
        for class in 0..CLASSES {
            let mut p = self.heads[class];
            for _ in 0..self.counts[class] {
                f(p);
                // SAFETY: list members are cached blocks whose first word links to the next.
                p = unsafe { link::load(p) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_end_keeps_large_chunks_out_of_the_caches() {
        assert_eq!(cache_end(128 << 10), MAX_BLOCK - 8 + 1);
        assert_eq!(cache_end(4096), 4096 - 8 + 1);
        assert_eq!(cache_end(4088), 3840 - 8 + 1);
        assert_eq!(cache_end(1), 0);
        assert_eq!(cache_end(24), 0);
        assert_eq!(cache_end(25), 25);
        assert_eq!(cache_end(1000), 985);
        for t in [25, 100, 513, 1000, 1017, 1040, 1200, 4096, 20000, 32760] {
            let end = cache_end(t);
            assert!(usable_of(class_of(end - 1)) < t);
        }
    }

    /// Every request maps to the smallest class that holds it, and no medium class wastes more
    /// than an eighth of its block.
    #[test]
    fn class_of_is_the_smallest_class_that_holds_the_request() {
        for n in 0..=usable_of(CLASSES - 1) {
            let c = class_of(n);
            assert!(usable_of(c) >= n, "{n}");
            assert!(c == 0 || usable_of(c - 1) < n, "{n}");
        }
        for c in 1..CLASSES {
            assert!(block_of(c) > block_of(c - 1) && block_of(c) % 16 == 0);
            if c > SMALL_CLASSES {
                assert!(block_of(c) - block_of(c - 1) <= block_of(c - 1) / 8, "{c}");
            }
        }
        assert_eq!(block_of(SMALL_CLASSES), 1152);
        assert_eq!(block_of(CLASSES - 1), MAX_BLOCK);
    }

    /// A block of a class's size, or a sliver (16 bytes) more, is filed under that class, and no
    /// other size is.
    #[test]
    fn class_of_block_takes_class_sizes_and_their_slivers_only() {
        for size in (32..=MAX_BLOCK + 16).step_by(16) {
            let want = (0..CLASSES)
                .find(|&c| block_of(c) == size)
                .or_else(|| (SMALL_CLASSES..CLASSES).find(|&c| block_of(c) + 16 == size));
            assert_eq!(class_of_block(size), want, "{size}");
        }
    }

    #[test]
    fn limits_stay_within_their_bounds() {
        for c in 0..CLASSES {
            let (lo, hi) = if c < SMALL_CLASSES { (4, 64) } else { (2, 16) };
            assert!((lo..=hi).contains(&limit(c)), "{c}");
        }
        assert_eq!(limit(SMALL_CLASSES), 14);
        assert_eq!(limit(CLASSES - 1), 2);
    }

    /// The local check skips a class only while its head, count and limit are all as recorded: a
    /// change to any one of them, in any class (the first and last of a compared chunk, the first
    /// medium class, the last class), is checked at once; an unchanged cache is not.
    #[test]
    fn the_local_check_checks_every_class_where_anything_changed() {
        let owns: Owns = &|_, _| true;
        let broken = "a field the check reads, changed to a value that breaks invariant 10";
        for class in [0, SEEN_CHUNK - 1, SEEN_CHUNK, SMALL_CLASSES, CLASSES - 1] {
            for field in 0..3 {
                let mut c = ThreadCache::new();
                let mut seen = Seen::new();
                assert_eq!(c.check_changed(owns, &mut seen), Ok(()));
                assert_eq!(c.check_changed(owns, &mut seen), Ok(()));
                match field {
                    0 => c.limits[class] = max_limit(class) + 1,
                    1 => c.counts[class] = c.limits[class] + 1,
                    _ => c.heads[class] = 0x1000 as *mut u8,
                }
                let found = c.check_changed(owns, &mut seen).map_err(|e| e.invariant);
                assert_eq!(found, Err(10), "class {class}, field {field}: {broken}");
                // Not recorded after a failure: the next local check finds it again.
                let again = c.check_changed(owns, &mut seen).map_err(|e| e.invariant);
                assert_eq!(again, Err(10), "class {class}, field {field}, again");
            }
        }
    }

    /// Every [`TRIPS_TO_GROW`]th lock trip doubles a class's limit, up to its bound and the owner's cap.
    #[test]
    fn trips_double_the_limit_up_to_its_bound() {
        let mut c = ThreadCache::new();
        let class = class_of(100);
        assert_eq!(c.limits[class], 64);
        for _ in 1..TRIPS_TO_GROW {
            c.trip(class);
        }
        assert_eq!(c.limits[class], 64);
        c.trip(class);
        assert_eq!(c.limits[class], 128);
        for _ in 0..4 * TRIPS_TO_GROW {
            c.trip(class);
        }
        assert_eq!(c.limits[class], 256);
        assert_eq!(max_limit(class), 256);
        assert_eq!(max_limit(class_of(1000)), 32);
        assert_eq!(max_limit(SMALL_CLASSES), 28);
        assert_eq!(max_limit(CLASSES - 1), 4);
        for class in 0..CLASSES {
            assert!(max_limit(class) >= limit(class) && max_limit(class) <= 256);
        }
        assert_eq!(
            c.limits[class_of(200)],
            limit(class_of(200)),
            "other classes stay"
        );
        // Under a cap of 2 on starting limits a small class grows to 8, a medium one to 4.
        assert_eq!(bound(class, 2), 8);
        assert_eq!(bound(SMALL_CLASSES, 2), 4);
        assert_eq!(bound(class, u32::MAX), 256);
        assert_eq!(bound(CLASSES - 1, 1), 2);
    }
}
