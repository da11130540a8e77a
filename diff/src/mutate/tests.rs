use std::collections::HashSet;

use super::*;
use crate::op::MAX_SLOTS;

/// The byte targets, with one per dialect first.
const BYTE_TARGETS: [Target; 6] = [
    Target::Ops,
    Target::Misuse,
    Target::Faults,
    Target::Threads,
    Target::Diff,
    Target::Locked,
];

/// Random bytes from `rng`, up to `max` of them.
fn random_input(rng: &mut Rng, max: usize) -> Vec<u8> {
    let n = rng.below(max + 1);
    (0..n).map(|_| rng.bits() as u8).collect()
}

/// A deterministic stand-in for libFuzzer's byte mutation: flips the first byte, and keeps to
/// `max` bytes.
fn flip(data: &mut [u8], size: usize, max: usize) -> usize {
    if size > 0 {
        data[0] ^= 0x55;
    }
    size.min(max)
}

/// Runs the mutator like libFuzzer: `input` in a buffer of `max` bytes.
fn run(target: Target, input: &[u8], max: usize, seed: u32) -> (Vec<u8>, bool) {
    let mut buf = input.to_vec();
    buf.resize(max.max(input.len()), 0);
    let mut fell_back = false;
    let n = mutate(target, &mut buf, input.len(), max, seed, |d, s, m| {
        fell_back = true;
        flip(d, s, m)
    });
    assert!(n <= max, "{n} > {max}");
    buf.truncate(n);
    (buf, fell_back)
}

#[test]
fn mutated_inputs_decode_to_their_own_encoding() {
    let mut rng = Rng::new(1);
    for seed in 0..3000u32 {
        let target = BYTE_TARGETS[seed as usize % BYTE_TARGETS.len()];
        let d = target.dialect().unwrap();
        let input = random_input(&mut rng, 200);
        let max = 16 + rng.below(400);
        let (out, fell_back) = run(target, &input, max, seed);
        if fell_back {
            continue;
        }
        let trace = bytes::decode(&out, d);
        // The mutator writes the exact encoding: nothing is lost or reinterpreted.
        assert_eq!(bytes::encode(&trace), out, "seed {seed}");
        assert!(trace.ops.iter().all(|op| d.allows(op)), "seed {seed}");
        assert_eq!(trace.clone().fixed(d), trace);
    }
}

#[test]
fn encode_of_decode_is_stable() {
    let mut rng = Rng::new(2);
    for i in 0..3000 {
        let d = BYTE_TARGETS[i % BYTE_TARGETS.len()].dialect().unwrap();
        let x = random_input(&mut rng, 300);
        let t = bytes::decode(&x, d);
        let e = bytes::encode(&t);
        assert_eq!(bytes::decode(&e, d), t);
        assert_eq!(bytes::encode(&bytes::decode(&e, d)), e);
    }
}

#[test]
fn every_mutation_is_reached_in_every_dialect() {
    for d in [
        Dialect::Clean,
        Dialect::Misuse,
        Dialect::Faults,
        Dialect::Threads,
        Dialect::All,
    ] {
        let mut rng = Rng::new(3);
        let mut seen = HashSet::new();
        let mut trace = Trace::default();
        for _ in 0..5000 {
            seen.extend(mutate_trace(&mut trace, d, &mut rng));
            if trace.len() > 64 {
                trace.ops.truncate(8);
            }
        }
        for m in Mutation::ALL {
            assert!(seen.contains(&m), "{m:?} never applied in {d:?}");
        }
    }
}

#[test]
fn a_dialects_own_ops_are_inserted() {
    for (d, want) in [
        (Dialect::Misuse, Op::dialect as fn(&Op) -> Dialect),
        (Dialect::Faults, Op::dialect),
        (Dialect::Threads, Op::dialect),
    ] {
        let mut rng = Rng::new(4);
        let mut t = Trace::default();
        for _ in 0..200 {
            ops::apply(Mutation::Insert, &mut t, d, &mut rng);
        }
        assert!(t.ops.iter().any(|op| want(op) == d), "{d:?}");
        assert!(t.ops.iter().all(|op| d.allows(op)));
    }
}

