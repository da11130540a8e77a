//! What every target in `fuzz_targets/` shares: the AddressSanitizer defaults it is built with,
//! and the custom mutator it fuzzes with.
//!
//! A target is four lines: `#![no_main]`, [`asan_defaults!`], [`op_mutator!`] (the op-level
//! mutator) and a `fuzz_target!` calling `tagalloc_diff::targets::fuzz`. The logic lives in `tagalloc-diff`, where `cargo test` replays
//! the corpora through the same function.

/// The AddressSanitizer options every target runs with (`ASAN_OPTIONS` still overrides them).
///
/// `allocator_may_return_null=1`: the `diff` target asks the process allocator (AddressSanitizer's,
/// in an ASan build) for requests that must fail, such as an `aligned_alloc` whose size is not a
/// multiple of its alignment; glibc answers them with NULL or a block, ASan aborts unless this is
/// set.
pub const ASAN_DEFAULT_OPTIONS: &std::ffi::CStr = c"allocator_may_return_null=1";

/// Defines `__asan_default_options` in the target's own binary (a definition in this library
/// would not be linked: nothing references it, and the sanitizer runtime's weak default wins).
#[macro_export]
macro_rules! asan_defaults {
    () => {
        /// AddressSanitizer calls this at start-up for its default options.
        #[no_mangle]
        pub extern "C" fn __asan_default_options() -> *const ::std::ffi::c_char {
            $crate::ASAN_DEFAULT_OPTIONS.as_ptr()
        }
    };
}

/// The crates the macros below expand to, so a target names only `tagalloc_fuzz`.
#[doc(hidden)]
pub use {libfuzzer_sys, tagalloc_diff};

/// Installs the op-level custom mutator and crossover of `tagalloc_diff::mutate` for a target
/// (`tagalloc_fuzz::op_mutator!(Target::Ops);`), with libFuzzer's own byte mutation as the
/// fallback share.
#[macro_export]
macro_rules! op_mutator {
    ($target:expr) => {
        $crate::libfuzzer_sys::fuzz_mutator!(|data: &mut [u8],
                                              size: usize,
                                              max_size: usize,
                                              seed: u32| {
            $crate::tagalloc_diff::mutate::mutate(
                $target,
                data,
                size,
                max_size,
                seed,
                $crate::libfuzzer_sys::fuzzer_mutate,
            )
        });
        $crate::libfuzzer_sys::fuzz_crossover!(|a: &[u8], b: &[u8], out: &mut [u8], seed: u32| {
            $crate::tagalloc_diff::mutate::crossover($target, a, b, out, seed)
        });
    };
}
