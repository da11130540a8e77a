//! Space and speed of any backend on a trace: its calls replayed alone (no shadow model), timed,
//! in a forked child, with the peak live payload and the heap's footprint at that moment.
//!
//! The footprint is what the child can observe: for a lab allocator, `mem_heapsize()` (the lab
//! shim exports it); for anything else, how far the child's memory grew since the replay began
//! ([`growth`]: mappings, and the break and other pages touched, from `/proc/self/statm`). Read only
//! when the payload reaches a new peak, and never inside the timed calls.

use std::time::{Duration, Instant};

use crate::backend::dylib::DylibBackend;
use crate::backend::libc::LibcBackend;
use crate::backend::{Backend, Reply, Request};
use crate::isolate::measure::in_fork;
use crate::op::{Op, Trace};

/// This process's mapped and resident bytes (`/proc/self/statm`, first two fields; 0 if
/// unreadable).
pub fn memory() -> (usize, usize) {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let mut fields = statm
        .split_whitespace()
        .map(|w| w.parse::<usize>().unwrap_or(0));
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as usize;
    let mapped = fields.next().unwrap_or(0) * page;
    (mapped, fields.next().unwrap_or(0) * page)
}

/// How far the process's resident memory grew since `base` (a [`memory`] reading): the pages the
/// allocator touched and those of the payload, which [`replay`] touches as a program would.
/// Address space merely reserved (tagalloc's private break, mimalloc's segments) does not count.
pub fn growth(base: (usize, usize)) -> usize {
    memory().1.saturating_sub(base.1)
}

/// Writes a byte in every page of a block of `size` bytes at `p`, as the program using it would,
/// so that its pages count as resident.
///
/// # Safety
///
/// `p` must be a live block of at least `size` writable bytes.
unsafe fn touch(p: *mut u8, size: usize) {
    let mut off = 0;
    while off < size {
        // SAFETY: `off < size`, inside the block the caller vouches for.
        unsafe { p.add(off).write_volatile(0) };
        off += 4096;
    }
}

/// One trace's figures.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Measure {
    /// Seconds in the allocator's calls.
    pub secs: f64,
    /// Calls made.
    pub ops: usize,
    /// Most payload live at once.
    pub peak_payload: usize,
    /// The heap's size when the payload peaked (0: the backend does not say).
    pub heap_at_peak: usize,
    /// The heap's size at the end.
    pub heap_end: usize,
    /// Whether an allocation returned NULL.
    pub out_of_memory: bool,
    /// The first op whose allocation returned NULL.
    pub first_null: Option<usize>,
}

impl Measure {
    /// Peak payload over the heap at that moment (`None`: the heap's size is not known).
    pub fn util(&self) -> Option<f64> {
        (self.heap_at_peak > 0).then(|| self.peak_payload as f64 / self.heap_at_peak as f64)
    }

    /// Thousands of calls a second.
    pub fn kops(&self) -> f64 {
        self.ops as f64 / self.secs.max(1e-9) / 1000.0
    }
}

/// Replays `trace`'s calls on `b`, timing only the calls; `heap` reads the heap's size.
pub fn replay<B: Backend>(b: &mut B, trace: &Trace, heap: &dyn Fn(&B) -> usize) -> Measure {
    let mut live: Vec<Option<(*mut u8, usize)>> = Vec::new();
    let mut m = Measure::default();
    let mut payload = 0usize;
    let mut spent = Duration::ZERO;
    for (index, op) in trace.ops.iter().enumerate() {
        let slot = match op.slot() {
            Some(s) => s,
            None => continue,
        };
        if live.len() <= slot {
            live.resize(slot + 1, None);
        }
        let old = live[slot];
        let req = match *op {
            Op::Malloc { size, .. } => Request::Malloc { size },
            Op::Calloc { count, size, .. } => Request::Calloc { count, size },
            Op::Realloc { size, .. } => Request::Realloc {
                ptr: old.map_or(std::ptr::null_mut(), |o| o.0),
                size,
            },
            Op::Free { .. } => match old {
                Some((ptr, _)) => Request::Free { ptr },
                None => continue,
            },
            _ => continue,
        };
        let t0 = Instant::now();
        // SAFETY: every pointer passed is one `b` returned and that is still live (tracked per
        // slot; a block replaced in its slot is leaked, never passed again).
        let r = unsafe { b.call(req) };
        spent += t0.elapsed();
        m.ops += 1;
        let freed = matches!(req, Request::Free { .. } | Request::Realloc { .. });
        match r {
            Reply::Ptr(p) => {
                if freed {
                    payload -= old.map_or(0, |o| o.1);
                }
                let size = op.requested();
                // SAFETY: the block was just returned for `size` bytes.
                unsafe { touch(p.as_ptr(), size) };
                live[slot] = Some((p.as_ptr(), size));
                payload += size;
            }
            Reply::Done | Reply::Freed => {
                payload -= old.map_or(0, |o| o.1);
                live[slot] = None;
            }
            Reply::Null { .. } if op.requested() > 0 => {
                m.out_of_memory = true;
                m.first_null = m.first_null.or(Some(index));
            }
            _ => {}
        }
        if payload > m.peak_payload {
            m.peak_payload = payload;
            m.heap_at_peak = heap(b);
        }
    }
    m.heap_end = heap(b);
    m.secs = spent.as_secs_f64();
    m
}

/// [`replay`] of `trace` on the object at `so` (its heap size from the lab shim), in a forked
/// child; `None` if it crashed or hung.
pub fn measure(so: &str, trace: &Trace, limit: Duration) -> Option<Measure> {
    let mut b = DylibBackend::open(so).ok()?;
    in_fork(limit, move || {
        replay(&mut b, trace, &|b: &DylibBackend| {
            b.heap_size().unwrap_or(0)
        })
    })
}

/// [`replay`] on libc, in a forked child, for the reference columns.
pub fn measure_libc(trace: &Trace, limit: Duration) -> Option<Measure> {
    measure_any(&|| Some(Box::new(LibcBackend::new())), trace, limit)
}

/// [`replay`] of `trace` on a fresh backend from `open`, in a forked child, the footprint being
/// the child's resident growth; `None` if it crashed or hung.
pub fn measure_any(
    open: &dyn Fn() -> Option<Box<dyn Backend>>,
    trace: &Trace,
    limit: Duration,
) -> Option<Measure> {
    let mut b = open()?;
    in_fork(limit, move || {
        let base = memory();
        replay(&mut b, trace, &|_| growth(base))
    })
}
