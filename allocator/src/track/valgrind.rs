//! valgrind client requests (the `valgrind` feature): the few tagalloc makes, encoded by hand.
//!
//! A client request is a word array `[request, arg1 .. arg5]` whose address is in `rax`, a default
//! result in `rdx`, and a marker sequence valgrind's translator looks for: four rotations of `rdi`
//! by 3, 13, 61 and 51 bits (128 in all, so `rdi` ends as it began) and then `xchg rbx, rbx`. On a
//! real CPU the sequence changes nothing and `rdx` keeps the default; under valgrind it runs the
//! request and leaves the result in `rdx`. The request numbers are valgrind's public ABI
//! (`valgrind.h`, `memcheck.h`).

#[cfg(not(target_arch = "x86_64"))]
compile_error!("tagalloc's `valgrind` feature encodes client requests for x86-64 only");

/// `VG_USERREQ__MALLOCLIKE_BLOCK`: addr, size, redzone, is_zeroed.
const MALLOCLIKE_BLOCK: usize = 0x1301;
/// `VG_USERREQ__FREELIKE_BLOCK`: addr, redzone.
const FREELIKE_BLOCK: usize = 0x1302;
/// `VG_USERREQ__CHANGE_ERR_DISABLEMENT`: +1 disables error reports on this thread, -1 enables.
const CHANGE_ERR_DISABLEMENT: usize = 0x1801;
/// Memcheck's requests start at the tool base `'M' << 24 | 'C' << 16`.
const MEMCHECK: usize = (b'M' as usize) << 24 | (b'C' as usize) << 16;
/// `VG_USERREQ__MAKE_MEM_NOACCESS`: addr, len.
const MAKE_MEM_NOACCESS: usize = MEMCHECK;
/// `VG_USERREQ__MAKE_MEM_DEFINED`: addr, len.
const MAKE_MEM_DEFINED: usize = MEMCHECK + 2;

/// Runs one client request; returns valgrind's answer, or 0 outside valgrind.
#[inline(always)]
fn request(code: usize, a1: usize, a2: usize, a3: usize, a4: usize) -> usize {
    let args = [code, a1, a2, a3, a4, 0];
    let mut result = 0usize;
    // SAFETY: the sequence only rotates rdi back to its value and exchanges rbx with itself;
    // valgrind, when present, reads the six words at rax and writes rdx.
    unsafe {
        core::arch::asm!(
            "rol rdi, 3",
            "rol rdi, 13",
            "rol rdi, 61",
            "rol rdi, 51",
            "xchg rbx, rbx",
            in("rax") args.as_ptr(),
            inout("rdx") result,
            inout("rdi") 0usize => _,
            options(nostack),
        );
    }
    result
}

/// `[p, p + n)` is a block handed to a caller.
#[inline(always)]
pub(super) fn malloclike(p: *mut u8, n: usize, zeroed: bool) {
    request(MALLOCLIKE_BLOCK, p as usize, n, 0, zeroed as usize);
}

/// The block at `p` is freed.
#[inline(always)]
pub(super) fn freelike(p: *mut u8) {
    request(FREELIKE_BLOCK, p as usize, 0, 0, 0);
}

/// The block at `p` now holds `n` bytes, its first `kept` as they were. memcheck's own
/// resize-in-place request wants the size it was told before, which tagalloc does not keep (it
/// knows the usable size, not the request), so the block is freed and made again at once, and
/// the kept bytes are marked defined (they were, or were slack the caller could not reach).
#[inline(always)]
pub(super) fn resized(p: *mut u8, n: usize, kept: usize) {
    freelike(p);
    malloclike(p, n, false);
    defined(p, kept);
}

/// `[p, p + len)` may not be touched by the program.
#[inline(always)]
pub(super) fn noaccess(p: *mut u8, len: usize) {
    request(MAKE_MEM_NOACCESS, p as usize, len, 0, 0);
}

/// `[p, p + len)` holds defined values.
#[inline(always)]
pub(super) fn defined(p: *mut u8, len: usize) {
    request(MAKE_MEM_DEFINED, p as usize, len, 0, 0);
}

/// Switches memcheck's error reports for this thread off (`false`) or back on.
#[inline(always)]
pub(super) fn errors(on: bool) {
    request(
        CHANGE_ERR_DISABLEMENT,
        if on { usize::MAX } else { 1 },
        0,
        0,
        0,
    );
}
