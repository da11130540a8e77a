//! The calling thread's cache goes back to the heap before the heap grows for a large request. A
//! test binary of its own: the first caching `LockedHeap` of a process owns the caches.

use tagalloc::source::Sim;
use tagalloc::{Config, LockedHeap};

/// No pad on growth, so the top holds next to nothing spare and a request that free memory
/// cannot serve grows the heap.
const TIGHT: Config = Config {
    top_pad: 0,
    fast_lists: false,
    ..Config::DEFAULT
};

#[test]
fn the_thread_cache_goes_back_before_the_heap_grows() {
    let heap = LockedHeap::configured(Sim::new(64 << 20), TIGHT, true);
    assert!(heap.owns_caches());
    // A run of 400 blocks of 512 bytes (200 KiB), then a block that keeps it from the top.
    let run: Vec<*mut u8> = (0..400)
        .map(|_| heap.malloc(500).unwrap().as_ptr())
        .collect();
    let fence = heap.malloc(100).unwrap().as_ptr();
    // Freed so that the blocks the cache keeps (the last freed) are spread through the run:
    // every 25th block last. Alone, the gaps between them hold 12 KiB at most.
    let (spread, rest): (Vec<_>, Vec<_>) = (0..run.len()).partition(|i| i % 25 == 0);
    for &i in rest.iter().chain(&spread) {
        // SAFETY: each block came from this heap and is freed once.
        unsafe { heap.free(run[i]) }.unwrap();
    }
    let mut kept = 0;
    heap.for_each_cached(|p| kept += usize::from(spread.iter().any(|&i| run[i] == p)));
    assert!(
        kept >= 4,
        "the cache keeps spread blocks of the run: {kept}"
    );
    let brk = heap.stats().brk_bytes;
    let p = heap.malloc(100_000).unwrap().as_ptr();
    assert_eq!(
        heap.stats().brk_bytes,
        brk,
        "the heap grew while its cached blocks pinned the run"
    );
    let (lo, hi) = (run[0] as usize, run[399] as usize + 512);
    assert!((lo..hi).contains(&(p as usize)), "served from the run");
    assert_eq!(heap.check(), Ok(()));
    // SAFETY: both are live, freed once.
    unsafe {
        heap.free(p).unwrap();
        heap.free(fence).unwrap();
    }
    assert_eq!(heap.check(), Ok(()));
}
