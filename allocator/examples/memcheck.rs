//! A small program on `TagAlloc` with two bugs for valgrind's memcheck to report: a block that
//! nothing points to any more (a leak, "definitely lost") and a read of a freed block (an invalid
//! read). Built with tagalloc's `valgrind` feature, tagalloc tells memcheck about its blocks
//! (`allocator/src/track.rs`); `tests/memcheck.rs` runs it under valgrind and checks both reports.
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

fn main() {
    let scrambled = leak();
    let read = use_after_free();
    // Live blocks of several sizes come and go in between, as in any program.
    let v: Vec<String> = (0..100).map(|i| i.to_string()).collect();
    println!("leaked {scrambled:#x}, read {read}, {} strings", v.len());
}
