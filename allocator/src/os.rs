//! The operating system, behind one small interface.
//!
//! Everything tagalloc asks of the kernel goes through these few functions: moving the program break,
//! mapping, unmapping and remapping anonymous memory, releasing pages, writing a line to stderr and
//! aborting. None of them allocates, panics or formats; each states its preconditions. Memory sources
//! (`crate::source`) build on these; the heap never calls them directly.

use core::ptr::{self, NonNull};

/// The page size. Linux on x86-64 uses 4 KiB base pages; the value is checked once by a unit test
/// against `sysconf(_SC_PAGESIZE)` rather than queried on the allocation path.
pub const PAGE: usize = 4096;

/// Moves the program break by `increment` bytes and returns the old break, or `None` when the kernel
/// refuses (the break stays where it was).
///
/// # Safety
/// The caller must own the memory it releases with a negative increment, and must make sure no other
/// thread moves the break at the same time (see `source::System`).
pub unsafe fn sbrk(increment: isize) -> Option<NonNull<u8>> {
    // SAFETY: sbrk has no memory-safety preconditions of its own; releasing memory someone else
    // still uses is excluded by this function's contract.
    let old = unsafe { libc::sbrk(increment) };
    if old as isize == -1 {
        None
    } else {
        NonNull::new(old.cast())
    }
}

/// The current program break.
pub fn current_break() -> usize {
    // SAFETY: sbrk(0) only reads the break.
    unsafe { libc::sbrk(0) as usize }
}

/// Maps `len` bytes (a multiple of [`PAGE`]) of fresh zeroed read-write anonymous memory.
pub fn map(len: usize) -> Option<NonNull<u8>> {
    map_with(len, libc::PROT_READ | libc::PROT_WRITE, 0)
}

/// Reserves `len` bytes of address space with no access and no commitment, to be opened piece by
/// piece with [`commit`].
pub fn reserve(len: usize) -> Option<NonNull<u8>> {
    map_with(len, libc::PROT_NONE, libc::MAP_NORESERVE)
}

fn map_with(len: usize, prot: i32, extra: i32) -> Option<NonNull<u8>> {
    // SAFETY: an anonymous private mapping at an address of the kernel's choosing cannot alias any
    // existing Rust object.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            prot,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | extra,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        None
    } else {
        NonNull::new(p.cast())
    }
}

/// Makes `[addr, addr + len)` of a reservation readable and writable.
///
/// # Safety
/// The range must lie inside a reservation made by [`reserve`] and owned by the caller.
pub unsafe fn commit(addr: *mut u8, len: usize) -> bool {
    // SAFETY: the range is the caller's own reservation (contract).
    unsafe { libc::mprotect(addr.cast(), len, libc::PROT_READ | libc::PROT_WRITE) == 0 }
}

/// Gives the pages of `[addr, addr + len)` back to the kernel; they read as zero when next touched.
///
/// # Safety
/// The range must be page aligned, mapped, owned by the caller and hold nothing still in use.
pub unsafe fn release(addr: *mut u8, len: usize) {
    // SAFETY: the caller owns the range and no longer needs its contents (contract).
    unsafe {
        libc::madvise(addr.cast(), len, libc::MADV_DONTNEED);
    }
}

/// Unmaps `[addr, addr + len)`.
///
/// # Safety
/// The range must have been mapped by [`map`] (or be part of such a mapping) and nothing may use it
/// afterwards.
pub unsafe fn unmap(addr: *mut u8, len: usize) {
    // SAFETY: the caller gives up the mapping (contract).
    unsafe {
        libc::munmap(addr.cast(), len);
    }
}

/// Resizes the mapping at `addr` from `old` to `new` bytes, moving it if needed.
///
/// # Safety
/// `addr` and `old` must describe exactly a whole mapping made by [`map`] and owned by the caller.
pub unsafe fn remap(addr: *mut u8, old: usize, new: usize) -> Option<NonNull<u8>> {
    // SAFETY: the caller owns the mapping; MREMAP_MAYMOVE keeps its contents.
    let p = unsafe { libc::mremap(addr.cast(), old, new, libc::MREMAP_MAYMOVE) };
    if p == libc::MAP_FAILED {
        None
    } else {
        NonNull::new(p.cast())
    }
}

/// Writes `bytes` to standard error with raw `write(2)` calls, retrying on short writes.
pub fn write_stderr(bytes: &[u8]) {
    write_fd(2, bytes)
}

/// Writes `bytes` to file descriptor `fd` with raw `write(2)` calls, retrying on short writes and
/// interruptions, giving up on any other error.
pub fn write_fd(fd: i32, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: the buffer is a valid slice for its whole length.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n < 0 && errno() == libc::EINTR {
            continue;
        }
        if n <= 0 {
            return;
        }
        // `get`, not an index: no panic path (write(2) never reports more than it was given).
        bytes = bytes.get(n as usize..).unwrap_or_default();
    }
}

/// Ends the process with `SIGABRT`, without unwinding or running any destructor.
pub fn abort() -> ! {
    // SAFETY: abort has no preconditions and does not return.
    unsafe { libc::abort() }
}

