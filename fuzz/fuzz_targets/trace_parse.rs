#![no_main]
use tagalloc_diff::targets::{fuzz, Target};
tagalloc_fuzz::asan_defaults!();
tagalloc_fuzz::op_mutator!(Target::TraceParse);
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz(Target::TraceParse, data));
