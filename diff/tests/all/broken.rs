//! A toy allocator with switchable flaws: the deliberately broken backends the oracles must catch.
//!
//! Without a flaw the toy is a correct (if wasteful) allocator: 16-byte aligned bump allocation in
//! a private arena, with first-fit reuse of freed blocks; so the same traces double as "correct
//! backends stay silent" tests.

use std::collections::HashMap;
use std::ptr::NonNull;

use tagalloc_diff::backend::{Backend, Caps, Reply, Request, ENOMEM};

/// What is wrong with the toy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flaw {
    /// Nothing.
    None,
    /// Every third allocation returns the previous block again (if it is large enough).
    Overlap,
    /// Blocks are 8-byte aligned, never 16.
    Align8,
    /// `calloc` does not clear reused memory.
    DirtyCalloc,
    /// `realloc` copies half of the common prefix.
    HalfRealloc,
    /// `free` writes its free-list link into the next block's payload.
    NeighbourBookkeeping,
    /// The fifth small `malloc` returns NULL.
    NullSmall,
    /// Requests above `PTRDIFF_MAX` get a small block; `calloc`'s product wraps around.
    HugeSuccess,
    /// `malloc_usable_size` says one byte less than asked.
    UsableShort,
    /// `malloc_usable_size` says 16 bytes more than the block has.
    UsableLong,
    /// Requests above `PTRDIFF_MAX` fail with `EINVAL`.
    WrongErrno,
    /// `malloc(13)` panics.
    Panics,
    /// Claims to report misuse but frees anything it is given.
    IgnoresMisuse,
    /// `aligned_alloc` with a non-power-of-two alignment rounds up (old glibc), where libc refuses.
    LenientAlignedAlloc,
}

/// The toy allocator.
pub struct Toy {
    arena: Vec<u128>,
    top: usize,
    free: Vec<(usize, usize)>,
    live: HashMap<usize, (usize, usize)>,
    flaw: Flaw,
    allocations: usize,
    last: Option<(usize, usize)>,
}

const ARENA: usize = 8 << 20;

impl Toy {
    /// A toy with `flaw`.
    pub fn new(flaw: Flaw) -> Toy {
        Toy {
            arena: vec![0; ARENA / 16],
            top: 0,
            free: Vec::new(),
            live: HashMap::new(),
            flaw,
            allocations: 0,
            last: None,
        }
    }

    fn base(&mut self) -> usize {
        self.arena.as_mut_ptr() as usize
    }

    fn alloc(&mut self, size: usize) -> Reply {
        self.allocations += 1;
        if size > isize::MAX as usize {
            return match self.flaw {
                Flaw::HugeSuccess => self.alloc(16),
                Flaw::WrongErrno => Reply::Null {
                    errno: libc::EINVAL,
                },
                _ => Reply::Null { errno: ENOMEM },
            };
        }
        if self.flaw == Flaw::Panics && size == 13 {
            panic!("toy: malloc(13)");
        }
        if self.flaw == Flaw::NullSmall && size <= 64 && self.allocations == 5 {
            return Reply::Null { errno: ENOMEM };
        }
        if self.flaw == Flaw::Overlap && self.allocations % 3 == 0 {
            if let Some((p, _)) = self.last.filter(|&(_, cap)| size <= cap) {
                return Reply::Ptr(NonNull::new(p as *mut u8).unwrap());
            }
        }
        let cap = (size.max(1) + 15) & !15;
        let off = match self.free.iter().position(|&(_, c)| c >= cap) {
            Some(i) => self.free.swap_remove(i).0,
            None => {
                let extra = if self.flaw == Flaw::Align8 { 16 } else { 0 };
                if self.top + cap + extra > ARENA {
                    return Reply::Null { errno: ENOMEM };
                }
                self.top += cap + extra;
                self.top - cap
            }
        };
        let addr = self.base() + off - if self.flaw == Flaw::Align8 { 8 } else { 0 };
        self.live.insert(addr, (off, cap));
        self.last = Some((addr, cap));
        Reply::Ptr(NonNull::new(addr as *mut u8).unwrap())
    }

    fn release(&mut self, addr: usize) {
        if let Some((off, cap)) = self.live.remove(&addr) {
            let link = if self.flaw == Flaw::NeighbourBookkeeping {
                addr + cap
            } else {
                addr
            };
            if cap >= 8 && link + 8 <= self.base() + ARENA {
                // SAFETY: `link` lies in the arena (the block itself, or the next block's start).
                unsafe { (link as *mut u64).write_unaligned(0xdead_beef) };
            }
            self.free.push((off, cap));
        }
    }
}

impl Backend for Toy {
    fn name(&self) -> String {
        format!("toy({:?})", self.flaw)
    }

    fn caps(&self) -> Caps {
        Caps {
            misuse: self.flaw == Flaw::IgnoresMisuse,
            ..Caps::default()
        }
    }

    unsafe fn call(&mut self, req: Request) -> Reply {
        match req {
            Request::Malloc { size } => self.alloc(size),
            Request::Calloc { count, size } => {
                let total = match count.checked_mul(size) {
                    Some(total) => total,
                    // The classic bug: the product wraps around.
                    None if self.flaw == Flaw::HugeSuccess => count.wrapping_mul(size),
                    None => return Reply::Null { errno: ENOMEM },
                };
                let r = self.alloc(total);
                if let (Reply::Ptr(p), false) = (r, self.flaw == Flaw::DirtyCalloc) {
                    // SAFETY: the block is `total` bytes of the arena.
                    unsafe { p.as_ptr().write_bytes(0, total) };
                }
                r
            }
            Request::Realloc { ptr, size } => {
                if ptr.is_null() {
                    return self.alloc(size);
                }
                if size == 0 {
                    self.release(ptr as usize);
                    return Reply::Freed;
                }
                let (_, cap) = self.live[&(ptr as usize)];
                let r = self.alloc(size);
                if let Reply::Ptr(p) = r {
                    let mut n = cap.min(size);
                    if self.flaw == Flaw::HalfRealloc {
                        n /= 2;
                    }
                    // SAFETY: both blocks are in the arena and at least `n` bytes; distinct.
                    unsafe { p.as_ptr().copy_from(ptr, n) };
                    self.release(ptr as usize);
                }
                r
            }
            Request::Free { ptr } => {
                self.release(ptr as usize);
                Reply::Done
            }
            Request::AlignedAlloc { align, size }
                if self.flaw == Flaw::LenientAlignedAlloc && align <= 16 =>
            {
                self.alloc(size)
            }
            Request::PosixMemalign { .. }
            | Request::AlignedAlloc { .. }
            | Request::Memalign { .. } => Reply::Unsupported,
            Request::UsableSize { ptr } => match self.live.get(&(ptr as usize)) {
                None => Reply::Size(0),
                Some(&(_, cap)) => Reply::Size(match self.flaw {
                    Flaw::UsableShort => 0,
                    Flaw::UsableLong => cap + 16,
                    _ => cap,
                }),
            },
        }
    }
}
