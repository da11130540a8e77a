//! `tagalloc-diff fuzz --backend X.so`: fuzzing any allocator for a bounded time.
//!
//! Inputs are random bytes decoded by the suite's own byte decoding ([`bytes::decode`], clean
//! dialect: the same op language the tagalloc targets fuzz; large requests folded, see
//! [`QUICK_LIMIT`]), so every generated trace is one the
//! other commands read and replay. Each runs on a fresh backend held to the contract, in a forked
//! child ([`Judge::test`]); every failure whose [`Signature`] is new is shrunk (to that signature)
//! and saved as a readable trace, and the rest are counted. A shrink takes what is left of the
//! time (at least 2 s, at most 20), so a run may end a little after `--time`. No coverage feedback: the inputs are
//! independent draws, their length varied, so small traces come often and long ones now and then.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::bytes;
use crate::op::Dialect;
use crate::shrink::Budget;
use crate::signature::Signature;
use crate::verdict::Judge;

/// What a fuzzing run found.
#[derive(Debug, Default)]
pub struct Found {
    /// Traces run.
    pub runs: usize,
    /// Seconds spent.
    pub secs: f64,
    /// Each distinct signature: where its minimal trace was saved, how often it was hit, and
    /// after how many seconds it was first found and shrunk.
    pub signatures: BTreeMap<Signature, (PathBuf, usize, f64)>,
}

/// Requests that can succeed but exceed [`QUICK_LIMIT`] folded below it: a block of a GiB
/// costs the allocator and the shadow a second of page faults, and a fuzzer that spends its time
/// there tries a few traces a minute. Requests that must fail (above `PTRDIFF_MAX`) stay as
/// they are: they cost nothing and find the missing checks.
pub const QUICK_LIMIT: usize = 4 << 20;

fn fold(v: usize) -> usize {
    if v > QUICK_LIMIT && v <= crate::op::PTRDIFF_MAX {
        QUICK_LIMIT / 2 + v % (QUICK_LIMIT / 2)
    } else {
        v
    }
}

fn quick(mut trace: crate::op::Trace) -> crate::op::Trace {
    use crate::op::Op;
    for op in &mut trace.ops {
        match op {
            Op::Malloc { size, .. }
            | Op::Realloc { size, .. }
            | Op::PosixMemalign { size, .. }
            | Op::AlignedAlloc { size, .. }
            | Op::Memalign { size, .. } => *size = fold(*size),
            Op::Calloc { count, size, .. } => {
                let total = count.saturating_mul(*size);
                if fold(total) != total {
                    *count = 1 + *count % 64;
                    *size = fold(*size) % (QUICK_LIMIT / 64);
                }
            }
            _ => {}
        }
    }
    trace
}

/// splitmix64.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Fuzzes `judge`'s backend for `time`, from `seed`, saving minimal traces under `save` and
/// reporting to `out` as it goes. `Err`: the backend cannot open, or a trace cannot be saved.
/// With `first`, it stops once the first failure is shrunk and saved.
pub fn run(
    judge: &Judge,
    time: Duration,
    seed: u64,
    first: bool,
    save: &Path,
    out: &mut dyn Write,
) -> Result<Found, String> {
    let io = |e: std::io::Error| format!("writing the report: {e}");
    let start = Instant::now();
    let mut state = seed;
    let mut found = Found::default();
    while start.elapsed() < time && (!first || found.signatures.is_empty()) {
        // Lengths from 8 bytes to 1 KiB, most of them short.
        let len = 8 << (next(&mut state) % 8);
        let data: Vec<u8> = (0..len).map(|_| next(&mut state) as u8).collect();
        let trace = quick(bytes::decode(&data, Dialect::Clean));
        found.runs += 1;
        let Err(first) = judge.test(&trace)? else {
            continue;
        };
        let sig = Signature::of(&first);
        if let Some(entry) = found.signatures.get_mut(&sig) {
            entry.1 += 1;
            continue;
        }
        // The shrink may take what is left of the time, within 2 and 20 s.
        let left = time.saturating_sub(start.elapsed());
        let shrinker = Judge {
            budget: Budget {
                time: left.clamp(Duration::from_secs(2), Duration::from_secs(20)),
                ..judge.budget
            },
            ..judge.clone()
        };
        let min = shrinker.shrink(&first);
        std::fs::create_dir_all(save).map_err(|e| format!("{}: {e}", save.display()))?;
        let file = save.join(format!("fuzz-{}.trace", sig.slug()));
        std::fs::write(&file, min.regression()).map_err(|e| format!("{}: {e}", file.display()))?;
        let at = start.elapsed().as_secs_f64();
        writeln!(
            out,
            "{at:.1} s, trace {}: new failure ({sig}), {} ops shrunk to {}, saved to {}:\n{min}",
            found.runs,
            trace.len(),
            min.trace.len(),
            file.display()
        )
        .map_err(io)?;
        found.signatures.insert(sig, (file, 1, at));
    }
    found.secs = start.elapsed().as_secs_f64();
    Ok(found)
}
