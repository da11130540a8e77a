//! `TagAlloc`: tagalloc as a Rust `#[global_allocator]`, and the locked heap under it.
//!
//! A [`LockedHeap`] is a heap behind a lock, shared by threads, with the C family's calls as
//! methods. Small blocks go through per-thread caches (`crate::cache`) without the lock.
//! [`TagAlloc`] is one over a [`Reserved`] private break, so it never calls `sbrk` and can live
//! beside glibc's `malloc` (which Rust's runtime, C libraries and the test harness still use)
//! without racing it from any thread. The preload library uses a `LockedHeap` over its own source.
//! All instances share one process-wide [`Lock`], taken by `pthread_atfork` handlers around `fork`
//! (`crate::fork`), so a child of a multi-threaded parent finds every heap consistent and unlocked.
//!
//! ```no_run
//! #[global_allocator]
//! static GLOBAL: tagalloc::TagAlloc = tagalloc::TagAlloc::new();
//! ```

use crate::cache::{self, Central, ThreadCache};
use crate::error::{Call, Error, Misuse, MisuseKind};
use crate::fork::register_atfork;
use crate::heap::{Config, Heap, Reclaim};
use crate::lock::Lock;
use crate::os;
use crate::source::{Reserved, Source};
use crate::stats::Stats;
use crate::tag::Tag;
use crate::track;
use crate::walk::{Corruption, Near};
use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicUsize, Ordering};

/// The heap lock, shared by every [`LockedHeap`] of the process (see the fork handlers in
/// `crate::fork`).
pub(crate) static LOCK: Lock = Lock::new();
/// Guards the transfer caches alone, so moving a batch between threads never waits for the heap.
/// Never held together with `LOCK` (except by the fork handlers, which take it first).
pub(crate) static CENTRAL_LOCK: Lock = Lock::new();

