#![no_main]
use tagalloc_diff::targets::{fuzz, Target};
tagalloc_fuzz::asan_defaults!();
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz(Target::Locked, data));
