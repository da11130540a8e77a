//! Fault injection: when the memory source fails, calls fail cleanly with ENOMEM, the heap stays
//! valid, and later calls succeed.

use super::*;
use tagalloc::Error;

#[test]
fn failing_growth_falls_back_to_mapped_segments() {
    let mut h = heap();
    let a = m(&mut h, 100);
    // Exhaust the first segment, then make the next break growth fail: a mapped segment serves.
    let big: Vec<_> = (0..3).map(|_| m(&mut h, 100_000)).collect();
    h.source_mut().fail_next(1);
    let b = m(&mut h, 100_000);
    let s = h.stats();
    assert_eq!(s.brk_fallbacks, 1, "{s:?}");
    assert!(s.mmap_bytes > 0);
    walk(&h);
    for p in big.into_iter().chain([a, b]) {
        f(&mut h, p);
    }
}

#[test]
fn every_call_fails_cleanly_while_the_source_fails() {
    // No top pad: the heap holds no spare memory, so every request below must ask the source.
    let mut h = Heap::with_config(
        Sim::new(32 << 20),
        tagalloc::Config {
            top_pad: 0,
            ..tagalloc::Config::DEFAULT
        },
    );
    let keep = m(&mut h, 50);
    // Use up the segment so every size below must grow.
    let filler: Vec<_> = (0..4).map(|_| m(&mut h, 100_000)).collect();
    h.source_mut().fail_next(usize::MAX);
    let oom = Err(Error::OutOfMemory);
    assert_eq!(h.malloc(200_000).map(|_| ()), oom);
    assert_eq!(h.malloc(120_000).map(|_| ()), oom);
    assert_eq!(h.calloc(1000, 1000).map(|_| ()), oom);
    assert_eq!(h.memalign(4096, 300_000).map(|_| ()), oom);
    // SAFETY: keep is live.
    assert_eq!(unsafe { h.realloc(keep, 1 << 20) }.map(|_| ()), oom);
    walk(&h);
    assert!(h.stats().failures >= 5);
    h.source_mut().fail_next(0);
    let p = m(&mut h, 200_000);
    let q = m(&mut h, 120_000);
    // SAFETY: keep is still live.
    let keep = unsafe { h.realloc(keep, 1 << 20) }
        .unwrap()
        .unwrap()
        .as_ptr();
    walk(&h);
    for x in filler.into_iter().chain([p, q, keep]) {
        f(&mut h, x);
    }
}

#[test]
fn a_failure_at_every_point_of_a_sequence() {
    // For each k, fail the k-th OS request of a fixed sequence; everything else must be unchanged.
    for k in 0..12u64 {
        let mut h = small_heap();
        let mut live = Vec::new();
        let mut failed = 0;
        for i in 0..60usize {
            let n = [10, 3000, 70_000, 20_000, 100][i % 5] + i;
            if h.source().requests() == k {
                h.source_mut().fail_next(1);
            }
            match h.malloc(n) {
                Ok(p) => {
                    // SAFETY: p has n bytes.
                    unsafe { std::ptr::write_bytes(p.as_ptr(), i as u8, n) };
                    live.push((p.as_ptr(), n, i as u8));
                }
                Err(e) => {
                    assert_eq!(e, Error::OutOfMemory);
                    failed += 1;
                }
            }
            walk(&h);
            if i % 3 == 2 {
                let (p, _, _) = live.remove(0);
                f(&mut h, p);
            }
        }
        assert!(failed <= 1, "only the injected failure may fail");
        for (p, n, v) in live {
            // SAFETY: p is live with n bytes.
            assert!(unsafe { std::slice::from_raw_parts(p, n) }
                .iter()
                .all(|&b| b == v));
            f(&mut h, p);
        }
    }
}
