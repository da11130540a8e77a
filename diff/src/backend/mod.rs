//! Backends: the allocators a trace runs on, all behind the one small [`Backend`] trait.
//!
//! One file per backend: [`tagalloc`] (our heap in-process, over a simulated or private memory
//! source, heap walker after every op), [`libc`] (the process's C allocator) and [`dylib`] (any
//! shared object exporting `malloc`, loaded beside the process's allocator, never replacing it).
//!
//! A backend only makes calls and reports what came back, in C terms: a pointer, or NULL with an
//! `errno`. Judging the answers is the shadow model's job ([`crate::shadow`]), so a backend stays a
//! few dozen lines and a broken test backend is easy to write.

pub mod dylib;
mod handoff;
pub mod libc;
pub mod locked;
pub mod spare;
pub mod tagalloc;
mod under;

pub use under::Under;

use std::fmt;
use std::ptr::NonNull;

pub use ::tagalloc::Near;

use crate::shadow::rules::Contract;

/// `ENOMEM`, the only errno a well-formed request may fail with.
pub const ENOMEM: i32 = ::libc::ENOMEM;
/// `EINVAL`, for invalid alignments.
pub const EINVAL: i32 = ::libc::EINVAL;

/// Largest request the C-library backends hand to the allocator they wrap (256 MiB). Larger ones
/// (and every request that must fail: above `PTRDIFF_MAX`, overflowing `calloc`, invalid
/// alignments) are answered by the backend itself, as glibc documents, without calling the
/// allocator: AddressSanitizer aborts on them unless `allocator_may_return_null=1`, and libFuzzer's
/// `-malloc_limit_mb` reports them as crashes. The shadow model never requires such requests to
/// succeed, so declining them loses no check on the allocator under test.
pub const FOREIGN_REQUEST_LIMIT: usize = 256 << 20;

/// One allocator call. Pointers are ones the backend returned (or null), except in the misuse
/// dialect, which only backends whose [`Caps::misuse`] is set receive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// `malloc(size)`.
    Malloc {
        /// Bytes.
        size: usize,
    },
    /// `calloc(count, size)`.
    Calloc {
        /// Elements.
        count: usize,
        /// Bytes per element.
        size: usize,
    },
    /// `realloc(ptr, size)`.
    Realloc {
        /// Block resized, or null.
        ptr: *mut u8,
        /// New size.
        size: usize,
    },
    /// `free(ptr)`.
    Free {
        /// Block freed, or null.
        ptr: *mut u8,
    },
    /// `posix_memalign(&p, align, size)`.
    PosixMemalign {
        /// Alignment.
        align: usize,
        /// Bytes.
        size: usize,
    },
    /// `aligned_alloc(align, size)`.
    AlignedAlloc {
        /// Alignment.
        align: usize,
        /// Bytes.
        size: usize,
    },
    /// `memalign(align, size)`.
    Memalign {
        /// Alignment.
        align: usize,
        /// Bytes.
        size: usize,
    },
    /// `malloc_usable_size(ptr)`.
    UsableSize {
        /// Block asked about, or null.
        ptr: *mut u8,
    },
}

/// What a call gave back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// A block.
    Ptr(NonNull<u8>),
    /// NULL (or a nonzero `posix_memalign` result) with this `errno`.
    Null {
        /// `errno` after the call.
        errno: i32,
    },
    /// `realloc(p, 0)` freed `p` and returned NULL.
    Freed,
    /// `free` returned.
    Done,
    /// `malloc_usable_size` answered.
    Size(usize),
    /// The allocator detected misuse and said so (tagalloc's `Error::Misuse`).
    Misuse(Misuse),
    /// The backend does not have this function (a shared object without `memalign`, say).
    Unsupported,
}

/// Which call reported a misuse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MisuseCall {
    /// An allocating call (tagalloc meets a broken tag while taking a free block).
    Malloc,
    /// `free`.
    Free,
    /// `realloc`.
    Realloc,
    /// `malloc_usable_size`.
    UsableSize,
}

/// What kind of misuse was reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MisuseKind {
    /// A pointer the allocator never returned: interior, misaligned, foreign.
    InvalidPointer,
    /// A pointer already freed.
    DoubleFree,
    /// A block's tag was overwritten.
    CorruptTag,
    /// A freed block was written to: its links or tags failed their checks.
    CorruptFree,
}

/// A misuse report from the allocator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Misuse {
    /// The call that detected it.
    pub call: MisuseCall,
    /// What it detected.
    pub kind: MisuseKind,
    /// The address it names.
    pub addr: usize,
}

impl fmt::Display for Misuse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {:?} at {:#x}", self.call, self.kind, self.addr)
    }
}

/// Something the runner asks a backend with a simulated memory source to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The next `n` OS requests fail.
    FailNext(usize),
    /// A foreign caller moves the break by this many bytes.
    ForeignSbrk(usize),
}

