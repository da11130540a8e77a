//! `TAGALLOC_TRACE=FILE`: record every call the program makes as a text trace of the suite.
//!
//! Each call becomes one line of the suite's trace language (`malloc SLOT SIZE`, `free SLOT`, ...):
//! addresses are mapped to slots (a slot is reused once its block is freed), so the trace replays
//! on any allocator. A call that fails is recorded with a `# failed: ENOMEM` (or `EINVAL`) comment;
//! the replay judges it again. A `free` or `realloc` of a block allocated before tracing started is
//! recorded as a comment.
//!
//! Threads: while tracing, each call and its line are made under one trace lock, so the order of
//! the lines is an order in which the calls really happened (a block freed by one thread and
//! reused by another appears in that order). Lines go into a ring buffer mapped at start-up; the
//! file is written with `write(2)` by whichever thread finds the ring half full, after it has
//! released the lock. Nothing here allocates.
//!
//! Processes: `%p` in `FILE` is replaced by the process id. Without `%p`, only the process that
//! read the variable first is traced: it removes `TAGALLOC_TRACE` from its environment, so the
//! programs it runs are not (they would overwrite the file). A child made by `fork` stops tracing.

use core::cell::UnsafeCell;
use core::ffi::{c_char, c_void};
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use core_alloc::addrmap::AddrMap;
use core_alloc::os;
use core_alloc::source::{Reserved, Source};
use core_alloc::{Error, LineWriter, Lock};

const RING: usize = 4 << 20;
const LINE: usize = 160;

/// Whether calls are being traced.
static ON: AtomicBool = AtomicBool::new(false);
static LOCK: Lock = Lock::new();
/// Bytes handed to the file (monotonic; the ring index is `tail % RING`).
static TAIL: AtomicUsize = AtomicUsize::new(0);
static FLUSHING: AtomicBool = AtomicBool::new(false);

struct Tracer {
    fd: i32,
    ring: *mut u8,
    /// Bytes ever appended (monotonic).
    head: usize,
    slots: AddrMap,
    /// Freed slot numbers, to reuse (a stack in a mapping of `free_cap` entries).
    free: *mut u32,
    nfree: usize,
    free_cap: usize,
    next_slot: usize,
    memory: Reserved,
}

struct Shared(UnsafeCell<Tracer>);
// SAFETY: the tracer is only touched with LOCK held (or before any thread exists).
unsafe impl Sync for Shared {}

static TRACER: Shared = Shared(UnsafeCell::new(Tracer {
    fd: -1,
    ring: ptr::null_mut(),
    head: 0,
    slots: AddrMap::new(),
    free: ptr::null_mut(),
    nfree: 0,
    free_cap: 0,
    next_slot: 0,
    memory: Reserved::with_capacity(0),
}));

