//! glibc's edge semantics, one by one.

use super::*;
use tagalloc::Error;

const PTRDIFF_MAX: usize = isize::MAX as usize;

#[test]
fn malloc_zero_is_unique_and_freeable() {
    let mut h = heap();
    let a = m(&mut h, 0);
    let b = m(&mut h, 0);
    assert_ne!(a, b);
    assert!(usable(&h, a) >= 16, "a minimum block");
    f(&mut h, a);
    f(&mut h, b);
}

#[test]
fn realloc_null_is_malloc() {
    let mut h = heap();
    // SAFETY: null is always acceptable.
    let p = unsafe { h.realloc(std::ptr::null_mut(), 40) }
        .unwrap()
        .unwrap()
        .as_ptr();
    assert!(usable(&h, p) >= 40);
    f(&mut h, p);
}

#[test]
fn realloc_to_zero_frees_and_returns_null() {
    let mut h = heap();
    let p = m(&mut h, 40);
    // SAFETY: p is live.
    assert_eq!(unsafe { h.realloc(p, 0) }, Ok(None));
    walk(&h);
    assert_eq!(h.stats().live_blocks, 0);
}

#[test]
fn requests_above_ptrdiff_max_fail_with_enomem() {
    let mut h = heap();
    for n in [PTRDIFF_MAX + 1, usize::MAX, usize::MAX - 15] {
        assert_eq!(h.malloc(n), Err(Error::OutOfMemory));
        assert_eq!(h.calloc(1, n), Err(Error::OutOfMemory));
        assert_eq!(h.memalign(64, n), Err(Error::OutOfMemory));
        assert_eq!(h.posix_memalign(64, n), Err(Error::OutOfMemory));
        assert_eq!(h.aligned_alloc(64, n), Err(Error::OutOfMemory));
        assert_eq!(h.valloc(n), Err(Error::OutOfMemory));
        assert_eq!(h.pvalloc(n), Err(Error::OutOfMemory));
    }
    assert_eq!(Error::OutOfMemory.errno(), libc::ENOMEM);
    walk(&h);
    // A request that is representable but far larger than the source can give fails cleanly too.
    assert_eq!(h.malloc(PTRDIFF_MAX), Err(Error::OutOfMemory));
    assert_eq!(h.malloc(1 << 40), Err(Error::OutOfMemory));
    walk(&h);
}

#[test]
fn calloc_product_overflow_fails_with_enomem() {
    let mut h = heap();
    assert_eq!(h.calloc(usize::MAX, 2), Err(Error::OutOfMemory));
    assert_eq!(h.calloc(1 << 32, 1 << 32), Err(Error::OutOfMemory));
    assert_eq!(h.calloc(PTRDIFF_MAX / 2 + 1, 2), Err(Error::OutOfMemory));
    let p = m(&mut h, 10);
    // SAFETY: p is live.
    let r = unsafe { h.reallocarray(p, usize::MAX, 2) };
    assert_eq!(r, Err(Error::OutOfMemory));
    walk(&h);
    f(&mut h, p);
}

#[test]
fn failed_realloc_leaves_the_block_intact() {
    let mut h = heap();
    let p = m(&mut h, 100);
    // SAFETY: p has 100 bytes.
    unsafe { std::ptr::write_bytes(p, 7, 100) };
    // SAFETY: p is live.
    let r = unsafe { h.realloc(p, PTRDIFF_MAX + 1) };
    assert_eq!(r, Err(Error::OutOfMemory));
    h.source_mut().fail_next(usize::MAX);
    // SAFETY: p is live.
    assert_eq!(unsafe { h.realloc(p, 1 << 20) }, Err(Error::OutOfMemory));
    h.source_mut().fail_next(0);
    walk(&h);
    // SAFETY: p is still live with its 100 bytes.
    assert!(unsafe { std::slice::from_raw_parts(p, 100) }
        .iter()
        .all(|&b| b == 7));
    f(&mut h, p);
}

