//! libFuzzer dictionaries for the byte targets: whole encoded ops at an allocator's edges.
//!
//! libFuzzer inserts and overwrites dictionary entries in the bytes during its own mutations (the
//! share [`super::mutate`] leaves to it). Each entry here is one op as [`crate::bytes`] encodes
//! it (or a tunables header), so an inserted entry is a whole `malloc 0 1017` or `memalign 0 4096
//! 24`, not a fragment. The committed files are `fuzz/TARGET.dict`; [`text`] generates them, and
//! a unit test fails when they differ, writing the fresh ones under `target/dicts/`.

use tagalloc::layout::{ALIGN, HEADER, MIN_BLOCK};
use tagalloc::os::PAGE;
use tagalloc::Config;

use crate::bytes;
use crate::op::{BadCall, BadPtr, Dialect, Foreign, Op, Trace, PTRDIFF_MAX};
use crate::targets::Target;
use crate::tunables::Tunables;

/// Request sizes at the edges, in a fixed order.
fn sizes() -> Vec<usize> {
    let mut v = vec![0, 1];
    // Size classes and exact bins: the largest request of each block size, and one past.
    let mut block = MIN_BLOCK;
    while block <= 1024 {
        v.extend([block - HEADER, block - HEADER + 1]);
        block += 4 * ALIGN;
    }
    // Sorted bins, four per power of two.
    for log in 10..=20 {
        for quarter in 0..4 {
            let block = (1usize << log) + quarter * (1usize << (log - 2));
            v.extend([block - HEADER, block - HEADER + 1]);
        }
    }
    let t = Config::DEFAULT.mmap_threshold;
    v.extend([t - 16, t - HEADER, t - HEADER + 1, t + 16]);
    for pages in [1, 2, 3, 4, 32] {
        v.extend([pages * PAGE - 16, pages * PAGE + 16]);
    }
    v.extend([PTRDIFF_MAX - 1, PTRDIFF_MAX, PTRDIFF_MAX + 1]);
    v.sort_unstable();
    v.dedup();
    v
}

/// The ops of the dictionary for `dialect`, each with its tunables-free trace text.
fn ops(dialect: Dialect) -> Vec<Op> {
    let mut v = Vec::new();
    for size in sizes() {
        v.push(Op::Malloc { slot: 0, size });
        v.push(Op::Realloc { slot: 0, size });
    }
    for log in [4, 5, 6, 12, 16] {
        let align = 1usize << log;
        v.push(Op::Memalign {
            slot: 1,
            align,
            size: 24,
        });
        v.push(Op::PosixMemalign {
            slot: 1,
            align,
            size: align + 1,
        });
    }
    v.push(Op::Calloc {
        slot: 2,
        count: 1 << 32,
        size: (PTRDIFF_MAX >> 32) + 1,
    });
    v.extend([Op::Free { slot: 0 }, Op::Check]);
    match dialect {
        Dialect::Misuse | Dialect::All => {
            v.push(Op::Misuse {
                call: BadCall::Free,
                ptr: BadPtr::Freed { slot: 0 },
            });
            v.push(Op::Misuse {
                call: BadCall::Realloc { size: 24 },
                ptr: BadPtr::Interior {
                    slot: 0,
                    offset: 16,
                },
            });
            v.push(Op::Misuse {
                call: BadCall::UsableSize,
                ptr: BadPtr::Foreign(Foreign::Stack),
            });
            v.extend([1, 8].map(|len| Op::Overwrite { slot: 0, len }));
            v.extend((0..4).map(|word| Op::WriteFreed { slot: 0, word }));
        }
        Dialect::Faults => {
            v.extend([1, 2].map(|count| Op::FailNext { count }));
            v.extend([16, PAGE, PAGE + 16].map(|bytes| Op::ForeignSbrk { bytes }));
        }
        Dialect::Threads => {
            v.extend((0..4).map(|thread| Op::Thread { thread }));
            v.extend([Op::ThreadExit, Op::Fork]);
        }
        Dialect::Clean => {}
    }
    v
}

/// Tunables headers worth inserting at the start of an input.
fn headers() -> Vec<Tunables> {
    let one = |f: fn(&mut Tunables)| {
        let mut t = Tunables::default();
        f(&mut t);
        t
    };
    vec![
        one(|t| t.mmap_threshold = Some(PAGE as u32)),
        one(|t| t.top_pad = Some(0)),
        one(|t| t.trim_threshold = Some(0)),
        one(|t| t.trim_delay = Some(0)),
        one(|t| t.cache_limit = Some(1)),
        one(|t| t.dynamic_threshold = Some(false)),
    ]
}

/// The dictionary's entries for `dialect`: what each is, as trace text, and its bytes.
pub fn entries(dialect: Dialect) -> Vec<(String, Vec<u8>)> {
    let mut v = Vec::new();
    for t in headers() {
        let trace = Trace::default().with_config(t);
        v.push((
            trace.to_string().trim_end().to_string(),
            bytes::encode(&trace),
        ));
    }
    for op in ops(dialect) {
        let op = op.fixed();
        v.push((op.to_string(), bytes::encode_op(&op)));
    }
    v
}

/// The text of `fuzz/TARGET.dict` for a byte target (`None` for `trace_parse`, whose dictionary
/// is written by hand).
pub fn text(target: Target) -> Option<String> {
    let dialect = target.dialect()?;
    let mut out = format!(
        "# libFuzzer dictionary for the `{}` target: whole ops in the fuzz byte encoding\n\
         # (diff/src/bytes.rs) at the allocator's edges, each after its trace text. Generated by\n\
         # diff/src/mutate/dict.rs; `cargo test -p tagalloc-diff --lib dict` checks it.\n",
        target.name()
    );
    for (what, data) in entries(dialect) {
        out.push_str(&format!("# {what}\n\""));
        for b in data {
            out.push_str(&format!("\\x{b:02x}"));
        }
        out.push_str("\"\n");
    }
    Some(out)
}
