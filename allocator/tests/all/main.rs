//! The allocator's integration tests, in one binary: layout, glibc edge semantics, misuse
//! detection, fault injection and randomized runs, all on heaps over the simulated source.

mod blocks;
mod edges;
mod fast;
mod faults;
mod misuse;
mod random;

use tagalloc::source::Sim;
use tagalloc::{Config, Heap};

/// A heap over a 32 MiB simulated break with glibc's thresholds.
pub(crate) fn heap() -> Heap<Sim> {
    Heap::new(Sim::new(32 << 20))
}

/// A heap over a 32 MiB simulated break with glibc's thresholds and no fast lists: every free
/// coalesces at once, as the tests of the boundary-tag core expect.
pub(crate) fn coalescing_heap() -> Heap<Sim> {
    Heap::with_config(
        Sim::new(32 << 20),
        Config {
            fast_lists: false,
            ..Config::DEFAULT
        },
    )
}

/// A heap with small thresholds, so tests reach the mmap and trim paths with small blocks.
pub(crate) fn small_heap() -> Heap<Sim> {
    Heap::with_config(
        Sim::new(32 << 20),
        Config {
            mmap_threshold: 64 << 10,
            trim_threshold: 64 << 10,
            top_pad: 16 << 10,
            dynamic_threshold: false,
            trim_delay: 0,
            ..Config::DEFAULT
        },
    )
}

/// Runs the heap walker and fails the test with its report.
#[track_caller]
pub(crate) fn walk(h: &Heap<Sim>) {
    if let Err(c) = h.check() {
        panic!("heap walker: {c}");
    }
}

/// `malloc` that must succeed, checked by the walker.
#[track_caller]
pub(crate) fn m(h: &mut Heap<Sim>, n: usize) -> *mut u8 {
    let p = h.malloc(n).expect("malloc").as_ptr();
    assert_eq!(p as usize % 16, 0);
    walk(h);
    p
}

/// `free` that must succeed, checked by the walker.
#[track_caller]
pub(crate) fn f(h: &mut Heap<Sim>, p: *mut u8) {
    // SAFETY: tests free only their own live blocks here.
    unsafe { h.free(p) }.expect("free");
    walk(h);
}

/// The usable size of a live block.
pub(crate) fn usable(h: &Heap<Sim>, p: *mut u8) -> usize {
    // SAFETY: p is live.
    unsafe { h.usable_size(p) }.expect("usable size")
}
