//! Every misuse is detected and named, and the heap is left as it was.

use super::*;
use tagalloc::{Call, Error, Misuse, MisuseKind};

#[track_caller]
fn expect(r: Result<(), Error>, call: Call, kind: MisuseKind, addr: usize) {
    assert_eq!(r, Err(Error::Misuse(Misuse { call, kind, addr })));
}

/// `free` of a pointer that is the misuse under test.
fn bad_free(h: &mut Heap<Sim>, p: *mut u8) -> Result<(), Error> {
    // SAFETY: the misuse is the point: tagalloc detects it before touching anything but its own
    // heap memory.
    unsafe { h.free(p) }
}

#[test]
fn double_free() {
    let mut h = heap();
    let p = m(&mut h, 40);
    let _guard = m(&mut h, 40);
    f(&mut h, p);
    expect(
        bad_free(&mut h, p),
        Call::Free,
        MisuseKind::DoubleFree,
        p as usize,
    );
    walk(&h);
}

#[test]
fn double_free_after_coalescing() {
    let mut h = heap();
    let a = m(&mut h, 40);
    let b = m(&mut h, 40);
    let _guard = m(&mut h, 40);
    f(&mut h, a);
    f(&mut h, b); // b merges into a
    expect(
        bad_free(&mut h, b),
        Call::Free,
        MisuseKind::DoubleFree,
        b as usize,
    );
    expect(
        bad_free(&mut h, a),
        Call::Free,
        MisuseKind::DoubleFree,
        a as usize,
    );
    walk(&h);
}

#[test]
fn free_of_a_stack_address() {
    let mut h = heap();
    let _p = m(&mut h, 40);
    let mut local = [0u64; 4];
    let addr = local.as_mut_ptr().cast::<u8>();
    let addr = addr.wrapping_add(16 - addr as usize % 16);
    expect(
        bad_free(&mut h, addr),
        Call::Free,
        MisuseKind::InvalidPointer,
        addr as usize,
    );
    walk(&h);
}

#[test]
fn free_of_an_interior_pointer() {
    let mut h = heap();
    let p = m(&mut h, 200);
    // SAFETY: p has 200 bytes; fill with a pattern that is no valid tag.
    unsafe { std::ptr::write_bytes(p, 0x41, 200) };
    let q = p.wrapping_add(32);
    expect(
        bad_free(&mut h, q),
        Call::Free,
        MisuseKind::InvalidPointer,
        q as usize,
    );
    walk(&h);
    f(&mut h, p);
}

#[test]
fn free_of_a_misaligned_pointer() {
    let mut h = heap();
    let p = m(&mut h, 200);
    let q = p.wrapping_add(1);
    expect(
        bad_free(&mut h, q),
        Call::Free,
        MisuseKind::InvalidPointer,
        q as usize,
    );
    let q = p.wrapping_add(8);
    expect(
        bad_free(&mut h, q),
        Call::Free,
        MisuseKind::InvalidPointer,
        q as usize,
    );
    walk(&h);
}

#[test]
fn free_of_a_large_chunk_twice_or_inside() {
    let mut h = heap();
    let p = m(&mut h, 1 << 20);
    let q = p.wrapping_add(4096);
    expect(
        bad_free(&mut h, q),
        Call::Free,
        MisuseKind::InvalidPointer,
        q as usize,
    );
    // One page past the chunk's end: never touched, only judged.
    let past = p.wrapping_add((1 << 20) + 4096);
    expect(
        bad_free(&mut h, past),
        Call::Free,
        MisuseKind::InvalidPointer,
        past as usize,
    );
    f(&mut h, p);
    // Its memory is gone, but the heap remembers the chunks it unmapped last.
    expect(
        bad_free(&mut h, p),
        Call::Free,
        MisuseKind::DoubleFree,
        p as usize,
    );
    walk(&h);
}

#[test]
fn realloc_and_usable_size_of_bad_pointers() {
    let mut h = heap();
    let p = m(&mut h, 64);
    let _guard = m(&mut h, 64);
    f(&mut h, p);
    // SAFETY: as above.
    let r = unsafe { h.realloc(p, 100) };
    assert_eq!(
        r,
        Err(Error::Misuse(Misuse {
            call: Call::Realloc,
            kind: MisuseKind::DoubleFree,
            addr: p as usize
        }))
    );
    // SAFETY: as above.
    let r = unsafe { h.usable_size(p.wrapping_add(3)) };
    assert_eq!(
        r,
        Err(Error::Misuse(Misuse {
            call: Call::UsableSize,
            kind: MisuseKind::InvalidPointer,
            addr: p as usize + 3
        }))
    );
    walk(&h);
}

