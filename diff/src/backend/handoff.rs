//! A one-slot mailbox between the thread that runs a trace and one worker thread: the caller
//! posts a job and waits for its answer, the worker waits for a job, runs it and posts the
//! answer. One job is in flight at a time, so one slot each way is enough.
//!
//! The `threads` fuzz target hands every op of a trace to a worker this way. Over `std`'s channels
//! each handoff cost a futex wake and a futex wait each way, and a profile of the target showed
//! the kernel's wake-up and scheduling paths taking about half of its time. Here a waiting thread
//! first spins on the slot's state (when the machine has a second core for the other thread to
//! run on), and parks only when the spin ran out; the poster unparks the waiter, which costs no
//! system call when the waiter is not parked. A waiter never misses a post: `unpark` before `park`
//! makes the `park` return at once, and every wake-up re-reads the state.
//!
//! The spin adapts, per side: it grows by half while answers come within it and shrinks by a
//! quarter each time one does not. On a loaded machine (other fuzzing jobs, a build) the other
//! thread is often not running, and a fixed spin, or yielding the core, only delays it. Measured
//! with AddressSanitizer on `corpus/threads` (`-runs=0`, 2 cores): channels 75-80 exec/s idle and
//! 33-40 beside two busy loops; a fixed 256 spins then 64 yields 141-161 idle but 6 beside the
//! busy loops; this adaptive spin 141-188 idle and 75 beside them.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::{self, Thread};

/// No job has been posted yet.
const EMPTY: u8 = 0;
/// A job waits in the slot for the worker.
const JOB: u8 = 1;
/// The answer to the last job waits for the caller.
const DONE: u8 = 2;
/// The caller asks the worker to exit.
const CLOSED: u8 = 3;
/// The worker's loop has ended (normally, or by a panic outside a job).
const GONE: u8 = 4;

/// The most a waiter spins before it parks (about 150 us on this machine's cores).
const MAX_SPIN: u32 = 1 << 12;
/// The least: a waiter whose spins keep running out still looks this long before it parks, so
/// that its spin can grow again once answers come quickly.
const MIN_SPIN: u32 = 16;

/// What either side finds when it stops waiting.
pub(crate) enum Received<T> {
    /// The job, or the answer.
    Got(T),
    /// The caller closed the mailbox (the worker is asked to exit).
    Closed,
    /// The worker is gone.
    Gone,
}

/// A job slot, an answer slot, and whose turn it is.
pub(crate) struct Mailbox<J, D> {
    state: AtomicU8,
    /// How long the caller, and the worker, spin before parking ([`wait`]).
    caller_spin: AtomicU32,
    worker_spin: AtomicU32,
    job: UnsafeCell<Option<J>>,
    answer: UnsafeCell<Option<D>>,
    caller: Thread,
    worker: OnceLock<Thread>,
}

// SAFETY: each slot is written by one side and read by the other only after the state, stored
// with Release after the write and loaded with Acquire before the read, says it is that side's
// turn; the protocol has one job in flight at a time, so the two sides never touch one slot at
// once. The jobs and answers themselves move to the other thread, hence `Send` bounds.
unsafe impl<J: Send, D: Send> Sync for Mailbox<J, D> {}
// SAFETY: as above.
unsafe impl<J: Send, D: Send> Send for Mailbox<J, D> {}

impl<J: Send + 'static, D: Send + 'static> Mailbox<J, D> {
    /// Starts a worker thread that answers each job with `serve(job)`; the calling thread becomes
    /// the mailbox's caller (the only thread that may [`ask`](Mailbox::ask) or
    /// [`close`](Mailbox::close)).
    pub(crate) fn spawn(
        mut serve: impl FnMut(J) -> D + Send + 'static,
    ) -> (Arc<Mailbox<J, D>>, thread::JoinHandle<()>) {
        let mailbox = Arc::new(Mailbox {
            state: AtomicU8::new(EMPTY),
            caller_spin: AtomicU32::new(MAX_SPIN),
            worker_spin: AtomicU32::new(MAX_SPIN),
            job: UnsafeCell::new(None),
            answer: UnsafeCell::new(None),
            caller: thread::current(),
            worker: OnceLock::new(),
        });
        let theirs = Arc::clone(&mailbox);
        let handle = thread::spawn(move || {
            let mailbox = theirs;
            let _gone = Gone(&mailbox);
            while let Received::Got(job) = mailbox.next_job() {
                let answer = serve(job);
                // SAFETY: the state is JOB and only this thread acts on it: the answer slot is ours.
                unsafe { *mailbox.answer.get() = Some(answer) };
                mailbox.state.store(DONE, Ordering::Release);
                mailbox.caller.unpark();
            }
        });
        let _ = mailbox.worker.set(handle.thread().clone());
        (mailbox, handle)
    }

