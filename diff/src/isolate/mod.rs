//! Process isolation: a whole trace run in a forked child, for backends whose state belongs to the
//! process ([`Caps::global_state`](crate::backend::Caps::global_state): a shared object, loaded
//! once and never reset).
//!
//! Why. Such an allocator keeps its free lists and its break in the object's globals, so a run in
//! this process would start from whatever earlier runs left: reports would depend on history, and
//! the "minimal" trace the shrinker prints would not reproduce on its own. A fork is the reset.
//! This process loads the object and looks its functions up, but never calls them; so every child
//! starts with the object exactly as loaded: every single-backend run, every differential that
//! involves such a backend, every candidate the shrinker tries.
//!
//! How. The parent maps one small shared record of progress, opens a pipe and forks. The child
//! runs the ordinary in-process code ([`runner::run_watched`], [`differ::diff_watched`]), noting
//! in the shared record which op it is about to run on which side; then writes its verdict (pass,
//! or the report's backend, op index and failure, in the compact binary form of `wire.rs`) to the
//! pipe and `_exit`s, running no destructors and no `atexit` handlers. The parent reads the
//! verdict and makes the same [`Report`] the run would have made in process. A child that dies
//! without a verdict (`SIGSEGV`, `SIGABRT`, an allocator calling `exit`) becomes
//! [`Failure::Crashed`] at the op it was running, on the backend it was running; one that makes no
//! progress for [`Isolation::stall`] is killed and reported as a hang. The shrinker then shrinks a
//! crash like any other failure ("crashes at some op"), so a student's allocator that segfaults
//! yields a readable minimal trace instead of taking the tool down.
//!
//! The child cannot dump core (its crashes are expected, and a core handler may take far longer
//! than the run) and is killed if the parent dies. Forked from a multithreaded process (the test
//! harness), the child has only the forking thread: glibc's `fork` leaves `malloc` usable in the
//! child, and the run takes no other lock a parent thread could hold, except standard error when
//! a backend panics; the stall limit ends that case too. Both sides of a differential share one
//! child, so a shared object on both sides (`diff --backend x.so --against x.so`) is one
//! allocator serving both, in a deterministic interleaving.

pub mod measure;
mod wire;

use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use crate::backend::Backend;
use crate::differ::{self, Side};
use crate::op::{Op, Trace};
use crate::report::{Death, Failure, Report};
use crate::runner::{self, panic_message};

/// How an isolated run is watched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Isolation {
    /// Longest time one op (or the end-of-trace checks) may run before the child is killed and
    /// the run reported as a hang, for an op that asks for no memory.
    pub stall: Duration,
    /// Added to [`Isolation::stall`] for every GiB an op asks for: an allocator that zeroes or
    /// copies a large block, and the shadow that fills it, take time in proportion (a correct
    /// 512 MiB `calloc` took 3.7 s on a loaded machine).
    pub per_gib: Duration,
}

impl Default for Isolation {
    /// Two seconds, plus 16 seconds a GiB: a sane allocator answers a small request in
    /// microseconds, and a large one at memory speed.
    fn default() -> Isolation {
        Isolation {
            stall: Duration::from_secs(2),
            per_gib: Duration::from_secs(16),
        }
    }
}

impl Isolation {
    /// A fixed limit whatever the op (for tests that make a backend hang on purpose).
    pub fn fixed(stall: Duration) -> Isolation {
        Isolation {
            stall,
            per_gib: Duration::ZERO,
        }
    }

    /// The limit for op `op` of `trace` (`trace.len()`: the end-of-trace checks, which read every
    /// live block, so they get the limit of the largest request of the trace).
    pub fn limit(&self, trace: &Trace, op: usize) -> Duration {
        let bytes = match trace.ops.get(op) {
            Some(op) => op.requested(),
            None => trace.ops.iter().map(Op::requested).max().unwrap_or(0),
        };
        // Requests above 64 GiB cannot succeed anyway: the allocator may only refuse them.
        let gib = (bytes.min(64 << 30) as f64) / f64::from(1u32 << 30);
        self.stall + self.per_gib.mul_f64(gib)
    }
}

