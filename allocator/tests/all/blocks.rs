//! Splitting, coalescing, segregated lists, the mmap threshold, trimming, segments.

use super::*;
use tagalloc::Config;

#[test]
fn split_leaves_a_free_remainder_and_malloc_reuses_it() {
    let mut h = coalescing_heap();
    let a = m(&mut h, 100);
    let b = m(&mut h, 100);
    // b follows a directly: a's block is 112 + 8 header -> 112 bytes of block.
    assert_eq!(b as usize - a as usize, 112);
    f(&mut h, a);
    let c = m(&mut h, 40); // splits a's block: 48 used, 64 free
    assert_eq!(c, a);
    let d = m(&mut h, 50); // fits the 64-byte remainder exactly
    assert_eq!(d as usize, a as usize + 48);
    walk(&h);
}

#[test]
fn no_sliver_smaller_than_the_minimum_block() {
    let mut h = coalescing_heap();
    let a = m(&mut h, 40); // 48-byte block
    let _guard = m(&mut h, 8);
    f(&mut h, a);
    let b = m(&mut h, 24); // 32-byte block; a 16-byte remainder would be a sliver
    assert_eq!(b, a);
    assert_eq!(usable(&h, b), 40, "the whole block is handed out");
}

#[test]
fn free_coalesces_with_the_next_block() {
    let mut h = coalescing_heap();
    let a = m(&mut h, 100);
    let b = m(&mut h, 100);
    let _guard = m(&mut h, 100);
    f(&mut h, b);
    f(&mut h, a); // a merges with free b
    let c = m(&mut h, 200); // 208-byte block fits in 224 only if merged
    assert_eq!(c, a);
}

#[test]
fn free_coalesces_with_the_previous_block() {
    let mut h = coalescing_heap();
    let a = m(&mut h, 100);
    let b = m(&mut h, 100);
    let _guard = m(&mut h, 100);
    f(&mut h, a);
    f(&mut h, b); // b merges with free a
    assert_eq!(m(&mut h, 200), a);
}

#[test]
fn free_coalesces_with_both_neighbours() {
    let mut h = coalescing_heap();
    let a = m(&mut h, 100);
    let b = m(&mut h, 100);
    let c = m(&mut h, 100);
    let _guard = m(&mut h, 100);
    f(&mut h, a);
    f(&mut h, c);
    f(&mut h, b); // one free block of a, b and c
    assert_eq!(m(&mut h, 320), a);
}

#[test]
fn segregated_lists_give_exact_fits_first() {
    let mut h = heap();
    let mut small = Vec::new();
    let mut guards = Vec::new();
    for _ in 0..4 {
        small.push(m(&mut h, 24));
        guards.push(m(&mut h, 24));
    }
    let big = m(&mut h, 500);
    guards.push(m(&mut h, 24));
    f(&mut h, big);
    for &p in &small {
        f(&mut h, p);
    }
    // A 24-byte request comes from the 32-byte bin, never from splitting the 512-byte block.
    let mut again: Vec<_> = (0..4).map(|_| m(&mut h, 24)).collect();
    again.sort();
    let mut want = small.clone();
    want.sort();
    assert_eq!(again, want);
    assert_eq!(m(&mut h, 500), big);
}

#[test]
fn mmap_threshold_either_side() {
    let mut h = heap();
    let below = m(&mut h, (128 << 10) - 1);
    assert_eq!(h.stats().mapped_chunks, 0);
    assert_eq!(h.source().mappings(), 0);
    let at = m(&mut h, 128 << 10);
    assert_eq!(h.stats().mapped_chunks, 1);
    // Two mappings: the chunk and the registry's table.
    assert_eq!(h.source().mappings(), 2);
    assert!(usable(&h, at) >= 128 << 10);
    f(&mut h, at);
    assert_eq!(h.stats().mapped_chunks, 0);
    assert_eq!(h.source().mappings(), 1, "munmap on free");
    f(&mut h, below);
}

