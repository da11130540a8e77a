//! The fast lists: small frees that neither split nor coalesce, reused by size, consolidated in
//! bulk before the heap grows or when a large free area forms at the top; misuse of a fast block is
//! caught.

use super::*;
use tagalloc::{Call, Error, Misuse, MisuseKind};

#[test]
fn a_small_free_waits_on_its_list_and_its_size_takes_it_back() {
    let mut h = heap();
    let a = m(&mut h, 100);
    let b = m(&mut h, 100);
    let live = h.stats().live_blocks;
    f(&mut h, a);
    // Freed to the statistics, still in use to its neighbours: no coalescing, no split.
    assert_eq!(h.stats().live_blocks, live - 1);
    let c = m(&mut h, 40); // another size: served elsewhere, a's block stays whole
    assert_ne!(c, a);
    assert_eq!(m(&mut h, 100), a, "the same size takes the fast block back");
    assert_eq!(b as usize - a as usize, 112);
    walk(&h);
}

#[test]
fn fast_blocks_are_consolidated_before_the_heap_grows() {
    // Little slack at the top, and no trimming, so only the fast blocks' space can serve.
    let mut h = Heap::with_config(
        Sim::new(32 << 20),
        Config {
            mmap_threshold: 256 << 10,
            top_pad: 0,
            trim_threshold: 1 << 30,
            dynamic_threshold: false,
            ..Config::DEFAULT
        },
    );
    let blocks: Vec<_> = (0..2000).map(|_| m(&mut h, 200)).collect();
    let brk = h.stats().brk_bytes;
    for &p in &blocks {
        f(&mut h, p);
    }
    // 2000 blocks of 208 bytes, about 400 KiB: a request of 200 KiB fits only in their space,
    // coalesced.
    let big = m(&mut h, 200 << 10);
    assert_eq!(h.stats().brk_bytes, brk, "the heap did not grow");
    assert_eq!(big, blocks[0]);
    f(&mut h, big);
}

#[test]
fn a_large_free_area_consolidates_and_the_top_is_trimmed() {
    let mut h = small_heap();
    let _first = m(&mut h, 16);
    let brk = h.stats().brk_bytes;
    let small: Vec<_> = (0..300).map(|_| m(&mut h, 500)).collect();
    let big = m(&mut h, 60 << 10);
    for &p in &small {
        f(&mut h, p);
    }
    let trims = h.stats().trims;
    f(&mut h, big);
    assert!(h.stats().trims > trims, "the consolidated top was trimmed");
    // The 150 KiB of the small blocks went back too: they were coalesced into the top first.
    assert!(h.stats().brk_bytes < brk + (64 << 10), "{:?}", h.stats());
    walk(&h);
}

#[test]
fn a_large_free_area_inside_the_heap_leaves_the_fast_lists_alone() {
    // A free that leaves 100 KiB free below a live block cannot let the top be trimmed, so it
    // does not pay for consolidating: the fast blocks stay on their lists, ready for their size.
    let mut h = heap();
    let small: Vec<_> = (0..300).map(|_| m(&mut h, 500)).collect();
    let big = m(&mut h, 100 << 10);
    let _guard = m(&mut h, 16);
    for &p in &small {
        f(&mut h, p);
    }
    f(&mut h, big);
    assert_eq!(
        m(&mut h, 500),
        small[299],
        "the last fast block is still its list's head"
    );
    walk(&h);
    // Consolidated, the same frees would have merged every small block into the big one's space.
}

#[test]
fn a_second_free_of_a_fast_block_is_a_double_free() {
    let mut h = heap();
    let a = m(&mut h, 64);
    let _guard = m(&mut h, 64);
    f(&mut h, a);
    // SAFETY: a is heap memory; freeing it again is the misuse under test.
    let r = unsafe { h.free(a) };
    let want = Err(Error::Misuse(Misuse {
        call: Call::Free,
        kind: MisuseKind::DoubleFree,
        addr: a as usize,
    }));
    assert_eq!(r, want);
    // SAFETY: as above.
    let r = unsafe { h.realloc(a, 10) }.map(|_| ());
    assert_eq!(
        r,
        Err(Error::Misuse(Misuse {
            call: Call::Realloc,
            kind: MisuseKind::DoubleFree,
            addr: a as usize,
        }))
    );
    walk(&h);
}

#[test]
fn with_fast_lists_off_every_free_coalesces() {
    let mut h = coalescing_heap();
    let a = m(&mut h, 100);
    let _guard = m(&mut h, 100);
    f(&mut h, a);
    assert_eq!(
        m(&mut h, 40),
        a,
        "the freed block was split for another size"
    );
}

#[test]
fn a_block_realloc_moves_out_of_is_freed_for_real() {
    let mut h = heap();
    let a = m(&mut h, 100);
    let _b = m(&mut h, 100); // a cannot grow in place
                             // SAFETY: a is live; the realloc's result replaces it.
    let q = unsafe { h.realloc(a, 300) }.unwrap().unwrap().as_ptr();
    assert_ne!(q, a);
    // On a fast list a's old block would take only its own size back; freed for real, it is
    // split for a smaller one.
    assert_eq!(m(&mut h, 40), a, "the vacated block waits on a fast list");
    walk(&h);
}
