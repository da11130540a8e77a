//! A small program on `TagAlloc` with two bugs for valgrind's memcheck to report: a block that
//! nothing points to any more (a leak, "definitely lost") and a read of a freed block (an invalid
//! read). Built with tagalloc's `valgrind` feature, tagalloc tells memcheck about its blocks
//! (`allocator/src/track.rs`); `tests/memcheck.rs` runs it under valgrind and checks both reports,
//! and that nothing else is reported: not even the reads of large chunks that `mremap` moved.
//!
//! ```sh
//! cargo build -p tagalloc --features valgrind --example memcheck
//! valgrind --tool=memcheck --leak-check=full target/debug/examples/memcheck
//! ```

use std::hint::black_box;

#[global_allocator]
static GLOBAL: tagalloc::TagAlloc = tagalloc::TagAlloc::new();

/// Allocates 100 bytes and forgets the only pointer to them (kept only scrambled, which no leak
/// checker can follow).
#[inline(never)]
fn leak() -> usize {
    let block = Box::new([7u8; 100]);
    black_box(Box::into_raw(block) as usize ^ 0x5555_5555_5555_5555)
}

/// Frees a block, then reads it.
#[inline(never)]
fn use_after_free() -> u64 {
    let block = Box::new(42u64);
    let p: *const u64 = &*block;
    drop(black_box(block));
    // SAFETY: none: this read of freed memory is the bug memcheck must report.
    unsafe { p.read_volatile() }
}

/// Grows large blocks (mapped chunks) until a mapping moves, and sums the bytes each kept: bytes
/// a moved chunk kept are defined, so memcheck must see no use of uninitialised values here.
#[inline(never)]
fn grow_large() -> (u64, usize) {
    let mut blocks: Vec<Vec<u8>> = (0..3u8).map(|i| vec![i + 1; 200 << 10]).collect();
    let mut moves = 0;
    // Two doublings move some mapping as a rule (6 of 6 runs under valgrind); a few more, only
    // while none has moved, so the test never depends on how the address space was laid out.
    for round in 0..6 {
        if round >= 2 && moves > 0 {
            break;
        }
        for b in &mut blocks {
            let before = b.as_ptr();
            b.reserve_exact(b.len());
            b.resize(b.capacity(), 1);
            moves += usize::from(b.as_ptr() != before);
        }
    }
    let sum = blocks.iter().flatten().map(|&x| u64::from(x)).sum();
    (sum, moves)
}

fn main() {
    let scrambled = leak();
    let read = use_after_free();
    let (sum, moves) = grow_large();
    println!("large chunks: sum {sum}, {moves} moved");
    // Live blocks of several sizes come and go in between, as in any program.
    let v: Vec<String> = (0..100).map(|i| i.to_string()).collect();
    println!("leaked {scrambled:#x}, read {read}, {} strings", v.len());
}
