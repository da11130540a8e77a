//! `tagalloc-diff fuzz` on a shared object with a planted bug (the free-list allocator of
//! `isolation.rs`, whose `calloc` zeroes only fresh memory): found, shrunk and saved within 60 s,
//! and the saved trace fails `run` on its own.

use std::time::Instant;

use crate::cli::{dir, run, shared_object, text};
use crate::isolation::REUSING_C;

#[test]
fn fuzz_finds_and_shrinks_a_planted_bug_within_a_minute() {
    let Some(so) = shared_object("planted", &REUSING_C.replace("HOOK", "")) else {
        return;
    };
    let save = dir().join("fuzz-planted");
    let t0 = Instant::now();
    let o = run(&[
        "fuzz",
        "--backend",
        &so,
        "--time",
        "60",
        "--seed",
        "1",
        "--first",
        "--save",
        save.to_str().unwrap(),
    ]);
    let secs = t0.elapsed().as_secs_f64();
    let out = text(&o);
    println!("found and shrunk in {secs:.1} s:\n{out}");
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(secs < 60.0 + 20.0, "{secs} s\n{out}");
    let saved: Vec<_> = std::fs::read_dir(&save)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(saved.len(), 1, "{saved:?}");
    let trace = std::fs::read_to_string(&saved[0]).unwrap();
    assert!(trace.starts_with("# calloc memory not zero"), "{trace}");
    assert!(
        trace.lines().filter(|l| !l.starts_with('#')).count() <= 6,
        "{trace}"
    );
    let o = run(&["run", "--backend", &so, saved[0].to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("[calloc-not-zero]"), "{}", text(&o));
}
