//! Every oracle fires on a deliberately broken backend, and the correct backends (the toy without
//! a flaw, tagalloc, libc) run the same traces silently.

use tagalloc_diff::backend::libc::LibcBackend;
use tagalloc_diff::backend::tagalloc::{for_dialect, TagallocBackend};
use tagalloc_diff::backend::{Backend, Caps};
use tagalloc_diff::{differ, runner, text, Dialect};

use crate::broken::{Flaw, Toy};

fn trace(s: &str) -> tagalloc_diff::Trace {
    text::parse(s).unwrap()
}

/// Runs `t` on the toy with `flaw` and expects oracle `kind` at op `index`; then on the correct
/// backends and expects silence.
fn fires(flaw: Flaw, t: &str, kind: &str, index: usize) {
    let t = trace(t);
    let r = runner::run(Toy::new(flaw), &t).expect_err("the oracle did not fire");
    assert_eq!((r.failure.kind(), r.index), (kind, index), "{r}");
    let shown = r.to_string();
    assert!(
        shown.contains(&format!("op {index}")) || r.op().is_none(),
        "{shown}"
    );
    silent(&t);
}

fn silent(t: &tagalloc_diff::Trace) {
    runner::run(Toy::new(Flaw::None), t).unwrap();
    runner::run(for_dialect(Dialect::Clean), t).unwrap();
    runner::run(TagallocBackend::sim(4 << 20), t).unwrap();
    runner::run(LibcBackend::new(), t).unwrap();
    differ::diff(for_dialect(Dialect::Clean), LibcBackend::new(), t).unwrap();
}

#[test]
fn overlapping_blocks() {
    fires(
        Flaw::Overlap,
        "malloc 0 24\nmalloc 1 24\nmalloc 2 24\n",
        "overlap",
        2,
    );
}

#[test]
fn eight_byte_alignment() {
    fires(Flaw::Align8, "malloc 0 32\n", "misaligned", 0);
}

#[test]
fn calloc_handing_back_dirty_memory() {
    fires(
        Flaw::DirtyCalloc,
        "malloc 0 64\nfree 0\ncalloc 1 8 8\n",
        "calloc-not-zero",
        2,
    );
}

#[test]
fn realloc_copying_half() {
    fires(
        Flaw::HalfRealloc,
        "malloc 0 100\nrealloc 0 200\n",
        "realloc-lost-prefix",
        1,
    );
}

#[test]
fn bookkeeping_written_into_a_neighbour() {
    let t = "malloc 0 32\nmalloc 1 32\nfree 0\nfree 1\n";
    fires(Flaw::NeighbourBookkeeping, t, "content-changed", 2);
    let r = runner::run(Toy::new(Flaw::NeighbourBookkeeping), &trace(t)).unwrap_err();
    assert_eq!(r.failure.blocks()[0].slot, Some(1), "names the victim: {r}");
}

#[test]
fn null_for_a_small_request() {
    let t = "malloc 0 24\nmalloc 1 24\nmalloc 2 24\nmalloc 3 24\nmalloc 4 24\n";
    fires(Flaw::NullSmall, t, "null-where-success-required", 4);
}

#[test]
fn success_above_ptrdiff_max() {
    fires(
        Flaw::HugeSuccess,
        "malloc 0 PTRDIFF_MAX+1\n",
        "success-where-failure-required",
        0,
    );
    fires(
        Flaw::HugeSuccess,
        "calloc 0 0x100000000 0x100000000\n",
        "success-where-failure-required",
        0,
    );
}

#[test]
fn wrong_errno() {
    fires(Flaw::WrongErrno, "malloc 0 SIZE_MAX\n", "wrong-errno", 0);
}

#[test]
fn usable_size_below_the_request() {
    fires(Flaw::UsableShort, "malloc 0 40\n", "usable-too-small", 0);
}

#[test]
fn usable_size_above_the_block() {
    // The caller may use every usable byte: writing them runs into the next block.
    fires(Flaw::UsableLong, "malloc 0 40\nmalloc 1 40\n", "overlap", 1);
}

#[test]
fn a_panicking_backend_is_reported_not_crashed() {
    fires(Flaw::Panics, "malloc 0 8\nmalloc 1 13\n", "panic", 1);
}

#[test]
fn misuse_that_goes_unreported() {
    let t = trace("malloc 0 40\nmisuse free freed 0\n");
    let r = runner::run(Toy::new(Flaw::IgnoresMisuse), &t).unwrap_err();
    assert_eq!(r.failure.kind(), "misuse-missed", "{r}");
    let t = trace("malloc 0 40\nmisuse usable_size foreign stack\n");
    let r = runner::run(Toy::new(Flaw::IgnoresMisuse), &t).unwrap_err();
    assert_eq!(r.failure.kind(), "misuse-missed", "{r}");
}

#[test]
fn tagalloc_reports_every_misuse_kind() {
    let t = trace(
        "malloc 0 40\nmalloc 1 40\nmalloc 2 40\nmalloc 3 300000\n\
         misuse free freed 0\nmisuse realloc 10 interior 1 8\nmisuse usable_size interior 1 16\n\
         misuse free foreign stack\nmisuse free foreign static\nmisuse realloc 5 foreign global\n\
         misuse usable_size foreign wild\nmisuse free freed 3\ncheck\noverwrite 1 1\nmalloc 5 5\n",
    );
    runner::run(for_dialect(Dialect::Misuse), &t).unwrap();
    runner::run(TagallocBackend::sim(4 << 20), &t).unwrap();
}