/// Runs `trace` on `backend` where it must run: in a forked child if its state belongs to the
/// process ([`Caps::global_state`](crate::backend::Caps::global_state)), else in this process.
/// The wrapper a caller picks when it does not always want a fork.
pub fn run_where_needed<B: Backend>(
    backend: B,
    trace: &Trace,
    iso: Isolation,
) -> Result<(), Report> {
    if backend.caps().global_state {
        run(backend, trace, iso)
    } else {
        runner::run(backend, trace)
    }
}

/// [`diff`] in a forked child if either backend's state belongs to the process, else
/// [`differ::diff`] here.
pub fn diff_where_needed<A: Backend, B: Backend>(
    a: A,
    b: B,
    trace: &Trace,
    iso: Isolation,
) -> Result<(), Report> {
    if a.caps().global_state || b.caps().global_state {
        diff(a, b, trace, iso)
    } else {
        differ::diff(a, b, trace)
    }
}

/// Runs `trace` on `backend` in a forked child ([`runner::run_watched`] there); the verdict is
/// the one the run makes, or [`Failure::Crashed`] at the op where the child died.
pub fn run<B: Backend>(backend: B, trace: &Trace, iso: Isolation) -> Result<(), Report> {
    let name = backend.name();
    let (verdict, _) = in_child([name.clone(), name], trace, iso, Vec::new, move |watch| {
        runner::run_watched(backend, trace, &mut |i| watch(Side::Left, i))
    });
    verdict
}

/// [`run`], and what `collect` returns in the child once the trace is done (the features a
/// fuzzer's feedback is made of, from notes the backend filled: see
/// [`crate::fuzz_so::features`]); none if the child died.
pub fn run_collecting<B: Backend>(
    backend: B,
    trace: &Trace,
    iso: Isolation,
    collect: impl FnOnce() -> Vec<u64>,
) -> (Result<(), Report>, Vec<u64>) {
    let name = backend.name();
    in_child([name.clone(), name], trace, iso, collect, move |watch| {
        runner::run_watched(backend, trace, &mut |i| watch(Side::Left, i))
    })
}

/// [`diff`], and what `collect` returns in the child once the differential is done (as
/// [`run_collecting`]).
pub fn diff_collecting<A: Backend, B: Backend>(
    a: A,
    b: B,
    trace: &Trace,
    iso: Isolation,
    collect: impl FnOnce() -> Vec<u64>,
) -> (Result<(), Report>, Vec<u64>) {
    let names = [a.name(), b.name()];
    in_child(names, trace, iso, collect, move |watch| {
        differ::diff_watched(a, b, trace, watch)
    })
}

/// Runs the differential of `a` and `b` on `trace` in a forked child ([`differ::diff_watched`]
/// there); a crash names the backend that was running.
pub fn diff<A: Backend, B: Backend>(
    a: A,
    b: B,
    trace: &Trace,
    iso: Isolation,
) -> Result<(), Report> {
    diff_collecting(a, b, trace, iso, Vec::new).0
}

