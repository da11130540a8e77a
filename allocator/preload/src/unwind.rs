//! The unwinder entry points, inert: the library does not load `libgcc_s`.
//!
//! This library never unwinds. Nothing of tagalloc's own code can panic (the `preload` test step
//! disassembles the library to check that), and std's code that is linked in only for its panic
//! and backtrace machinery is never reached. Yet that code refers to `_Unwind_RaiseException`,
//! `_Unwind_Backtrace` and the rest, so the linker would list `libgcc_s.so.1` as needed, and
//! every program started with the library preloaded would map it and touch its pages: about
//! 100 KiB of resident memory, and more of libc's, in each process (measured with
//! `/proc/self/smaps` in a program that does one `malloc`).
//!
//! Here each of those names is defined inside the library, hidden: std's references bind to these
//! definitions at link time, nothing is exported (a program that throws C++ exceptions still binds
//! to the real unwinder in `libgcc_s`), and `libgcc_s` is no longer needed. If one were ever
//! called, it would say so on stderr and abort, as any internal error does.

/// What every inert entry point but `_Unwind_Backtrace` does.
extern "C" fn unreachable_unwind() -> ! {
    core_alloc::os::write_stderr(
        b"tagalloc: internal error: unwinding inside the preload library\n",
    );
    core_alloc::os::abort()
}

/// `_Unwind_Backtrace`: no frames (`_URC_END_OF_STACK`). std's panic hook, asked for a backtrace
/// by `RUST_BACKTRACE` in a debug build, prints an empty one instead of aborting before it.
extern "C" fn no_frames() -> core::ffi::c_int {
    5
}

macro_rules! inert {
    ($stub:ident: $($name:literal),* $(,)?) => {
        core::arch::global_asm!(
            $(
                concat!(".globl ", $name),
                concat!(".hidden ", $name),
                concat!(".type ", $name, ",@function"),
                concat!($name, ":"),
                "jmp {stub}",
            )*
            stub = sym $stub,
        );
    };
}

inert!(no_frames: "_Unwind_Backtrace");
inert!(
    unreachable_unwind:
    "_Unwind_DeleteException",
    "_Unwind_FindEnclosingFunction",
    "_Unwind_GetCFA",
    "_Unwind_GetDataRelBase",
    "_Unwind_GetIP",
    "_Unwind_GetIPInfo",
    "_Unwind_GetLanguageSpecificData",
    "_Unwind_GetRegionStart",
    "_Unwind_GetTextRelBase",
    "_Unwind_RaiseException",
    "_Unwind_Resume",
    "_Unwind_SetGR",
    "_Unwind_SetIP",
);
