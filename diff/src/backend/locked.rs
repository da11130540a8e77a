//! tagalloc as programs link it: a [`LockedHeap`] with its thread caches and transfer cache, the
//! lock-free `free` and `realloc` paths, the fork handlers, on 1 to [`MAX_THREADS`] threads.
//!
//! Without thread ops every call runs on the calling thread. With them ([`Dialect::Threads`]),
//! every call runs on a worker thread named by the last [`Op::Thread`]; the caller hands one call
//! at a time to one worker and waits for its answer, so the trace's order is the schedule and a
//! failing interleaving replays exactly. A worker that exits ([`Op::ThreadExit`]) returns its
//! cache through the same `pthread` key destructor a real thread's exit runs; [`Op::Fork`] forks
//! from the current worker and checks the child's heap.
//!
//! Only one `LockedHeap` per process holds the thread caches, so runs on this backend take a
//! process-wide lock for their whole life: every run claims the caches afresh, and dropping the
//! heap discards every thread's cache and resets the count of threads sharing them, so a run
//! starts from the same state whatever ran before it in the process.
//!
//! [`Dialect::Threads`]: crate::op::Dialect::Threads
//! [`Op::Thread`]: crate::op::Op::Thread
//! [`Op::ThreadExit`]: crate::op::Op::ThreadExit
//! [`Op::Fork`]: crate::op::Op::Fork

use std::ptr::NonNull;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use tagalloc::source::Sim;

use super::handoff::{Mailbox, Received};
use super::spare::Spare;
use tagalloc::{cache, Config, Error, LockedHeap};

use super::tagalloc::{failed, Bounded, TestSource, SIM_CAPACITY};
use super::{Backend, Caps, Fault, Limits, Near, Reply, Request, FOREIGN_REQUEST_LIMIT};
use crate::op::MAX_THREADS;
use crate::runner;

/// Held by every live [`LockedBackend`]: one at a time per process may own the thread caches.
static CACHES: Mutex<()> = Mutex::new(());

/// How long a forked child may take to check its heap before it counts as hung.
const FORK_TIMEOUT: Duration = Duration::from_secs(20);

type Heap<S> = LockedHeap<Bounded<S>>;

/// The heap, shared with the workers. It lives in a `Box` that outlives them (they are joined
/// before it is dropped), and a `LockedHeap` is `Sync`.
struct Shared<S: TestSource + Send>(*const Heap<S>);

// SAFETY: the pointee is `Sync` (a `LockedHeap` over a `Send` source) and outlives every worker.
unsafe impl<S: TestSource + Send> Send for Shared<S> {}

impl<S: TestSource + Send> Shared<S> {
    fn heap(&self) -> &Heap<S> {
        // SAFETY: the heap outlives every worker (see the type's docs).
        unsafe { &*self.0 }
    }
}

/// What a worker is asked to do.
enum Job {
    Call(Request),
    /// Check the worker's cache (invariant 10) and list its blocks.
    Inspect,
    /// Check the lists of the worker's cache that changed since its last `CheckNear`
    /// ([`LockedHeap::check_caches_seen`]), and the transfer cache.
    CheckNear,
    /// Fork, run the checker in the child; the pointer stays valid until the answer is sent.
    Fork(*const (dyn Fn() -> Result<(), String> + Sync)),
}

/// A worker's answer.
enum Done {
    Reply(Reply),
    Checked(Result<(), String>),
    Inspected(Result<Vec<usize>, String>),
    /// The job panicked (a bug in the allocator): the message, for the caller to re-raise.
    Panicked(String),
}

/// A job and the pointers in it cross to a worker thread that runs it while the sender waits.
struct Sent<T>(T);
// SAFETY: the pointers inside are only addresses of blocks and of a checker the sender keeps
// alive until the answer comes back; the heap they refer to is `Sync`.
unsafe impl<T> Send for Sent<T> {}