/// Runs `check(i)` for jobs `0..jobs` in as few forked children as it can: one child runs the jobs
/// in order until one fails (`check` returns false), dies or stalls for `stall`; the parent notes
/// that job and goes on from the next in a new child, until `limit` jobs have failed. Returns the
/// jobs that did not pass, in order.
/// For replaying a whole corpus at the cost of a fork or two, with a crash confined to the input
/// that caused it (the caller then reruns that one input alone, isolated, for its report).
pub fn failing_jobs(
    jobs: usize,
    stall: Duration,
    limit: usize,
    check: impl Fn(usize) -> bool,
) -> Vec<usize> {
    let mut failed = Vec::new();
    let mut start = 0;
    while start < jobs && failed.len() < limit {
        let progress = SharedProgress::new();
        let (read, write) = pipe();
        // SAFETY: getpid has no preconditions.
        let parent = unsafe { libc::getpid() };
        // SAFETY: as in `in_child`: the child runs code that also runs in process and ends with
        // `_exit`, never returning here.
        match unsafe { libc::fork() } {
            -1 => panic!("isolate: cannot fork: {}", io::Error::last_os_error()),
            0 => {
                drop(read);
                become_child(parent);
                let p = progress.get();
                for i in start..jobs {
                    p.op.store(i, Relaxed);
                    p.ticks.fetch_add(1, Relaxed);
                    if !catch_unwind(AssertUnwindSafe(|| check(i))).unwrap_or(false) {
                        // SAFETY: ends the child without running anything of the parent's.
                        unsafe { libc::_exit(1) };
                    }
                }
                drop(write);
                // SAFETY: as above.
                unsafe { libc::_exit(0) }
            }
            pid => {
                drop(write);
                let (_, end) = follow(pid, &read, progress.get(), &|_| stall);
                if matches!(end, End::Status(0)) {
                    break;
                }
                let at = progress.get().op.load(Relaxed).max(start);
                failed.push(at);
                start = at + 1;
            }
        }
    }
    failed
}

/// Where the child is, in memory shared with the parent. All zero (op 0 on the left) until the
/// child's first op.
#[repr(C)]
struct Progress {
    /// How many times the child moved on, so the parent tells progress from a stall.
    ticks: AtomicUsize,
    /// Side running: 0 left, 1 right.
    side: AtomicUsize,
    /// Op running (the trace's length: the end-of-trace checks).
    op: AtomicUsize,
}

/// A [`Progress`] in a shared anonymous mapping, which a forked child shares with its parent.
struct SharedProgress(NonNull<Progress>);

impl SharedProgress {
    fn new() -> SharedProgress {
        // SAFETY: a fresh anonymous mapping, touching no existing memory.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                std::mem::size_of::<Progress>(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            panic!(
                "isolate: cannot map shared memory: {}",
                io::Error::last_os_error()
            );
        }
        SharedProgress(NonNull::new(p.cast()).expect("mmap returned null"))
    }

    fn get(&self) -> &Progress {
        // SAFETY: the mapping is page-aligned, zero-filled (a valid `Progress` of zero atomics),
        // and lives until `self` is dropped; atomics make shared access sound.
        unsafe { self.0.as_ref() }
    }
}

impl Drop for SharedProgress {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, no longer borrowed.
        unsafe { libc::munmap(self.0.as_ptr().cast(), std::mem::size_of::<Progress>()) };
    }
}

/// An owned file descriptor.
struct Fd(i32);

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: the descriptor is ours and closed only here.
        unsafe { libc::close(self.0) };
    }
}

fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// A pipe (read end non-blocking, both ends closed on `exec`).
fn pipe() -> (Fd, Fd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        panic!(
            "isolate: cannot make a pipe: {}",
            io::Error::last_os_error()
        );
    }
    let (read, write) = (Fd(fds[0]), Fd(fds[1]));
    // SAFETY: F_SETFL on a descriptor we own.
    unsafe { libc::fcntl(read.0, libc::F_SETFL, libc::O_NONBLOCK) };
    (read, write)
}

