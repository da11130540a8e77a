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
//! (through [`super::features::Notes::features`]) and sends the parent one feature per edge hit
//! and count bucket (1, 2, 3, 4–7, 8–15, 16–31, 32–127, 128+, as libFuzzer buckets them). The
//! counters start every child as the object left them when it was loaded: the parent never calls
//! the object, and the fork gives each child its own copy.
//!
//! The comparison callbacks (`__sanitizer_cov_trace_cmp*`, `_switch`, `_div*`, `_gep`,
//! `_pc_indir`) and `__sanitizer_cov_pcs_init` are no-ops: the suite's mutator moves sizes to
//! the allocator's edges by itself ([`crate::mutate::edges`]), and the counters are the feedback.
//! Without such an object no range is registered and the outcome features alone are used.
//!
//! What is process-wide and what is not. A module registers its counters once, when it is loaded,
//! and stays loaded: the table of ranges ([`register`]) belongs to the process. Which of them a
//! fuzzing run reads is its own: [`Counters`], a value the run holds, names the modules one object
//! registered while it was being loaded ([`Counters::loaded_by`], which the shared-object backend
//! wraps its `dlopen` in). So a run reads the counters of the backend under test only, never those
//! of another instrumented object loaded in the same process (the other side of a differential,
//! another test's object); and the features seen so far live in the run's corpus
//! ([`super::corpus::Corpus`]), not here.

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;

use super::features::{mix, COVERAGE_BIT};
use crate::backend::Spec;
use crate::op::Trace;

/// Most instrumented modules noted (one per object; more are ignored).
const MOST: usize = 16;

#[allow(clippy::declare_interior_mutable_const)]
const NONE: AtomicUsize = AtomicUsize::new(0);
/// Start and end addresses of each module's counters.
static STARTS: [AtomicUsize; MOST] = [NONE; MOST];
static ENDS: [AtomicUsize; MOST] = [NONE; MOST];
static MODULES: AtomicUsize = AtomicUsize::new(0);
/// Held while an object loads ([`Counters::loaded_by`]), so that the modules registered meanwhile
/// are that object's.
static LOADING: Mutex<()> = Mutex::new(());

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

/// The counters of some registered modules: those of one object, or none.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    modules: Range<usize>,
}

impl Counters {
    /// Runs `load` (a `dlopen`), and returns what it returned with the counters of the modules
    /// registered meanwhile. Loads are serialised, so no other load's modules are among them.
    pub fn loaded_by<R>(load: impl FnOnce() -> R) -> (R, Counters) {
        let _one_at_a_time = LOADING.lock().unwrap_or_else(|e| e.into_inner());
        let first = MODULES.load(Relaxed);
        let r = load();
        let end = MODULES.load(Relaxed).min(MOST);
        (
            r,
            Counters {
                modules: first..end.max(first),
            },
        )
    }

    /// How many counters, in how many modules.
    pub fn len(&self) -> (usize, usize) {
        let total = self
            .modules
            .clone()
            .map(|i| ENDS[i].load(Relaxed) - STARTS[i].load(Relaxed))
            .sum();
        (total, self.modules.len())
    }

    /// Whether there are none (an object not built with `-fsanitize=fuzzer-no-link`).
    pub fn is_empty(&self) -> bool {
        self.modules.is_empty()
    }

    /// Appends a feature for every counter of these modules that is not zero now.
    pub(super) fn append(&self, out: &mut Vec<u64>) {
        for m in self.modules.clone() {
            let (start, end) = (STARTS[m].load(Relaxed), ENDS[m].load(Relaxed));
            for (i, addr) in (start..end).enumerate() {
                // SAFETY: `register`'s caller promised the range stays mapped and readable; the
                // counters are plain bytes the instrumented code bumps, read here between its
                // calls.
                let count = unsafe { std::ptr::read_volatile(addr as *const u8) };
                if count != 0 {
                    let f = mix(((m as u64) << 40) | ((i as u64) << 8) | bucket(count));
                    out.push(f | COVERAGE_BIT);
                }
            }
        }
    }
}

/// The counters of the backend `spec` names, which this loads if it is not yet: a shared
/// object's own modules; none for the built-in backends. `Err`: the object cannot load.
pub fn of(spec: &Spec) -> Result<Counters, String> {
    spec.open(&Trace::default())?;
    Ok(match spec {
        Spec::Dylib(path) => crate::backend::dylib::counters(path),
        _ => Counters::default(),
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A leaked buffer of `n` counters, registered as a module being loaded.
    fn module(n: usize) -> (*mut u8, Counters) {
        // Leaked, so mapped for as long as the process lives.
        let p: *mut u8 = Box::leak(vec![0u8; n].into_boxed_slice()).as_mut_ptr();
        // SAFETY: a leaked buffer of `n` bytes, never freed.
        let ((), c) = Counters::loaded_by(|| unsafe { register(p, p.add(n)) });
        (p, c)
    }

    #[test]
    fn counters_that_ran_become_features_by_bucket() {
        let (p, counters) = module(8);
        assert_eq!(counters.len(), (8, 1));
        let mut before = Vec::new();
        counters.append(&mut before);
        assert!(before.is_empty(), "{before:?}");
        // SAFETY: writes within the leaked buffer, which only this test reads.
        unsafe {
            std::ptr::write_volatile(p.add(2), 1);
            std::ptr::write_volatile(p.add(5), 200);
        }
        let mut after = Vec::new();
        counters.append(&mut after);
        assert_eq!(after.len(), 2, "{after:?}");
        assert!(after.iter().all(|f| f & COVERAGE_BIT != 0));
    }

    #[test]
    fn each_object_reads_its_own_modules_only() {
        let (p, one) = module(4);
        let (q, other) = module(4);
        let ((), nothing) = Counters::loaded_by(|| ());
        assert!(nothing.is_empty() && Counters::default().is_empty());
        assert_ne!(one, other);
        // SAFETY: writes within the leaked buffers, which only this test reads.
        unsafe {
            std::ptr::write_volatile(p, 1);
            std::ptr::write_volatile(q.add(1), 1);
            std::ptr::write_volatile(q.add(2), 1);
        }
        let read = |c: &Counters| {
            let mut v = Vec::new();
            c.append(&mut v);
            v.len()
        };
        assert_eq!((read(&one), read(&other), read(&nothing)), (1, 2, 0));
    }
}
