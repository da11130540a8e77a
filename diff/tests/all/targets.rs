//! The fuzz targets' library functions on seeded random bytes: what `cargo fuzz` runs, replayed.

use tagalloc_diff::targets::{self, Target};

use crate::Rng;

/// Inputs per target, and their maximum length.
const INPUTS: usize = 120;
const MAX_LEN: usize = 600;

fn seeded(target: Target, seed: u64) {
    let mut rng = Rng(seed);
    for i in 0..INPUTS {
        let len = (rng.word() as usize) % MAX_LEN;
        let data = rng.bytes(len);
        if let Err(report) = target.run(&data) {
            panic!("{} input {i} (seed {seed}):\n{report}", target.name());
        }
    }
}

#[test]
fn ops_on_seeded_bytes() {
    seeded(Target::Ops, 1);
}

#[test]
fn diff_on_seeded_bytes() {
    seeded(Target::Diff, 2);
}

#[test]
fn misuse_on_seeded_bytes() {
    seeded(Target::Misuse, 3);
}

#[test]
fn faults_on_seeded_bytes() {
    seeded(Target::Faults, 4);
}

#[test]
fn trace_parse_on_seeded_bytes_and_on_near_text() {
    seeded(Target::TraceParse, 5);
    // Random bytes rarely parse; mutate real traces instead.
    let base = b"20000\n3\n3\n1\na 0 24\nmalloc 1 PTRDIFF_MAX+1\nmisuse realloc 8 interior 0 3 # c\nfree 0\n";
    let mut rng = Rng(6);
    for _ in 0..2000 {
        let mut data = base.to_vec();
        for _ in 0..1 + rng.word() % 3 {
            let at = (rng.word() as usize) % data.len();
            data[at] = b" 0123456789afmx+-#\nSIZE_MAXPTRDIFF"[(rng.word() % 33) as usize];
        }
        if let Err(report) = targets::trace_parse(&data) {
            panic!("{report}");
        }
    }
}

#[test]
fn named_functions_match_the_enum() {
    assert_eq!(Target::from_name("trace_parse"), Some(Target::TraceParse));
    let data = [0u8, 3, 40, 1, 3];
    assert!(targets::ops(&data).is_ok() && targets::diff(&data).is_ok());
    assert!(targets::misuse(&data).is_ok() && targets::faults(&data).is_ok());
}