/// A large chunk maps its payload and its 16 bytes of lead word and header, rounded up to whole
/// pages, and hands all of it out: an ordinary malloc pays no alignment slack.
#[test]
fn a_large_chunk_maps_its_payload_and_header_in_whole_pages() {
    let mut h = small_heap();
    // The first chunk also maps the registry's table.
    let first = m(&mut h, 100 << 10);
    for n in [(128 << 10) - 16, (128 << 10) - 15, 128 << 10, 200_000] {
        let before = h.stats().mmap_bytes;
        let p = m(&mut h, n);
        let mapped = h.stats().mmap_bytes - before;
        assert_eq!(mapped, (n + 16).div_ceil(4096) * 4096, "{n}");
        assert_eq!(usable(&h, p), mapped - 16, "{n}");
        f(&mut h, p);
    }
    f(&mut h, first);
}

/// A block that must move to grow gets a quarter more room than asked (below the mmap threshold),
/// so a buffer grown a little at a time moves O(log n) times; a move that shrinks gets what it
/// asks for.
#[test]
fn a_growing_move_gets_a_quarter_more_room_a_shrinking_one_does_not() {
    let mut h = coalescing_heap();
    let a = m(&mut h, 1000);
    let guard = m(&mut h, 16); // a cannot grow in place
                               // SAFETY: a is live.
    let b = unsafe { h.realloc(a, 4000) }.unwrap().unwrap().as_ptr();
    assert_ne!(b, a, "moved");
    assert!(usable(&h, b) >= 5000, "grown to {}", usable(&h, b));
    // A large chunk reallocated below the threshold moves into a segment: shrinking.
    let c = m(&mut h, 200_000);
    assert_eq!(h.stats().mapped_chunks, 1);
    // SAFETY: c is live.
    let d = unsafe { h.realloc(c, 50_000) }.unwrap().unwrap().as_ptr();
    assert_eq!(h.stats().mapped_chunks, 0, "moved into a segment");
    assert!(
        usable(&h, d) < 50_000 + 50_000 / 4,
        "shrunk to {}",
        usable(&h, d)
    );
    walk(&h);
    for p in [b, guard, d] {
        f(&mut h, p);
    }
}

#[test]
fn realloc_of_a_large_chunk_remaps_and_keeps_data() {
    let mut h = small_heap();
    let p = m(&mut h, 100 << 10);
    // SAFETY: p has 100 KiB.
    unsafe { std::ptr::write_bytes(p, 0xab, 100 << 10) };
    // SAFETY: p is live.
    let q = unsafe { h.realloc(p, 300 << 10) }
        .unwrap()
        .unwrap()
        .as_ptr();
    walk(&h);
    // A growing remap takes a quarter more room than the new size's pages, as `move_to` does.
    let pages = |n: usize| n.div_ceil(4096) * 4096;
    let asked = pages((300 << 10) + 16);
    assert_eq!(usable(&h, q), pages(asked + asked / 4) - 16);
    // SAFETY: q has at least 100 KiB.
    assert!(unsafe { std::slice::from_raw_parts(q, 100 << 10) }
        .iter()
        .all(|&b| b == 0xab));
    // Shrinking below the threshold moves it back into a segment.
    // SAFETY: q is live.
    let r = unsafe { h.realloc(q, 1000) }.unwrap().unwrap().as_ptr();
    walk(&h);
    assert_eq!(h.stats().mapped_chunks, 0);
    // SAFETY: r has 1000 bytes.
    assert!(unsafe { std::slice::from_raw_parts(r, 1000) }
        .iter()
        .all(|&b| b == 0xab));
    f(&mut h, r);
}