/// What a backend can do beyond the plain calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Caps {
    /// [`Backend::check`] walks the heap.
    pub walker: bool,
    /// Bad pointers are reported as [`Reply::Misuse`] (they are undefined behaviour elsewhere).
    pub misuse: bool,
    /// [`Backend::inject`] works.
    pub faults: bool,
    /// Blocks with size plus alignment below this are carved from break segments, where an
    /// overwrite past their end lands on the next block's tag and a freed block keeps a tag to
    /// recognise (0: no such promise, so the misuse dialect never overwrites).
    pub segment_below: usize,
    /// The allocator's state lives in the process, not in the backend value (a shared object,
    /// loaded once and never reset), so one run would inherit what earlier runs left behind.
    /// Such a backend therefore runs in a forked child that starts from the pristine state
    /// ([`crate::isolate`], which [`crate::isolate::run_where_needed`] picks by this flag).
    pub global_state: bool,
}

/// Requests a backend must satisfy: smaller ones failing is a bug, not a resource limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest single request (size plus alignment) that must succeed.
    pub request: usize,
    /// Success is required only while the bytes the trace has asked for so far (each request
    /// rounded up to a page, plus its alignment and a page, never reduced by frees) stay within
    /// this budget, so no pattern of fragmentation can excuse a failure.
    pub budget: usize,
}

impl Limits {
    /// What a process-wide C allocator must manage: any 1 MiB request, 1 GiB in all.
    pub const PROCESS: Limits = Limits {
        request: 1 << 20,
        budget: 1 << 30,
    };

    /// What a malloc-lab allocator must manage: its whole 20 MiB heap, in one request or in all.
    pub const LAB: Limits = Limits {
        request: crate::shadow::rules::LAB_HEAP,
        budget: crate::shadow::rules::LAB_HEAP,
    };
}

/// An allocator under test.
pub trait Backend {
    /// Short name for reports: `tagalloc`, `libc`, the shared object's path.
    fn name(&self) -> String;

    /// What the backend can do beyond plain calls.
    fn caps(&self) -> Caps {
        Caps::default()
    }

    /// Requests that must succeed.
    fn limits(&self) -> Limits {
        Limits::PROCESS
    }

    /// The rules the backend is held to ([`Under`] changes them).
    fn contract(&self) -> Contract {
        Contract::Glibc
    }

    /// Makes one call.
    ///
    /// # Safety
    ///
    /// Every non-null pointer in `req` was returned by this backend and not freed since, unless
    /// [`Caps::misuse`] is set, in which case any pointer may be passed and the backend must
    /// report misuse instead of acting on it.
    unsafe fn call(&mut self, req: Request) -> Reply;

    /// Validates the whole heap (the heap walker), if the backend has one.
    fn check(&mut self) -> Result<(), String> {
        Ok(())
    }

    /// The heap walker as a checkpoint between ops runs it: everything [`Backend::check`]
    /// checks, but fresh memory past the heap's frontier perhaps only in part (tagalloc's
    /// [`Heap::check_checkpoint`](::tagalloc::Heap::check_checkpoint)). The runner's last walk of
    /// a trace is always [`Backend::check`].
    fn check_checkpoint(&mut self) -> Result<(), String> {
        self.check()
    }

    /// Checks what an op could have broken around `near` (the blocks it returned or freed): the
    /// heap walker's local check, in time that does not grow with the heap. Without one of its
    /// own, the whole [`Backend::check`].
    fn check_near(&mut self, near: &[Near]) -> Result<(), String> {
        let _ = near;
        self.check()
    }

    /// Injects a fault into the memory source; false if the backend cannot.
    fn inject(&mut self, fault: Fault) -> bool {
        let _ = fault;
        false
    }

    /// Whether an injected fault may still make the next call fail.
    fn faults_pending(&self) -> bool {
        false
    }

    /// Addresses of blocks the allocator holds in caches: allocated to its heap, yet no caller's
    /// (the runner checks that none of them is live).
    fn cached(&mut self) -> Vec<usize> {
        Vec::new()
    }

    /// Makes the calls that follow run on thread `thread`; false if the backend has no threads.
    fn switch_thread(&mut self, thread: usize) -> bool {
        let _ = thread;
        false
    }

    /// Ends the current thread (the next call on its number runs on a new one); false if the
    /// backend has no threads.
    fn exit_thread(&mut self) -> bool {
        false
    }

    /// Forks from the current thread; the child checks its heap and runs `check` (the shadow's
    /// view of the live blocks). `None` if the backend cannot fork.
    fn fork(
        &mut self,
        check: &(dyn Fn() -> Result<(), String> + Sync),
    ) -> Option<Result<(), String>> {
        let _ = check;
        None
    }
}

