//! The harness benchmark (`tagalloc-diff bench --harness`): how fast the suite itself runs.
//!
//! Two tables. Executions per second of each fuzz target's library function over its committed
//! corpus (`corpus/TARGET/`), in this process on one core, as libFuzzer calls it (no fork, no
//! sanitizer unless this binary was built with one). Then replay speed on synthetic traces that
//! keep 1k, 10k and 100k blocks live ([`live_trace`]) at each `--check` level, with the same
//! trace at three times the ops to show whether time grows with ops alone; and one trace with
//! 150k live blocks and 5M ops, the size of a recorded real program.
//!
//! Times are CPU seconds of this process (user and system), not wall time: on a shared machine
//! they still say what one core does. It measures; it asserts nothing (speed is shown by figures,
//! never by timed tests).

use std::path::Path;
use std::time::{Duration, Instant};

use crate::backend::tagalloc::for_trace;
use crate::op::{Op, Trace};
use crate::runner::{self, Check};
use crate::targets::Target;

/// CPU seconds this process has used (user and system, all its threads).
pub fn cpu_secs() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; the clock exists on every Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Executions per CPU second of `target` over `inputs`, repeated until `min` of wall time has
/// passed.
pub fn exec_rate(target: Target, inputs: &[Vec<u8>], min: Duration) -> Result<f64, String> {
    if inputs.is_empty() {
        return Err("no inputs".into());
    }
    let start = Instant::now();
    let cpu = cpu_secs();
    let mut n = 0usize;
    while n == 0 || start.elapsed() < min {
        for d in inputs {
            target.run(d).map_err(|r| format!("an input fails:\n{r}"))?;
        }
        n += inputs.len();
    }
    Ok(n as f64 / (cpu_secs() - cpu).max(1e-9))
}

/// A trace that allocates `live` blocks (slots `0..live`), then until it has `ops` ops frees and
/// reallocates (four in five) or resizes (one in five) a random one, so about `live` blocks stay
/// live throughout; sizes from 16 bytes to 3000, as small-block programs use. Deterministic.
pub fn live_trace(live: usize, ops: usize, seed: u64) -> Trace {
    const SIZES: [usize; 12] = [16, 24, 32, 48, 64, 100, 128, 200, 256, 512, 1000, 3000];
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) as usize
    };
    let live = live.max(1);
    let mut v: Vec<Op> = Vec::with_capacity(ops.max(live) + 1);
    for slot in 0..live {
        v.push(Op::Malloc {
            slot,
            size: SIZES[next() % SIZES.len()],
        });
    }
    while v.len() < ops {
        let slot = next() % live;
        let size = SIZES[next() % SIZES.len()];
        if next() % 5 == 0 {
            v.push(Op::Realloc { slot, size });
        } else {
            v.push(Op::Free { slot });
            v.push(Op::Malloc { slot, size });
        }
    }
    Trace::new(v)
}

/// CPU seconds to replay `trace` on tagalloc in this process at checking level `level`.
pub fn replay_secs(trace: &Trace, level: Check) -> Result<f64, String> {
    let before = runner::level();
    runner::set_level(level);
    let start = cpu_secs();
    let r = runner::run_watched(for_trace(trace, false), trace, &mut |_| {});
    let secs = cpu_secs() - start;
    runner::set_level(before);
    r.map_err(|r| format!("the synthetic trace fails:\n{r}"))?;
    Ok(secs)
}

/// Runs both tables over the corpora under `corpus` and prints them; `time`: seconds per target.
pub fn print(corpus: &Path, time: Duration) -> Result<(), String> {
    runner::quiet_guarded_panics();
    println!(
        "exec/s (per CPU second) per fuzz target on its committed corpus, in-process, this build:"
    );
    println!("{:<12} {:>7} {:>10}", "target", "inputs", "exec/s");
    for t in Target::ALL {
        let dir = corpus.join(t.name());
        let mut inputs = Vec::new();
        for e in std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))? {
            let path = e.map_err(|e| format!("{}: {e}", dir.display()))?.path();
            inputs.push(std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?);
        }
        let rate = exec_rate(t, &inputs, time).map_err(|e| format!("{}: {e}", t.name()))?;
        println!("{:<12} {:>7} {:>10.0}", t.name(), inputs.len(), rate);
    }
    println!();
    println!(
        "replay on tagalloc, synthetic traces (live blocks, ops = 3 x live and 9 x live), ops per CPU second:"
    );
    println!(
        "{:>7} {:>8} {:>12} {:>12} {:>12}",
        "live", "ops", "touched", "end", "every"
    );
    for live in [1_000, 10_000, 100_000] {
        for ops in [3 * live, 9 * live] {
            let trace = live_trace(live, ops, live as u64);
            let mut row = format!("{live:>7} {ops:>8}");
            for level in [Check::Touched, Check::End, Check::Every] {
                // The whole walk after every op costs ops x live: minutes past 10k live blocks.
                if level == Check::Every && (live > 10_000 || ops > 3 * live) {
                    row.push_str(&format!(" {:>12}", "skipped"));
                    continue;
                }
                let secs = replay_secs(&trace, level)?;
                row.push_str(&format!(" {:>12.0}", ops as f64 / secs));
            }
            println!("{row}");
        }
    }
    let (live, ops) = (150_000, 5_000_000);
    let secs = replay_secs(&live_trace(live, ops, 7), Check::Touched)?;
    println!(
        "{live} live blocks, {ops} ops, --check touched: {secs:.1} CPU s ({:.0} ops/s)",
        ops as f64 / secs
    );
    Ok(())
}