#[test]
fn realloc_grows_into_a_free_neighbour_and_shrinks_in_place() {
    let mut h = coalescing_heap();
    let a = m(&mut h, 100);
    let b = m(&mut h, 300);
    let _guard = m(&mut h, 8);
    f(&mut h, b);
    // SAFETY: a is live.
    let a2 = unsafe { h.realloc(a, 350) }.unwrap().unwrap().as_ptr();
    assert_eq!(a2, a, "grew in place into the free neighbour");
    walk(&h);
    // SAFETY: a2 is live.
    let a3 = unsafe { h.realloc(a2, 20) }.unwrap().unwrap().as_ptr();
    assert_eq!(a3, a, "shrank in place");
    walk(&h);
    assert_eq!(usable(&h, a3), 24);
}

#[test]
fn trimming_gives_the_top_back_and_growing_again_works() {
    let mut h = small_heap();
    let blocks: Vec<_> = (0..40).map(|_| m(&mut h, 30_000)).collect();
    let grown = h.source().break_offset();
    for &p in blocks.iter().rev() {
        f(&mut h, p);
    }
    let s = h.stats();
    assert!(s.trims > 0, "{s:?}");
    assert!(h.source().break_offset() < grown / 4, "break moved back");
    assert_eq!(s.brk_bytes, h.source().break_offset());
    // Grow again over the trimmed memory; calloc must still see zeroes.
    let again: Vec<_> = (0..40)
        .map(|_| {
            let p = h.calloc(1, 30_000).unwrap().as_ptr();
            // SAFETY: p has 30000 bytes.
            assert!(unsafe { std::slice::from_raw_parts(p, 30_000) }
                .iter()
                .all(|&b| b == 0));
            // SAFETY: p has 30000 bytes.
            unsafe { std::ptr::write_bytes(p, 0x5a, 30_000) };
            walk(&h);
            p
        })
        .collect();
    for p in again {
        f(&mut h, p);
    }
}

#[test]
fn no_trim_when_someone_else_moved_the_break() {
    let mut h = small_heap();
    let blocks: Vec<_> = (0..10).map(|_| m(&mut h, 30_000)).collect();
    assert!(h.source_mut().foreign_sbrk(100));
    let before = h.source().break_offset();
    for p in blocks {
        f(&mut h, p);
    }
    assert_eq!(h.stats().trims, 0);
    assert_eq!(h.source().break_offset(), before);
}

#[test]
fn foreign_sbrk_starts_a_new_segment() {
    let mut h = heap();
    let a = m(&mut h, 100_000);
    assert!(h.source_mut().foreign_sbrk(12_345));
    // The first segment has ~128 KiB of pad left; exhaust it so the heap must grow.
    let b = m(&mut h, 100_000);
    let c = m(&mut h, 100_000);
    assert_eq!(
        h.stats().segments,
        2,
        "non-contiguous growth is a new segment"
    );
    for p in [a, b, c] {
        // SAFETY: each block has 100000 bytes.
        unsafe { std::ptr::write_bytes(p, 1, 100_000) };
    }
    walk(&h);
    for p in [b, a, c] {
        f(&mut h, p);
    }
}

#[test]
fn contiguous_growth_extends_the_segment() {
    let mut h = heap();
    let blocks: Vec<_> = (0..20).map(|_| m(&mut h, 100_000)).collect();
    assert_eq!(h.stats().segments, 1);
    for p in blocks {
        f(&mut h, p);
    }
}

#[test]
fn memalign_with_large_alignments() {
    let mut h = heap();
    let mut live = Vec::new();
    for shift in 5..=16 {
        let align = 1usize << shift;
        for size in [1, 100, 5000] {
            let p = h.memalign(align, size).unwrap().as_ptr();
            assert_eq!(p as usize % align, 0, "align {align}");
            assert!(usable(&h, p) >= size);
            walk(&h);
            live.push(p);
        }
    }
    let big = h.memalign(1 << 20, 200 << 10).unwrap().as_ptr();
    assert_eq!(big as usize % (1 << 20), 0);
    walk(&h);
    live.push(big);
    for p in live {
        f(&mut h, p);
    }
    assert_eq!(h.stats().live_blocks, 0);
}