#[test]
fn each_mutation_does_what_it_says() {
    let base = Trace::new(vec![
        Op::Malloc { slot: 0, size: 24 },
        Op::Malloc { slot: 1, size: 100 },
        Op::PosixMemalign {
            slot: 2,
            align: 64,
            size: 10,
        },
        Op::Free { slot: 0 },
        Op::Realloc { slot: 1, size: 0 },
    ]);
    let mut rng = Rng::new(5);
    for _ in 0..200 {
        for m in Mutation::ALL {
            let mut t = base.clone();
            if !ops::apply(m, &mut t, Dialect::Clean, &mut rng) {
                assert_eq!(t, base, "{m:?} said no but changed the trace");
                continue;
            }
            let n = t.len();
            match m {
                Mutation::Insert => assert_eq!(n, base.len() + 1),
                Mutation::Delete => assert!(n < base.len()),
                Mutation::Duplicate | Mutation::Repeat => assert!(n > base.len()),
                Mutation::Swap | Mutation::MoveFree => {
                    assert_eq!(n, base.len());
                    assert_ne!(t, base, "{m:?}");
                    let mut a = t.ops.clone();
                    let mut b = base.ops.clone();
                    a.sort_by_key(|op| format!("{op}"));
                    b.sort_by_key(|op| format!("{op}"));
                    assert_eq!(a, b, "{m:?} is a permutation");
                }
                Mutation::ChangeKind
                | Mutation::RetargetSlot
                | Mutation::Size
                | Mutation::Align => {
                    assert_eq!(n, base.len());
                    let changed: Vec<usize> = (0..n).filter(|&i| t.ops[i] != base.ops[i]).collect();
                    assert!(changed.len() <= 1, "{m:?} changed {changed:?}");
                }
                Mutation::Tunables => assert_eq!(t.ops, base.ops),
            }
        }
    }
}

#[test]
fn free_moves_keep_their_slot() {
    let base = Trace::new(vec![
        Op::Malloc { slot: 3, size: 24 },
        Op::Malloc { slot: 4, size: 24 },
        Op::Free { slot: 3 },
    ]);
    let mut rng = Rng::new(6);
    let mut earlier = false;
    for _ in 0..100 {
        let mut t = base.clone();
        if ops::apply(Mutation::MoveFree, &mut t, Dialect::Clean, &mut rng) {
            earlier |= t.ops[..2].contains(&Op::Free { slot: 3 });
        }
    }
    assert!(earlier);
}

#[test]
fn deterministic_for_a_seed() {
    let mut rng = Rng::new(7);
    for seed in 0..500u32 {
        let target = BYTE_TARGETS[seed as usize % BYTE_TARGETS.len()];
        let input = random_input(&mut rng, 100);
        assert_eq!(
            run(target, &input, 256, seed),
            run(target, &input, 256, seed)
        );
    }
}

#[test]
fn a_share_of_calls_falls_back_to_byte_mutations() {
    let input = bytes::encode(&Trace::new(vec![Op::Malloc { slot: 0, size: 24 }]));
    let fell = (0..2000u32)
        .filter(|&seed| run(Target::Ops, &input, 128, seed).1)
        .count();
    let want = 2000 * FALLBACK_PERCENT.bytes as usize / 100;
    assert!(
        fell.abs_diff(want) < want / 4,
        "{fell} of 2000, want about {want}"
    );
}

#[test]
fn output_fits_in_max_size_by_dropping_ops_from_the_end() {
    let long = Trace::new(
        (0..200)
            .map(|i| Op::Malloc {
                slot: i % 16,
                size: 1 << 40,
            })
            .collect(),
    );
    let input = bytes::encode(&long);
    for seed in 0..200 {
        let (out, fell_back) = run(Target::Ops, &input, 64, seed);
        assert!(out.len() <= 64);
        if !fell_back {
            let t = bytes::decode(&out, Dialect::Clean);
            assert!(!t.is_empty() && t.len() < long.len());
        }
    }
    // Not even the tunables fit: the byte mutation decides.
    let mut buf = vec![0x81, 224, 1, 2, 3, 4, 5, 6, 7, 8];
    let n = mutate(Target::Ops, &mut buf, 10, 0, 1, |_, _, _| 0);
    assert_eq!(n, 0);
}

#[test]
fn text_targets_mutate_text_that_parses() {
    let input = b"malloc 0 24\nmalloc 1 100\nfree 0\n";
    let mut ops_level = 0;
    for seed in 0..300 {
        let (out, fell_back) = run(Target::TraceParse, input, 4096, seed);
        if !fell_back {
            ops_level += 1;
            let t = text::parse_bytes(&out).expect("mutated text parses");
            assert_eq!(t.to_string().into_bytes(), out);
        }
    }
    assert!(ops_level > 50);
    // Text that does not parse goes to the byte mutation.
    for seed in 0..50 {
        assert!(run(Target::TraceParse, b"malloc zero\n", 64, seed).1);
    }
}

