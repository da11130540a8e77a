//! The runner: one trace on one backend, every result judged by the shadow model.
//!
//! Per op: work out what the call must do ([`rules`]), make the call, and judge the reply; check the
//! content of any block about to be handed back to the allocator, and of the neighbours of any
//! block the allocator just touched; then run the heap walker as the checking schedule says
//! (`check`: locally around what the op touched, the whole heap at checkpoints). At the end of
//! the trace, check every live block and walk the whole heap, free them all, and walk it again.
//!
//! Pointers are written through only after the shadow accepted them (aligned, not overlapping a
//! live block), so a broken backend produces a report rather than a wild write.

mod check;
mod misuse;
pub mod progress;

pub use check::{full_every, level, set_level, Check};

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use crate::backend::{Backend, Caps, Fault, Reply, Request};
use crate::op::{Op, Trace};
use crate::report::{Failure, Report};
use crate::shadow::rules::{self, Context, Expect, Need};
use crate::shadow::{pattern, Block, Owner, Shadow};
use crate::text::Number;

/// The class of a reply, as the differential runner compares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A block was returned.
    Block,
    /// `realloc(p, 0)` freed `p`.
    Freed,
    /// `free` (or a fault injection) returned.
    Done,
    /// `malloc_usable_size` answered.
    Size,
    /// The call failed with this `errno`.
    Failed(i32),
    /// A misuse was reported.
    Misuse,
    /// Nothing was called (the backend lacks the function, or the op did not apply).
    Skipped,
}

/// What one op did, for the differential runner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// The reply's class.
    pub outcome: Outcome,
    /// Whether the rules allowed this call to fail for want of memory.
    pub may_fail: bool,
    /// Whether the contract leaves a failure's `errno` unspecified (POSIX's `malloc(0)`, the
    /// malloc lab): two backends' errnos are then not compared.
    pub any_errno: bool,
    /// Whether the contract is glibc's, where an allowed failure other than `ENOMEM` (a refused
    /// alignment) must still be the same on both sides of a differential.
    pub strict: bool,
    /// Digest of the bytes read back (calloc's zeros, realloc's preserved prefix).
    pub digest: Option<u64>,
    /// The block the op worked on before it: (op that made it, its size).
    pub prior: Option<(usize, usize)>,
}

impl Step {
    fn new(outcome: Outcome) -> Step {
        Step {
            outcome,
            may_fail: false,
            any_errno: false,
            strict: true,
            digest: None,
            prior: None,
        }
    }
}

/// One backend, its shadow, and where the trace stands.
pub struct Runner<B: Backend> {
    backend: B,
    caps: Caps,
    shadow: Shadow,
    usable_supported: bool,
    corrupted: bool,
    global_area: Box<misuse::Area>,
    index: usize,
    /// `fork` ops made so far (at most [`MAX_FORKS`]).
    forks: usize,
    /// How much to check between checkpoints ([`check`]).
    level: Check,
    /// Ops since the last checkpoint.
    since_full: usize,
}

/// Most `fork` ops of one trace that fork; later ones are skipped.
pub const MAX_FORKS: usize = 2;

pub(crate) fn call_text(op: &Op) -> String {
    let n = Number;
    match *op {
        Op::Malloc { size, .. } => format!("malloc({})", n(size)),
        Op::Calloc { count, size, .. } => format!("calloc({}, {})", n(count), n(size)),
        Op::Realloc { slot, size } => format!("realloc(slot {slot}, {})", n(size)),
        Op::Free { slot } => format!("free(slot {slot})"),
        Op::PosixMemalign { align, size, .. } => {
            format!("posix_memalign({}, {})", n(align), n(size))
        }
        Op::AlignedAlloc { align, size, .. } => format!("aligned_alloc({}, {})", n(align), n(size)),
        Op::Memalign { align, size, .. } => format!("memalign({}, {})", n(align), n(size)),
        Op::UsableSize { slot } => format!("malloc_usable_size(slot {slot})"),
        op => op.to_string(),
    }
}