/// A worker thread and the mailbox it takes its jobs from ([`Mailbox`]: a handoff costs no system
/// call while both threads have a core).
struct Worker {
    mailbox: Arc<Mailbox<Sent<Job>, Sent<Done>>>,
    handle: JoinHandle<()>,
}

/// tagalloc's locked heap with thread caches, over a private ([`Spare`]) or simulated
/// ([`Sim`]) break.
pub struct LockedBackend<S: TestSource + Send + 'static> {
    heap: Box<Heap<S>>,
    /// `None`: calls run on the calling thread. Else one slot per thread number.
    workers: Option<Vec<Option<Worker>>>,
    current: usize,
    limits: Limits,
    /// The workers' cached blocks, as the last [`Backend::check`] listed them.
    seen: Option<Vec<usize>>,
    /// What the last local check saw of the calling thread's cache (without workers; each
    /// worker keeps its own).
    near_seen: cache::Seen,
    _caches: MutexGuard<'static, ()>,
}

impl LockedBackend<Spare> {
    /// Over a private break; `threads`: calls go to worker threads.
    pub fn reserved(config: Config, threads: bool) -> Self {
        let source = Bounded::new(Spare::take(), FOREIGN_REQUEST_LIMIT);
        Self::new(source, config, threads, Limits::PROCESS)
    }
}

impl LockedBackend<Sim> {
    /// Over a simulated break of [`SIM_CAPACITY`] bytes (fault injection).
    pub fn sim(config: Config, threads: bool) -> Self {
        let source = Bounded::new(Sim::new(SIM_CAPACITY), FOREIGN_REQUEST_LIMIT);
        let limits = Limits {
            request: 1 << 20,
            budget: SIM_CAPACITY / 2,
        };
        Self::new(source, config, threads, limits)
    }
}

impl<S: TestSource + Send + 'static> LockedBackend<S> {
    fn new(source: Bounded<S>, config: Config, threads: bool, limits: Limits) -> Self {
        let guard = CACHES
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let heap = Box::new(LockedHeap::configured(source, config, true));
        assert!(
            heap.owns_caches(),
            "tagalloc-diff: another LockedHeap of this process holds the thread caches"
        );
        LockedBackend {
            heap,
            workers: threads.then(|| (0..MAX_THREADS).map(|_| None).collect()),
            current: 0,
            limits,
            seen: None,
            near_seen: cache::Seen::new(),
            _caches: guard,
        }
    }

    /// The heap, for tests that look inside.
    pub fn heap(&self) -> &LockedHeap<Bounded<S>> {
        &self.heap
    }

    fn spawn(&self) -> Worker {
        let shared = Shared::<S>(&*self.heap);
        let mut near_seen = cache::Seen::new();
        let (mailbox, handle) = Mailbox::spawn(move |Sent(job): Sent<Job>| {
            let heap = shared.heap();
            let mut run = || match job {
                // SAFETY: the runner's contract for `Backend::call`, passed on unchanged.
                Job::Call(req) => Done::Reply(unsafe { call(heap, req) }),
                Job::Inspect => Done::Inspected(
                    heap.check_caches()
                        .map(|()| cached(heap))
                        .map_err(|c| c.to_string()),
                ),
                Job::CheckNear => Done::Inspected(
                    heap.check_caches_seen(&mut near_seen)
                        .map(|()| Vec::new())
                        .map_err(|c| c.to_string()),
                ),
                // SAFETY: the sender keeps the checker alive until it has the answer.
                Job::Fork(check) => Done::Checked(fork_and_check(heap, unsafe { &*check })),
            };
            Sent(match runner::guarded(|| Ok(run())) {
                Ok(done) => done,
                Err(f) => Done::Panicked(f.to_string()),
            })
        });
        Worker { mailbox, handle }
    }

    /// Runs `job` on the current worker (started if need be), or `None` without workers.
    fn on_worker(&mut self, job: Job) -> Option<Done> {
        let current = self.current;
        if self.workers.as_ref()?[current].is_none() {
            let w = self.spawn();
            self.workers.as_mut()?[current] = Some(w);
        }
        let w = self.workers.as_ref()?[current].as_ref()?;
        match w.mailbox.ask(Sent(job)) {
            Received::Got(Sent(Done::Panicked(message))) => {
                panic!("on thread {current}: {message}")
            }
            Received::Got(Sent(done)) => Some(done),
            Received::Closed | Received::Gone => {
                panic!("tagalloc-diff: worker thread {current} died")
            }
        }
    }

    /// Every live worker's number.
    /// The whole walk of the shared heap (with `whole`, all of its fresh memory; else as a
    /// checkpoint, [`LockedHeap::check_checkpoint`]), then every live thread's caches; the
    /// cached blocks found are kept for [`Backend::cached`].
    fn check_all(&mut self, whole: bool) -> Result<(), String> {
        if self.workers.is_none() {
            let r = if whole {
                self.heap.check()
            } else {
                self.heap.check_checkpoint()
            };
            return r.map_err(|c| c.to_string());
        }
        self.heap
            .with(|h| {
                if whole {
                    h.check()
                } else {
                    h.check_checkpoint()
                }
            })
            .map_err(|c| c.to_string())?;
        let current = self.current;
        let mut seen = Vec::new();
        let mut verdict = Ok(());
        for t in self.live_workers() {
            self.current = t;
            match self.on_worker(Job::Inspect) {
                Some(Done::Inspected(Ok(blocks))) => seen.extend(blocks),
                Some(Done::Inspected(Err(m))) => {
                    verdict = Err(format!("thread {t}: {m}"));
                    break;
                }
                _ => unreachable!("an inspection is answered with its findings"),
            }
        }
        self.current = current;
        self.seen = Some(seen);
        verdict
    }

    fn live_workers(&self) -> Vec<usize> {
        match &self.workers {
            None => Vec::new(),
            Some(ws) => (0..ws.len()).filter(|&t| ws[t].is_some()).collect(),
        }
    }

    /// Ends a worker and waits for its exit (which returns its cache to the heap).
    fn join(worker: Worker) {
        worker.mailbox.close();
        // A panic in its exit path (the cache's destructor) is the allocator's: the worker's
        // jobs are guarded, so nothing else can panic there.
        if worker.handle.join().is_err() && !std::thread::panicking() {
            panic!("tagalloc-diff: a worker thread panicked while exiting");
        }
    }
}

