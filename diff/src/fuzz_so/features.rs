//! The fuzzer's feedback without coverage: what each call did, as a few 64-bit numbers.
//!
//! A *feature* is a hash. For every call the allocator answers, three are noted:
//! - its kind × size class (the bit length of the bytes asked, and of the alignment for the
//!   aligned calls) × outcome: a block (fresh, or an address freed earlier in the trace, and the
//!   block's alignment class), NULL with its `errno`, `realloc` in place, moved or freeing, `free`
//!   done, a usable size (its bit length), unsupported, misuse reported;
//! - its kind × the number of live blocks (bit length): how deep into a heap the trace got;
//! - the kind of the call before it × its kind;
//! - for a call that returned a block: its kind × size class × how many blocks of that size class
//!   were freed and not yet handed out again (up to 15): how full the allocator's free list for
//!   the size may be. Allocators change behaviour at such depths (glibc's tcache holds 7 blocks
//!   of a size), and a trace that frees one more block of a size than any before is kept, so the
//!   fuzzer climbs towards them.
//!
//! A trace that shows a feature no earlier trace showed joins the corpus ([`super::corpus`]).
//! Coverage counters of an instrumented object give features of their own ([`super::coverage`]),
//! told apart by their top bit ([`COVERAGE_BIT`]), which outcome features never have.
//!
//! The notes of one trace are a value, [`Notes`], which the fuzz loop makes for that trace and the
//! backend wrapper shows every call to ([`crate::backend::Under::observed`]); nothing of it is
//! process-wide, so two fuzzing runs in one process (tests, threads) never see each other's
//! calls. For a shared object the notes fill in the forked child, whose list of features, read at
//! the end of the trace, goes to the parent over the isolate wire
//! ([`crate::isolate::run_collecting`]); for an in-process backend, they are read here after the
//! run ([`super::test`]).

use super::coverage::Counters;
use crate::backend::{Reply, Request};

/// The top bit, set in coverage features and clear in outcome features.
pub const COVERAGE_BIT: u64 = 1 << 63;

/// Freed addresses remembered, to tell a reused block from a fresh one.
const FREED: usize = 16;

/// What the calls of one trace showed so far.
#[derive(Debug)]
pub struct Notes {
    features: Vec<u64>,
    /// The last [`FREED`] addresses freed (zero: none).
    freed: [usize; FREED],
    next_freed: usize,
    /// Blocks live (as far as the replies tell): address and size class.
    live: Vec<(usize, u64)>,
    /// Per size class, blocks freed and not yet followed by an allocation of the class.
    pending: [u8; 65],
    /// Kind of the previous call (0: none yet).
    last: u64,
}

impl Default for Notes {
    /// Notes of no call yet.
    fn default() -> Notes {
        Notes {
            features: Vec::new(),
            freed: [0; FREED],
            next_freed: 0,
            live: Vec::new(),
            pending: [0; 65],
            last: 0,
        }
    }
}

/// splitmix64's finaliser: a hash of `x` whose bits all depend on all of its bits.
pub(super) fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The feature of the fields `parts` (each below 2^16), with the top bit clear.
fn feature(parts: [u64; 4]) -> u64 {
    let packed = parts
        .iter()
        .fold(0u64, |acc, &p| (acc << 16) | (p & 0xffff));
    mix(packed) & !COVERAGE_BIT
}

/// Bit length of `n`: 0 for 0, 1 for 1, 64 for `usize::MAX`.
fn class(n: usize) -> u64 {
    u64::from(usize::BITS - n.leading_zeros())
}

/// The call's kind (1 to 8) and its size class.
fn kind_and_class(req: &Request) -> (u64, u64) {
    match *req {
        Request::Malloc { size } => (1, class(size)),
        Request::Calloc { count, size } => (2, class(count.saturating_mul(size))),
        Request::Realloc { ptr, size } => (3, class(size) | (u64::from(ptr.is_null()) << 8)),
        Request::Free { ptr } => (4, u64::from(ptr.is_null())),
        Request::PosixMemalign { align, size } => (5, class(size) | (class(align) << 8)),
        Request::AlignedAlloc { align, size } => (6, class(size) | (class(align) << 8)),
        Request::Memalign { align, size } => (7, class(size) | (class(align) << 8)),
        Request::UsableSize { ptr } => (8, u64::from(ptr.is_null())),
    }
}

impl Notes {
    /// `addr` was freed (or moved from by `realloc`).
    fn freed(&mut self, addr: usize) {
        self.freed[self.next_freed] = addr;
        self.next_freed = (self.next_freed + 1) % FREED;
        if let Some(i) = self.live.iter().position(|&(a, _)| a == addr) {
            let (_, class) = self.live.swap_remove(i);
            let pending = &mut self.pending[class as usize];
            *pending = pending.saturating_add(1);
        }
    }