pub(crate) fn reply_text(r: &Reply) -> String {
    match r {
        Reply::Ptr(p) => format!("{:#x}", p.as_ptr() as usize),
        Reply::Null { errno } => format!("NULL (errno {errno})"),
        Reply::Freed => "NULL (freed)".into(),
        Reply::Done => "done".into(),
        Reply::Size(n) => format!("size {n}"),
        Reply::Misuse(m) => format!("misuse {m}"),
        Reply::Unsupported => "unsupported".into(),
    }
}

pub(crate) fn unexpected(op: &Op, r: &Reply) -> Failure {
    Failure::UnexpectedReply {
        call: call_text(op),
        reply: reply_text(r),
    }
}

impl<B: Backend> Runner<B> {
    /// A runner over a fresh backend.
    pub fn new(backend: B) -> Runner<B> {
        let caps = backend.caps();
        Runner {
            backend,
            caps,
            shadow: Shadow::new(),
            usable_supported: true,
            corrupted: false,
            global_area: misuse::Area::boxed(),
            index: 0,
            forks: 0,
            level: check::level(),
            since_full: 0,
        }
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The shadow.
    pub fn shadow(&self) -> &Shadow {
        &self.shadow
    }

    fn context(&self) -> Context {
        Context {
            limits: self.backend.limits(),
            spent: self.shadow.spent,
            faults_pending: self.backend.faults_pending(),
            contract: self.backend.contract(),
        }
    }

    fn call(&mut self, req: Request) -> Reply {
        // SAFETY: the runner passes only pointers the backend returned and that the shadow holds
        // as live, or null; bad pointers only in `misuse`, which requires `caps.misuse`.
        unsafe { self.backend.call(req) }
    }

    fn seed(&self, slot: usize) -> u64 {
        // Depends only on the op index and slot, so two backends fill the same bytes.
        (self.index as u64)
            .wrapping_mul(0x2545_f491_4f6c_dd1d)
            .wrapping_add(slot as u64)
            ^ 0x6a09_e667_f3bc_c908
    }

    /// Runs op number `index` of a trace (ops must come in order).
    pub fn step(&mut self, index: usize, op: &Op) -> Result<Step, Failure> {
        self.index = index;
        if self.corrupted {
            return Ok(Step::new(Outcome::Skipped));
        }
        let before = self.touched_before(op);
        let step = self.dispatch(op)?;
        if !self.corrupted {
            self.check_after(op, before)?;
        }
        Ok(step)
    }

    /// The backend's heap walker, and no cached block live in the shadow; with `whole`, the
    /// walk that calls a heap sound ([`Backend::check`]), else a checkpoint's
    /// ([`Backend::check_checkpoint`]: fresh memory in part).
    fn walk(&mut self, whole: bool) -> Result<(), Failure> {
        let walked = if whole {
            self.backend.check()
        } else {
            self.backend.check_checkpoint()
        };
        walked.map_err(|message| Failure::HeapCheck { message })?;
        for addr in self.backend.cached() {
            if let Some((owner, b)) = self.shadow.at(addr) {
                return Err(Failure::CachedWhileLive {
                    block: self.shadow.block_ref(owner, &b),
                });
            }
        }
        Ok(())
    }

    fn dispatch(&mut self, op: &Op) -> Result<Step, Failure> {
        let ctx = self.context();
        match *op {
            Op::Malloc { slot, size } => {
                let e = rules::malloc(size, &ctx);
                let r = self.call(Request::Malloc { size });
                self.allocated(op, slot, e, 1, false, r)
            }
            Op::Calloc { slot, count, size } => {
                let e = rules::calloc(count, size, &ctx);
                let r = self.call(Request::Calloc { count, size });
                self.allocated(op, slot, e, 1, true, r)
            }
            Op::PosixMemalign { slot, align, size } => {
                let e = rules::posix_memalign(align, size, &ctx);
                let r = self.call(Request::PosixMemalign { align, size });
                self.allocated(op, slot, e, align, false, r)
            }
            Op::AlignedAlloc { slot, align, size } => {
                let e = rules::aligned_alloc(align, size, &ctx);
                let r = self.call(Request::AlignedAlloc { align, size });
                self.allocated(op, slot, e, align, false, r)
            }
            Op::Memalign { slot, align, size } => {
                let e = rules::memalign(align, size, &ctx);
                let r = self.call(Request::Memalign { align, size });
                self.allocated(op, slot, e, align, false, r)
            }
            Op::Realloc { slot, size } => self.realloc(op, slot, size, &ctx),
            Op::Free { slot } => self.free(op, slot),
            Op::UsableSize { slot } => self.usable_size(op, slot),
            Op::Check => {
                // SAFETY: every block in the shadow is live in the backend.
                unsafe { self.shadow.verify_all()? };
                Ok(Step::new(Outcome::Done))
            }
            Op::Misuse { call, ptr } => self.misuse(op, call, ptr),
            Op::Overwrite { slot, len } => self.overwrite(slot, len),
            Op::WriteFreed { slot, word } => self.write_freed(slot, word),
            Op::FailNext { count } => Ok(self.inject(Fault::FailNext(count))),
            Op::ForeignSbrk { bytes } => {
                // The heap may abandon the rest of its segment when the break jumps.
                self.shadow.spent = self.shadow.spent.saturating_add(bytes + (256 << 10));
                Ok(self.inject(Fault::ForeignSbrk(bytes)))
            }
            Op::Thread { thread } => Ok(Step::new(if self.backend.switch_thread(thread) {
                Outcome::Done
            } else {
                Outcome::Skipped
            })),
            Op::ThreadExit => Ok(Step::new(if self.backend.exit_thread() {
                Outcome::Done
            } else {
                Outcome::Skipped
            })),
            // A fork of a process as large as a sanitized fuzzer costs milliseconds: the first
            // forks of a trace are made, later ones skipped.
            Op::Fork if self.forks >= MAX_FORKS => Ok(Step::new(Outcome::Skipped)),
            Op::Fork => {
                self.forks += 1;
                let shadow = &self.shadow;
                // SAFETY: in the child, every block in the shadow is still live (a copy of ours).
                let check = || unsafe { shadow.verify_all() }.map_err(|f| f.to_string());
                match self.backend.fork(&check) {
                    None => Ok(Step::new(Outcome::Skipped)),
                    Some(Ok(())) => Ok(Step::new(Outcome::Done)),
                    Some(Err(message)) => Err(Failure::ForkChild { message }),
                }
            }
        }
    }

    fn inject(&mut self, fault: Fault) -> Step {
        if self.caps.faults && self.backend.inject(fault) {
            Step::new(Outcome::Done)
        } else {
            Step::new(Outcome::Skipped)
        }
    }

    /// Judges a failed call against `e`.
    fn failed(&self, op: &Op, e: &Expect, errno: i32) -> Result<Step, Failure> {
        if e.need == Need::Success {
            return Err(Failure::NullWhereSuccessRequired {
                call: call_text(op),
                errno,
                rule: e.rule.into(),
            });
        }
        if !e.errnos.is_empty() && !e.errnos.contains(&errno) {
            return Err(Failure::WrongErrno {
                call: call_text(op),
                errno,
                allowed: e.errnos.to_vec(),
                rule: e.rule.into(),
            });
        }
        Ok(Step {
            may_fail: e.need == Need::Either,
            any_errno: e.errnos.is_empty(),
            strict: self.backend.contract() == crate::shadow::rules::Contract::Glibc,
            ..Step::new(Outcome::Failed(errno))
        })
    }

    /// Asks the backend for the usable size of a block it just returned.
    fn usable(&mut self, op: &Op, b: &Block, slot: usize) -> Result<Option<usize>, Failure> {
        if !self.usable_supported {
            return Ok(None);
        }
        match self.call(Request::UsableSize {
            ptr: b.addr as *mut u8,
        }) {
            Reply::Size(u) if u >= b.size => Ok(Some(u)),
            Reply::Size(usable) => Err(Failure::UsableTooSmall {
                block: self.shadow.block_ref(Owner::Slot(slot), b),
                usable,
            }),
            Reply::Unsupported => {
                self.usable_supported = false;
                Ok(None)
            }
            r => Err(unexpected(op, &r)),
        }
    }

    /// Checks a block just returned (alignment, overlap) and records it in `slot`.
    fn accept(
        &mut self,
        op: &Op,
        slot: usize,
        e: &Expect,
        align: usize,
        addr: usize,
    ) -> Result<Block, Failure> {
        if e.need == Need::Failure {
            return Err(Failure::SuccessWhereFailureRequired {
                call: call_text(op),
                addr,
                rule: e.rule.into(),
            });
        }
        let mut b = Block {
            addr,
            size: e.size,
            usable: None,
            align,
            seed: self.seed(slot),
            born: self.index,
        };
        if addr % e.align != 0 {
            return Err(Failure::Misaligned {
                block: self.shadow.block_ref(Owner::Slot(slot), &b),
                align: e.align,
                rule: e.align_rule(self.backend.contract()).into(),
            });
        }
        // The usable size first: the block's extent, for the overlap check, is all of it.
        b.usable = self.usable(op, &b, slot)?;
        self.shadow.insert(slot, b)?;
        self.shadow.spent = self.shadow.spent.saturating_add(rules::cost(e.size, align));
        Ok(b)
    }

    fn allocated(
        &mut self,
        op: &Op,
        slot: usize,
        e: Expect,
        align: usize,
        zeroed: bool,
        r: Reply,
    ) -> Result<Step, Failure> {
        match r {
            Reply::Ptr(p) => {
                let b = self.accept(op, slot, &e, align, p.as_ptr() as usize)?;
                let mut digest = None;
                if zeroed {
                    let regions = pattern::regions(b.size);
                    for r in regions.iter().cloned() {
                        // SAFETY: the block is live, `b.size` bytes, and overlaps no other block.
                        let bad = unsafe { pattern::mismatch(p.as_ptr(), None, r) };
                        if let Some((offset, found, _)) = bad {
                            return Err(Failure::CallocNotZero {
                                block: self.shadow.block_ref(Owner::Slot(slot), &b),
                                offset,
                                found,
                            });
                        }
                    }
                    // SAFETY: as above.
                    digest = Some(unsafe { pattern::digest(p.as_ptr(), &regions) });
                }
                // SAFETY: as above; and every other recorded block is live.
                unsafe {
                    Shadow::fill(&b);
                    self.shadow.verify_neighbours(b.addr)?;
                }
                Ok(Step {
                    may_fail: e.need == Need::Either,
                    digest,
                    ..Step::new(Outcome::Block)
                })
            }
            Reply::Null { errno } => self.failed(op, &e, errno),
            Reply::Unsupported => Ok(Step::new(Outcome::Skipped)),
            r => Err(unexpected(op, &r)),
        }
    }

    fn realloc(
        &mut self,
        op: &Op,
        slot: usize,
        size: usize,
        ctx: &Context,
    ) -> Result<Step, Failure> {
        let Some(old) = self.shadow.get(slot).copied() else {
            let e = rules::malloc(size, ctx);
            let r = self.call(Request::Realloc {
                ptr: ptr::null_mut(),
                size,
            });
            return self.allocated(op, slot, e, 1, false, r);
        };
        let owner = Owner::Slot(slot);
        // SAFETY: the block is live.
        unsafe { self.shadow.verify(owner, &old)? };
        let prior = Some((old.born, old.size));
        let r = self.call(Request::Realloc {
            ptr: old.addr as *mut u8,
            size,
        });
        let e = rules::malloc(size, ctx);
        match r {
            Reply::Freed if size == 0 => {
                self.shadow.remove(owner);
                // SAFETY: the recorded blocks are live.
                unsafe { self.shadow.verify_neighbours(old.addr)? };
                Ok(Step {
                    prior,
                    ..Step::new(Outcome::Freed)
                })
            }
            Reply::Ptr(p) => {
                self.shadow.remove(owner);
                let b = self.accept(op, slot, &e, 1, p.as_ptr() as usize)?;
                let keep = pattern::regions_below(old.size, old.size.min(size));
                for r in keep.iter().cloned() {
                    // SAFETY: the new block is live, `size` bytes, and overlaps no other block.
                    let bad = unsafe { pattern::mismatch(p.as_ptr(), Some(old.seed), r) };
                    if let Some((offset, found, expected)) = bad {
                        return Err(Failure::ReallocLostPrefix {
                            block: self.shadow.block_ref(owner, &b),
                            old: self.shadow.block_ref(owner, &old),
                            offset,
                            found,
                            expected,
                        });
                    }
                }
                // SAFETY: as above; and every other recorded block is live.
                let digest = unsafe {
                    let d = pattern::digest(p.as_ptr(), &keep);
                    Shadow::fill(&b);
                    self.shadow.verify_neighbours(b.addr)?;
                    if b.addr != old.addr {
                        self.shadow.verify_neighbours(old.addr)?;
                    }
                    d
                };
                Ok(Step {
                    may_fail: e.need == Need::Either,
                    digest: Some(digest),
                    prior,
                    ..Step::new(Outcome::Block)
                })
            }
            Reply::Null { errno } if size != 0 => {
                let step = self.failed(op, &e, errno)?;
                // SAFETY: a failed realloc leaves the old block live and unchanged.
                unsafe { self.shadow.verify(owner, &old)? };
                Ok(Step { prior, ..step })
            }
            r => Err(unexpected(op, &r)),
        }
    }

    fn free(&mut self, op: &Op, slot: usize) -> Result<Step, Failure> {
        let Some(old) = self.shadow.get(slot).copied() else {
            return match self.call(Request::Free {
                ptr: ptr::null_mut(),
            }) {
                Reply::Done => Ok(Step::new(Outcome::Done)),
                r => Err(unexpected(op, &r)),
            };
        };
        let owner = Owner::Slot(slot);
        // SAFETY: the block is live.
        unsafe { self.shadow.verify(owner, &old)? };
        match self.call(Request::Free {
            ptr: old.addr as *mut u8,
        }) {
            Reply::Done => {
                self.shadow.remove(owner);
                // SAFETY: the recorded blocks are live.
                unsafe { self.shadow.verify_neighbours(old.addr)? };
                Ok(Step {
                    prior: Some((old.born, old.size)),
                    ..Step::new(Outcome::Done)
                })
            }
            r => Err(unexpected(op, &r)),
        }
    }

    fn usable_size(&mut self, op: &Op, slot: usize) -> Result<Step, Failure> {
        let b = self.shadow.get(slot).copied();
        let ptr = b.map_or(ptr::null_mut(), |b| b.addr as *mut u8);
        match (self.call(Request::UsableSize { ptr }), b) {
            (Reply::Size(0), None) => Ok(Step::new(Outcome::Size)),
            (Reply::Size(usable), None) => Err(Failure::UsableOfNull { usable }),
            (Reply::Size(u), Some(b)) if u >= b.size => Ok(Step::new(Outcome::Size)),
            (Reply::Size(usable), Some(b)) => Err(Failure::UsableTooSmall {
                block: self.shadow.block_ref(Owner::Slot(slot), &b),
                usable,
            }),
            (Reply::Unsupported, _) => Ok(Step::new(Outcome::Skipped)),
            (r, _) => Err(unexpected(op, &r)),
        }
    }

    /// The end of the trace: checks every live block, frees them all, walks the heap.
    pub fn finish(&mut self) -> Result<(), Failure> {
        if self.corrupted {
            return Ok(());
        }
        // A checkpoint's walk: the whole walk after the frees below compares all fresh memory.
        self.checkpoint(true, false)?;
        for (owner, b) in self.shadow.live() {
            match self.call(Request::Free {
                ptr: b.addr as *mut u8,
            }) {
                Reply::Done => {
                    self.shadow.remove(owner);
                }
                r => {
                    return Err(Failure::UnexpectedReply {
                        call: format!("free({:#x}) at the end of the trace", b.addr),
                        reply: reply_text(&r),
                    })
                }
            }
        }
        if self.caps.walker {
            self.walk(true)?;
        }
        Ok(())
    }
}

/// The message of a caught panic.
pub fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic payload)".into()
    }
}

