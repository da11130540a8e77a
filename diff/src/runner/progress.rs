//! Progress of a long trace on standard error: ops done, ops per second, live blocks.
//!
//! Off until [`init`] (the command line calls it; the fuzz targets and tests never do). Then
//! shown once a second for traces of at least [`LONG`] ops when standard error is a terminal
//! (rewriting one line), or for any trace after [`request`] (the command line's `--progress`; one
//! line each time when standard error is not a terminal). [`init`] keeps a copy of standard
//! error, so the forked child that runs a trace (whose own standard error is `/dev/null`, see
//! [`crate::isolate`]) still reaches it.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

/// Traces at least this long show progress on a terminal unasked.
pub const LONG: usize = 100_000;

static REQUESTED: AtomicBool = AtomicBool::new(false);
static TERMINAL: AtomicBool = AtomicBool::new(false);
/// A copy of standard error as it was at [`init`], or -1.
static OUT: AtomicI32 = AtomicI32::new(-1);

/// Turns progress on for this process: keeps a copy of standard error to write it to.
pub fn init() {
    if OUT.load(Ordering::Relaxed) >= 0 {
        return;
    }
    TERMINAL.store(std::io::stderr().is_terminal(), Ordering::Relaxed);
    // SAFETY: duplicates our own standard error; the copy is closed on exec and never closed
    // otherwise (it lives as long as the process).
    let fd = unsafe { libc::fcntl(2, libc::F_DUPFD_CLOEXEC, 3) };
    OUT.store(fd, Ordering::Relaxed);
}

/// Shows progress for every trace this process runs from now on (after [`init`]).
pub fn request() {
    REQUESTED.store(true, Ordering::Relaxed);
}

fn write_out(text: &str) {
    let fd = OUT.load(Ordering::Relaxed);
    if fd >= 0 {
        // SAFETY: writes our own buffer to our copy of standard error; a short or failed write
        // only loses a progress line.
        unsafe { libc::write(fd, text.as_ptr().cast(), text.len()) };
    }
}

/// The progress line of one run.
pub(crate) struct Progress {
    total: usize,
    terminal: bool,
    on: bool,
    start: Instant,
    next: Instant,
    shown: bool,
}

impl Progress {
    pub(crate) fn new(total: usize) -> Progress {
        let requested = REQUESTED.load(Ordering::Relaxed);
        let terminal = TERMINAL.load(Ordering::Relaxed);
        let start = Instant::now();
        Progress {
            total,
            terminal,
            on: OUT.load(Ordering::Relaxed) >= 0 && (requested || (terminal && total >= LONG)),
            start,
            next: start + Duration::from_secs(1),
            shown: false,
        }
    }

    /// Before op `i`, with `live` blocks live.
    #[inline]
    pub(crate) fn tick(&mut self, i: usize, live: usize) {
        if !self.on || i % 1024 != 0 {
            return;
        }
        let now = Instant::now();
        if now < self.next {
            return;
        }
        self.next = now + Duration::from_secs(1);
        self.show(i, live, now);
    }

    fn show(&mut self, i: usize, live: usize, now: Instant) {
        let secs = now.duration_since(self.start).as_secs_f64().max(1e-9);
        let line = format!(
            "{i}/{} ops, {:.0} ops/s, {live} live blocks",
            self.total,
            i as f64 / secs
        );
        if self.terminal {
            write_out(&format!("\r{line}\x1b[K"));
        } else {
            write_out(&format!("{line}\n"));
        }
        self.shown = true;
    }

    /// At the end of the trace.
    pub(crate) fn done(&mut self, live: usize) {
        if self.shown {
            self.show(self.total, live, Instant::now());
            if self.terminal {
                write_out("\n");
            }
        }
    }
}
