//! tagalloc in-process: a fresh [`Heap`] per backend, its heap walker run after every operation.
//!
//! The heap sits on a private break (a [`Spare`]: an `mmap` reservation, kept for the next backend) or, for fault injection,
//! on a [`Sim`] (a simulated break and mappings taken from the Rust global allocator): never on the real program break, so it
//! cannot race glibc's `sbrk` in the same process. Either source is wrapped in [`Bounded`], which
//! refuses (as an OS would) any single request above [`FOREIGN_REQUEST_LIMIT`]: tagalloc still does
//! all its own arithmetic on hostile sizes, but an absurd mapping never reaches the Rust global
//! allocator, where AddressSanitizer or libFuzzer's `-malloc_limit_mb` would call it a crash.

use std::ptr::NonNull;

use tagalloc::source::{Region, Sim, Source};
use tagalloc::{Call, Config, Error, Heap};

use crate::op::{Dialect, Trace};

use super::locked::LockedBackend;
use super::spare::Spare;

use super::{
    Backend, Caps, Fault, Limits, Misuse, MisuseCall, MisuseKind, Near, Reply, Request, EINVAL,
    ENOMEM, FOREIGN_REQUEST_LIMIT,
};

/// Arena of the simulated break used for fault injection: 4 MiB. `Sim` zeroes its whole arena up
/// front (about 0.5 ms per MiB), so a small arena keeps the `faults` target fast; the shadow's
/// budget ([`Limits::budget`]) is half of it, so running out of arena is never mistaken for a bug.
pub const SIM_CAPACITY: usize = 4 << 20;

/// A memory source that refuses any single request above a limit, and otherwise delegates.
#[derive(Debug)]
pub struct Bounded<S> {
    inner: S,
    limit: usize,
}

impl<S> Bounded<S> {
    /// `inner`, refusing requests above `limit` bytes.
    pub fn new(inner: S, limit: usize) -> Bounded<S> {
        Bounded { inner, limit }
    }

    /// The wrapped source.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The wrapped source, mutably.
    pub fn inner_mut(&mut self) -> &mut S {
        &mut self.inner
    }
}

// SAFETY: every call is delegated unchanged to `inner`, which keeps `Source`'s promises; refusing
// a request (returning `None`) is always allowed and hands out nothing.
unsafe impl<S: Source> Source for Bounded<S> {
    fn grow(&mut self, len: usize) -> Option<Region> {
        if len > self.limit {
            return None;
        }
        self.inner.grow(len)
    }

    fn break_is_at(&self, end: usize) -> bool {
        self.inner.break_is_at(end)
    }

    unsafe fn shrink(&mut self, end: *mut u8, len: usize) -> bool {
        // SAFETY: the caller's contract is forwarded unchanged.
        unsafe { self.inner.shrink(end, len) }
    }

    fn map(&mut self, len: usize) -> Option<NonNull<u8>> {
        if len > self.limit {
            return None;
        }
        self.inner.map(len)
    }

    unsafe fn unmap(&mut self, ptr: *mut u8, len: usize) {
        // SAFETY: the caller's contract is forwarded unchanged.
        unsafe { self.inner.unmap(ptr, len) }
    }

    unsafe fn remap(&mut self, ptr: *mut u8, old: usize, new: usize) -> Option<NonNull<u8>> {
        if new > self.limit {
            return None;
        }
        // SAFETY: the caller's contract is forwarded unchanged.
        unsafe { self.inner.remap(ptr, old, new) }
    }
}

/// The sources a tagalloc backend can sit on, and what each can simulate.
pub trait TestSource: Source {
    /// For reports.
    const NAME: &'static str;
    /// Injects a fault; false if this source cannot.
    fn inject(&mut self, fault: Fault) -> bool;
    /// Whether an injected failure is still pending.
    fn pending(&self) -> bool;
}

impl TestSource for Sim {
    const NAME: &'static str = "tagalloc";
    fn inject(&mut self, fault: Fault) -> bool {
        match fault {
            Fault::FailNext(n) => {
                self.fail_next(n);
                true
            }
            Fault::ForeignSbrk(bytes) => self.foreign_sbrk(bytes),
        }
    }
    fn pending(&self) -> bool {
        self.pending_failures() > 0
    }
}

/// tagalloc on its own heap.
pub struct TagallocBackend<S: TestSource> {
    heap: Heap<Bounded<S>>,
    walk: bool,
    limits: Limits,
}

impl TagallocBackend<Sim> {
    /// A heap over a simulated break of `capacity` bytes, glibc's default thresholds.
    pub fn sim(capacity: usize) -> Self {
        Self::sim_with_config(capacity, Config::DEFAULT)
    }

    /// As [`TagallocBackend::sim`], with other thresholds.
    pub fn sim_with_config(capacity: usize, config: Config) -> Self {
        let source = Bounded::new(Sim::new(capacity), FOREIGN_REQUEST_LIMIT);
        TagallocBackend {
            heap: Heap::with_config(source, config),
            walk: true,
            // Large chunks are mapped apart from the arena; the arena bounds the break.
            limits: Limits {
                request: 1 << 20,
                budget: capacity / 2,
            },
        }
    }
}

impl TagallocBackend<Spare> {
    /// A heap over a private `mmap`-reserved break.
    pub fn reserved() -> Self {
        Self::reserved_with_config(Config::DEFAULT)
    }

    /// As [`TagallocBackend::reserved`], with other thresholds.
    pub fn reserved_with_config(config: Config) -> Self {
        TagallocBackend {
            heap: Heap::with_config(Bounded::new(Spare::take(), FOREIGN_REQUEST_LIMIT), config),
            walk: true,
            limits: Limits::PROCESS,
        }
    }
}

