//! Medium blocks (requests of 1033 to 32760 bytes) through the thread caches: a request is rounded
//! up to its class (eight per power of two), a freed block of a class's size waits in the cache and
//! the next request of its class takes it back without the lock, a class over its limit gives half
//! back to the heap (freed for real: medium blocks have no fast lists; the heap's count of
//! allocated blocks is what callers hold plus what the caches hold), calls the cache serves are
//! counted as their kind, and invariant 10 holds for all of it. A test binary of its own: the first caching `LockedHeap` of a process owns the caches.

use tagalloc::source::Sim;
use tagalloc::{Call, Error, LockedHeap, Misuse, MisuseKind};

fn usable(heap: &LockedHeap<Sim>, p: *mut u8) -> usize {
    // SAFETY: p is a live block of this heap.
    unsafe { heap.usable_size(p) }.expect("usable_size")
}

fn cached(heap: &LockedHeap<Sim>) -> Vec<*mut u8> {
    let mut out = Vec::new();
    heap.for_each_cached(|p| out.push(p));
    out
}

#[test]
fn medium_blocks_are_rounded_to_their_class_cached_and_given_back() {
    let heap = LockedHeap::with_source(Sim::new(64 << 20));
    // The last small class and the first medium one.
    let small = heap.malloc(1032).expect("malloc").as_ptr();
    assert_eq!(usable(&heap, small), 1032);
    for n in [1033, 1144, 1145, 1500, 2048, 2049, 4000, 10_000, 32_760] {
        let p = heap.malloc(n).expect("malloc").as_ptr();
        let u = usable(&heap, p);
        assert!(u >= n && u <= n + n / 8 + 16, "{n}: usable {u}");
        // SAFETY: p came from this heap and is freed once.
        unsafe { heap.free(p) }.expect("free");
        assert!(
            cached(&heap).contains(&p),
            "{n}: a freed medium block waits in the cache"
        );
        let q = heap.malloc(n).expect("malloc").as_ptr();
        assert_eq!(q, p, "{n}: the next request of the class takes it back");
        assert!(!cached(&heap).contains(&p));
        assert_eq!(heap.check(), Ok(()), "{n}");
        // SAFETY: as above.
        unsafe { heap.free(q) }.expect("free");
    }
    // A block larger than the largest class (and its sliver) is not cached.
    let big = heap.malloc(33_000).expect("malloc").as_ptr();
    // SAFETY: as above.
    unsafe { heap.free(big) }.expect("free");
    assert!(!cached(&heap).contains(&big));

    // Many blocks of one class: the class fills to its limit, then gives half back to the heap,
    // whose blocks coalesce (the walker checks it), and the cache never holds more than its limit.
    let blocks: Vec<*mut u8> = (0..64)
        .map(|_| heap.malloc(3000).expect("malloc").as_ptr())
        .collect();
    for &p in &blocks {
        // SAFETY: as above.
        unsafe { heap.free(p) }.expect("free");
        assert_eq!(heap.check(), Ok(()));
    }
    let of_class = cached(&heap)
        .into_iter()
        .filter(|p| blocks.contains(p))
        .count();
    assert!(
        (1..=16).contains(&of_class),
        "{of_class} blocks of 3000 B cached"
    );
    // Every block the heap counts as allocated is held (`small`) or waits in a cache: the half a
    // full class gives back is freed for real, not dropped on the way.
    assert_eq!(
        heap.stats().live_blocks,
        1 + cached(&heap).len(),
        "allocated blocks neither held nor cached"
    );

    // A calloc the cache serves is counted as a calloc (not as a malloc), and its block is zeroed.
    let before = heap.stats();
    let z = heap.calloc(1, 3000).expect("calloc").as_ptr();
    assert!(blocks.contains(&z), "served from the cache");
    let after = heap.stats();
    assert_eq!(
        (after.callocs, after.mallocs),
        (before.callocs + 1, before.mallocs)
    );
    // SAFETY: z is a live block of at least 3000 bytes.
    assert!(unsafe { std::slice::from_raw_parts(z, 3000) }
        .iter()
        .all(|&b| b == 0));
    // SAFETY: as above.
    unsafe { heap.free(z) }.expect("free");
    // Likewise one that finds its class empty (no block of 20 000 B was freed yet) and refills.
    let before = heap.stats();
    let z = heap.calloc(1, 20_000).expect("calloc").as_ptr();
    let after = heap.stats();
    assert_eq!(
        (after.callocs, after.mallocs),
        (before.callocs + 1, before.mallocs),
        "a calloc served after a refill"
    );
    // SAFETY: as above.
    unsafe { heap.free(z) }.expect("free");

    // A thread's cache goes back when the thread exits: its blocks are freed or wait in the
    // transfer cache, not lost with the thread. (A scoped thread's `join` waits for the thread's
    // end, its cache's destructor included.)
    std::thread::scope(|s| {
        let exited = s.spawn(|| {
            let mine: Vec<*mut u8> = (0..8)
                .map(|_| heap.malloc(3000).expect("malloc").as_ptr())
                .collect();
            for p in mine {
                // SAFETY: as above.
                unsafe { heap.free(p) }.expect("free");
            }
        });
        exited.join().expect("the thread");
    });
    assert_eq!(
        heap.stats().live_blocks,
        1 + cached(&heap).len(),
        "an exited thread's cached blocks were lost"
    );

    // A second free of a cached medium block is a double free, by free and by realloc.
    let p = heap.malloc(5000).expect("malloc").as_ptr();
    // SAFETY: as above.
    unsafe { heap.free(p) }.expect("free");
    let double = |call| {
        Err(Error::Misuse(Misuse {
            call,
            kind: MisuseKind::DoubleFree,
            addr: p as usize,
        }))
    };
    // SAFETY: p is heap memory; freeing it again is the misuse under test.
    assert_eq!(unsafe { heap.free(p) }, double(Call::Free));
    // SAFETY: as above.
    let r = unsafe { heap.realloc(p, 100) }.map(|_| ());
    assert_eq!(r, double(Call::Realloc));
    assert_eq!(heap.check(), Ok(()));
    // SAFETY: as above.
    unsafe { heap.free(small) }.expect("free");
}
