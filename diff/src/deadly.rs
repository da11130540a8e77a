//! Deadly signals in a fuzz target, turned into the same report an oracle failure gives.
//!
//! An oracle failure or a panic inside a fuzz target becomes a [`Report`](crate::report::Report) in the process (see
//! [`crate::runner::guarded`]). A `SIGSEGV`, `SIGBUS`, `SIGILL`, `SIGFPE` or `SIGABRT` cannot: the
//! process that took it is beyond saving. So [`install`] puts a handler in front of libFuzzer's
//! (and AddressSanitizer's). On a deadly signal during a run, it writes the input being run to a
//! file, starts a fresh copy of the fuzz binary on it with `TAGALLOC_DIFF_EXPLAIN=1`, waits for it,
//! then hands the signal on to the handler that was there before, which saves the crashing input
//! as usual. The fresh copy runs the trace, and every candidate of the shrinker, in a forked child
//! ([`crate::isolate`]), so the crash becomes [`Failure::Crashed`](crate::report::Failure::Crashed)
//! at the op where it happened, on the backend that was running, with a minimal trace.
//!
//! The handler calls only async-signal-safe functions (`open`, `write`, `close`, a raw `clone`
//! that runs no `pthread_atfork` handlers, `execve`, `waitpid`, `sigaction`); everything it needs
//! is prepared by [`install`]. `TAGALLOC_DIFF_EXPLAIN=0` turns it off (for `cargo fuzz tmin` and
//! `cmin`, which crash on purpose again and again).

use std::ffi::CString;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering::Relaxed};

/// The environment variable that asks a fuzz binary to explain its input instead of fuzzing.
pub const EXPLAIN: &str = "TAGALLOC_DIFF_EXPLAIN";

const SIGNALS: [i32; 5] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGABRT,
];

/// Everything the handler needs, made before any signal can come.
struct Prepared {
    /// Where the input goes (NUL-terminated).
    path: CString,
    /// `execve`'s arguments: the binary, the input file; NULL-terminated.
    argv: Vec<*const libc::c_char>,
    /// The environment with `TAGALLOC_DIFF_EXPLAIN=1`; NULL-terminated.
    envp: Vec<*const libc::c_char>,
    /// The handlers there were, by index in [`SIGNALS`].
    before: [libc::sigaction; 5],
    _keep: Vec<CString>,
}

static PREPARED: AtomicPtr<Prepared> = AtomicPtr::new(std::ptr::null_mut());
static INPUT: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
static INPUT_LEN: AtomicUsize = AtomicUsize::new(0);
/// Set when the run reported in-process (the panic that follows is not a crash to explain).
static REPORTED: AtomicBool = AtomicBool::new(false);

/// Whether this process was started to explain a crash.
pub fn explaining() -> bool {
    std::env::var(EXPLAIN).is_ok_and(|v| v == "1")
}

/// Puts the handler in place, once per process, unless `TAGALLOC_DIFF_EXPLAIN=0` or this process
/// explains a crash itself.
pub fn install() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var(EXPLAIN).is_ok() {
            return;
        }
        let Ok(exe) = std::fs::read_link("/proc/self/exe") else {
            return;
        };
        let dir = std::env::temp_dir();
        // SAFETY: getpid has no preconditions.
        let pid = unsafe { libc::getpid() };
        let path = dir.join(format!("tagalloc-diff-crash-{pid}.bin"));
        let (Ok(path), Ok(exe)) = (
            CString::new(path.into_os_string().into_encoded_bytes()),
            CString::new(exe.into_os_string().into_encoded_bytes()),
        ) else {
            return;
        };
        let mut keep = vec![exe];
        for (k, v) in std::env::vars_os() {
            let mut kv = k.into_encoded_bytes();
            kv.push(b'=');
            kv.extend(v.into_encoded_bytes());
            if let Ok(c) = CString::new(kv) {
                keep.push(c);
            }
        }
        keep.push(CString::new(format!("{EXPLAIN}=1")).expect("no NUL"));
        let argv = vec![keep[0].as_ptr(), path.as_ptr(), std::ptr::null()];
        let mut envp: Vec<_> = keep[1..].iter().map(|c| c.as_ptr()).collect();
        envp.push(std::ptr::null());
        // SAFETY: sigaction is plain data; all-zero is a valid value to overwrite.
        let mut before: [libc::sigaction; 5] = unsafe { std::mem::zeroed() };
        let prepared = Box::into_raw(Box::new(Prepared {
            path,
            argv,
            envp,
            before,
            _keep: keep,
        }));
        for (i, &sig) in SIGNALS.iter().enumerate() {
            // SAFETY: a zeroed sigaction with our handler, an empty mask and these flags is valid;
            // `before[i]` receives the old action.
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_signal as *const () as usize;
                sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_NODEFER;
                libc::sigemptyset(&mut sa.sa_mask);
                libc::sigaction(sig, &sa, &mut before[i]);
            }
        }
        // SAFETY: the record is ours until published; nothing reads `before` before this store.
        unsafe { (*prepared).before = before };
        PREPARED.store(prepared, Relaxed);
    });
}

