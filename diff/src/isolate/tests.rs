//! The isolation layer's own tests: deaths become reports, the wrappers pick, limits scale.

use super::*;
use crate::backend::{Caps, Reply, Request};
use crate::text;

/// A backend that crashes, exits or hangs at its third `malloc` (op 2 of [`trace`]), and
/// otherwise answers `malloc` from the Rust heap (leaking) and everything else with "done".
struct Dies(&'static str, usize);

impl Backend for Dies {
    fn name(&self) -> String {
        format!("dies-{}", self.0)
    }
    fn caps(&self) -> Caps {
        Caps {
            global_state: true,
            ..Caps::default()
        }
    }
    unsafe fn call(&mut self, req: Request) -> Reply {
        let Request::Malloc { size } = req else {
            return match req {
                Request::UsableSize { .. } => Reply::Unsupported,
                _ => Reply::Done,
            };
        };
        self.1 += 1;
        if self.1 == 3 {
            match self.0 {
                // SAFETY: ends the (child) process, as a crashing allocator would.
                "abort" => unsafe { libc::abort() },
                // SAFETY: as above.
                "exit" => unsafe { libc::_exit(7) },
                "hang" => loop {
                    std::thread::sleep(Duration::from_millis(10));
                },
                _ => {}
            }
        }
        let layout = std::alloc::Layout::from_size_align(size.max(1), 16).unwrap();
        // SAFETY: a layout of nonzero size.
        match NonNull::new(unsafe { std::alloc::alloc(layout) }) {
            Some(p) => Reply::Ptr(p),
            None => Reply::Null {
                errno: libc::ENOMEM,
            },
        }
    }
}

fn trace() -> Trace {
    Trace::new((0..4).map(|slot| Op::Malloc { slot, size: 24 }).collect())
}

#[test]
fn a_dying_child_becomes_a_report_at_its_op() {
    let iso = Isolation::fixed(Duration::from_millis(200));
    for (how, death) in [
        ("abort", Death::Signal(libc::SIGABRT)),
        ("exit", Death::Exit(7)),
        ("hang", Death::Hang(200)),
    ] {
        let r = run(Dies(how, 0), &trace(), iso).unwrap_err();
        assert_eq!(*r.failure, Failure::Crashed { death }, "{r}");
        assert_eq!((r.index, r.backend.as_str()), (2, &*format!("dies-{how}")));
        // Through the differential, on the right: the left's calls are its own.
        let r = diff(Dies("none", 0), Dies(how, 0), &trace(), iso).unwrap_err();
        assert_eq!(*r.failure, Failure::Crashed { death }, "{r}");
        assert_eq!((r.index, r.backend.as_str()), (2, &*format!("dies-{how}")));
    }
    run(Dies("none", 0), &trace(), iso).unwrap();
}

#[test]
fn run_where_needed_isolates_global_state_backends() {
    // Through the wrapper that picks, which must notice the capability.
    let r = run_where_needed(Dies("abort", 0), &trace(), Isolation::default()).unwrap_err();
    assert_eq!(r.failure.kind(), "crash", "{r}");
}

#[test]
fn the_hang_limit_grows_with_the_request() {
    let iso = Isolation::default();
    let t = text::parse(
        "malloc 0 24
calloc 1 512 0x100000
free 0
",
    )
    .unwrap();
    assert!(iso.limit(&t, 0) < iso.stall + Duration::from_millis(1));
    assert_eq!(iso.limit(&t, 1), iso.stall + iso.per_gib / 2);
    assert_eq!(
        iso.limit(&t, 3),
        iso.limit(&t, 1),
        "end of trace: the largest"
    );
    assert_eq!(Isolation::fixed(iso.stall).limit(&t, 1), iso.stall);
}

#[test]
fn failing_jobs_confines_a_crash_to_its_job_and_goes_on() {
    let stall = Duration::from_secs(10);
    let failed = failing_jobs(10, stall, usize::MAX, |i| match i {
        // SAFETY: abort in the forked child is the point.
        3 => unsafe { libc::abort() },
        6 => false,
        _ => true,
    });
    assert_eq!(failed, vec![3, 6]);
    assert_eq!(failing_jobs(10, stall, 1, |i| i < 2), vec![2]);
    assert!(failing_jobs(5, stall, usize::MAX, |_| true).is_empty());
}
