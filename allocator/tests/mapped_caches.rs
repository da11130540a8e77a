//! Thread caches filled from mapped segments: when the break cannot grow (a hard `brk` limit,
//! valgrind's small client break), the heap takes mapped segments and the caches refill from them.
//! Invariant 10 must hold for such cached blocks as for those of break segments (it used to call
//! them "outside the break range"). A test binary of its own: the first caching `LockedHeap` of a
//! process owns the thread caches.

use tagalloc::source::Sim;
use tagalloc::LockedHeap;

#[test]
fn cached_blocks_of_mapped_segments_pass_the_cache_invariant() {
    // A break of one page: every small block past the first few comes from a mapped segment.
    let heap = LockedHeap::with_source(Sim::new(4096));
    let mut live = Vec::new();
    for i in 0..2000 {
        live.push(heap.malloc(16 + (i % 7) * 48).expect("malloc").as_ptr());
    }
    assert!(
        heap.with(|h| h.source().mappings()) > 0,
        "the heap took mapped segments"
    );
    for p in live.drain(..).rev() {
        // SAFETY: p came from this heap and is freed once.
        unsafe { heap.free(p) }.expect("free");
    }
    // Blocks of mapped segments now wait in this thread's cache (and the transfer cache).
    let mut cached = 0;
    heap.for_each_cached(|_| cached += 1);
    assert!(cached > 0, "freed blocks are cached");
    assert_eq!(heap.check(), Ok(()));
    for _ in 0..500 {
        live.push(heap.malloc(64).expect("malloc").as_ptr());
    }
    assert_eq!(heap.check(), Ok(()));
}