/// The calling thread's thread pointer: the address of its thread control block, unique among
/// live threads, and the same in a child after `fork` (whose one thread is a copy of the forking
/// thread, at the same addresses). Aligned to at least 16 bytes, never 0.
#[inline(always)]
pub fn thread_pointer() -> *mut u8 {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    {
        let tp: *mut u8;
        // SAFETY: on x86-64 Linux the word at %fs:0 is the thread control block's pointer to itself
        // (the thread pointer); reading it has no side effects.
        unsafe {
            core::arch::asm!("mov {}, qword ptr fs:[0]", out(reg) tp, options(nostack, readonly, preserves_flags))
        };
        tp
    }
    #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
    {
        // SAFETY: pthread_self has no preconditions; glibc and musl return the thread's control
        // block, as the x86-64 branch reads it.
        unsafe { libc::pthread_self() as *mut u8 }
    }
}

/// Reads `errno`.
pub fn errno() -> i32 {
    // SAFETY: __errno_location always returns the calling thread's errno slot.
    unsafe { *libc::__errno_location() }
}

/// Sets `errno`.
pub fn set_errno(value: i32) {
    // SAFETY: as in `errno`.
    unsafe { *libc::__errno_location() = value }
}

#[cfg(test)]
mod tests {
    /// Closes the pipe's write end, then reads what it holds (up to 4 KiB) and closes the read end.
    fn read_back(fds: [i32; 2]) -> Vec<u8> {
        let mut buf = [0u8; 4096];
        // SAFETY: the write end is ours, closed once; buf has room for its length.
        let n = unsafe {
            libc::close(fds[1]);
            libc::read(fds[0], buf.as_mut_ptr().cast(), buf.len())
        };
        // SAFETY: the read end is ours, closed once.
        unsafe { libc::close(fds[0]) };
        buf[..n.max(0) as usize].to_vec()
    }

    #[test]
    fn page_size_matches_the_kernel() {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        assert_eq!(page as usize, super::PAGE);
    }

    /// A write that succeeds leaves `errno` as it was: an `EINTR` left there by an earlier call
    /// must not make `write_fd` write the same bytes again.
    #[test]
    fn write_fd_writes_once_when_errno_holds_a_stale_eintr() {
        let mut fds = [0; 2];
        // Non-blocking: a loop that rewrote the bytes would fill the pipe and stop, not hang.
        // SAFETY: fds has room for the two descriptors.
        let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK) };
        assert_eq!(r, 0);
        // SAFETY: errno is this thread's own.
        unsafe { *libc::__errno_location() = libc::EINTR };
        super::write_fd(fds[1], b"once\n");
        assert_eq!(read_back(fds), b"once\n");
    }

    /// A write cut short (a signal interrupts it once part of the bytes is in the full pipe) is
    /// retried with the rest: every byte arrives, in order, once.
    #[test]
    fn write_fd_retries_a_short_write() {
        extern "C" fn nothing(_: i32) {}
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let mut fds = [0; 2];
        // SAFETY: fds has room for the two descriptors.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // A handler without SA_RESTART: a blocked write returns what it wrote so far.
        // SAFETY: a zeroed sigaction is valid; the handler does nothing, so it is
        // async-signal-safe; the old action is restored below.
        let old = unsafe {
            let mut sa: libc::sigaction = core::mem::zeroed();
            sa.sa_sigaction = nothing as extern "C" fn(i32) as usize;
            let mut old: libc::sigaction = core::mem::zeroed();
            assert_eq!(libc::sigaction(libc::SIGUSR1, &sa, &mut old), 0);
            old
        };
        // SAFETY: pthread_self has no preconditions.
        let writer = unsafe { libc::pthread_self() };
        let done = Arc::new(AtomicBool::new(false));
        let stop = Arc::clone(&done);
        // Signals for the writing thread alone, until it is done.
        let signaller = std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                // SAFETY: the writer thread outlives this one (joined before it goes on).
                unsafe { libc::pthread_kill(writer, libc::SIGUSR1) };
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        });
        // The reader starts late, so the pipe is full and the write blocked when signals come.
        let rfd = fds[0];
        let reader = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(100));
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                // SAFETY: buf has room for its length; the read end is ours.
                let n = unsafe { libc::read(rfd, buf.as_mut_ptr().cast(), buf.len()) };
                if n <= 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n as usize]);
            }
            got
        });
        // Four times a pipe's default capacity.
        let text: Vec<u8> = (0..256 << 10).map(|i| (i % 251) as u8).collect();
        super::write_fd(fds[1], &text);
        done.store(true, Ordering::Relaxed);
        signaller.join().unwrap();
        // SAFETY: the write end is ours, closed once; the old action was valid.
        unsafe {
            libc::close(fds[1]);
            libc::sigaction(libc::SIGUSR1, &old, core::ptr::null_mut());
        }
        let got = reader.join().unwrap();
        // SAFETY: the read end is ours, closed once.
        unsafe { libc::close(fds[0]) };
        assert_eq!(got.len(), text.len());
        assert!(got == text, "the bytes arrive in order, once");
    }

    #[test]
    fn write_fd_writes_all_the_bytes() {
        let mut fds = [0; 2];
        // SAFETY: fds has room for the two descriptors.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let text = b"tagalloc: stats\nmallocs 3\n";
        super::write_fd(fds[1], text);
        super::write_fd(fds[1], b"");
        assert_eq!(read_back(fds), text);
    }
}