impl<B: Backend + ?Sized> Backend for Box<B> {
    fn name(&self) -> String {
        (**self).name()
    }
    fn caps(&self) -> Caps {
        (**self).caps()
    }
    fn limits(&self) -> Limits {
        (**self).limits()
    }
    fn contract(&self) -> Contract {
        (**self).contract()
    }
    unsafe fn call(&mut self, req: Request) -> Reply {
        // SAFETY: the caller upholds `call`'s contract, which is the same for the boxed backend.
        unsafe { (**self).call(req) }
    }
    fn check(&mut self) -> Result<(), String> {
        (**self).check()
    }
    fn check_checkpoint(&mut self) -> Result<(), String> {
        (**self).check_checkpoint()
    }
    fn check_near(&mut self, near: &[Near]) -> Result<(), String> {
        (**self).check_near(near)
    }
    fn inject(&mut self, fault: Fault) -> bool {
        (**self).inject(fault)
    }
    fn faults_pending(&self) -> bool {
        (**self).faults_pending()
    }
    fn cached(&mut self) -> Vec<usize> {
        (**self).cached()
    }
    fn switch_thread(&mut self, thread: usize) -> bool {
        (**self).switch_thread(thread)
    }
    fn exit_thread(&mut self) -> bool {
        (**self).exit_thread()
    }
    fn fork(
        &mut self,
        check: &(dyn Fn() -> Result<(), String> + Sync),
    ) -> Option<Result<(), String>> {
        (**self).fork(check)
    }
}

/// How a backend is named on the command line: `tagalloc`, `libc` or a path to a shared object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Spec {
    /// tagalloc on its own heap (the locked heap with thread caches when the trace names threads).
    Tagalloc,
    /// tagalloc's locked heap with its thread caches, as programs link it.
    Locked,
    /// The process's C allocator.
    Libc,
    /// A shared object loaded with `dlopen`.
    Dylib(String),
}

impl Spec {
    /// Parses `tagalloc`, `locked`, `libc`, or anything else as a path.
    pub fn parse(s: &str) -> Spec {
        match s {
            "tagalloc" => Spec::Tagalloc,
            "locked" => Spec::Locked,
            "libc" => Spec::Libc,
            path => Spec::Dylib(path.to_string()),
        }
    }

    /// A fresh backend for `trace`: a new heap in the trace's configuration for tagalloc; for a
    /// shared object, loaded once per process, a backend whose runs each go to a forked child,
    /// where they start from the state the object had when loaded ([`Caps::global_state`]).
    pub fn open(&self, trace: &crate::op::Trace) -> Result<Box<dyn Backend>, String> {
        Ok(match self {
            Spec::Tagalloc => tagalloc::for_trace(trace, false),
            Spec::Locked => tagalloc::for_trace(trace, true),
            Spec::Libc => Box::new(libc::LibcBackend::new()),
            Spec::Dylib(path) => Box::new(dylib::DylibBackend::open(path)?),
        })
    }
}

impl fmt::Display for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Spec::Tagalloc => f.write_str("tagalloc"),
            Spec::Locked => f.write_str("locked"),
            Spec::Libc => f.write_str("libc"),
            Spec::Dylib(p) => f.write_str(p),
        }
    }
}

/// What glibc answers for requests that must fail or that exceed [`FOREIGN_REQUEST_LIMIT`],
/// without asking the allocator (see [`FOREIGN_REQUEST_LIMIT`] for why). `None`: pass it on.
///
/// For `memalign` it also rounds a non-power-of-two alignment up, as glibc does, so the wrapped
/// allocator only ever sees powers of two (AddressSanitizer rejects the rest).
pub fn answer_without_calling(req: &mut Request) -> Option<Reply> {
    let enomem = Some(Reply::Null { errno: ENOMEM });
    let einval = Some(Reply::Null { errno: EINVAL });
    match req {
        Request::Malloc { size } | Request::Realloc { size, .. } => {
            if *size > FOREIGN_REQUEST_LIMIT {
                return enomem;
            }
        }
        Request::Calloc { count, size } => match count.checked_mul(*size) {
            Some(total) if total <= FOREIGN_REQUEST_LIMIT => {}
            _ => return enomem,
        },
        Request::PosixMemalign { align, size } => {
            if *align % std::mem::size_of::<usize>() != 0 || !align.is_power_of_two() {
                return einval;
            }
            if size.saturating_add(*align) > FOREIGN_REQUEST_LIMIT {
                return enomem;
            }
        }
        Request::AlignedAlloc { align, size } => {
            // glibc 2.38 and later (and C17's reading) reject non-powers of two.
            if !align.is_power_of_two() {
                return einval;
            }
            if size.saturating_add(*align) > FOREIGN_REQUEST_LIMIT {
                return enomem;
            }
        }
        Request::Memalign { align, size } => {
            if *align > usize::MAX / 2 + 1 {
                return einval;
            }
            if *align > 1 && !align.is_power_of_two() {
                *align = align.next_power_of_two();
            }
            if size.saturating_add(*align) > FOREIGN_REQUEST_LIMIT {
                return enomem;
            }
        }
        Request::Free { .. } | Request::UsableSize { .. } => {}
    }
    None
}