thread_local! {
    /// Whether this thread runs inside [`guarded`] (with the hook of [`quiet_guarded_panics`]).
    static GUARDED: Cell<bool> = const { Cell::new(false) };
    /// Where the last panic inside [`guarded`] happened, as the quiet hook saw it.
    static PANICKED_AT: Cell<Option<String>> = const { Cell::new(None) };
}

/// Runs `f`, turning a panic into [`Failure::Panic`].
pub fn guarded<T>(f: impl FnOnce() -> Result<T, Failure>) -> Result<T, Failure> {
    let outer = GUARDED.replace(true);
    let r = catch_unwind(AssertUnwindSafe(f));
    GUARDED.set(outer);
    match r {
        Ok(r) => r,
        Err(p) => {
            let mut message = panic_message(&*p);
            if let Some(at) = PANICKED_AT.take() {
                message = format!("{message} (at {at})");
            }
            Err(Failure::Panic { message })
        }
    }
}

/// Makes panics inside [`guarded`] quiet: the panic hook only notes where they happened and lets
/// them unwind to `guarded`, which reports them with the trace like any oracle. Panics elsewhere
/// go to the hook installed before (libFuzzer's, which aborts so the fuzzer sees a crash).
/// Installed once per process by [`crate::targets::fuzz`]: without it, libFuzzer's hook aborts
/// on a panic inside the allocator before `guarded` can turn it into a report.
pub fn quiet_guarded_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let before = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if GUARDED.get() {
                PANICKED_AT.set(info.location().map(|l| l.to_string()));
            } else {
                before(info);
            }
        }));
    });
}

