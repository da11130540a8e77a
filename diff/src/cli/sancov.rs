//! The callbacks an object built with clang's `-fsanitize=fuzzer-no-link` calls, exported from
//! the `tagalloc-diff` binary (`build.rs` exports them to the objects it loads; `nm -D` lists
//! them): the counters' range is noted for the fuzzer's feedback
//! ([`tagalloc_diff::fuzz_so::coverage`]); the comparison callbacks and the PC table are
//! ignored. They live in the binary, not the library, so that the fuzz targets, which link
//! libFuzzer's own, never see two definitions. Also `__sancov_lowest_stack`, the thread-local
//! word such an object's stack-depth tracing writes, defined in assembly (a thread-local with a
//! fixed symbol name cannot be written in stable Rust).

#![allow(missing_docs, clippy::missing_safety_doc)]

use tagalloc_diff::fuzz_so::coverage;

/// `start..stop`: a module's 8-bit edge counters, noted while it is loaded.
///
/// # Safety
///
/// Called by an instrumented module's constructor with its counters section, which stays mapped
/// while the module is loaded (the suite never unloads one).
#[no_mangle]
pub unsafe extern "C" fn __sanitizer_cov_8bit_counters_init(start: *const u8, stop: *const u8) {
    // SAFETY: the range is the module's counters section, mapped for as long as it is loaded,
    // which is as long as this process lives.
    unsafe { coverage::register(start, stop) }
}

#[no_mangle]
pub extern "C" fn __sanitizer_cov_pcs_init(_beg: *const usize, _end: *const usize) {}

/// No-op comparison callbacks: `name(type, type)`.
macro_rules! ignored {
    ($($name:ident($($arg:ty),*);)*) => {
        $(
            #[no_mangle]
            pub extern "C" fn $name($(_: $arg),*) {}
        )*
    };
}

ignored! {
    __sanitizer_cov_trace_cmp1(u8, u8);
    __sanitizer_cov_trace_cmp2(u16, u16);
    __sanitizer_cov_trace_cmp4(u32, u32);
    __sanitizer_cov_trace_cmp8(u64, u64);
    __sanitizer_cov_trace_const_cmp1(u8, u8);
    __sanitizer_cov_trace_const_cmp2(u16, u16);
    __sanitizer_cov_trace_const_cmp4(u32, u32);
    __sanitizer_cov_trace_const_cmp8(u64, u64);
    __sanitizer_cov_trace_switch(u64, *const u64);
    __sanitizer_cov_trace_div4(u32);
    __sanitizer_cov_trace_div8(u64);
    __sanitizer_cov_trace_gep(usize);
    __sanitizer_cov_trace_pc_indir(usize);
}

// The stack-depth word: one thread-local `uintptr_t`, zero at every thread's start.
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
std::arch::global_asm!(
    ".section .tbss,\"awT\",@nobits",
    ".globl __sancov_lowest_stack",
    ".type __sancov_lowest_stack, @object",
    ".size __sancov_lowest_stack, 8",
    ".p2align 3",
    "__sancov_lowest_stack:",
    ".zero 8",
    ".text",
);
#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
std::arch::global_asm!(
    ".section .tbss,\"awT\",%nobits",
    ".globl __sancov_lowest_stack",
    ".type __sancov_lowest_stack, %object",
    ".size __sancov_lowest_stack, 8",
    ".p2align 3",
    "__sancov_lowest_stack:",
    ".zero 8",
    ".text",
);