#[test]
fn posix_memalign_rejects_bad_alignments_with_einval() {
    let mut h = heap();
    for align in [0, 1, 2, 4, 12, 24, 48, 100, 4097, usize::MAX] {
        assert_eq!(
            h.posix_memalign(align, 10),
            Err(Error::InvalidArgument),
            "align {align}"
        );
    }
    assert_eq!(Error::InvalidArgument.errno(), libc::EINVAL);
    for align in [8, 16, 32, 4096, 1 << 20] {
        let p = h.posix_memalign(align, 10).unwrap().as_ptr();
        assert_eq!(p as usize % align, 0);
        f(&mut h, p);
    }
}

#[test]
fn aligned_alloc_rejects_non_powers_of_two_with_einval() {
    let mut h = heap();
    for align in [0, 3, 24, 100, 4095] {
        assert_eq!(
            h.aligned_alloc(align, 10),
            Err(Error::InvalidArgument),
            "align {align}"
        );
    }
    for align in [1, 2, 8, 64, 8192] {
        let p = h.aligned_alloc(align, 10).unwrap().as_ptr();
        assert_eq!(p as usize % align.max(16), 0);
        f(&mut h, p);
    }
}

#[test]
fn memalign_rounds_odd_alignments_up_and_refuses_absurd_ones() {
    let mut h = heap();
    let p = h.memalign(48, 10).unwrap().as_ptr();
    assert_eq!(p as usize % 64, 0);
    f(&mut h, p);
    assert_eq!(
        h.memalign(usize::MAX / 2 + 2, 10),
        Err(Error::InvalidArgument)
    );
}

#[test]
fn valloc_and_pvalloc_are_page_aligned() {
    let mut h = heap();
    let v = h.valloc(10).unwrap().as_ptr();
    assert_eq!(v as usize % 4096, 0);
    let pv = h.pvalloc(10).unwrap().as_ptr();
    assert_eq!(pv as usize % 4096, 0);
    assert!(
        usable(&h, pv) >= 4096,
        "pvalloc rounds the size up to a page"
    );
    walk(&h);
    f(&mut h, v);
    f(&mut h, pv);
}

#[test]
fn usable_size_covers_the_request_and_null_is_zero() {
    let mut h = heap();
    for n in [0, 1, 24, 25, 1000, 200_000] {
        let p = m(&mut h, n);
        assert!(usable(&h, p) >= n);
        f(&mut h, p);
    }
    // SAFETY: null is always acceptable.
    assert_eq!(unsafe { h.usable_size(std::ptr::null_mut()) }, Ok(0));
}

#[test]
fn free_of_null_is_a_no_op() {
    let mut h = heap();
    // SAFETY: null is always acceptable.
    assert_eq!(unsafe { h.free(std::ptr::null_mut()) }, Ok(()));
}

#[test]
fn calloc_zeroes_reused_dirty_memory() {
    let mut h = heap();
    let ps: Vec<_> = (0..50).map(|i| m(&mut h, 10 + i * 7)).collect();
    for (i, &p) in ps.iter().enumerate() {
        // SAFETY: each block holds at least 10 + 7 i bytes.
        unsafe { std::ptr::write_bytes(p, 0xff, 10 + i * 7) };
    }
    for &p in &ps {
        f(&mut h, p);
    }
    for n in [1, 10, 33, 100, 300, 1000, 5000] {
        let p = h.calloc(n, 1).unwrap().as_ptr();
        walk(&h);
        // SAFETY: p has n bytes.
        let bytes = unsafe { std::slice::from_raw_parts(p, n) };
        assert!(bytes.iter().all(|&b| b == 0), "calloc({n})");
        // SAFETY: p has n bytes.
        unsafe { std::ptr::write_bytes(p, 0xee, n) };
    }
}

#[test]
fn calloc_does_not_clear_memory_fresh_from_the_os() {
    // The fresh frontier lets calloc skip clearing untouched memory; the walker's invariant 9
    // checks the premise after every step, and the contents are checked here.
    let mut h = heap();
    let mut live = Vec::new();
    for n in [8, 100, 3000, 40_000, 200_000, 17] {
        let p = h.calloc(1, n).unwrap().as_ptr();
        walk(&h);
        // SAFETY: p has n bytes.
        assert!(unsafe { std::slice::from_raw_parts(p, n) }
            .iter()
            .all(|&b| b == 0));
        // SAFETY: p has n bytes.
        unsafe { std::ptr::write_bytes(p, 0xcc, n) };
        live.push(p);
    }
    for p in live {
        f(&mut h, p);
    }
}