#[test]
fn faults_fail_cleanly_and_the_heap_stays_valid() {
    let t = trace(
        "malloc 0 24\nfail_next 3\nmalloc 1 200000\nmalloc 2 100000\nrealloc 0 500000\n\
         foreign_sbrk 4096\nmalloc 3 150000\nmalloc 4 24\ncheck\n",
    );
    runner::run(TagallocBackend::sim(4 << 20), &t).unwrap();
}

/// The heap walker's verdict is an oracle too: a backend whose walker fails is reported.
struct BadWalker(LibcBackend);

impl Backend for BadWalker {
    fn name(&self) -> String {
        "bad-walker".into()
    }
    fn caps(&self) -> Caps {
        Caps {
            walker: true,
            ..Caps::default()
        }
    }
    unsafe fn call(
        &mut self,
        req: tagalloc_diff::backend::Request,
    ) -> tagalloc_diff::backend::Reply {
        // SAFETY: forwarded from the runner, which upholds the contract.
        unsafe { self.0.call(req) }
    }
    fn check(&mut self) -> Result<(), String> {
        Err("invariant 3 (no two adjacent free blocks) broken at 0x10".into())
    }
}

#[test]
fn heap_walker_failures_are_reported() {
    let r = runner::run(BadWalker(LibcBackend::new()), &trace("malloc 0 8\n")).unwrap_err();
    assert_eq!((r.failure.kind(), r.index), ("heap-check", 0));
    assert!(r.to_string().contains("invariant 3"), "{r}");
}

#[test]
fn divergence_between_backends() {
    let t = trace("aligned_alloc 0 12 40\n");
    runner::run(Toy::new(Flaw::LenientAlignedAlloc), &t).unwrap();
    runner::run(LibcBackend::new(), &t).unwrap();
    let r = differ::diff(Toy::new(Flaw::LenientAlignedAlloc), LibcBackend::new(), &t).unwrap_err();
    assert_eq!(r.failure.kind(), "divergence", "{r}");
    assert!(r.backend.contains(" vs "), "{r}");
    differ::diff(for_dialect(Dialect::Clean), LibcBackend::new(), &t).unwrap();
}

#[test]
fn hostile_values_are_judged_without_asking_libc() {
    let t = trace(
        "malloc 0 PTRDIFF_MAX+1\nmalloc 1 SIZE_MAX\ncalloc 2 SIZE_MAX 2\nrealloc 3 PTRDIFF_MAX\n\
         posix_memalign 4 24 8\nposix_memalign 5 0x8000000000000000 8\naligned_alloc 6 3 8\n\
         memalign 7 SIZE_MAX 8\nmemalign 8 24 100\nmalloc 9 0x10000000000\nusable_size 12\n",
    );
    silent(&t);
}

#[test]
fn reports_name_the_op_the_blocks_and_a_minimal_trace() {
    let mut ops = String::new();
    for i in 0..30 {
        ops += &format!("malloc {} {}\nfree {}\n", i % 7, 16 + i, (i + 3) % 7);
    }
    ops += "malloc 9 64\nfree 9\ncalloc 10 8 8\n";
    let t = trace(&ops);
    let mut test = |t: &tagalloc_diff::Trace| runner::run(Toy::new(Flaw::DirtyCalloc), t);
    let r = tagalloc_diff::shrink::shrink(&t, Default::default(), &mut test).unwrap();
    assert_eq!(r.failure.kind(), "calloc-not-zero");
    assert!(r.trace.len() <= 3, "{r}");
    let shown = r.to_string();
    assert!(
        shown.contains("minimal trace") && shown.contains("calloc"),
        "{shown}"
    );
    assert!(shown.contains("blocks involved"), "{shown}");
    // The printed report is itself a trace that reproduces the failure.
    let again = text::parse(shown.split_once("):\n").unwrap().1).unwrap();
    assert!(runner::run(Toy::new(Flaw::DirtyCalloc), &again).is_err());
}

/// A write into a freed block between two live ones, of any word, is reported by the next
/// `malloc` of its size (the step's outcome is a misuse, not merely harmless), on the simulated
/// heap and on the reserved-break one the misuse fuzz target uses.
#[test]
fn tagalloc_reports_every_write_into_a_freed_block() {
    use tagalloc_diff::runner::{Outcome, Runner};
    for size in [40, 3000] {
        for word in 0..tagalloc_diff::op::FREED_WORDS {
            let t = trace(&format!(
                "malloc 0 {size}\nmalloc 1 {size}\nmalloc 2 {size}\nwrite_freed 1 {word}\n"
            ));
            let backends: [Box<dyn Backend>; 2] = [
                Box::new(TagallocBackend::sim(4 << 20)),
                for_dialect(Dialect::Misuse),
            ];
            for backend in backends {
                let name = backend.name();
                let mut r = Runner::new(backend);
                let mut last = None;
                for (i, op) in t.ops.iter().enumerate() {
                    last = Some(
                        r.step(i, op)
                            .unwrap_or_else(|f| panic!("{name}: {f}"))
                            .outcome,
                    );
                }
                assert_eq!(
                    last,
                    Some(Outcome::Misuse),
                    "{name}: size {size}, word {word}"
                );
                r.finish().unwrap();
            }
        }
    }
}