    /// A block of size class `class` was handed out at `addr`; returns how many of the class were
    /// pending before.
    fn allocated(&mut self, addr: usize, class: u64) -> u64 {
        self.live.push((addr, class));
        let pending = &mut self.pending[class as usize];
        let before = u64::from(*pending);
        *pending = pending.saturating_sub(1);
        before.min(15)
    }

    /// The outcome of `req` answered `reply`, updating what is live and freed; and for a block
    /// handed out, the depth feature's count.
    fn outcome(&mut self, req: &Request, reply: &Reply) -> (u64, Option<u64>) {
        let old = match *req {
            Request::Realloc { ptr, .. } | Request::Free { ptr } => ptr as usize,
            _ => 0,
        };
        let outcome = match *reply {
            Reply::Ptr(p) => {
                let addr = p.as_ptr() as usize;
                let align = u64::from(addr.trailing_zeros().min(12));
                if matches!(req, Request::UsableSize { .. }) {
                    return (100 + align, None);
                }
                if old != 0 {
                    if addr == old {
                        return (200, None);
                    }
                    self.freed(old);
                }
                let reused = self.freed.contains(&addr);
                if reused {
                    // Reused once: a second hand-out of it is no reuse of a freed block.
                    self.freed
                        .iter_mut()
                        .filter(|a| **a == addr)
                        .for_each(|a| *a = 0);
                }
                let depth = self.allocated(addr, class(req_bytes(req)));
                return (300 + 16 * u64::from(reused) + align, Some(depth));
            }
            Reply::Null { errno } => 400 + (errno as u64 & 0xff),
            Reply::Freed => {
                self.freed(old);
                500
            }
            Reply::Done => {
                if old != 0 {
                    self.freed(old);
                }
                600
            }
            Reply::Size(n) => 700 + class(n),
            Reply::Unsupported => 800,
            Reply::Misuse(_) => 900,
        };
        (outcome, None)
    }
}

/// The bytes `req` asks for (0 for `free` and `malloc_usable_size`).
fn req_bytes(req: &Request) -> usize {
    match *req {
        Request::Malloc { size }
        | Request::Realloc { size, .. }
        | Request::PosixMemalign { size, .. }
        | Request::AlignedAlloc { size, .. }
        | Request::Memalign { size, .. } => size,
        Request::Calloc { count, size } => count.saturating_mul(size),
        Request::Free { .. } | Request::UsableSize { .. } => 0,
    }
}

impl Notes {
    /// Notes the features of one call and its reply (the observer of [`crate::backend::Under`]).
    pub fn observe(&mut self, req: &Request, reply: &Reply) {
        let (kind, size) = kind_and_class(req);
        let (outcome, depth) = self.outcome(req, reply);
        let (live, last) = (class(self.live.len()), self.last);
        self.features.push(feature([1, kind, size, outcome]));
        self.features.push(feature([2, kind, live, 0]));
        self.features.push(feature([3, last, kind, 0]));
        if let Some(depth) = depth {
            self.features
                .push(feature([4, kind, class(req_bytes(req)), depth]));
        }
        self.last = kind;
    }

    /// The features of the trace: those noted, and one for every counter of `coverage` that ran;
    /// sorted and without repeats.
    pub fn features(self, coverage: &Counters) -> Vec<u64> {
        let mut features = self.features;
        coverage.append(&mut features);
        features.sort_unstable();
        features.dedup();
        features
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ptr::NonNull;

    /// A trace's calls and replies, observed.
    fn features(calls: &[(Request, Reply)]) -> Vec<u64> {
        let mut notes = Notes::default();
        for (req, reply) in calls {
            notes.observe(req, reply);
        }
        notes.features(&Counters::default())
    }

    #[test]
    fn a_reused_block_and_an_errno_are_features_of_their_own() {
        let p = NonNull::new(0x1000 as *mut u8).unwrap();
        let q = NonNull::new(0x2000 as *mut u8).unwrap();
        let malloc = |at| (Request::Malloc { size: 24 }, Reply::Ptr(at));
        let fresh = features(&[malloc(p)]);
        let reused = features(&[
            malloc(p),
            (Request::Free { ptr: p.as_ptr() }, Reply::Done),
            malloc(p),
        ]);
        assert!(
            fresh.iter().all(|f| reused.contains(f)),
            "{fresh:?} {reused:?}"
        );
        assert!(reused.len() > fresh.len() + 3, "{reused:?}");
        assert_eq!(
            features(&[malloc(q)]),
            fresh,
            "a fresh block at another address is the same feature"
        );
        let null = features(&[(
            Request::Malloc { size: usize::MAX },
            Reply::Null { errno: 12 },
        )]);
        // The same kind after no call, and at no live block: one feature shared, two new.
        assert_eq!(
            null.iter().filter(|f| fresh.contains(f)).count(),
            1,
            "{null:?}"
        );
        assert!(fresh.iter().chain(&reused).all(|f| f & COVERAGE_BIT == 0));
    }
}
