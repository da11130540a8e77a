//! Free-running stress: tagalloc's locked heap under real parallelism, for a bounded time.
//!
//! Where the threads dialect ([`crate::op::Op::Thread`]) hands ops to threads one at a time, so an
//! interleaving replays exactly, this lets 2 or more threads run at once on one shared table of
//! slots: each thread takes a random slot; if it holds a block (allocated by any thread), checks
//! its content, then frees it or resizes it; if it is empty, allocates a block of a random size
//! (mostly small, so the thread caches and the transfer cache carry most of the traffic), fills it
//! and puts it there. Blocks move between threads all the time, so frees from other threads,
//! cache flushes and refills all race. At the end every block is checked and freed and the heap
//! walker runs. A failure here is not replayable; what it finds is then chased with a trace.
//!
//! Contents: every block holds its size in its first word and then bytes that depend on its
//! address and size, so a block handed out twice, or overwritten by a neighbour, shows.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use tagalloc::Config;

use crate::backend::locked::LockedBackend;

/// What a stress run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Allocator calls made, all threads together.
    pub calls: u64,
    /// Frees of a block another thread allocated.
    pub remote_frees: u64,
}

/// Slots of the shared table.
const SLOTS: usize = 4096;

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

fn size_for(r: u64) -> usize {
    match r % 100 {
        0 => 150_000 + (r >> 8) as usize % 100_000,
        1..=9 => 1024 + (r >> 8) as usize % 8192,
        _ => 8 + (r >> 8) as usize % 1000,
    }
}

fn byte(addr: usize, size: usize, i: usize) -> u8 {
    (addr >> 4 ^ size ^ i.wrapping_mul(131)) as u8
}

/// Fills block `p` of `size` bytes (at least 8).
///
/// # Safety
/// `p` must be writable for `size` bytes.
unsafe fn fill(p: *mut u8, size: usize) {
    // SAFETY: `size >= 8` writable bytes (contract).
    unsafe {
        p.cast::<usize>().write_unaligned(size);
        for i in 8..size.min(256) {
            p.add(i).write(byte(p as usize, size, i));
        }
        if size > 256 {
            p.add(size - 1).write(byte(p as usize, size, size - 1));
        }
    }
}

/// Checks block `p`: its first word must be `size` and its bytes as [`fill`] left them.
///
/// # Safety
/// `p` must be readable for `size` bytes.
unsafe fn verify(p: *mut u8, size: usize) -> Result<(), String> {
    // SAFETY: readable (contract).
    unsafe {
        let found = p.cast::<usize>().read_unaligned();
        if found != size {
            return Err(format!("block {p:p} of {size} bytes holds size {found}"));
        }
        let last = (size > 256).then_some(size - 1);
        for i in (8..size.min(256)).chain(last) {
            let b = p.add(i).read();
            if b != byte(p as usize, size, i) {
                return Err(format!("block {p:p} of {size} bytes changed at offset {i}"));
            }
        }
    }
    Ok(())
}