#[test]
fn statistics_count_calls_and_bytes() {
    let mut h = heap();
    let a = m(&mut h, 10);
    let b = h.calloc(3, 10).unwrap().as_ptr();
    // SAFETY: a is live.
    let a = unsafe { h.realloc(a, 20) }.unwrap().unwrap().as_ptr();
    let s = h.stats();
    assert_eq!((s.mallocs, s.callocs, s.reallocs), (1, 1, 1));
    assert_eq!(s.live_blocks, 2);
    // A refused call of the aligned family counts as a call and as a failure.
    assert_eq!(
        h.posix_memalign(24, 10),
        Err(tagalloc::Error::InvalidArgument)
    );
    let s = h.stats();
    assert_eq!((s.memaligns, s.failures), (1, 1));
    assert!(s.brk_bytes > 0 && s.mmap_bytes == 0);
    f(&mut h, a);
    f(&mut h, b);
    assert_eq!(h.stats().frees, 2);
    assert_eq!(h.stats().live_bytes, 0);
}

#[test]
fn freeing_a_large_chunk_raises_the_threshold_as_glibc_does() {
    let mut h = heap();
    let p = m(&mut h, 200_000);
    assert_eq!(h.stats().mapped_chunks, 1);
    f(&mut h, p);
    assert!(h.config().mmap_threshold > 200_000);
    assert_eq!(h.config().trim_threshold, 2 * h.config().mmap_threshold);
    let q = m(&mut h, 200_000);
    assert_eq!(h.stats().mapped_chunks, 0, "now served from a segment");
    f(&mut h, q);
    // Beyond the 32 MiB ceiling nothing changes.
    let before = h.config();
    let big = m(&mut h, 40 << 20);
    f(&mut h, big);
    assert_eq!(h.config(), before);
}

#[test]
fn a_static_threshold_stays_put() {
    let mut h = small_heap();
    let p = m(&mut h, 100_000);
    f(&mut h, p);
    assert_eq!(h.config().mmap_threshold, 64 << 10);
}

#[test]
fn trimming_waits_for_the_top_to_stay_free() {
    let mut h = Heap::with_config(
        Sim::new(32 << 20),
        Config {
            trim_delay: 3,
            dynamic_threshold: false,
            ..Config::DEFAULT
        },
    );
    let blocks: Vec<_> = (0..12).map(|_| m(&mut h, 100_000)).collect();
    // Free from the top down: every free leaves a trimmable top; the first three only count.
    for (i, &p) in blocks.iter().rev().enumerate() {
        f(&mut h, p);
        let trims = h.stats().trims;
        if i < 3 {
            assert_eq!(trims, 0, "free {i}");
        }
    }
    assert!(h.stats().trims > 0);
    // Allocating from the top between frees resets the count: no trim.
    let mut h = Heap::with_config(
        Sim::new(32 << 20),
        Config {
            trim_delay: 3,
            dynamic_threshold: false,
            ..Config::DEFAULT
        },
    );
    let keep = m(&mut h, 100);
    for _ in 0..20 {
        let a = m(&mut h, 120_000);
        let b = m(&mut h, 120_000);
        f(&mut h, b);
        f(&mut h, a);
    }
    assert_eq!(h.stats().trims, 0);
    f(&mut h, keep);
}

#[test]
fn the_walker_reports_an_overwritten_free_link_without_following_it() {
    let mut h = heap();
    let a = m(&mut h, 3000);
    let _guard = m(&mut h, 100);
    let b = m(&mut h, 3000);
    let _guard2 = m(&mut h, 100);
    f(&mut h, a);
    f(&mut h, b);
    // A use after free writes a wild address over a freed block's links.
    // SAFETY: a's payload is still mapped (its block is free in the heap); this is the misuse.
    unsafe { a.cast::<usize>().write(0x4141_4141_4141_4140) };
    let e = h.check().unwrap_err();
    assert_eq!(e.invariant, 11, "{e}");
}
