//! TEST FIXTURE, not a fuzz target: it crashes on purpose, so that `xtask/tests/crash_path.rs` can
//! show the runner's crash path end to end (find, `cargo fuzz tmin`, readable trace, reproduce
//! command, non-zero exit). `cargo xtask fuzz` never runs it unless it is named.
//!
//! It decodes its input exactly as the `ops` target does and panics as soon as the trace holds a
//! `malloc` of 4097 bytes (the page size plus one): libFuzzer reaches it in well under a second from
//! a seed holding `malloc 0 4096`, whose size byte is one away.
#![no_main]
use tagalloc_diff::bytes::decode;
use tagalloc_diff::op::{Dialect, Op};

/// The size whose `malloc` "crashes" this target.
const CRASH_SIZE: usize = 4097;

tagalloc_fuzz::asan_defaults!();
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    for (i, op) in decode(data, Dialect::Clean).ops.iter().enumerate() {
        if let Op::Malloc {
            size: CRASH_SIZE, ..
        } = op
        {
            panic!("selftest_crash: op {i} is a malloc of {CRASH_SIZE} bytes (a crash on purpose)");
        }
    }
});
