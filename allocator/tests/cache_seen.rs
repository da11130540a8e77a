//! The local check of a thread cache walks the lists that changed since the last one
//! (`LockedHeap::check_caches_seen`); the whole check walks all of them. A test binary of its
//! own: the first caching `LockedHeap` of a process owns the caches.

use tagalloc::cache::Seen;
use tagalloc::source::Sim;
use tagalloc::{Config, LockedHeap};

#[test]
fn the_local_check_walks_the_lists_that_changed_and_the_whole_check_all() {
    let heap = LockedHeap::configured(Sim::new(64 << 20), Config::DEFAULT, true);
    assert!(heap.owns_caches());
    let a = heap.malloc(100).unwrap().as_ptr();
    let b = heap.malloc(100).unwrap().as_ptr();
    let other = heap.malloc(3000).unwrap().as_ptr();
    // SAFETY: each block came from this heap and is freed once.
    unsafe { heap.free(a) }.unwrap();
    let mut cached = Vec::new();
    heap.for_each_cached(|p| cached.push(p));
    assert!(cached.contains(&a), "the freed block is cached");
    let mut seen = Seen::new();
    assert_eq!(heap.check_caches_seen(&mut seen), Ok(()));
    // A stray write over the cached block's mark (its second word), in a list that does not
    // change: the whole check sees it, the local one does not walk that list again.
    // SAFETY: a is a cached block of at least 100 bytes, in memory of the heap's segments.
    unsafe { a.add(8).cast::<u64>().write_unaligned(0) };
    assert_eq!(
        heap.check_caches().map_err(|c| c.invariant),
        Err(10),
        "the whole check walks every list"
    );
    assert_eq!(heap.check_caches_seen(&mut seen), Ok(()));
    // A change elsewhere still leaves that list alone; a change to it has it walked.
    // SAFETY: as above.
    unsafe { heap.free(other) }.unwrap();
    assert_eq!(heap.check_caches_seen(&mut seen), Ok(()));
    // SAFETY: as above.
    unsafe { heap.free(b) }.unwrap();
    assert_eq!(
        heap.check_caches_seen(&mut seen).map_err(|c| c.invariant),
        Err(10),
        "the changed list is walked, down to the broken block"
    );
    // A fresh record walks every list.
    assert!(heap.check_caches_seen(&mut Seen::new()).is_err());
}
