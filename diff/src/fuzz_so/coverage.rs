//! Coverage of a shared object built with clang's `-fsanitize=fuzzer-no-link`:
//!
//! ```text
//! clang -shared -fPIC -O1 -fsanitize=fuzzer-no-link -o mm.so mm.c
//! ```
//!
//! Such an object keeps one 8-bit counter per edge of its control flow, bumped as the edge runs,
//! and when it is loaded its constructor hands the counters' range to
//! `__sanitizer_cov_8bit_counters_init`. The `tagalloc-diff` binary exports that function and the
//! other callbacks such an object calls (`src/cli/sancov.rs`); libFuzzer is not linked. The
//! counters' range is noted here ([`register`]); the forked child that ran a trace reads them
//! ([`append`], through [`super::features::take`]) and sends the parent one feature per edge hit
//! and count bucket (1, 2, 3, 4–7, 8–15, 16–31, 32–127, 128+, as libFuzzer buckets them). The
//! counters start every child as the object left them when it was loaded: the parent never calls
//! the object, and the fork gives each child its own copy.
//!
//! The comparison callbacks (`__sanitizer_cov_trace_cmp*`, `_switch`, `_div*`, `_gep`,
//! `_pc_indir`) and `__sanitizer_cov_pcs_init` are no-ops: the suite's mutator moves sizes to
//! the allocator's edges by itself ([`crate::mutate::edges`]), and the counters are the feedback.
//! Without such an object no range is registered and the outcome features alone are used.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use super::features::{mix, COVERAGE_BIT};

/// Most instrumented modules noted (one per object; more are ignored).
const MOST: usize = 16;

#[allow(clippy::declare_interior_mutable_const)]
const NONE: AtomicUsize = AtomicUsize::new(0);
/// Start and end addresses of each module's counters.
static STARTS: [AtomicUsize; MOST] = [NONE; MOST];
static ENDS: [AtomicUsize; MOST] = [NONE; MOST];
static MODULES: AtomicUsize = AtomicUsize::new(0);

/// Notes the counters `start..stop` of a module being loaded (what
/// `__sanitizer_cov_8bit_counters_init` is given).
///
/// # Safety
///
/// `start..stop` is a range of bytes that stays mapped and readable for as long as this process
/// lives (an object's counters section; the suite never unloads an object).
pub unsafe fn register(start: *const u8, stop: *const u8) {
    if start.is_null() || stop <= start {
        return;
    }
    let i = MODULES.load(Relaxed);
    if i >= MOST {
        return;
    }
    STARTS[i].store(start as usize, Relaxed);
    ENDS[i].store(stop as usize, Relaxed);
    MODULES.store(i + 1, Relaxed);
}

/// How many counters are registered, in how many modules.
pub fn counters() -> (usize, usize) {
    let n = MODULES.load(Relaxed).min(MOST);
    let total = (0..n)
        .map(|i| ENDS[i].load(Relaxed) - STARTS[i].load(Relaxed))
        .sum();
    (total, n)
}

/// libFuzzer's bucket of a nonzero count.
fn bucket(count: u8) -> u64 {
    match count {
        0 => 0,
        1 => 1,
        2 => 2,
        3 => 3,
        4..=7 => 4,
        8..=15 => 5,
        16..=31 => 6,
        32..=127 => 7,
        _ => 8,
    }
}

/// Appends a feature for every counter that is not zero now.
pub(super) fn append(out: &mut Vec<u64>) {
    let n = MODULES.load(Relaxed).min(MOST);
    for m in 0..n {
        let (start, end) = (STARTS[m].load(Relaxed), ENDS[m].load(Relaxed));
        for (i, addr) in (start..end).enumerate() {
            // SAFETY: `register`'s caller promised the range stays mapped and readable; the
            // counters are plain bytes the instrumented code bumps, read here between its calls.
            let count = unsafe { std::ptr::read_volatile(addr as *const u8) };
            if count != 0 {
                let f = mix(((m as u64) << 40) | ((i as u64) << 8) | bucket(count));
                out.push(f | COVERAGE_BIT);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_that_ran_become_features_by_bucket() {
        // Leaked, so mapped for as long as the process lives.
        let p: *mut u8 = Box::leak(Box::new([0u8; 8])).as_mut_ptr();
        // SAFETY: a leaked buffer of 8 bytes, never freed.
        unsafe { register(p, p.add(8)) };
        let mut before = Vec::new();
        append(&mut before);
        // SAFETY: writes within the leaked buffer, which only this test reads.
        unsafe {
            std::ptr::write_volatile(p.add(2), 1);
            std::ptr::write_volatile(p.add(5), 200);
        }
        let mut after = Vec::new();
        append(&mut after);
        assert_eq!(after.len(), before.len() + 2, "{after:?}");
        assert!(after.iter().all(|f| f & COVERAGE_BIT != 0));
        assert!(counters().0 >= 8);
    }
}
