//! The lock-free entry points `malloc_cached` and `calloc_cached` (what the preload library and
//! `GlobalAlloc` call first) hand out a block waiting in the calling thread's cache, and leave a
//! request the caches do not serve to the full call. A test binary of its own: the first caching
//! `LockedHeap` of a process owns the thread caches.

use tagalloc::source::Sim;
use tagalloc::LockedHeap;

/// A block freed into the thread cache comes back from `malloc_cached`, and again (zeroed) from
/// `calloc_cached`, without the full call; a request at or above the mmap threshold gets null.
#[test]
fn the_lock_free_paths_hand_out_a_cached_block() {
    let heap = LockedHeap::with_source(Sim::new(64 << 20));
    assert!(heap.owns_caches());
    let p = heap.malloc(100).expect("malloc").as_ptr();
    // SAFETY: p came from this heap and is freed once.
    unsafe { heap.free(p) }.expect("free");
    let q = heap.malloc_cached(100);
    assert_eq!(q, p, "the cached block is handed out by the lock-free path");
    // SAFETY: q has at least 100 usable bytes.
    unsafe { q.write_bytes(0x41, 100) };
    // SAFETY: q came from this heap and is freed once.
    unsafe { heap.free(q) }.expect("free");
    let z = heap.calloc_cached(10, 10);
    assert_eq!(z, p, "and by calloc's lock-free path");
    // SAFETY: z has at least 100 usable bytes.
    assert!(unsafe { std::slice::from_raw_parts(z, 100) }
        .iter()
        .all(|&b| b == 0));
    assert!(heap.malloc_cached(128 << 10).is_null(), "a large request");
    // SAFETY: z came from this heap and is freed once.
    unsafe { heap.free(z) }.expect("free");
    assert_eq!(heap.check(), Ok(()));
}