/// Whether tracing is on: one relaxed load on every call.
#[inline]
pub fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// Reads `TAGALLOC_TRACE` and starts tracing (called from the library's constructor).
pub fn start() {
    // SAFETY: getenv with a NUL-terminated name, before main.
    let v = unsafe { libc::getenv(c"TAGALLOC_TRACE".as_ptr()) };
    if v.is_null() {
        return;
    }
    let mut path = [0u8; 4096];
    // SAFETY: v is a NUL-terminated string from the environment.
    let (len, per_pid) = unsafe { expand(v, &mut path) };
    if len == 0 {
        return;
    }
    if !per_pid {
        // SAFETY: removing our own variable before main, so the programs we run are not traced.
        unsafe { libc::unsetenv(c"TAGALLOC_TRACE".as_ptr()) };
    }
    // SAFETY: path is NUL-terminated (expand leaves room).
    let fd = unsafe {
        libc::open(
            path.as_ptr().cast(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC,
            0o644,
        )
    };
    if fd < 0 {
        os::write_stderr(b"tagalloc: TAGALLOC_TRACE: cannot open the trace file; not tracing\n");
        return;
    }
    let Some(ring) = os::map(RING) else {
        // SAFETY: our own descriptor.
        unsafe { libc::close(fd) };
        return;
    };
    // SAFETY: before main, no other thread: exclusive access.
    let t = unsafe { &mut *TRACER.0.get() };
    t.fd = fd;
    t.ring = ring.as_ptr();
    let mut buf = [0u8; LINE];
    let mut w = LineWriter::new(&mut buf);
    w.str("# tagalloc trace, recorded by libtagalloc.so (TAGALLOC_TRACE), pid ");
    // SAFETY: getpid has no preconditions.
    w.dec(unsafe { libc::getpid() } as usize);
    w.str("\n");
    t.append(w.written());
    // SAFETY: registering plain functions; pthread_atfork may allocate, which is fine here.
    unsafe { libc::pthread_atfork(None, None, Some(after_fork_child)) };
    ON.store(true, Ordering::Release);
}

/// Copies the path, replacing `%p` by the pid; returns its length and whether `%p` occurred.
///
/// # Safety
/// `v` must be a NUL-terminated string.
unsafe fn expand(v: *const c_char, out: &mut [u8; 4096]) -> (usize, bool) {
    let mut n = 0;
    let mut per_pid = false;
    let mut i = 0;
    loop {
        // SAFETY: reading up to the NUL (contract).
        let c = unsafe { *v.add(i) } as u8;
        if c == 0 || n >= out.len() - 24 {
            break;
        }
        // SAFETY: as above; the next byte exists when this one is not NUL.
        if c == b'%' && unsafe { *v.add(i + 1) } as u8 == b'p' {
            let mut w = LineWriter::new(&mut out[n..]);
            // SAFETY: getpid has no preconditions.
            w.dec(unsafe { libc::getpid() } as usize);
            n += w.len();
            per_pid = true;
            i += 2;
            continue;
        }
        out[n] = c;
        n += 1;
        i += 1;
    }
    // `n` is below the end here; `min` lets the compiler see it (no panic path).
    let n = n.min(out.len() - 1);
    out[n] = 0;
    (n, per_pid)
}

extern "C" fn after_fork_child() {
    ON.store(false, Ordering::Relaxed);
}

/// Stops tracing and writes what is left (called from the library's destructor).
pub fn finish() {
    if !ON.swap(false, Ordering::AcqRel) {
        return;
    }
    LOCK.lock();
    // SAFETY: under LOCK.
    let t = unsafe { &*TRACER.0.get() };
    let (fd, ring, head) = (t.fd, t.ring, t.head);
    LOCK.unlock();
    while FLUSHING.swap(true, Ordering::Acquire) {
        // SAFETY: sched_yield has no preconditions.
        unsafe { libc::sched_yield() };
    }
    write_range(fd, ring, TAIL.load(Ordering::Acquire), head);
    TAIL.store(head, Ordering::Release);
    // SAFETY: our own descriptor, no longer used.
    unsafe { libc::close(fd) };
}

fn write_range(fd: i32, ring: *mut u8, from: usize, to: usize) {
    let mut at = from;
    while at < to {
        let i = at % RING;
        let n = (to - at).min(RING - i);
        // SAFETY: [i, i + n) lies inside the ring, and those bytes are not rewritten before TAIL
        // moves past them.
        os::write_fd(fd, unsafe { core::slice::from_raw_parts(ring.add(i), n) });
        at += n;
    }
}

impl Tracer {
    fn append(&mut self, line: &[u8]) {
        while RING - (self.head - TAIL.load(Ordering::Acquire)) < line.len() {
            // The ring is full: a flush is under way (one is claimed at half full); wait for it.
            // SAFETY: sched_yield has no preconditions.
            unsafe { libc::sched_yield() };
        }
        for &b in line {
            // SAFETY: head % RING is inside the ring, and that byte is free (checked above).
            unsafe { *self.ring.add(self.head % RING) = b };
            self.head += 1;
        }
    }

    fn slot_of(&self, p: *mut c_void) -> Option<usize> {
        self.slots.get(p as usize)
    }

    fn new_slot(&mut self) -> usize {
        if self.nfree > 0 {
            self.nfree -= 1;
            // SAFETY: nfree < free_cap entries of the stack are initialised.
            return unsafe { *self.free.add(self.nfree) } as usize;
        }
        self.next_slot += 1;
        self.next_slot - 1
    }

    fn release_slot(&mut self, slot: usize) {
        if self.nfree == self.free_cap {
            let cap = if self.free_cap == 0 {
                1024
            } else {
                self.free_cap * 2
            };
            let Some(new) = self.memory.map(cap * 4) else {
                return;
            };
            if self.free_cap > 0 {
                // SAFETY: both hold at least free_cap entries; the old one is then given back.
                unsafe {
                    ptr::copy_nonoverlapping(self.free, new.as_ptr().cast(), self.free_cap);
                    self.memory.unmap(self.free.cast(), self.free_cap * 4);
                }
            }
            self.free = new.as_ptr().cast();
            self.free_cap = cap;
        }
        // SAFETY: nfree < free_cap.
        unsafe { *self.free.add(self.nfree) = slot as u32 };
        self.nfree += 1;
    }

    fn bind(&mut self, p: *mut c_void, slot: usize) {
        let mut delta = 0;
        if self.slots.reserve_one(&mut self.memory, &mut delta) {
            self.slots.insert_unchecked(p as usize, slot);
        }
    }

    fn unbind(&mut self, p: *mut c_void) -> Option<usize> {
        let slot = self.slots.remove(p as usize)?;
        self.release_slot(slot);
        Some(slot)
    }
}

/// A traced call in progress: holds the trace lock; on drop releases it and, when the ring is half
/// full, writes it out after releasing the lock.
pub struct Call {
    line: [u8; LINE],
    len: usize,
}

/// Starts a traced call.
pub fn enter() -> Call {
    LOCK.lock();
    Call {
        line: [0; LINE],
        len: 0,
    }
}

impl Call {
    fn tracer(&mut self) -> &mut Tracer {
        // SAFETY: LOCK is held for the life of `self`.
        unsafe { &mut *TRACER.0.get() }
    }

    fn write(&mut self, f: impl FnOnce(&mut LineWriter<'_>)) {
        let mut w = LineWriter::new(&mut self.line);
        f(&mut w);
        w.str("\n");
        self.len = w.len();
    }

    /// Records an allocating call (`op SLOT args...`) that returned `r`.
    pub fn alloc(&mut self, op: &str, args: &[usize], r: &Result<NonNull<u8>, Error>) {
        let t = self.tracer();
        let slot = t.new_slot();
        match r {
            Ok(p) => t.bind(p.as_ptr().cast(), slot),
            Err(_) => t.release_slot(slot),
        }
        self.write(|w| {
            w.str(op);
            w.str(" ");
            w.dec(slot);
            for &a in args {
                w.str(" ");
                w.dec(a);
            }
            failed(w, r.as_ref().err());
        });
    }

    /// Records `free(p)` (before the block is given back).
    pub fn free(&mut self, p: *mut c_void) {
        if p.is_null() {
            return;
        }
        match self.tracer().unbind(p) {
            Some(slot) => self.write(|w| {
                w.str("free ");
                w.dec(slot);
            }),
            None => self.untraced("free", p),
        }
    }

    fn untraced(&mut self, op: &str, p: *mut c_void) {
        self.write(|w| {
            w.str("# ");
            w.str(op);
            w.str("(");
            w.hex(p as usize);
            w.str(") of a block allocated before tracing started");
        });
    }

    /// Records `realloc(p, size)` that returned `r`.
    pub fn realloc(&mut self, p: *mut c_void, size: usize, r: &Result<Option<NonNull<u8>>, Error>) {
        let known = if p.is_null() {
            None
        } else {
            self.tracer().slot_of(p)
        };
        if !p.is_null() && known.is_none() {
            self.untraced("realloc", p);
            if let Ok(Some(q)) = r {
                let t = self.tracer();
                let slot = t.new_slot();
                t.bind(q.as_ptr().cast(), slot);
            }
            return;
        }
        let t = self.tracer();
        let slot = match known {
            Some(s) => s,
            None => t.new_slot(),
        };
        match r {
            Ok(Some(q)) => {
                if known.is_some() {
                    t.slots.remove(p as usize);
                }
                t.bind(q.as_ptr().cast(), slot);
            }
            Ok(None) => {
                t.unbind(p);
            }
            Err(_) if known.is_none() => t.release_slot(slot),
            Err(_) => {}
        }
        self.write(|w| {
            w.str("realloc ");
            w.dec(slot);
            w.str(" ");
            w.dec(size);
            failed(w, r.as_ref().err());
        });
    }

    /// Records `malloc_usable_size(p)`.
    pub fn usable_size(&mut self, p: *mut c_void) {
        match self.tracer().slot_of(p) {
            Some(slot) => self.write(|w| {
                w.str("usable_size ");
                w.dec(slot);
            }),
            None if p.is_null() => {}
            None => self.untraced("malloc_usable_size", p),
        }
    }
}

fn failed(w: &mut LineWriter<'_>, e: Option<&Error>) {
    match e {
        Some(Error::OutOfMemory) => w.str(" # failed: ENOMEM"),
        Some(_) => w.str(" # failed: EINVAL"),
        None => {}
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        let len = self.len;
        let line = self.line;
        let t = self.tracer();
        t.append(&line[..len]);
        let (fd, ring, head) = (t.fd, t.ring, t.head);
        let tail = TAIL.load(Ordering::Acquire);
        let claim = head - tail >= RING / 2 && !FLUSHING.swap(true, Ordering::AcqRel);
        LOCK.unlock();
        if claim {
            let saved = os::errno();
            write_range(fd, ring, tail, head);
            TAIL.store(head, Ordering::Release);
            FLUSHING.store(false, Ordering::Release);
            os::set_errno(saved);
        }
    }
}