/// Notes `data` as the input being run.
pub fn arm(data: &[u8]) {
    REPORTED.store(false, Relaxed);
    INPUT_LEN.store(data.len(), Relaxed);
    INPUT.store(data.as_ptr().cast_mut(), Relaxed);
}

/// The run is over.
pub fn disarm() {
    INPUT.store(std::ptr::null_mut(), Relaxed);
}

/// The run reported in-process: the abort that follows is no crash to explain.
pub fn reported() {
    REPORTED.store(true, Relaxed);
}

extern "C" fn on_signal(sig: i32, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let p = PREPARED.load(Relaxed);
    if p.is_null() {
        return;
    }
    // SAFETY: published by `install` and never freed.
    let prep = unsafe { &*p };
    let input = INPUT.swap(std::ptr::null_mut(), Relaxed);
    if !input.is_null() && !REPORTED.load(Relaxed) {
        // SAFETY: `input` is the live input of the run that died (`arm`), `INPUT_LEN` bytes.
        unsafe { explain_in_fresh_process(prep, input, INPUT_LEN.load(Relaxed)) };
    }
    let i = SIGNALS.iter().position(|&s| s == sig).unwrap_or(0);
    let old = &prep.before[i];
    // SAFETY: hand the signal to the handler that was there before us, as the kernel would have;
    // with none, restore the default action and re-raise.
    unsafe {
        if old.sa_sigaction == libc::SIG_DFL || old.sa_sigaction == libc::SIG_IGN {
            libc::sigaction(sig, old, std::ptr::null_mut());
            libc::raise(sig);
        } else if old.sa_flags & libc::SA_SIGINFO != 0 {
            let f: extern "C" fn(i32, *mut libc::siginfo_t, *mut libc::c_void) =
                std::mem::transmute(old.sa_sigaction);
            f(sig, info, ctx);
        } else {
            let f: extern "C" fn(i32) = std::mem::transmute(old.sa_sigaction);
            f(sig);
        }
    }
}

/// Writes the input to the prepared file and runs the explainer on it; async-signal-safe.
///
/// # Safety
/// `input` must be readable for `len` bytes.
unsafe fn explain_in_fresh_process(prep: &Prepared, input: *const u8, len: usize) {
    // SAFETY: the path is NUL-terminated; the buffer is readable (contract).
    unsafe {
        let fd = libc::open(
            prep.path.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC,
            0o600,
        );
        if fd < 0 {
            return;
        }
        let mut done = 0;
        while done < len {
            let n = libc::write(fd, input.add(done).cast(), len - done);
            if n <= 0 {
                break;
            }
            done += n as usize;
        }
        libc::close(fd);
        // A fork that runs no atfork handlers (the allocator's may hold locks the dying thread
        // took); the child only execs.
        let pid = libc::syscall(libc::SYS_clone, libc::SIGCHLD as libc::c_long, 0, 0, 0, 0);
        if pid == 0 {
            libc::execve(prep.argv[0], prep.argv.as_ptr(), prep.envp.as_ptr());
            libc::_exit(127);
        }
        if pid > 0 {
            let mut status = 0;
            libc::waitpid(pid as i32, &mut status, 0);
        }
        libc::unlink(prep.path.as_ptr());
    }
}
