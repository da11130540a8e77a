//! What every target in `fuzz_targets/` shares: the AddressSanitizer defaults it is built with.
//!
//! A target is three lines: `#![no_main]`, [`asan_defaults!`], and a `fuzz_target!` calling
//! `tagalloc_diff::targets::fuzz`. The logic lives in `tagalloc-diff`, where `cargo test` replays
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