#[test]
fn crossover_mixes_ops_of_both_inputs() {
    let a = bytes::encode(&Trace::new(vec![Op::Malloc { slot: 1, size: 24 }; 6]));
    let b = bytes::encode(&Trace::new(vec![Op::Free { slot: 2 }; 6]));
    let mut mixed = false;
    for seed in 0..200 {
        let mut out = vec![0; 64];
        let n = crossover(Target::Ops, &a, &b, &mut out, seed);
        let t = bytes::decode(&out[..n], Dialect::Clean);
        assert_eq!(bytes::encode(&t), out[..n]);
        mixed |=
            t.ops.contains(&Op::Free { slot: 2 }) && t.ops[0] == Op::Malloc { slot: 1, size: 24 };
    }
    assert!(mixed);
    let mut out = vec![0; 8];
    let n = crossover(
        Target::TraceParse,
        b"free 1\nfree 2\n",
        b"check\n",
        &mut out,
        9,
    );
    assert!(n <= 8);
}

#[test]
fn retargeted_slots_stay_in_range() {
    let mut rng = Rng::new(8);
    let mut t = Trace::new(vec![Op::Free {
        slot: MAX_SLOTS - 1,
    }]);
    for _ in 0..100 {
        ops::apply(Mutation::RetargetSlot, &mut t, Dialect::Clean, &mut rng);
        ops::apply(Mutation::Insert, &mut t, Dialect::Clean, &mut rng);
        assert!(t.ops.iter().filter_map(Op::slot).all(|s| s < MAX_SLOTS));
    }
}

#[test]
fn dictionary_entries_decode_to_what_they_name() {
    for d in [
        Dialect::Clean,
        Dialect::Misuse,
        Dialect::Faults,
        Dialect::Threads,
    ] {
        for (what, data) in dict::entries(d) {
            // An op entry follows a default tunables byte; a header entry stands alone.
            let (input, shown) = if what.starts_with("config") {
                (data.clone(), bytes::decode(&data, d).to_string())
            } else {
                let mut v = vec![0];
                v.extend(&data);
                (v.clone(), bytes::decode(&v, d).to_string())
            };
            assert_eq!(shown.trim_end(), what, "{input:x?}");
        }
    }
}

#[test]
fn dictionaries_in_fuzz_are_up_to_date() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut stale = Vec::new();
    for target in Target::ALL {
        let Some(want) = dict::text(target) else {
            continue;
        };
        let file = root.join("fuzz").join(format!("{}.dict", target.name()));
        if std::fs::read_to_string(&file).ok().as_deref() != Some(want.as_str()) {
            let fresh = root.join("target/dicts");
            std::fs::create_dir_all(&fresh).unwrap();
            std::fs::write(fresh.join(format!("{}.dict", target.name())), &want).unwrap();
            stale.push(target.name());
        }
    }
    assert!(
        stale.is_empty(),
        "fuzz/*.dict out of date for {stale:?}: the fresh ones are in target/dicts/ \
         (cp target/dicts/*.dict fuzz/)"
    );
}

#[test]
fn reallocs_are_steered_to_their_own_blocks_edges() {
    // malloc 0 100 takes a 112-byte block, 104 usable: a realloc to 105 just overflows it.
    let base = Trace::new(vec![
        Op::Malloc { slot: 0, size: 100 },
        Op::Realloc { slot: 0, size: 7 },
    ]);
    let mut rng = Rng::new(9);
    let reached = (0..500).any(|_| {
        let mut t = base.clone();
        ops::apply(Mutation::Size, &mut t, Dialect::Clean, &mut rng);
        t.ops[1] == Op::Realloc { slot: 0, size: 105 }
    });
    assert!(reached);
}

#[test]
fn tunables_reach_a_small_pad_with_trimming_at_once() {
    let mut rng = Rng::new(10);
    let reached = (0..2000).any(|_| {
        let mut t = Trace::default();
        ops::apply(Mutation::Tunables, &mut t, Dialect::Clean, &mut rng);
        let c = t.config;
        c.top_pad.is_some_and(|p| p < 4096)
            && c.trim_threshold == Some(0)
            && c.trim_delay == Some(0)
    });
    assert!(reached);
}