/// Forks; the child runs `body`, then `collect`, and reports; the parent watches it and returns
/// its verdict and what `collect` gave.
fn in_child(
    names: [String; 2],
    trace: &Trace,
    iso: Isolation,
    collect: impl FnOnce() -> Vec<u64>,
    body: impl FnOnce(&mut dyn FnMut(Side, usize)) -> Result<(), Report>,
) -> (Result<(), Report>, Vec<u64>) {
    let progress = SharedProgress::new();
    let (read, write) = pipe();
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: in the child, which has only this thread, `child` runs the trace (code that also
    // runs in process, whose allocations go to glibc's malloc, which glibc's fork leaves usable)
    // and ends with `_exit`: it never returns here, so nothing of the parent's is run or dropped
    // twice. The parent goes on as if it had called nothing.
    match unsafe { libc::fork() } {
        -1 => panic!("isolate: cannot fork: {}", io::Error::last_os_error()),
        0 => {
            drop(read);
            child(parent, write, progress.get(), &names, trace, collect, body)
        }
        pid => {
            drop(write);
            let limit = |op: usize| iso.limit(trace, op);
            let (buf, end) = follow(pid, &read, progress.get(), &limit);
            let p = progress.get();
            let (side, op) = (p.side.load(Relaxed).min(1), p.op.load(Relaxed));
            let death = match (wire::complete(&buf), end) {
                (Some(msg), _) => {
                    return match wire::verdict(msg) {
                        Some((Ok(()), features)) => (Ok(()), features),
                        Some((Err((backend, index, failure)), features)) => {
                            (Err(Report::new(backend, trace, index, failure)), features)
                        }
                        None => panic!("isolate: malformed verdict from the child"),
                    };
                }
                (None, End::Status(status)) => death_of(status),
                (None, End::Hung) => Death::Hang(iso.limit(trace, op).as_millis() as u64),
            };
            let [left, right] = names;
            let backend = if side == 0 { left } else { right };
            let report = Report::new(
                backend,
                trace,
                op.min(trace.len()),
                Failure::Crashed { death },
            );
            (Err(report), Vec::new())
        }
    }
}

/// Sets a freshly forked child up: killed if the parent dies, no core dumps (its crashes are
/// expected), standard error to `/dev/null` (a crash is reported by the parent, from the child's
/// wait status and progress; a sanitizer's or a panic's pages of output for every candidate the
/// shrinker tries would bury it; `TAGALLOC_DIFF_CHILD_STDERR=1` keeps it); exits at once if the
/// parent is already gone.
fn become_child(parent: i32) {
    if std::env::var_os("TAGALLOC_DIFF_CHILD_STDERR").as_deref() != Some("1".as_ref()) {
        // SAFETY: open of a NUL-terminated path; dup2 onto standard error, which this process owns.
        unsafe {
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY);
            if null >= 0 {
                libc::dup2(null, 2);
                libc::close(null);
            }
        }
    }
    let no_core = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: prctl and setrlimit only change this process's attributes; `no_core` is valid.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        libc::prctl(libc::PR_SET_DUMPABLE, 0);
        libc::setrlimit(libc::RLIMIT_CORE, &no_core);
        if libc::getppid() != parent {
            // The parent died before PR_SET_PDEATHSIG took hold.
            libc::_exit(EXIT_ORPHAN);
        }
    }
}

/// The child: runs `body`, sends the verdict, exits.
fn child(
    parent: i32,
    write: Fd,
    progress: &Progress,
    names: &[String; 2],
    trace: &Trace,
    collect: impl FnOnce() -> Vec<u64>,
    body: impl FnOnce(&mut dyn FnMut(Side, usize)) -> Result<(), Report>,
) -> ! {
    become_child(parent);
    let mut watch = |side: Side, op: usize| {
        progress.side.store(side as usize, Relaxed);
        progress.op.store(op, Relaxed);
        progress.ticks.fetch_add(1, Relaxed);
    };
    // The runner turns a panic of the backend into a report; this catches one outside it.
    let result = catch_unwind(AssertUnwindSafe(|| body(&mut watch))).unwrap_or_else(|p| {
        let side = progress.side.load(Relaxed).min(1);
        Err(Report::new(
            names[side].clone(),
            trace,
            progress.op.load(Relaxed).min(trace.len()),
            Failure::Panic {
                message: panic_message(&*p),
            },
        ))
    });
    let features = catch_unwind(AssertUnwindSafe(collect)).unwrap_or_default();
    let msg = wire::message(&result, &features);
    let mut sent = 0;
    while sent < msg.len() {
        // SAFETY: writing from a live buffer of at least `msg.len() - sent` bytes past `sent`.
        let n = unsafe { libc::write(write.0, msg[sent..].as_ptr().cast(), msg.len() - sent) };
        if n > 0 {
            sent += n as usize;
        } else if n < 0 && errno() == libc::EINTR {
            continue;
        } else {
            // SAFETY: `_exit` ends the process without running anything of the parent's.
            unsafe { libc::_exit(EXIT_ORPHAN) };
        }
    }
    // SAFETY: as above.
    unsafe { libc::_exit(0) }
}