/// One call on the locked heap, in C terms.
///
/// # Safety
/// As for [`Backend::call`].
unsafe fn call<S: TestSource + Send>(h: &Heap<S>, req: Request) -> Reply {
    let block = |r: Result<NonNull<u8>, Error>| r.map_or_else(failed, Reply::Ptr);
    match req {
        // The entry points the preload library and `GlobalAlloc` use: the cache-hit path first,
        // then the full call on a miss.
        Request::Malloc { size } => match NonNull::new(h.malloc_cached(size)) {
            Some(p) => Reply::Ptr(p),
            None => block(h.malloc(size)),
        },
        Request::Calloc { count, size } => match NonNull::new(h.calloc_cached(count, size)) {
            Some(p) => Reply::Ptr(p),
            None => block(h.calloc(count, size)),
        },
        // SAFETY: tagalloc detects and reports pointers it did not hand out.
        Request::Realloc { ptr, size } => match unsafe { h.realloc(ptr, size) } {
            Ok(Some(p)) => Reply::Ptr(p),
            Ok(None) => Reply::Freed,
            Err(e) => failed(e),
        },
        // SAFETY: as for realloc.
        Request::Free { ptr } if !ptr.is_null() && unsafe { h.free_cached(ptr) } => Reply::Done,
        // SAFETY: as for realloc (`free_cached` did nothing).
        Request::Free { ptr } => match unsafe { h.free(ptr) } {
            Ok(()) => Reply::Done,
            Err(e) => failed(e),
        },
        Request::PosixMemalign { align, size } => block(h.posix_memalign(align, size)),
        Request::AlignedAlloc { align, size } => block(h.aligned_alloc(align, size)),
        Request::Memalign { align, size } => block(h.memalign(align, size)),
        // SAFETY: as for realloc.
        Request::UsableSize { ptr } => match unsafe { h.usable_size(ptr) } {
            Ok(n) => Reply::Size(n),
            Err(e) => failed(e),
        },
    }
}