    /// Posts `job` and waits for its answer (`Gone` if the worker ended instead).
    pub(crate) fn ask(&self, job: J) -> Received<D> {
        let before = self.state.load(Ordering::Acquire);
        if before != EMPTY && before != DONE {
            return Received::Gone;
        }
        // SAFETY: the state is EMPTY or DONE (the caller waits for each answer before it asks
        // again): the worker does not touch the job slot.
        unsafe { *self.job.get() = Some(job) };
        // Not a plain store: a worker that ended meanwhile (GONE) must not be handed a job.
        if self
            .state
            .compare_exchange(before, JOB, Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            return Received::Gone;
        }
        self.wake_worker();
        match wait(&self.state, &self.caller_spin, |s| s == DONE || s == GONE) {
            // SAFETY: DONE: the worker has written the answer and touches nothing until the next
            // job.
            DONE => match unsafe { (*self.answer.get()).take() } {
                Some(answer) => Received::Got(answer),
                None => Received::Gone,
            },
            _ => Received::Gone,
        }
    }

    /// Asks the worker to exit (it ends its loop; join its handle to wait for the exit).
    pub(crate) fn close(&self) {
        self.state.store(CLOSED, Ordering::Release);
        self.wake_worker();
    }

    fn wake_worker(&self) {
        if let Some(w) = self.worker.get() {
            w.unpark();
        }
    }

    /// The worker's wait for the next job.
    fn next_job(&self) -> Received<J> {
        match wait(&self.state, &self.worker_spin, |s| s == JOB || s == CLOSED) {
            // SAFETY: JOB: the caller has written the job and waits for the answer.
            JOB => match unsafe { (*self.job.get()).take() } {
                Some(job) => Received::Got(job),
                None => Received::Closed,
            },
            _ => Received::Closed,
        }
    }
}

/// Marks the mailbox `GONE` when the worker's loop ends, however it ends, so a caller waiting for
/// an answer is not left waiting.
struct Gone<'a, J: Send + 'static, D: Send + 'static>(&'a Mailbox<J, D>);

impl<J: Send + 'static, D: Send + 'static> Drop for Gone<'_, J, D> {
    fn drop(&mut self) {
        self.0.state.store(GONE, Ordering::Release);
        self.0.caller.unpark();
    }
}

/// Waits until `ready(state)`: spins for `spin` rounds (with a second core to run the other side
/// on), then parks until unparked, re-reading the state after every step; then adapts `spin` (it
/// grows by half when the spin was enough, shrinks by a quarter when it was not). Returns the
/// state it accepted.
fn wait(state: &AtomicU8, spin: &AtomicU32, ready: impl Fn(u8) -> bool) -> u8 {
    static CORES: OnceLock<bool> = OnceLock::new();
    if *CORES.get_or_init(|| thread::available_parallelism().is_ok_and(|n| n.get() > 1)) {
        let rounds = spin.load(Ordering::Relaxed);
        for _ in 0..rounds {
            let s = state.load(Ordering::Acquire);
            if ready(s) {
                spin.store((rounds + rounds / 2).min(MAX_SPIN), Ordering::Relaxed);
                return s;
            }
            std::hint::spin_loop();
        }
        spin.store((rounds - rounds / 4).max(MIN_SPIN), Ordering::Relaxed);
    }
    loop {
        let s = state.load(Ordering::Acquire);
        if ready(s) {
            return s;
        }
        thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every job is answered in order, by the worker thread, and a closed mailbox ends the worker.
    #[test]
    fn jobs_are_answered_in_order_and_close_ends_the_worker() {
        let (mb, handle) = Mailbox::spawn(|n: u64| (n * 3, thread::current().id()));
        let worker = handle.thread().id();
        for n in 0..10_000u64 {
            match mb.ask(n) {
                Received::Got((m, id)) => {
                    assert_eq!(m, n * 3);
                    assert_eq!(id, worker);
                }
                _ => panic!("job {n} was not answered"),
            }
        }
        mb.close();
        handle.join().unwrap();
        assert!(matches!(mb.ask(1), Received::Gone));
    }

    /// A worker that dies inside a job leaves its caller an answer of `Gone`, not a hang.
    #[test]
    fn a_worker_that_dies_is_gone() {
        let (mb, handle) = Mailbox::spawn(|n: u32| {
            if n == 2 {
                panic!("dies on purpose");
            }
            n
        });
        assert!(matches!(mb.ask(1), Received::Got(1)));
        assert!(matches!(mb.ask(2), Received::Gone));
        assert!(handle.join().is_err());
    }
}