/// Exit status of a child whose parent is gone (nobody reads it).
const EXIT_ORPHAN: i32 = 125;

/// How the watch of a child ended.
enum End {
    /// It was reaped with this wait status.
    Status(i32),
    /// It stalled, and was killed and reaped.
    Hung,
}

/// `waitpid(pid)`; `None` if `nohang` and it is still running.
fn wait(pid: i32, nohang: bool) -> Option<i32> {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid out-pointer; `pid` is our child.
        let r = unsafe { libc::waitpid(pid, &mut status, if nohang { libc::WNOHANG } else { 0 }) };
        match r {
            0 => return None,
            r if r == pid => return Some(status),
            _ if errno() == libc::EINTR => continue,
            _ => panic!("isolate: waitpid: {}", io::Error::last_os_error()),
        }
    }
}

/// Reads what is in the pipe into `buf`; true at end of file (every writer gone).
fn drain(fd: &Fd, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 4096];
    loop {
        // SAFETY: reading into a live buffer of `chunk.len()` bytes.
        let n = unsafe { libc::read(fd.0, chunk.as_mut_ptr().cast(), chunk.len()) };
        match n {
            0 => return true,
            n if n > 0 => buf.extend_from_slice(&chunk[..n as usize]),
            _ => match errno() {
                libc::EINTR => {}
                libc::EAGAIN => return false,
                _ => panic!("isolate: read: {}", io::Error::last_os_error()),
            },
        }
    }
}

/// Reads the child's message until it is whole or the child is gone, killing a child that
/// stalls (on op `i` for longer than `stall(i)`); reaps it. The child's write end may also be
/// held by a sibling forked meanwhile by another thread, so the end of the message, or the
/// child's exit, decides, not end of file.
fn follow(
    pid: i32,
    read: &Fd,
    progress: &Progress,
    stall: &dyn Fn(usize) -> Duration,
) -> (Vec<u8>, End) {
    let slice = (stall(0) / 4).clamp(Duration::from_millis(1), Duration::from_millis(100));
    let mut buf = Vec::new();
    let (mut seen, mut since) = (0, Instant::now());
    loop {
        let mut pfd = libc::pollfd {
            fd: read.0,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, slice.as_millis() as i32) };
        if n < 0 && errno() != libc::EINTR {
            panic!("isolate: poll: {}", io::Error::last_os_error());
        }
        if n > 0 {
            let eof = drain(read, &mut buf);
            if eof || wire::complete(&buf).is_some() {
                let status = wait(pid, false).expect("blocking wait");
                return (buf, End::Status(status));
            }
            continue;
        }
        if let Some(status) = wait(pid, true) {
            drain(read, &mut buf);
            return (buf, End::Status(status));
        }
        let ticks = progress.ticks.load(Relaxed);
        if ticks != seen {
            (seen, since) = (ticks, Instant::now());
        } else if since.elapsed() >= stall(progress.op.load(Relaxed)) {
            // SAFETY: `pid` is our child, not yet reaped.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            wait(pid, false);
            return (buf, End::Hung);
        }
    }
}

/// What a wait status says of a child that sent no verdict.
fn death_of(status: i32) -> Death {
    if libc::WIFSIGNALED(status) {
        Death::Signal(libc::WTERMSIG(status))
    } else {
        Death::Exit(libc::WEXITSTATUS(status))
    }
}

#[cfg(test)]
mod tests;
