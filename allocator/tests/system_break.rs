//! The real program break, shared with glibc's malloc on the same thread.
//!
//! This binary runs without the test harness (`harness = false`), so the process has one thread:
//! nobody can move the break concurrently, which is the contract of `source::System`. glibc's
//! `malloc` and direct `sbrk` calls are interleaved with tagalloc's on that one thread; tagalloc
//! must start a new segment whenever the break moved under it, and never trim memory it does not
//! own.

use tagalloc::source::System;
use tagalloc::{Config, Heap};

fn walk(h: &Heap<System>) {
    if let Err(c) = h.check() {
        eprintln!("heap walker: {c}");
        std::process::exit(1);
    }
}

fn main() {
    // SAFETY: this process has one thread (no harness), so only this thread moves the break.
    let mut h = Heap::with_config(
        unsafe { System::new() },
        Config {
            top_pad: 4096,
            trim_threshold: 64 << 10,
            ..Config::DEFAULT
        },
    );
    let mut live: Vec<(*mut u8, usize, u8)> = Vec::new();
    let mut foreign = Vec::new();
    for round in 0..200usize {
        let n = 1000 + (round * 7919) % 90_000;
        let p = h.malloc(n).expect("malloc").as_ptr();
        // SAFETY: p has n bytes.
        unsafe { std::ptr::write_bytes(p, round as u8, n) };
        live.push((p, n, round as u8));
        match round % 4 {
            // Someone else moves the break on this thread.
            // SAFETY: growing the break by a few bytes takes nothing from anyone.
            0 => foreign.push(unsafe { libc::sbrk((round % 5000) as isize + 1) }),
            // glibc's malloc grows its own heap with brk too.
            // SAFETY: plain libc malloc.
            1 => foreign.push(unsafe { libc::malloc(3000 + round * 100) }.cast()),
            _ => {}
        }
        if round % 3 == 2 {
            let (q, m, v) = live.remove(0);
            // SAFETY: q is live with m bytes.
            assert!(unsafe { std::slice::from_raw_parts(q, m) }
                .iter()
                .all(|&b| b == v));
            // SAFETY: q is live.
            unsafe { h.free(q) }.expect("free");
        }
        walk(&h);
    }
    let segments = h.stats().segments;
    for (q, m, v) in live {
        // SAFETY: q is live with m bytes.
        assert!(unsafe { std::slice::from_raw_parts(q, m) }
            .iter()
            .all(|&b| b == v));
        // SAFETY: q is live.
        unsafe { h.free(q) }.expect("free");
        walk(&h);
    }
    assert!(
        segments > 10,
        "foreign moves must start new segments, got {segments}"
    );
    println!(
        "system break: {segments} segments, {} trims, live {}",
        h.stats().trims,
        h.stats().live_blocks
    );
    println!("1 passed, 0 failed");
}