/// The tagalloc backend a trace of `dialect` needs: a private break ([`Spare`]: cheap to set
/// up, what tagalloc's `#[global_allocator]` uses), or a simulated one ([`Sim`]) when the trace
/// injects faults.
pub fn for_dialect(dialect: Dialect) -> Box<dyn Backend> {
    match dialect {
        Dialect::Faults | Dialect::All => Box::new(TagallocBackend::sim(SIM_CAPACITY)),
        Dialect::Clean | Dialect::Misuse | Dialect::Threads => {
            Box::new(TagallocBackend::reserved())
        }
    }
}

/// The tagalloc backend for `trace`, in the trace's configuration: the core [`Heap`] (as
/// [`for_dialect`] picks it), or with `locked`, or whenever the trace names threads, the locked
/// heap with its thread caches ([`LockedBackend`]), over a simulated break if the trace injects
/// faults.
pub fn for_trace(trace: &Trace, locked: bool) -> Box<dyn Backend> {
    let config = trace.config.config();
    let faults = trace.uses(Dialect::Faults);
    let threads = trace.uses(Dialect::Threads);
    match (locked || threads, faults) {
        (true, true) => Box::new(LockedBackend::sim(config, threads)),
        (true, false) => Box::new(LockedBackend::reserved(config, threads)),
        (false, true) => Box::new(TagallocBackend::sim_with_config(SIM_CAPACITY, config)),
        (false, false) => Box::new(TagallocBackend::reserved_with_config(config)),
    }
}

impl<S: TestSource> TagallocBackend<S> {
    /// Whether [`Backend::check`] runs the heap walker (on by default; off only to measure).
    pub fn set_walker(&mut self, on: bool) {
        self.walk = on;
    }

    /// The heap, for tests that look inside.
    pub fn heap(&self) -> &Heap<Bounded<S>> {
        &self.heap
    }

    /// The heap's mmap threshold: blocks below it are served from the break.
    pub fn mmap_threshold(&self) -> usize {
        self.heap.config().mmap_threshold
    }
}

fn misuse(m: tagalloc::Misuse) -> Reply {
    Reply::Misuse(Misuse {
        call: match m.call {
            Call::Malloc => MisuseCall::Malloc,
            Call::Free => MisuseCall::Free,
            Call::Realloc => MisuseCall::Realloc,
            Call::UsableSize => MisuseCall::UsableSize,
        },
        kind: match m.kind {
            tagalloc::MisuseKind::InvalidPointer => MisuseKind::InvalidPointer,
            tagalloc::MisuseKind::DoubleFree => MisuseKind::DoubleFree,
            tagalloc::MisuseKind::CorruptTag => MisuseKind::CorruptTag,
            tagalloc::MisuseKind::CorruptFree => MisuseKind::CorruptFree,
        },
        addr: m.addr,
    })
}

/// A failed call in C terms: NULL with `errno`, or the misuse tagalloc reported.
pub(crate) fn failed(e: Error) -> Reply {
    match e {
        Error::OutOfMemory => Reply::Null { errno: ENOMEM },
        Error::InvalidArgument => Reply::Null { errno: EINVAL },
        Error::Misuse(m) => misuse(m),
    }
}

fn block(r: Result<NonNull<u8>, Error>) -> Reply {
    r.map_or_else(failed, Reply::Ptr)
}

impl<S: TestSource> Backend for TagallocBackend<S> {
    fn name(&self) -> String {
        S::NAME.into()
    }

    fn caps(&self) -> Caps {
        Caps {
            walker: self.walk,
            misuse: true,
            faults: true,
            segment_below: self.heap.config().mmap_threshold,
            global_state: false,
        }
    }

    fn limits(&self) -> Limits {
        self.limits
    }

    unsafe fn call(&mut self, req: Request) -> Reply {
        let h = &mut self.heap;
        match req {
            Request::Malloc { size } => block(h.malloc(size)),
            Request::Calloc { count, size } => block(h.calloc(count, size)),
            Request::Realloc { ptr, size } => {
                // SAFETY: tagalloc detects and reports pointers it did not hand out.
                match unsafe { h.realloc(ptr, size) } {
                    Ok(Some(p)) => Reply::Ptr(p),
                    Ok(None) => Reply::Freed,
                    Err(e) => failed(e),
                }
            }
            Request::Free { ptr } => {
                // SAFETY: as for realloc.
                match unsafe { h.free(ptr) } {
                    Ok(()) => Reply::Done,
                    Err(e) => failed(e),
                }
            }
            Request::PosixMemalign { align, size } => block(h.posix_memalign(align, size)),
            Request::AlignedAlloc { align, size } => block(h.aligned_alloc(align, size)),
            Request::Memalign { align, size } => block(h.memalign(align, size)),
            Request::UsableSize { ptr } => {
                // SAFETY: as for realloc.
                match unsafe { h.usable_size(ptr) } {
                    Ok(n) => Reply::Size(n),
                    Err(e) => failed(e),
                }
            }
        }
    }

    fn check(&mut self) -> Result<(), String> {
        if !self.walk {
            return Ok(());
        }
        self.heap.check().map_err(|c| c.to_string())
    }

    fn check_checkpoint(&mut self) -> Result<(), String> {
        if !self.walk {
            return Ok(());
        }
        self.heap.check_checkpoint().map_err(|c| c.to_string())
    }

    fn check_near(&mut self, near: &[Near]) -> Result<(), String> {
        if !self.walk {
            return Ok(());
        }
        self.heap.check_near(near).map_err(|c| c.to_string())
    }

    fn inject(&mut self, fault: Fault) -> bool {
        self.heap.source_mut().inner_mut().inject(fault)
    }

    fn faults_pending(&self) -> bool {
        self.heap.source().inner().pending()
    }
}