#[test]
fn overflow_into_the_next_header_is_caught_when_freeing_either_block() {
    for free_first in [true, false] {
        let mut h = heap();
        let a = m(&mut h, 24);
        let b = m(&mut h, 24);
        let _guard = m(&mut h, 24);
        // Overflow a by 8 bytes: exactly b's header.
        // SAFETY: the write stays inside the heap's memory (b's header); corrupting it is the point.
        unsafe { std::ptr::write_bytes(a, 0x41, 24 + 8) };
        assert!(h.check().is_err(), "the walker sees it");
        let header_b = b as usize - 8;
        if free_first {
            expect(
                bad_free(&mut h, a),
                Call::Free,
                MisuseKind::CorruptTag,
                header_b,
            );
        } else {
            expect(
                bad_free(&mut h, b),
                Call::Free,
                MisuseKind::CorruptTag,
                header_b,
            );
        }
    }
}

#[test]
fn a_clobbered_free_block_is_caught_by_malloc() {
    let mut h = heap();
    let a = m(&mut h, 100);
    let _guard = m(&mut h, 100);
    f(&mut h, a);
    // Use after free: scribble over the free block's header.
    // SAFETY: the memory belongs to the heap; corrupting it is the point.
    unsafe { a.sub(8).cast::<u64>().write(0x4141_4141_4141_4141) };
    let r = h.malloc(100).map(|_| ());
    expect(r, Call::Malloc, MisuseKind::CorruptFree, a as usize);
}

/// A free block whose header was overwritten with the `FENCE` or the `MAPPED` flag is reported
/// by the `malloc` that meets it in a ranged bin even when that `malloc` would not take it (it is
/// too small, and a larger block further down the bin fits).
#[test]
fn a_free_block_flagged_fence_or_mapped_is_caught_by_a_malloc_that_passes_it() {
    for flag in [8u64, 4] {
        let mut h = coalescing_heap();
        // Blocks of 1200 and 1040 bytes share the ranged bin [1024, 1280).
        let big = m(&mut h, 1192);
        let _guard = m(&mut h, 24);
        let small = m(&mut h, 1032);
        let _guard2 = m(&mut h, 24);
        f(&mut h, big);
        // Freed last, the small block is the bin's head: the scan meets it first.
        f(&mut h, small);
        // SAFETY: the header of a free block of the heap; corrupting it is the point.
        unsafe {
            let header = small.sub(8).cast::<u64>();
            header.write(header.read() | flag);
        }
        let r = h.malloc(1192).map(|_| ());
        expect(r, Call::Malloc, MisuseKind::CorruptFree, small as usize);
    }
}

/// A freed block of `n` bytes between two live ones, then words of its payload overwritten
/// (`(word index, value)` pairs from `words`, given the payload), must make the next `malloc(n)`
/// report it without following the overwritten links; the walker must see it first
/// (invariant 11).
fn use_after_free_of_links(
    mut h: Heap<Sim>,
    n: usize,
    words: impl Fn(usize) -> Vec<(usize, usize)>,
) {
    let fast = h.config().fast_lists && n <= 1032;
    let _before = m(&mut h, n);
    let a = m(&mut h, n);
    let _after = m(&mut h, n);
    f(&mut h, a);
    for (i, v) in words(a as usize) {
        // SAFETY: writing into the freed payload (heap memory): the misuse under test.
        unsafe { a.cast::<usize>().add(i).write(v) };
    }
    let c = h
        .check()
        .expect_err("the walker sees the overwritten links");
    // A small block sits on a fast list (invariant 12), a larger one in a bin (invariant 11).
    assert_eq!(c.invariant, if fast { 12 } else { 11 }, "{c}");
    let r = h.malloc(n).map(|_| ());
    expect(r, Call::Malloc, MisuseKind::CorruptFree, a as usize);
}

#[test]
fn use_after_free_of_a_free_list_link_is_caught_before_it_is_followed() {
    for n in [100, 1032, 3000] {
        for make in [heap, coalescing_heap] {
            use_after_free_of_links(make(), n, |_| vec![(0, 0x4141_4141_4141)]);
            use_after_free_of_links(make(), n, |_| vec![(1, 0)]);
            use_after_free_of_links(make(), n, |_| {
                vec![(0, 0x4141_4141_4141_4141), (1, 0x4141_4141_4141_4141)]
            });
            // A planted pointer to another block of the heap: revealed, it points elsewhere.
            use_after_free_of_links(make(), n, |a| vec![(0, a - 8 - 2 * n)]);
        }
    }
}

#[test]
fn misuse_messages_read_well() {
    let e = Error::Misuse(Misuse {
        call: Call::Free,
        kind: MisuseKind::InvalidPointer,
        addr: 0x1234,
    });
    assert_eq!(e.to_string(), "free(): invalid pointer 0x1234 detected");
}