/// A lock held until this value is dropped: also when a bug makes the code under it panic and
/// unwind (in tests; a release build aborts), so one failed run cannot deadlock the next.
struct Held(&'static Lock);

impl Held {
    #[inline]
    fn lock(lock: &'static Lock) -> Held {
        lock.lock();
        Held(lock)
    }
}

impl Drop for Held {
    #[inline]
    fn drop(&mut self) {
        self.0.unlock();
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
    os::write_stderr(buf.get(..n).unwrap_or(&buf));
    os::abort()
}

/// A heap behind the process-wide lock, safe to share between threads and across `fork`, with
/// per-thread caches of small blocks.
pub struct LockedHeap<S: Source> {
    heap: UnsafeCell<Heap<S>>,
    /// Blocks in transit between thread caches; under `CENTRAL_LOCK`.
    central: UnsafeCell<Central>,
    /// The end of the heap's break range `[lo, hi)`, published after every locked call for the
    /// lock-free `free` path (the bound of a block's next header).
    hi: AtomicUsize,
    /// The same range as the lock-free paths test payloads and links against
    /// ([`cache::Range`]), published with `hi`.
    first: AtomicUsize,
    slots: AtomicUsize,
    cached: bool,
    /// [`Config::cache_limit`], for the caches this heap takes.
    cache_limit: u32,
    /// Requests below this are served from the thread caches (`cache::cache_end`).
    cache_end: usize,
}

/// The thread-safe tagalloc heap for `#[global_allocator]`, over a private break.
pub type TagAlloc = LockedHeap<Reserved>;

// SAFETY: the heap is only touched with the process-wide lock held; the lock-free paths touch only
// the calling thread's cache, the payloads of blocks it owns, and headers read atomically.
unsafe impl<S: Source + Send> Sync for LockedHeap<S> {}

impl TagAlloc {
    /// A new, empty allocator (nothing is reserved until the first allocation).
    pub const fn new() -> TagAlloc {
        LockedHeap::with_source(Reserved::new())
    }
}

impl Default for TagAlloc {
    fn default() -> Self {
        TagAlloc::new()
    }
}

impl<S: Source> Drop for LockedHeap<S> {
    fn drop(&mut self) {
        cache::release(self as *const Self as usize);
    }
}

/// A cached block (payload `p`) whose own words or link failed their checks (`crate::cache`).
#[cold]
fn corrupted(call: Call, p: *mut u8) -> Error {
    Error::Misuse(Misuse {
        call,
        kind: MisuseKind::CorruptFree,
        addr: p as usize,
    })
}

fn double_free(call: Call, p: *mut u8) -> Error {
    Error::Misuse(Misuse {
        call,
        kind: MisuseKind::DoubleFree,
        addr: p as usize,
    })
}

impl<S: Source + Send> LockedHeap<S> {
    /// A locked heap over `source`, with thread caches.
    pub const fn with_source(source: S) -> LockedHeap<S> {
        LockedHeap::configured(source, Config::DEFAULT, true)
    }

    /// A locked heap over `source` that takes the lock on every call (no thread caches).
    pub const fn uncached(source: S) -> LockedHeap<S> {
        LockedHeap::configured(source, Config::DEFAULT, false)
    }

    /// A locked heap over `source` with the given tunables, with thread caches if `cached` (and if
    /// no other `LockedHeap` of the process holds them: see [`crate::cache`]).
    pub const fn configured(source: S, config: Config, cached: bool) -> LockedHeap<S> {
        LockedHeap {
            heap: UnsafeCell::new(Heap::with_config(source, config)),
            central: UnsafeCell::new(Central::new()),
            hi: AtomicUsize::new(0),
            first: AtomicUsize::new(0),
            slots: AtomicUsize::new(0),
            cached,
            cache_limit: config.cache_limit,
            cache_end: cache::cache_end(config.mmap_threshold),
        }
    }

    /// Runs `f` on the heap with the lock held (registering the fork handlers on first use).
    /// `f` must not allocate from this heap (it would deadlock).
    pub fn with<R>(&self, f: impl FnOnce(&mut Heap<S>) -> R) -> R {
        register_atfork();
        let held = Held::lock(&LOCK);
        // SAFETY: the lock gives exclusive access to the heap.
        let h = unsafe { &mut *self.heap.get() };
        let r = f(h);
        // Stored only when they change: every lock-free `free` of every thread reads them.
        let (lo, hi) = h.break_range();
        let range = cache::Range::of(lo, hi);
        if self.hi.load(Ordering::Relaxed) != hi
            || self.first.load(Ordering::Relaxed) != range.first
        {
            self.hi.store(hi, Ordering::Relaxed);
            self.first.store(range.first, Ordering::Relaxed);
            self.slots.store(range.slots, Ordering::Relaxed);
        }
        drop(held);
        r
    }

    /// The break range as last published, for the caches' checks.
    #[inline(always)]
    fn range(&self) -> cache::Range {
        cache::Range {
            first: self.first.load(Ordering::Relaxed),
            slots: self.slots.load(Ordering::Relaxed),
        }
    }

    /// Whether cached payload `q`, outside the break range, is a block of a mapped segment (asked
    /// under the lock; the caller does not hold it).
    #[cold]
    fn mapped_block(&self, q: *mut u8) -> bool {
        self.with(|h| h.owns((q as usize).wrapping_sub(8), 32))
    }

    /// Whether this heap owns the thread caches.
    #[inline]
    fn caching(&self) -> bool {
        self.cached
            && cache::claim(
                self as *const Self as usize,
                Self::flush_all_erased,
                self.cache_limit,
            )
    }

    /// The heap's statistics (with the calling thread's cached calls merged in).
    pub fn stats(&self) -> Stats {
        if self.caching() {
            cache::with(|c| {
                self.with(|h| {
                    Self::merge(h, c);
                    h.stats()
                })
            })
        } else {
            self.with(|h| h.stats())
        }
    }

    /// Whether this heap holds the thread caches (claiming them if no heap does yet).
    pub fn owns_caches(&self) -> bool {
        self.caching()
    }

    /// Runs the heap walker, then checks the calling thread's cache and the transfer cache
    /// (invariant 10).
    pub fn check(&self) -> Result<(), Corruption> {
        self.with(|h| h.check())?;
        self.check_caches()
    }

    /// As [`LockedHeap::check`], with the walk of [`Heap::check_checkpoint`] (fresh memory
    /// compared in part).
    pub fn check_checkpoint(&self) -> Result<(), Corruption> {
        self.with(|h| h.check_checkpoint())?;
        self.check_caches()
    }

    /// The heap walker's local check around `near` ([`Heap::check_near`]), then the calling
    /// thread's cache and the transfer cache (invariant 10).
    pub fn check_near(&self, near: &[Near]) -> Result<(), Corruption> {
        self.with(|h| h.check_near(near))?;
        self.check_caches()
    }

    /// [`LockedHeap::check_near`], walking only the lists of the calling thread's cache that
    /// changed since `seen` was recorded (by this call on this thread; see [`cache::Seen`]):
    /// what the fuzz targets run after every operation. The whole cache is checked by
    /// [`LockedHeap::check_caches`], which their checkpoints run.
    pub fn check_near_seen(&self, near: &[Near], seen: &mut cache::Seen) -> Result<(), Corruption> {
        self.with(|h| h.check_near(near))?;
        self.check_caches_seen(seen)
    }

    /// The calling thread's cache, its changed lists only ([`LockedHeap::check_near_seen`]),
    /// and the transfer cache (invariant 10).
    pub fn check_caches_seen(&self, seen: &mut cache::Seen) -> Result<(), Corruption> {
        self.check_caches_with(Some(seen))
    }

    /// Checks the calling thread's cache and the transfer cache (invariant 10).
    pub fn check_caches(&self) -> Result<(), Corruption> {
        self.check_caches_with(None)
    }

    fn check_caches_with(&self, seen: Option<&mut cache::Seen>) -> Result<(), Corruption> {
        if !self.caching() {
            return Ok(());
        }
        // A stale cache is reset first, outside the locks (the reset's `pthread_setspecific` may
        // allocate).
        cache::with(|_| ());
        // Both locks held, in the fork handler's order (the transfer cache's, then the heap's), so
        // the segments do not change while the cached blocks are tested against them: a refill
        // takes blocks from mapped segments too when the break cannot grow (a hard brk limit,
        // valgrind's client break).
        self.with_central(|central| {
            self.with(|h| {
                let owns = |a: usize, len: usize| h.owns(a, len);
                cache::with(|c| match seen {
                    Some(seen) => c.check_changed(&owns, seen),
                    None => c.check(&owns),
                })?;
                central.check(&owns)
            })
        })
    }

    /// Calls `f` with the payload of every block in the calling thread's cache and in the
    /// transfer cache: blocks the heap counts as allocated that no caller may hold.
    pub fn for_each_cached(&self, mut f: impl FnMut(*mut u8)) {
        if !self.caching() {
            return;
        }
        cache::with(|c| {
            c.for_each(&mut f);
            self.with_central(|central| central.for_each(&mut f));
        })
    }

    fn merge(h: &mut Heap<S>, c: &mut ThreadCache) {
        h.stats.reallocs += core::mem::take(&mut c.reallocs);
        h.stats.mallocs += core::mem::take(&mut c.mallocs);
        h.stats.callocs += core::mem::take(&mut c.callocs);
        h.stats.frees += core::mem::take(&mut c.frees);
    }

    /// `malloc`. Inlined into its callers, as the hot path must be (the caches' checks made it too
    /// large for the compiler's own choice).
    #[inline(always)]
    pub fn malloc(&self, size: usize) -> Result<NonNull<u8>, Error> {
        if size < self.cache_end && self.caching() {
            if let Some(p) = NonNull::new(cache::pop_hot(size, false, || self.range())) {
                track::handed(track::Kind::Block, p.as_ptr(), size, false);
                return Ok(p);
            }
            return self
                .take_small(size, false)
                .inspect(|p| track::handed(track::Kind::Block, p.as_ptr(), size, false));
        }
        self.malloc_locked(size)
    }

    /// `malloc`'s lock-free path alone: a block of at least `size` bytes from the calling
    /// thread's cache, or null when the request is not one the caches serve or the cache cannot
    /// serve it now (empty, stale, or a check failed). On null, call [`malloc`](Self::malloc),
    /// which refills, or judges and reports. For the C and Rust entry points: a hit returns a
    /// plain pointer, with nothing else on the caller's path.
    #[inline(always)]
    pub fn malloc_cached(&self, size: usize) -> *mut u8 {
        if size < self.cache_end && self.cached && cache::claimed(self as *const Self as usize) {
            let p = cache::pop_hot(size, false, || self.range());
            if !p.is_null() {
                track::handed(track::Kind::Block, p, size, false);
            }
            p
        } else {
            ptr::null_mut()
        }
    }

    #[inline(never)]
    fn malloc_locked(&self, size: usize) -> Result<NonNull<u8>, Error> {
        self.with_reclaim(|h| h.malloc(size))
    }

    /// `calloc`.
    #[inline]
    pub fn calloc(&self, count: usize, size: usize) -> Result<NonNull<u8>, Error> {
        match count.checked_mul(size) {
            Some(n) if n < self.cache_end && self.caching() => {
                let p = match NonNull::new(cache::pop_hot(n, true, || self.range())) {
                    Some(p) => p,
                    None => self.take_small(n, true)?,
                };
                track::handed(track::Kind::Block, p.as_ptr(), n, true);
                // SAFETY: p has at least n usable bytes.
                unsafe { ptr::write_bytes(p.as_ptr(), 0, n) };
                Ok(p)
            }
            _ => self.calloc_locked(count, size),
        }
    }

    /// `calloc`'s lock-free path alone, as [`malloc_cached`](Self::malloc_cached): a zeroed
    /// block from the calling thread's cache, or null (then call [`calloc`](Self::calloc)).
    #[inline(always)]
    pub fn calloc_cached(&self, count: usize, size: usize) -> *mut u8 {
        match count.checked_mul(size) {
            Some(n)
                if n < self.cache_end
                    && self.cached
                    && cache::claimed(self as *const Self as usize) =>
            {
                let p = cache::pop_hot(n, true, || self.range());
                if !p.is_null() {
                    track::handed(track::Kind::Block, p, n, true);
                    // SAFETY: p has at least n usable bytes.
                    unsafe { ptr::write_bytes(p, 0, n) };
                }
                p
            }
            _ => ptr::null_mut(),
        }
    }

    #[inline(never)]
    fn calloc_locked(&self, count: usize, size: usize) -> Result<NonNull<u8>, Error> {
        self.with_reclaim(|h| h.calloc(count, size))
    }

    /// The cache missed (or is stale): count the call, then pop after a refill.
    #[cold]
    #[inline(never)]
    fn take_small(&self, size: usize, zeroed: bool) -> Result<NonNull<u8>, Error> {
        let class = cache::class_of(size);
        cache::with(|c| {
            if zeroed {
                c.callocs += 1;
            } else {
                c.mallocs += 1;
            }
            if let Some(p) = self.pop(c, class)? {
                return Ok(p);
            }
            c.trip(class);
            self.refill(c, class)
        })
    }

    /// Pops a block of `class` with every check; a failed one is a corrupted free block.
    fn pop(&self, c: &mut ThreadCache, class: usize) -> Result<Option<NonNull<u8>>, Error> {
        match c.pop(class, self.range(), |q| self.mapped_block(q)) {
            // Cached payloads are non-null.
            Ok(p) => Ok(p.and_then(NonNull::new)),
            Err(p) => Err(corrupted(Call::Malloc, p)),
        }
    }

    /// Refills `class` with a batch under the lock, from the transfer cache when it holds blocks of
    /// the class and from the heap otherwise, and returns one block of it.
    #[cold]
    fn refill(&self, c: &mut ThreadCache, class: usize) -> Result<NonNull<u8>, Error> {
        if let Some(chain) = self.with_central(|central| central.take(class)) {
            c.put_chain(class, chain);
            if let Some(p) = self.pop(c, class)? {
                return Ok(p);
            }
        }
        let usable = cache::usable_of(class);
        let batch = c.batch(class);
        let detached = self.with(|h| {
            Self::merge(h, c);
            if h.config.fast_lists && class < cache::SMALL_CLASSES {
                h.fast_detach(class, batch)
            } else {
                Ok(None)
            }
        })?;
        if let Some(chain) = detached {
            c.put_chain(class, chain);
            if let Some(p) = self.pop(c, class)? {
                return Ok(p);
            }
        }
        self.with(|h| {
            let mut first: *mut u8 = ptr::null_mut();
            h.alloc_many(usable, batch, |h, p| {
                if first.is_null() {
                    first = p;
                // SAFETY: p is a fresh block of this class, owned by this thread from now on.
                } else if !unsafe { c.push(class, p) } {
                    // SAFETY: p was just allocated from this heap.
                    let _ = unsafe { h.free_uncounted(p) };
                }
            })?;
            // SAFETY: alloc_many handed out at least one block, and never a null one.
            Ok(unsafe { NonNull::new_unchecked(first) })
        })
    }

    /// Runs `f` on the transfer cache with its lock held (registering the fork handlers first).
    fn with_central<R>(&self, f: impl FnOnce(&mut Central) -> R) -> R {
        register_atfork();
        let _held = Held::lock(&CENTRAL_LOCK);
        // SAFETY: CENTRAL_LOCK gives exclusive access to the transfer cache.
        f(unsafe { &mut *self.central.get() })
    }

    /// Moves `chain` of `class` to the transfer cache, or, when the transfer cache is full (or
    /// one thread uses the caches), to the heap: spliced whole onto its fast list, or each block
    /// freed with fast lists off.
    fn give_back(
        &self,
        c: &mut ThreadCache,
        class: usize,
        chain: cache::Chain,
    ) -> Result<(), Error> {
        let rest = if cache::shared() {
            self.with_central(|central| central.put(class, chain))
        } else {
            Some(chain)
        };
        let Some(rest) = rest else {
            return Ok(());
        };
        let range = self.range();
        self.with(|h| {
            Self::merge(h, c);
            Self::free_chain(h, class, rest, range)
        })
    }

    /// Gives a chain of `class` taken from a cache to the heap (the lock held): spliced whole onto
    /// its fast list, or each block freed with fast lists off or for a medium class.
    #[inline(always)]
    fn free_chain(
        h: &mut Heap<S>,
        class: usize,
        chain: cache::Chain,
        range: cache::Range,
    ) -> Result<(), Error> {
        if h.config.fast_lists && class < cache::SMALL_CLASSES {
            return h
                .fast_attach(class, chain)
                .map_err(|p| corrupted(Call::Free, p));
        }
        let mut result = Ok(());
        let mapped = |q: *mut u8| h.owns((q as usize).wrapping_sub(8), 32);
        let mut blocks = [ptr::null_mut(); 256];
        let mut n = 0;
        let mut beyond = None;
        // The blocks are gathered first, then freed: the walk reads the heap (`owns`) while
        // freeing changes it. A chain is at most a class's limit, 256 blocks
        // ([`cache::max_limit`]); a longer one is corrupt, reported at its 257th block.
        let walked = chain.drain(range, mapped, |p| match blocks.get_mut(n) {
            Some(slot) => {
                *slot = p;
                n += 1;
            }
            None => {
                beyond.get_or_insert(p);
            }
        });
        for &p in blocks.iter().take(n) {
            // SAFETY: a cached block is an allocated block of this heap, unmarked by drain.
            if let Err(e) = unsafe { h.free_uncounted(p) } {
                result = Err(e);
            }
        }
        walked.map_err(|p| corrupted(Call::Free, p))?;
        if let Some(p) = beyond {
            return Err(corrupted(Call::Free, p));
        }
        result
    }

    /// As [`with`](Self::with), for a call outside the calling thread's cache that may grow the
    /// heap: should it have to for a large block, that cache is given back to the heap first
    /// (when this heap owns the caches), so the blocks it holds can coalesce with their free
    /// neighbours ([`Heap::reclaim`]). Not for `realloc` or `reallocarray`: a buffer grown by
    /// steps then lands in the freed holes instead of at the top, where it grows in place, and
    /// moves more often (the realloc bench: +5% instructions, most of them copies).
    #[inline]
    fn with_reclaim<R>(&self, f: impl FnOnce(&mut Heap<S>) -> R) -> R {
        let owner = self.cached && cache::claimed(self as *const Self as usize);
        self.with(|h| {
            // The caller holds no reference to the calling thread's cache: nothing else touches
            // it until `f` returns.
            if owner {
                h.reclaim = Some(Self::reclaim_cache as Reclaim<S>);
            }
            let r = f(h);
            h.reclaim = None;
            r
        })
    }

    /// [`Heap::reclaim`] for the heap that owns the caches, under its lock: gives every block of
    /// the calling thread's cache back to the heap, as a thread's exit does (a stale cache holds
    /// none). Whether there were any.
    ///
    /// # Safety
    /// Nothing else touches the calling thread's cache during the call (its caller is not inside
    /// `cache::with`).
    #[cold]
    unsafe fn reclaim_cache(h: &mut Heap<S>) -> Result<bool, Error> {
        let Some(c) = cache::current() else {
            return Ok(false);
        };
        // SAFETY: the calling thread's own cache, which nothing else touches (contract).
        let c = unsafe { &mut *c };
        let (lo, hi) = h.break_range();
        let range = cache::Range::of(lo, hi);
        Self::merge(h, c);
        let mut any = false;
        for class in 0..cache::CLASSES {
            let chain = c
                .take_chain(class, usize::MAX, range, |q| {
                    h.owns((q as usize).wrapping_sub(8), 32)
                })
                .map_err(|p| corrupted(Call::Free, p))?;
            if let Some(chain) = chain {
                any = true;
                Self::free_chain(h, class, chain, range)?;
            }
        }
        Ok(any)
    }

    /// The size of the block whose payload is `p`, if it is an allocated block of a break segment
    /// with intact tags, judged without the lock from its header and the next block's; `None`
    /// sends the caller down the locked path, which judges fully.
    #[inline]
    fn live_block(&self, p: *mut u8) -> Option<usize> {
        let a = p as usize;
        // 16-aligned, past the first segment's record, below `hi`: the caches' range test, in
        // one subtraction, one rotation and one comparison.
        if !self.range().holds(p) {
            return None;
        }
        let hi = self.hi.load(Ordering::Relaxed);
        // SAFETY: every 8-aligned word in the break range is mapped (`Heap::break_range`); the
        // header may be rewritten concurrently by the heap under the lock, so it is read
        // atomically, and either value decodes.
        let word = unsafe { track::load_atomic(p.sub(8).cast()) };
        let t = Tag::decode(a - 8, word)?;
        let size = t.size();
        if !t.is_block_in_use() || size < 32 {
            return None;
        }
        // The next block's header must be intact too (an overflow of this block shows there):
        // otherwise the locked path reports it.
        let next = (a - 8).checked_add(size)?;
        if next >= hi {
            return None;
        }
        // SAFETY: next < hi is inside the break range; read atomically as above.
        let word = unsafe { track::load_atomic(next as *mut u64) };
        if !Tag::decode(next, word)?.has(crate::tag::PREV_USED) {
            return None;
        }
        Some(size)
    }

    /// The cache class and usable size of `p` if it is an allocated block of a class's size (see
    /// [`live_block`](Self::live_block)) whose requests the caches serve.
    #[inline(always)]
    fn cached_class(&self, p: *mut u8) -> Option<(usize, usize)> {
        match self.live_block(p)? {
            size @ 32..=1040 => Some(((size >> 4) - 2, size - 8)),
            // Clamped here, not in `medium_class`, so that the compiler knows the class is in
            // bounds.
            size => self
                .medium_class(size)
                .map(|(class, usable)| (class.min(cache::CLASSES - 1), usable)),
        }
    }

    /// [`cached_class`](Self::cached_class) for a block above 1040 bytes: out of line, off the
    /// small blocks' path.
    #[inline(never)]
    fn medium_class(&self, size: usize) -> Option<(usize, usize)> {
        if size > cache::MAX_BLOCK + 16 {
            return None;
        }
        let class = cache::class_of_block(size)?;
        (cache::usable_of(class) < self.cache_end).then_some((class, size - 8))
    }

    /// `free`.
    ///
    /// # Safety
    /// As for [`Heap::free`].
    #[inline]
    pub unsafe fn free(&self, p: *mut u8) -> Result<(), Error> {
        if p.is_null() {
            return Ok(());
        }
        if self.caching() {
            if let Some((class, usable)) = self.cached_class(p) {
                // SAFETY: p is a small allocated block in the break range, 24+ usable bytes; the
                // caller gives it up (contract).
                if !unsafe { cache::is_marked(p) } && unsafe { cache::push_hot(class, p) } {
                    track::taken(track::Kind::Block, p, usable);
                    return Ok(());
                }
                // SAFETY: as above.
                return unsafe { self.free_small(class, usable, p) };
            }
        }
        // SAFETY: forwarded contract.
        unsafe { self.free_locked(p) }
    }

    /// `free`'s lock-free path alone: pushes `p` on the calling thread's cache and returns
    /// `true`, or returns `false` having done nothing (null, not a small block of the break range
    /// whose tags check, already cached, a full class, a stale cache, or caching not yet set up).
    /// On `false`, call [`free`](Self::free), which flushes, or judges and reports.
    ///
    /// # Safety
    /// As for [`Heap::free`].
    #[inline(always)]
    pub unsafe fn free_cached(&self, p: *mut u8) -> bool {
        if !self.cached || !cache::claimed(self as *const Self as usize) {
            return false;
        }
        let Some((class, usable)) = self.cached_class(p) else {
            return false;
        };
        // SAFETY: p is a small allocated block in the break range, 24+ usable bytes; the caller
        // gives it up (contract).
        let pushed = unsafe { !cache::is_marked(p) && cache::push_hot(class, p) };
        if pushed {
            track::taken(track::Kind::Block, p, usable);
        }
        pushed
    }

    /// The cache could not take `p` at once: a double free, a full class, or a stale cache.
    ///
    /// # Safety
    /// As for `free`, and `p` is an allocated block of `class` with `usable` usable bytes.
    #[cold]
    #[inline(never)]
    unsafe fn free_small(&self, class: usize, usable: usize, p: *mut u8) -> Result<(), Error> {
        // SAFETY: p has 24+ usable bytes (contract).
        if unsafe { cache::is_marked(p) } {
            return Err(double_free(Call::Free, p));
        }
        // A flush frees to the heap, whose trimming and first-use set-up (`pthread_atfork`,
        // `pthread_key_create`) can set errno; free keeps errno as glibc's does.
        let saved = os::errno();
        let r = cache::with(|c| {
            c.frees += 1;
            // SAFETY: the caller gives up p (contract), an allocated block of `class`.
            if unsafe { c.push(class, p) } {
                return Ok(());
            }
            self.flush(c, class)?;
            c.trip(class);
            // SAFETY: as above; the class now has room.
            unsafe { c.push(class, p) };
            Ok(())
        });
        if r.is_ok() {
            track::taken(track::Kind::Block, p, usable);
        }
        os::set_errno(saved);
        r
    }

    /// # Safety
    /// As for `free`.
    #[inline(never)]
    unsafe fn free_locked(&self, p: *mut u8) -> Result<(), Error> {
        // The locked path may trim the break, whose system call can set errno on failure; free
        // keeps errno as glibc's does.
        let saved = os::errno();
        // SAFETY: forwarded contract.
        let r = self.with(|h| unsafe { h.free(p) });
        os::set_errno(saved);
        r
    }

    /// Gives half of `class` back: to the transfer cache, or to the heap.
    #[cold]
    fn flush(&self, c: &mut ThreadCache, class: usize) -> Result<(), Error> {
        let chain = c
            .take_chain(class, c.batch(class), self.range(), |q| {
                self.mapped_block(q)
            })
            .map_err(|p| corrupted(Call::Free, p))?;
        match chain {
            Some(chain) => self.give_back(c, class, chain),
            None => Ok(()),
        }
    }

    /// Gives the whole cache back (thread exit).
    ///
    /// # Safety
    /// `owner` must be the address of a live `LockedHeap<S>` that owns the caches.
    unsafe fn flush_all_erased(owner: usize, c: &mut ThreadCache) {
        // SAFETY: contract.
        let this = unsafe { &*(owner as *const Self) };
        for class in 0..cache::CLASSES {
            let chain = c.take_chain(class, usize::MAX, this.range(), |q| this.mapped_block(q));
            match chain {
                Ok(Some(chain)) => {
                    if let Err(e) = this.give_back(c, class, chain) {
                        die(e)
                    }
                }
                Ok(None) => {}
                Err(p) => die(corrupted(Call::Free, p)),
            }
        }
        this.with(|h| Self::merge(h, c));
    }

    /// Rejects a pointer that sits in a thread cache (already freed) before the locked paths see it.
    fn not_cached(&self, p: *mut u8, call: Call) -> Result<(), Error> {
        if self.caching() && self.cached_class(p).is_some() {
            // SAFETY: cached_class found an allocated block of 24+ bytes at p.
            if unsafe { cache::is_marked(p) } {
                return Err(double_free(call, p));
            }
        }
        Ok(())
    }

    /// `realloc`.
    ///
    /// # Safety
    /// As for [`Heap::realloc`].
    pub unsafe fn realloc(&self, p: *mut u8, size: usize) -> Result<Option<NonNull<u8>>, Error> {
        if self.caching() {
            if let Some(block) = self.live_block(p) {
                // SAFETY: p is an allocated block of 24+ usable bytes.
                if unsafe { cache::is_marked(p) } {
                    return Err(double_free(Call::Realloc, p));
                }
                // A block that already holds `size` bytes and would not halve stays where it
                // is, without the lock (the locked path would only split off the rest).
                let usable = block - 8;
                let room = usable + if broken!(ReallocInPlaceOver) { 8 } else { 0 };
                if size != 0 && size <= room && size >= usable / 2 {
                    cache::count_realloc();
                    track::resized(track::Kind::Block, p, usable, size, size.min(usable));
                    // SAFETY: p is non-null (a live block).
                    return Ok(Some(unsafe { NonNull::new_unchecked(p) }));
                }
            }
            // Anything `live_block` did not recognise cannot be in a thread cache: the locked
            // path judges it fully.
        }
        // SAFETY: forwarded contract.
        self.with(|h| unsafe { h.realloc(p, size) })
    }

    /// `reallocarray`.
    ///
    /// # Safety
    /// As for [`Heap::realloc`].
    pub unsafe fn reallocarray(
        &self,
        p: *mut u8,
        count: usize,
        size: usize,
    ) -> Result<Option<NonNull<u8>>, Error> {
        self.not_cached(p, Call::Realloc)?;
        // SAFETY: forwarded contract. `with`, not `with_reclaim`: as `realloc` (see there).
        self.with(|h| unsafe { h.reallocarray(p, count, size) })
    }

    /// `malloc_usable_size`.
    ///
    /// # Safety
    /// As for [`Heap::usable_size`].
    pub unsafe fn usable_size(&self, p: *mut u8) -> Result<usize, Error> {
        self.not_cached(p, Call::UsableSize)?;
        // SAFETY: forwarded contract.
        self.with(|h| unsafe { h.usable_size(p) })
    }

    /// `memalign`.
    pub fn memalign(&self, align: usize, size: usize) -> Result<NonNull<u8>, Error> {
        self.with_reclaim(|h| h.memalign(align, size))
    }

    /// `posix_memalign`.
    pub fn posix_memalign(&self, align: usize, size: usize) -> Result<NonNull<u8>, Error> {
        self.with_reclaim(|h| h.posix_memalign(align, size))
    }

    /// `aligned_alloc`.
    pub fn aligned_alloc(&self, align: usize, size: usize) -> Result<NonNull<u8>, Error> {
        self.with_reclaim(|h| h.aligned_alloc(align, size))
    }

    /// `valloc`.
    pub fn valloc(&self, size: usize) -> Result<NonNull<u8>, Error> {
        self.with_reclaim(|h| h.valloc(size))
    }

    /// `pvalloc`.
    pub fn pvalloc(&self, size: usize) -> Result<NonNull<u8>, Error> {
        self.with_reclaim(|h| h.pvalloc(size))
    }
}

fn or_null(r: Result<NonNull<u8>, Error>) -> *mut u8 {
    match r {
        Ok(p) => p.as_ptr(),
        Err(Error::Misuse(m)) => die(Error::Misuse(m)),
        Err(_) => ptr::null_mut(),
    }
}

// SAFETY: every method forwards to the locked heap; it returns blocks of at least the requested
// size, aligned to at least 16 and to `layout.align()` (through memalign above 16), and never hands
// out a block twice.
unsafe impl<S: Source + Send> GlobalAlloc for LockedHeap<S> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _inside = track::Inside::enter();
        if layout.align() <= 16 {
            let p = self.malloc_cached(layout.size());
            if !p.is_null() {
                return p;
            }
            or_null(self.malloc(layout.size()))
        } else {
            or_null(self.memalign(layout.align(), layout.size()))
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let _inside = track::Inside::enter();
        if layout.align() <= 16 {
            or_null(self.calloc(1, layout.size()))
        } else {
            let p = or_null(self.memalign(layout.align(), layout.size()));
            if !p.is_null() {
                // SAFETY: p has at least layout.size() bytes.
                unsafe { ptr::write_bytes(p, 0, layout.size()) };
            }
            p
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        let _inside = track::Inside::enter();
        // SAFETY: GlobalAlloc's contract: ptr came from this allocator and is not used again.
        if unsafe { self.free_cached(ptr) } {
            return;
        }
        // SAFETY: as above (`free_cached` did nothing).
        if let Err(e) = unsafe { self.free(ptr) } {
            die(e)
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _inside = track::Inside::enter();
        if layout.align() <= 16 {
            // SAFETY: GlobalAlloc's contract: ptr is live and new_size is non-zero.
            match unsafe { LockedHeap::realloc(self, ptr, new_size) } {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link;
    use crate::source::Sim;

    /// A chain longer than any class may hold is corrupt: its first 256 blocks are freed and the
    /// 257th is reported, instead of the rest being dropped unseen.
    #[test]
    fn a_chain_longer_than_a_class_holds_is_reported_at_its_257th_block() {
        let heap = LockedHeap::with_source(Sim::new(64 << 20));
        let class = cache::SMALL_CLASSES;
        let usable = cache::usable_of(class);
        let range = heap.range();
        let r = heap.with(|h| {
            let blocks: Vec<*mut u8> = (0..257).map(|_| h.alloc(usable).unwrap()).collect();
            for (i, &p) in blocks.iter().enumerate() {
                let next = blocks.get(i + 1).copied().unwrap_or(ptr::null_mut());
                // SAFETY: p is a live block of this heap with at least 24 usable bytes.
                unsafe {
                    link::store(p, next);
                    p.add(8).cast::<usize>().write(cache::mark(p));
                }
            }
            let live = h.stats().live_blocks;
            let chain = cache::Chain {
                first: blocks[0],
                last: blocks[256],
                len: 257,
            };
            let r = LockedHeap::free_chain(h, class, chain, range);
            (r, live - h.stats().live_blocks, blocks[256])
        });
        let (r, freed, last) = r;
        assert_eq!(freed, 256);
        match r {
            Err(Error::Misuse(m)) => {
                assert_eq!(m.kind, MisuseKind::CorruptFree);
                assert_eq!(m.addr, last as usize);
            }
            other => panic!("expected a corruption report, got {other:?}"),
        }
    }
}
