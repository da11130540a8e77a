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

/// The targets that drive the thread caches reach their medium classes (blocks of 1033 to 32760
/// usable bytes, rounded to eight classes per power of two): their committed corpora hold inputs
/// that free a medium block and then ask for another, so a cached medium block is pushed, and
/// popped or given back, in every `cargo test` replay.
#[test]
fn the_cache_targets_corpora_reach_the_medium_classes() {
    use tagalloc_diff::op::Op;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus");
    let medium = |n: usize| (1033..=32_760).contains(&n);
    for target in [Target::Locked, Target::Threads] {
        let (mut inputs, mut reaching) = (0, 0);
        let dir = root.join(target.name());
        for entry in std::fs::read_dir(&dir).unwrap() {
            let data = std::fs::read(entry.unwrap().path()).unwrap();
            inputs += 1;
            let trace = target.decode(&data);
            let mut sizes = std::collections::HashMap::new();
            let (mut freed, mut reached) = (false, false);
            for op in &trace.ops {
                match *op {
                    Op::Malloc { slot, size } => {
                        reached |= freed && medium(size);
                        sizes.insert(slot, size);
                    }
                    Op::Calloc { slot, count, size } => {
                        let n = count.saturating_mul(size);
                        reached |= freed && medium(n);
                        sizes.insert(slot, n);
                    }
                    Op::Free { slot } => {
                        freed |= sizes.remove(&slot).is_some_and(medium);
                    }
                    _ => {}
                }
            }
            reaching += usize::from(reached);
        }
        eprintln!(
            "{}: {reaching} of {inputs} inputs reach the medium classes",
            target.name()
        );
        assert!(
            reaching >= 5,
            "{}: only {reaching} of {inputs} inputs free a medium block and then ask for one",
            target.name()
        );
    }
}
