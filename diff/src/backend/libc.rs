//! The process's C allocator, called through the `libc` crate.
//!
//! Requests that must fail, or that exceed [`FOREIGN_REQUEST_LIMIT`], are answered as glibc
//! documents without calling libc ([`answer_without_calling`]): a sanitizer or libFuzzer would
//! otherwise treat them as crashes. Everything else goes to libc as it is.

use std::ptr::{self, NonNull};

use super::{answer_without_calling, Backend, Reply, Request, FOREIGN_REQUEST_LIMIT};

/// The C library's `malloc` family.
#[derive(Debug, Default)]
pub struct LibcBackend {
    _private: (),
}

impl LibcBackend {
    /// The process's allocator (nothing to set up).
    pub fn new() -> LibcBackend {
        LibcBackend { _private: () }
    }
}

/// Whether the process's `aligned_alloc` refuses a size that is not a multiple of the alignment
/// (AddressSanitizer's does; glibc's does not). Asked once, by trying it: the sanitizer's runtime
/// is linked statically and need not export a symbol that would tell.
fn strict_aligned_alloc() -> bool {
    static STRICT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *STRICT.get_or_init(|| {
        // SAFETY: a small valid request; the block, if any, is freed at once.
        unsafe {
            let p = ::libc::aligned_alloc(16, 17);
            ::libc::free(p);
            p.is_null()
        }
    })
}

/// Clears `errno`, so a failing call's errno is its own.
pub(crate) fn clear_errno() {
    // SAFETY: `__errno_location` returns the calling thread's errno, valid for the thread's life.
    unsafe { *::libc::__errno_location() = 0 }
}

/// The calling thread's `errno`.
pub(crate) fn errno() -> i32 {
    // SAFETY: as in `clear_errno`.
    unsafe { *::libc::__errno_location() }
}

/// A C result pointer as a reply: the block, or NULL with the current errno.
pub(crate) fn reply(p: *mut ::libc::c_void) -> Reply {
    match NonNull::new(p.cast::<u8>()) {
        Some(p) => Reply::Ptr(p),
        None => Reply::Null { errno: errno() },
    }
}

impl Backend for LibcBackend {
    fn name(&self) -> String {
        "libc".into()
    }

    unsafe fn call(&mut self, mut req: Request) -> Reply {
        if let Some(answer) = answer_without_calling(&mut req) {
            return answer;
        }
        debug_assert!(FOREIGN_REQUEST_LIMIT < isize::MAX as usize);
        clear_errno();
        // SAFETY (all arms): sizes are at most FOREIGN_REQUEST_LIMIT and alignments valid, checked
        // by `answer_without_calling`; pointers are live blocks of this allocator or null, as the
        // caller of `call` guarantees.
        match req {
            // SAFETY: see above.
            Request::Malloc { size } => reply(unsafe { ::libc::malloc(size) }),
            // SAFETY: see above.
            Request::Calloc { count, size } => reply(unsafe { ::libc::calloc(count, size) }),
            Request::Realloc { ptr, size } => {
                // SAFETY: see above.
                let p = unsafe { ::libc::realloc(ptr.cast(), size) };
                if p.is_null() && size == 0 && !ptr.is_null() {
                    Reply::Freed
                } else {
                    reply(p)
                }
            }
            Request::Free { ptr } => {
                // SAFETY: see above.
                unsafe { ::libc::free(ptr.cast()) };
                Reply::Done
            }
            Request::PosixMemalign { align, size } => {
                let mut p = ptr::null_mut();
                // SAFETY: see above; `p` is a valid out-pointer.
                match unsafe { ::libc::posix_memalign(&mut p, align, size) } {
                    0 => reply(p),
                    e => Reply::Null { errno: e },
                }
            }
            Request::AlignedAlloc { align, size } => {
                if strict_aligned_alloc() {
                    // This allocator (AddressSanitizer's, in a fuzz build) insists on C11's "size a
                    // multiple of the alignment" and fails otherwise, where glibc (whose semantics
                    // the model holds: DR 460 lifted that rule) succeeds. For the power-of-two
                    // alignments that reach here, glibc's aligned_alloc is its memalign: ask that.
                    // SAFETY: see above.
                    reply(unsafe { ::libc::memalign(align, size) })
                } else {
                    // SAFETY: see above.
                    reply(unsafe { ::libc::aligned_alloc(align, size) })
                }
            }
            // SAFETY: see above.
            Request::Memalign { align, size } => reply(unsafe { ::libc::memalign(align, size) }),
            Request::UsableSize { ptr } => {
                // SAFETY: see above.
                Reply::Size(unsafe { ::libc::malloc_usable_size(ptr.cast()) })
            }
        }
    }
}
