//! Randomized runs against a small model: every block keeps its contents, none overlap, and the
//! walker passes after every step. (The suite in `diff/` does this with every oracle; this is the
//! allocator's own smoke test, dependency-free.)

use super::*;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn size(r: &mut Rng) -> usize {
    match r.below(10) {
        0..=5 => r.below(128) as usize,
        6..=7 => r.below(4096) as usize,
        8 => r.below(140_000) as usize,
        _ => [
            0, 1, 24, 25, 1024, 1040, 4095, 4096, 65_535, 131_071, 131_072,
        ][r.below(11) as usize],
    }
}

fn check_block(p: *mut u8, n: usize, seed: u8) {
    // SAFETY: the block is live with n bytes.
    let s = unsafe { std::slice::from_raw_parts(p, n) };
    for (i, &b) in s.iter().enumerate() {
        assert_eq!(b, seed.wrapping_add(i as u8), "block {p:?} byte {i}");
    }
}

fn fill(p: *mut u8, n: usize, seed: u8) {
    // SAFETY: the block is live with n bytes.
    let s = unsafe { std::slice::from_raw_parts_mut(p, n) };
    for (i, b) in s.iter_mut().enumerate() {
        *b = seed.wrapping_add(i as u8);
    }
}

fn run(seed: u64, steps: usize, mut h: Heap<Sim>) {
    let mut r = Rng(seed | 1);
    let mut live: Vec<(*mut u8, usize, u8)> = Vec::new();
    for step in 0..steps {
        match r.below(8) {
            0..=2 => {
                let n = size(&mut r);
                let p = h.malloc(n).unwrap().as_ptr();
                let s = step as u8;
                fill(p, n, s);
                live.push((p, n, s));
            }
            3 => {
                let n = size(&mut r);
                let p = h.calloc(1, n).unwrap().as_ptr();
                // SAFETY: p has n bytes.
                assert!(unsafe { std::slice::from_raw_parts(p, n) }
                    .iter()
                    .all(|&b| b == 0));
                fill(p, n, 3);
                live.push((p, n, 3));
            }
            4 if !live.is_empty() => {
                let i = r.below(live.len() as u64) as usize;
                let (p, n, s) = live[i];
                let m = size(&mut r).max(1);
                // SAFETY: p is live.
                let q = match unsafe { h.realloc(p, m) } {
                    Ok(q) => q.unwrap().as_ptr(),
                    Err(e) => panic!(
                        "step {step}: realloc({p:?} [{n} usable {}], {m}): {e}",
                        usable(&h, p)
                    ),
                };
                check_block(q, n.min(m), s);
                fill(q, m, s);
                live[i] = (q, m, s);
            }
            5 => {
                let align = 16 << r.below(9);
                let n = size(&mut r);
                let p = h.memalign(align, n).unwrap().as_ptr();
                assert_eq!(p as usize % align, 0);
                fill(p, n, 5);
                live.push((p, n, 5));
            }
            _ if !live.is_empty() => {
                let i = r.below(live.len() as u64) as usize;
                let (p, n, s) = live.swap_remove(i);
                check_block(p, n, s);
                f(&mut h, p);
            }
            _ => {}
        }
        if step % 7 == 0 || std::env::var("WALK_ALL").is_ok() {
            walk(&h);
        }
        if step % 97 == 0 {
            h.source_mut().foreign_sbrk(r.below(5000) as usize);
        }
    }
    for (p, n, s) in live {
        check_block(p, n, s);
        f(&mut h, p);
    }
    assert_eq!(h.stats().live_blocks, 0);
    assert_eq!(h.stats().live_bytes, 0);
}

#[test]
fn random_sequences_default_config() {
    for seed in 1..=6 {
        run(seed * 0x9E37_79B9, 1500, Heap::new(Sim::new(256 << 20)));
    }
}

#[test]
fn random_sequences_small_thresholds() {
    for seed in 1..=6 {
        run(seed * 0x51_7CC1, 1500, small_heap());
    }
}