/// Runs `threads` threads on one locked heap with thread caches (in configuration `config`) for
/// `time`, then checks everything; the first problem found, or what was done.
pub fn run(config: Config, threads: usize, time: Duration, seed: u64) -> Result<Summary, String> {
    let backend = LockedBackend::reserved(config, false);
    let heap = backend.heap();
    // Each slot: the block's address, and in `owners` the thread that allocated it and its size.
    let slots: Vec<AtomicUsize> = (0..SLOTS).map(|_| AtomicUsize::new(0)).collect();
    let sizes: Vec<AtomicUsize> = (0..SLOTS).map(|_| AtomicUsize::new(0)).collect();
    let owners: Vec<AtomicUsize> = (0..SLOTS).map(|_| AtomicUsize::new(0)).collect();
    let stop = AtomicBool::new(false);
    let calls = AtomicU64::new(0);
    let remote = AtomicU64::new(0);
    let failure = std::sync::Mutex::new(None::<String>);
    let deadline = Instant::now() + time;
    std::thread::scope(|s| {
        for t in 0..threads {
            let (slots, sizes, owners) = (&slots, &sizes, &owners);
            let (stop, calls, remote, failure) = (&stop, &calls, &remote, &failure);
            s.spawn(move || {
                let mut rng = seed ^ (t as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
                let (mut n, mut far) = (0u64, 0u64);
                let fail = |m: String| {
                    failure.lock().unwrap().get_or_insert(m);
                    stop.store(true, Relaxed);
                };
                while !stop.load(Relaxed) {
                    if n % 1024 == 0 && Instant::now() >= deadline {
                        break;
                    }
                    let r = xorshift(&mut rng);
                    let i = r as usize % SLOTS;
                    // Claim the slot: 1 marks it busy while this thread works on it.
                    let p = slots[i].swap(1, Relaxed);
                    if p == 1 {
                        continue;
                    }
                    std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
                    n += 1;
                    let keep = if p != 0 {
                        let size = sizes[i].load(Relaxed);
                        // SAFETY: the slot's block is live, `size` bytes, and now ours alone.
                        if let Err(m) = unsafe { verify(p as *mut u8, size) } {
                            fail(m);
                            0
                        } else if r >> 40 & 3 == 0 {
                            let new = size_for(xorshift(&mut rng));
                            // SAFETY: p is live; realloc to a non-zero size.
                            match unsafe { heap.realloc(p as *mut u8, new) } {
                                Ok(Some(q)) => {
                                    // SAFETY: q holds `new` bytes.
                                    unsafe { fill(q.as_ptr(), new) };
                                    sizes[i].store(new, Relaxed);
                                    q.as_ptr() as usize
                                }
                                other => {
                                    fail(format!("realloc({p:#x}, {new}) gave {other:?}"));
                                    0
                                }
                            }
                        } else {
                            if owners[i].load(Relaxed) != t {
                                far += 1;
                            }
                            // SAFETY: p is live and given up here.
                            if let Err(e) = unsafe { heap.free(p as *mut u8) } {
                                fail(format!("free({p:#x}): {e:?}"));
                            }
                            0
                        }
                    } else {
                        let size = size_for(r >> 8);
                        match heap.malloc(size) {
                            Ok(q) => {
                                // SAFETY: q holds `size` bytes.
                                unsafe { fill(q.as_ptr(), size) };
                                sizes[i].store(size, Relaxed);
                                owners[i].store(t, Relaxed);
                                q.as_ptr() as usize
                            }
                            Err(e) => {
                                fail(format!("malloc({size}): {e:?}"));
                                0
                            }
                        }
                    };
                    std::sync::atomic::fence(std::sync::atomic::Ordering::Release);
                    slots[i].store(keep, Relaxed);
                }
                calls.fetch_add(n, Relaxed);
                remote.fetch_add(far, Relaxed);
            });
        }
    });
    if let Some(m) = failure.into_inner().unwrap() {
        return Err(m);
    }
    for i in 0..SLOTS {
        let p = slots[i].load(Relaxed);
        if p > 1 {
            let size = sizes[i].load(Relaxed);
            // SAFETY: every thread is done: the slot's block is live and `size` bytes.
            unsafe {
                verify(p as *mut u8, size)?;
                heap.free(p as *mut u8)
                    .map_err(|e| format!("free({p:#x}) at the end: {e:?}"))?;
            }
        }
    }
    heap.check()
        .map_err(|c| format!("heap walker after the stress: {c}"))?;
    Ok(Summary {
        calls: calls.load(Relaxed),
        remote_frees: remote.load(Relaxed),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_threads_for_a_second() {
        let s = run(Config::DEFAULT, 4, Duration::from_secs(1), 7).unwrap();
        assert!(s.calls > 1000 && s.remote_frees > 0, "{s:?}");
    }

    #[test]
    fn tiny_caches_and_pads_for_a_second() {
        let config = Config {
            cache_limit: 1,
            top_pad: 16,
            trim_threshold: 0,
            trim_delay: 0,
            mmap_threshold: 4096,
            ..Config::DEFAULT
        };
        run(config, 3, Duration::from_secs(1), 11).unwrap();
    }
}
