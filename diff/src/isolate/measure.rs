//! A measurement in a forked child: [`in_fork`] runs a closure there and hands its (plain, `Copy`)
//! result back through shared memory, so a shared object's run starts pristine and a crash or a
//! hang costs only the measurement.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The child's result, in a shared anonymous mapping.
#[repr(C)]
struct Slot<T> {
    done: AtomicBool,
    value: UnsafeCell<T>,
}

/// Runs `f` in a forked child and returns what it returned; `None` if the child died or ran for
/// longer than `limit` (it is killed then).
pub fn in_fork<T: Copy>(limit: Duration, f: impl FnOnce() -> T) -> Option<T> {
    let size = std::mem::size_of::<Slot<T>>();
    // SAFETY: a fresh anonymous shared mapping, touching no existing memory.
    let map = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if map == libc::MAP_FAILED {
        return None;
    }
    let slot = map.cast::<Slot<T>>();
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: as in `in_child` (mod.rs): the child runs `f`, writes its result and `_exit`s.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        super::become_child(parent);
        let v = f();
        // SAFETY: the mapping is page-aligned, zero-filled and ours; only this child writes it,
        // and the parent reads it only after `done` is set.
        unsafe {
            (*slot).value.get().write(v);
            (*slot).done.store(true, Ordering::Release);
            libc::_exit(0)
        }
    }
    let result = if pid < 0 {
        None
    } else {
        let start = Instant::now();
        let mut status = 0;
        loop {
            // SAFETY: `pid` is our child; `status` a valid out-pointer.
            let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if r == pid {
                break;
            }
            if start.elapsed() > limit {
                // SAFETY: our child, not yet reaped.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, &mut status, 0);
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        // SAFETY: the child is gone; `done` says whether it wrote a whole value.
        unsafe {
            (*slot)
                .done
                .load(Ordering::Acquire)
                .then(|| *(*slot).value.get())
        }
    };
    // SAFETY: the mapping made above, no longer used.
    unsafe { libc::munmap(map, size) };
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_comes_back_and_a_crash_is_none() {
        assert_eq!(in_fork(Duration::from_secs(10), || 42u64), Some(42));
        let died = in_fork(Duration::from_secs(10), || -> u64 {
            // SAFETY: abort in the forked child is the point.
            unsafe { libc::abort() }
        });
        assert_eq!(died, None);
    }
}
