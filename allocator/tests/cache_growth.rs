//! A thread-cache class that trips the lock again and again (batches of frees larger than it
//! holds, then as many mallocs) grows its limit, up to its bound, and invariant 10 holds
//! throughout; a class used lightly keeps its limit. A test binary of its own: the first caching
//! `LockedHeap` of a process owns the caches.

use tagalloc::source::Sim;
use tagalloc::LockedHeap;

#[test]
fn a_class_that_keeps_tripping_the_lock_grows_its_limit() {
    let heap = LockedHeap::with_source(Sim::new(64 << 20));
    let of_size = |heap: &LockedHeap<Sim>, blocks: &[*mut u8]| {
        let mut n = 0;
        heap.for_each_cached(|p| n += usize::from(blocks.contains(&p)));
        n
    };
    // One light round: 30 blocks of 200 B fit their class (limit 36): no trip on the frees.
    let light: Vec<*mut u8> = (0..30)
        .map(|_| heap.malloc(200).unwrap().as_ptr())
        .collect();
    for &p in &light {
        // SAFETY: p came from this heap and is freed once.
        unsafe { heap.free(p) }.unwrap();
    }
    assert_eq!(of_size(&heap, &light), 30);
    // Rounds of 1000 blocks of 64 B: the class (limit 64 to start) flushes and refills.
    let mut most = 0;
    for round in 0..6 {
        let blocks: Vec<*mut u8> = (0..1000)
            .map(|_| heap.malloc(64).unwrap().as_ptr())
            .collect();
        for &p in &blocks {
            // SAFETY: as above.
            unsafe { heap.free(p) }.unwrap();
        }
        let cached = of_size(&heap, &blocks);
        assert!(
            cached <= 256,
            "round {round}: {cached} cached, over the bound"
        );
        most = most.max(cached);
        assert_eq!(heap.check(), Ok(()), "round {round}");
    }
    assert!(
        most > 64,
        "the class grew past its starting limit: at most {most} cached"
    );
}
