//! quickcheck properties: random traces on tagalloc and libc, the differential, both encodings'
//! round trips, and the shrinker. Inputs are random byte strings decoded as the fuzz targets
//! decode them, so the properties explore the same language as the fuzzers.

use quickcheck::{QuickCheck, TestResult};
use tagalloc_diff::backend::libc::LibcBackend;
use tagalloc_diff::backend::tagalloc::for_dialect;
use tagalloc_diff::{bytes, differ, runner, shrink, text, Dialect, Trace};

use crate::broken::{Flaw, Toy};

const DIALECTS: [Dialect; 4] = [
    Dialect::Clean,
    Dialect::Misuse,
    Dialect::Faults,
    Dialect::All,
];

fn qc(tests: u64) -> QuickCheck {
    QuickCheck::new().tests(tests).max_tests(tests * 10)
}

fn report(r: Result<(), tagalloc_diff::Report>) -> bool {
    match r {
        Ok(()) => true,
        Err(r) => {
            eprintln!("{r}");
            false
        }
    }
}

#[test]
fn random_traces_on_tagalloc() {
    fn prop(data: Vec<u8>) -> bool {
        report(runner::run(
            for_dialect(Dialect::Clean),
            &bytes::decode(&data, Dialect::Clean),
        ))
    }
    qc(150).quickcheck(prop as fn(Vec<u8>) -> bool);
}

#[test]
fn random_misuse_and_fault_traces_on_tagalloc() {
    fn prop(data: Vec<u8>) -> bool {
        [Dialect::Misuse, Dialect::Faults]
            .into_iter()
            .all(|d| report(runner::run(for_dialect(d), &bytes::decode(&data, d))))
    }
    qc(100).quickcheck(prop as fn(Vec<u8>) -> bool);
}

#[test]
fn random_traces_on_libc() {
    fn prop(data: Vec<u8>) -> bool {
        report(runner::run(
            LibcBackend::new(),
            &bytes::decode(&data, Dialect::Clean),
        ))
    }
    qc(150).quickcheck(prop as fn(Vec<u8>) -> bool);
}

#[test]
fn differential_tagalloc_against_libc() {
    fn prop(data: Vec<u8>) -> bool {
        let t = bytes::decode(&data, Dialect::Clean);
        report(differ::diff(
            for_dialect(Dialect::Clean),
            LibcBackend::new(),
            &t,
        ))
    }
    qc(150).quickcheck(prop as fn(Vec<u8>) -> bool);
}

#[test]
fn bytes_round_trip() {
    fn prop(data: Vec<u8>) -> bool {
        DIALECTS.into_iter().all(|d| {
            let t = bytes::decode(&data, d);
            let again = bytes::decode(&bytes::encode(&t), d);
            t == again && t.clone().fixed(d) == t
        })
    }
    qc(1000).quickcheck(prop as fn(Vec<u8>) -> bool);
}

#[test]
fn text_round_trip() {
    fn prop(data: Vec<u8>) -> bool {
        let t = bytes::decode(&data, Dialect::All);
        text::parse(&t.to_string()) == Ok(t)
    }
    qc(1000).quickcheck(prop as fn(Vec<u8>) -> bool);
}

#[test]
fn text_and_bytes_agree() {
    fn prop(data: Vec<u8>) -> bool {
        let t = bytes::decode(&data, Dialect::All);
        let via_text = text::parse(&t.to_string()).unwrap();
        bytes::decode(&bytes::encode(&via_text), Dialect::All) == t
    }
    qc(500).quickcheck(prop as fn(Vec<u8>) -> bool);
}

#[test]
fn shrinker_output_still_fails_and_is_no_longer() {
    fn prop(data: Vec<u8>, flaw: u8) -> TestResult {
        let flaws = [
            Flaw::DirtyCalloc,
            Flaw::NullSmall,
            Flaw::HalfRealloc,
            Flaw::NeighbourBookkeeping,
            Flaw::Overlap,
        ];
        let flaw = flaws[usize::from(flaw) % flaws.len()];
        let t = bytes::decode(&data, Dialect::Clean);
        let mut test = |t: &Trace| runner::run(Toy::new(flaw), t);
        let Err(first) = test(&t) else {
            return TestResult::discard();
        };
        let budget = shrink::Budget {
            runs: 300,
            ..Default::default()
        };
        let r = shrink::shrink(&t, budget, &mut test).expect("it failed once");
        let again = test(&r.trace).expect_err("the minimal trace must still fail");
        TestResult::from_bool(
            r.trace.len() <= t.len()
                && again.failure.kind() == first.failure.kind()
                && r.shrunk_from == Some(t.len()),
        )
    }
    qc(60).quickcheck(prop as fn(Vec<u8>, u8) -> TestResult);
}