/// Drops `value`, swallowing a panic in its destructor (a heap left broken by a failure).
pub fn drop_quietly<T>(value: T) {
    let _ = catch_unwind(AssertUnwindSafe(move || drop(value)));
}

/// Runs `trace` on `backend` with the shadow model, in this process; the first oracle that fires
/// is reported.
///
/// A backend with [`Caps::global_state`] (a shared object) should run in a forked child instead,
/// so that it starts from its pristine state and a crash becomes a report: that is the layer
/// above, [`crate::isolate`], which the caller picks.
pub fn run<B: Backend>(backend: B, trace: &Trace) -> Result<(), Report> {
    run_watched(backend, trace, &mut |_| {})
}

/// [`run`], calling `watch(i)` before op `i` and
/// `watch(trace.len())` before the end-of-trace checks (how an isolated child tells its parent
/// where it is).
pub fn run_watched<B: Backend>(
    backend: B,
    trace: &Trace,
    watch: &mut dyn FnMut(usize),
) -> Result<(), Report> {
    let name = backend.name();
    let mut runner = Runner::new(backend);
    let mut result = Ok(());
    let mut progress = progress::Progress::new(trace.len());
    for (i, op) in trace.ops.iter().enumerate() {
        watch(i);
        progress.tick(i, runner.shadow.len());
        if let Err(f) = guarded(|| runner.step(i, op)) {
            result = Err(Report::new(name.clone(), trace, i, f));
            break;
        }
    }
    progress.done(runner.shadow.len());
    if result.is_ok() {
        watch(trace.len());
        if let Err(f) = guarded(|| runner.finish()) {
            result = Err(Report::new(name, trace, trace.len(), f));
        }
    }
    drop_quietly(runner);
    result
}