fn cached<S: TestSource + Send>(h: &Heap<S>) -> Vec<usize> {
    let mut out = Vec::new();
    h.for_each_cached(|p| out.push(p as usize));
    out
}

/// Forks; the child checks the heap it inherited (the walker and its own cache, `check`, then one
/// allocation and free of each kind of block, then the walker again) and reports through a pipe.
fn fork_and_check<S: TestSource + Send>(
    h: &Heap<S>,
    check: &(dyn Fn() -> Result<(), String> + Sync),
) -> Result<(), String> {
    let mut fds = [0i32; 2];
    // SAFETY: fds is a valid out-array of two descriptors.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(format!("pipe: {}", std::io::Error::last_os_error()));
    }
    let (read, write) = (fds[0], fds[1]);
    // SAFETY: the child only runs `child_checks` and leaves with `_exit`.
    match unsafe { libc::fork() } {
        -1 => Err(format!("fork: {}", std::io::Error::last_os_error())),
        0 => {
            let msg = match child_checks(h, check) {
                Ok(()) => String::new(),
                Err(m) => m,
            };
            // SAFETY: write of our own buffer to our pipe, then leave without running any
            // destructor or atexit handler of the parent's.
            unsafe {
                libc::write(write, msg.as_ptr().cast(), msg.len());
                libc::_exit(i32::from(!msg.is_empty()))
            }
        }
        pid => {
            // SAFETY: our end of the pipe, not used again.
            unsafe { libc::close(write) };
            let (msg, hung) = read_child(read);
            // SAFETY: as above.
            unsafe { libc::close(read) };
            if hung {
                // SAFETY: pid is our child, not yet reaped.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            let mut status = 0;
            // SAFETY: pid is our child; status a valid out-pointer.
            unsafe { libc::waitpid(pid, &mut status, 0) };
            if hung {
                return Err(format!(
                    "the forked child hung for {} s checking its heap",
                    FORK_TIMEOUT.as_secs()
                ));
            }
            if libc::WIFSIGNALED(status) {
                return Err(format!(
                    "the forked child died of signal {} checking its heap{}",
                    libc::WTERMSIG(status),
                    if msg.is_empty() {
                        String::new()
                    } else {
                        format!(": {msg}")
                    }
                ));
            }
            match libc::WEXITSTATUS(status) {
                0 => Ok(()),
                _ => Err(format!("in the forked child: {msg}")),
            }
        }
    }
}

fn child_checks<S: TestSource + Send>(
    h: &Heap<S>,
    check: &(dyn Fn() -> Result<(), String> + Sync),
) -> Result<(), String> {
    h.check().map_err(|c| format!("heap walker: {c}"))?;
    check()?;
    for size in [24, 200, 1000, 5000, 300_000] {
        let p = h
            .malloc(size)
            .map_err(|e| format!("malloc({size}) failed: {e:?}"))?;
        // SAFETY: p is a live block of at least `size` bytes, freed once.
        unsafe {
            p.as_ptr().write_bytes(0x5a, size);
            h.free(p.as_ptr())
                .map_err(|e| format!("free after malloc({size}): {e:?}"))?;
        }
    }
    h.check()
        .map_err(|c| format!("heap walker after allocating: {c}"))
}

/// Reads the child's message until it closes the pipe, or gives up after [`FORK_TIMEOUT`].
fn read_child(fd: i32) -> (String, bool) {
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + FORK_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return (String::from_utf8_lossy(&out).into_owned(), true);
        }
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(1000) as i32) };
        if n <= 0 {
            continue;
        }
        let mut buf = [0u8; 512];
        // SAFETY: buf is writable for its length.
        let got = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if got <= 0 {
            return (String::from_utf8_lossy(&out).into_owned(), false);
        }
        out.extend_from_slice(&buf[..got as usize]);
    }
}

