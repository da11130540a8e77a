//! Lab-style traces, generated: the classic shapes a malloc-lab driver is graded on, written for
//! this suite (no lab's trace files are copied). Each is deterministic (a fixed seed), uses only
//! `malloc`, `free` and `realloc`, and keeps its live payload far below the lab's 20 MiB heap, so
//! an allocator that reuses memory passes every one and one that never does runs out of room.
//!
//! - `binary`: pairs of a small and a large block, the small ones freed, then medium blocks that
//!   fit none of the holes: external fragmentation, as `binary-bal` provokes it.
//! - `coalescing`: runs of equal blocks freed in order, then one block as large as a run: only an
//!   allocator that merges free neighbours can place it in the hole.
//! - `random`: a random mix of allocations and frees of sizes 1 B to 16 KiB, up to 400 live.
//! - `realloc`: two blocks grown in steps with small blocks allocated between, as `realloc-bal`.

use crate::op::{Op, Trace};

/// A generator's name and its trace.
pub struct LabTrace {
    /// `binary`, `coalescing`, `random`, `realloc`.
    pub name: &'static str,
    /// The trace.
    pub trace: Trace,
}

/// Every generated lab trace.
pub fn all() -> Vec<LabTrace> {
    vec![
        LabTrace {
            name: "binary",
            trace: binary(1200),
        },
        LabTrace {
            name: "coalescing",
            trace: coalescing(60, 20),
        },
        LabTrace {
            name: "random",
            trace: random(6000, 0x1ab),
        },
        LabTrace {
            name: "realloc",
            trace: realloc_growth(1500),
        },
    ]
}

/// splitmix64, for the random shapes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// `pairs` small-large pairs, the small freed, then as many medium blocks.
pub fn binary(pairs: usize) -> Trace {
    let mut ops = Vec::new();
    for i in 0..pairs {
        ops.push(Op::Malloc {
            slot: 2 * i,
            size: 16 + i % 48,
        });
        ops.push(Op::Malloc {
            slot: 2 * i + 1,
            size: 448 + i % 64,
        });
    }
    for i in 0..pairs {
        ops.push(Op::Free { slot: 2 * i });
    }
    for i in 0..pairs {
        ops.push(Op::Malloc {
            slot: 2 * pairs + i,
            size: 128 + i % 32,
        });
    }
    for slot in 0..3 * pairs {
        if slot >= 2 * pairs || slot % 2 == 1 {
            ops.push(Op::Free { slot });
        }
    }
    Trace::new(ops)
}

/// `rounds` rounds: `run` blocks of one size freed in order, then one block of the run's size.
pub fn coalescing(rounds: usize, run: usize) -> Trace {
    let mut ops = Vec::new();
    let big = run;
    for r in 0..rounds {
        let size = 32 + 16 * (r % 8);
        for i in 0..run {
            ops.push(Op::Malloc { slot: i, size });
        }
        for i in 0..run {
            ops.push(Op::Free { slot: i });
        }
        ops.push(Op::Malloc {
            slot: big,
            size: size * run,
        });
        ops.push(Op::Free { slot: big });
    }
    Trace::new(ops)
}

/// `n` ops of random allocations and frees, up to 400 blocks live.
pub fn random(n: usize, seed: u64) -> Trace {
    let mut rng = Rng(seed);
    let mut live: Vec<usize> = Vec::new();
    let mut next_slot = 0;
    let mut ops = Vec::new();
    while ops.len() < n {
        let alloc = live.is_empty() || (live.len() < 400 && rng.below(10) < 6);
        if alloc {
            // Sizes spread over orders of magnitude, as programs ask.
            let order = 4 + rng.below(11);
            let size = 1 + rng.below(1 << order);
            ops.push(Op::Malloc {
                slot: next_slot,
                size,
            });
            live.push(next_slot);
            next_slot += 1;
        } else {
            let slot = live.swap_remove(rng.below(live.len()));
            ops.push(Op::Free { slot });
        }
    }
    for slot in live {
        ops.push(Op::Free { slot });
    }
    Trace::new(ops)
}

/// Two blocks grown by `steps` reallocations each, a small block allocated (and kept) between.
pub fn realloc_growth(steps: usize) -> Trace {
    let mut ops = vec![
        Op::Malloc { slot: 0, size: 512 },
        Op::Malloc { slot: 1, size: 128 },
    ];
    for i in 1..=steps {
        ops.push(Op::Realloc {
            slot: 0,
            size: 512 + 32 * i,
        });
        ops.push(Op::Realloc {
            slot: 1,
            size: 128 + 16 * i,
        });
        ops.push(Op::Malloc {
            slot: 2 + i,
            size: 16,
        });
        if i % 2 == 0 {
            ops.push(Op::Free { slot: 1 + i });
        }
    }
    ops.push(Op::Free { slot: 0 });
    ops.push(Op::Free { slot: 1 });
    Trace::new(ops)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::libc::LibcBackend;

    #[test]
    fn every_lab_trace_passes_on_libc_and_stays_small() {
        for t in all() {
            assert!(t.trace.len() > 1000, "{}: {} ops", t.name, t.trace.len());
            crate::runner::run(LibcBackend::new(), &t.trace).unwrap();
            // Peak live payload well under the lab's heap.
            let (mut live, mut peak) = (std::collections::HashMap::new(), 0usize);
            for op in &t.trace.ops {
                match *op {
                    Op::Malloc { slot, size } | Op::Realloc { slot, size } => {
                        live.insert(slot, size);
                    }
                    Op::Free { slot } => {
                        live.remove(&slot);
                    }
                    _ => {}
                }
                peak = peak.max(live.values().sum());
            }
            assert!(peak < 4 << 20, "{}: peak {peak}", t.name);
        }
    }
}