impl<S: TestSource + Send + 'static> Backend for LockedBackend<S> {
    fn name(&self) -> String {
        match self.workers {
            None => format!("{}-locked", S::NAME),
            Some(_) => format!("{}-threads", S::NAME),
        }
    }

    fn caps(&self) -> Caps {
        Caps {
            walker: true,
            misuse: true,
            faults: true,
            segment_below: self.heap.with(|h| h.config().mmap_threshold),
            global_state: false,
        }
    }

    fn limits(&self) -> Limits {
        self.limits
    }

    unsafe fn call(&mut self, req: Request) -> Reply {
        match self.on_worker(Job::Call(req)) {
            Some(Done::Reply(r)) => r,
            Some(_) => unreachable!("a call is answered with a reply"),
            // SAFETY: forwarded contract.
            None => unsafe { call(&self.heap, req) },
        }
    }

    fn check(&mut self) -> Result<(), String> {
        self.check_all(true)
    }

    fn check_checkpoint(&mut self) -> Result<(), String> {
        self.check_all(false)
    }

    /// The local check of the shared heap, and the caches of the current thread only (the one
    /// the op ran on); [`Backend::check`] inspects every thread's.
    fn check_near(&mut self, near: &[Near]) -> Result<(), String> {
        if self.workers.is_none() {
            return self
                .heap
                .check_near_seen(near, &mut self.near_seen)
                .map_err(|c| c.to_string());
        }
        self.heap
            .with(|h| h.check_near(near))
            .map_err(|c| c.to_string())?;
        if !self.live_workers().contains(&self.current) {
            return Ok(());
        }
        match self.on_worker(Job::CheckNear) {
            Some(Done::Inspected(Ok(_))) => Ok(()),
            Some(Done::Inspected(Err(m))) => Err(format!("thread {}: {m}", self.current)),
            _ => unreachable!("an inspection is answered with its findings"),
        }
    }

    fn cached(&mut self) -> Vec<usize> {
        if self.workers.is_none() {
            return cached(&self.heap);
        }
        if self.seen.is_none() {
            let _ = self.check();
        }
        self.seen.take().unwrap_or_default()
    }

    fn inject(&mut self, fault: Fault) -> bool {
        self.heap.with(|h| h.source_mut().inner_mut().inject(fault))
    }

    fn faults_pending(&self) -> bool {
        self.heap.with(|h| h.source().inner().pending())
    }

    fn switch_thread(&mut self, thread: usize) -> bool {
        if self.workers.is_none() || thread >= MAX_THREADS {
            return false;
        }
        self.current = thread;
        true
    }

    fn exit_thread(&mut self) -> bool {
        let current = self.current;
        let Some(ws) = self.workers.as_mut() else {
            return false;
        };
        if let Some(w) = ws[current].take() {
            Self::join(w);
        }
        true
    }

    fn fork(
        &mut self,
        check: &(dyn Fn() -> Result<(), String> + Sync),
    ) -> Option<Result<(), String>> {
        let ptr: *const (dyn Fn() -> Result<(), String> + Sync) = check;
        // SAFETY: `check` outlives this call, and `on_worker` waits for the worker's answer, so
        // extending the borrow to 'static for the trip is sound.
        let ptr: *const (dyn Fn() -> Result<(), String> + Sync + 'static) =
            unsafe { std::mem::transmute(ptr) };
        match self.on_worker(Job::Fork(ptr)) {
            Some(Done::Checked(r)) => Some(r),
            Some(_) => unreachable!("a fork is answered with a verdict"),
            None => Some(fork_and_check(&self.heap, check)),
        }
    }
}

impl<S: TestSource + Send + 'static> Drop for LockedBackend<S> {
    fn drop(&mut self) {
        // Workers first: their exits return their caches to the heap, which must still be there.
        if let Some(ws) = self.workers.take() {
            for w in ws.into_iter().flatten() {
                Self::join(w);
            }
        }
    }
}
