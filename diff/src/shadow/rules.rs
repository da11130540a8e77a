//! What each call must do under a [`Contract`]: when it must succeed, when it must fail and with
//! which `errno`, and how its result must be aligned. Each [`Expect`] names the rule it applies,
//! and every report quotes it.
//!
//! [`Contract::Glibc`] (the default, tagalloc's and libc's):
//! - Any request above `PTRDIFF_MAX`, and `calloc` whose product overflows or exceeds it, must fail
//!   with `ENOMEM`.
//! - `posix_memalign` must refuse (`EINVAL`) an alignment that is not a power-of-two multiple of
//!   `sizeof(void *)`; `memalign` one above `SIZE_MAX / 2 + 1`. `aligned_alloc` with a
//!   non-power-of-two alignment may refuse (`EINVAL`, glibc 2.38 and later) or round it up
//!   (earlier glibc).
//! - A request is *owed* (must succeed) when it is small ([`Limits::request`]), the trace's
//!   cumulative demand is within [`Limits::budget`], and no injected fault is pending. Any other
//!   request may fail, with `ENOMEM` only. `malloc(0)` is owed like any small request.
//! - A block of `n` bytes must be aligned for any object of `n` bytes: to 16 (`max_align_t`) when
//!   `n >= 16`, else to the largest power of two not above `n`; aligned calls to their (rounded
//!   up) alignment as well.
//!
//! [`Contract::Posix`] keeps what POSIX and C17 require of every allocator and drops glibc's own
//! choices: `malloc(0)` (and `calloc` of 0 bytes) may return NULL, with any `errno`; `memalign`,
//! in no standard, may refuse an alignment of 0 or one that is not a power of two, with any
//! `errno`, and then owes only the fundamental alignment; `aligned_alloc` may refuse any
//! non-power-of-two alignment, setting `EINVAL` (or `ENOMEM`) as POSIX.1-2024, which added it, says
//! (C17 asks only for NULL). The rest stands: no object above `PTRDIFF_MAX` (pointer differences
//! within it would overflow), `calloc` checks its product, `posix_memalign` validates its
//! alignment, failures of the standard calls set `ENOMEM` as POSIX says, and small requests are
//! owed.
//!
//! [`Contract::MallocLab`] is the CS:APP malloc lab's specification: every block 8-aligned
//! ([`LAB_ALIGN`]), `malloc(0)` may return NULL, failures set no particular `errno`, no request
//! above the lab's heap ([`LAB_HEAP`]) can succeed, and a request is owed while the trace's demand
//! stays within that heap ([`Limits::LAB`]). The aligned calls, and `calloc` and
//! `malloc_usable_size` where the code does not define them, are not called
//! ([`crate::backend::Under`]).

use crate::backend::{Limits, EINVAL, ENOMEM};
use crate::op::PTRDIFF_MAX;

/// Whether a call must succeed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Failure is a bug.
    Success,
    /// Success is a bug.
    Failure,
    /// Either is correct.
    Either,
}

/// A set of rules an allocator is held to (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Contract {
    /// glibc's documented behaviour, edge cases included (tagalloc's own contract).
    #[default]
    Glibc,
    /// What POSIX and C17 require, and no more.
    Posix,
    /// The CS:APP malloc lab's specification.
    MallocLab,
}

impl Contract {
    /// Every contract, in the order `--contract` lists them.
    pub const ALL: [Contract; 3] = [Contract::Glibc, Contract::Posix, Contract::MallocLab];

    /// The name `--contract` takes.
    pub fn name(self) -> &'static str {
        match self {
            Contract::Glibc => "glibc",
            Contract::Posix => "posix",
            Contract::MallocLab => "malloc-lab",
        }
    }

    /// The contract named `name`.
    pub fn from_name(name: &str) -> Option<Contract> {
        Contract::ALL.into_iter().find(|c| c.name() == name)
    }
}

impl std::fmt::Display for Contract {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The malloc lab's alignment (`ALIGNMENT` in its `mm.c`).
pub const LAB_ALIGN: usize = 8;
/// The malloc lab's heap (`MAX_HEAP` in its `memlib.c`: 20 MiB).
pub const LAB_HEAP: usize = 20 << 20;

/// What a call must do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expect {
    /// Whether it must succeed.
    pub need: Need,
    /// The `errno` values a failure may set (empty: any).
    pub errnos: &'static [i32],
    /// Alignment a returned block must have.
    pub align: usize,
    /// Bytes the block must hold.
    pub size: usize,
    /// The rule that decided `need` and `errnos`, in words.
    pub rule: &'static str,
}

impl Expect {
    /// The rule broken by a block that is not aligned to `self.align`.
    pub fn align_rule(&self, contract: Contract) -> &'static str {
        match contract {
            Contract::MallocLab => "every block is 8-byte aligned (the lab's ALIGNMENT)",
            _ => {
                "a block of n bytes is aligned for any object of n bytes (to 16 from 16 bytes \
                 up, else to the largest power of two not above n), and to the alignment asked"
            }
        }
    }
}

/// What the rules need to know about the run so far.
#[derive(Clone, Copy, Debug)]
pub struct Context {
    /// The backend's limits.
    pub limits: Limits,
    /// Cumulative demand of the trace so far (see [`cost`]).
    pub spent: usize,
    /// Whether an injected fault may still fail the call.
    pub faults_pending: bool,
    /// The rules in force.
    pub contract: Contract,
}

/// What a successful request of `size` bytes aligned to `align` adds to the trace's demand: the
/// size rounded to a page (plus a page) for page-sized blocks, plus 64 bytes of overhead for small
/// ones, plus the alignment.
pub fn cost(size: usize, align: usize) -> usize {
    let body = if size < 4096 {
        size + 64
    } else {
        size.saturating_add(4095) / 4096 * 4096 + 4096
    };
    body.saturating_add(align)
}

/// The alignment `malloc(size)` must give.
pub fn fundamental_align(size: usize) -> usize {
    if size >= 16 {
        16
    } else if size == 0 {
        1
    } else {
        1 << (usize::BITS - 1 - size.leading_zeros())
    }
}

const ENOMEM_ONLY: &[i32] = &[ENOMEM];
const EINVAL_ONLY: &[i32] = &[EINVAL];
const ANY_ERRNO: &[i32] = &[];

const TOO_LARGE: &str = "a request above PTRDIFF_MAX fails with ENOMEM";
const LAB_TOO_LARGE: &str = "no request above the lab's 20 MiB heap succeeds";
const OWED: &str = "a small request succeeds while the trace's demand is within the budget and no \
                    fault is pending";
const LAB_OWED: &str = "a request succeeds while the trace's demand fits the lab's 20 MiB heap";
const MAY_FAIL: &str = "a request beyond what is owed may fail, with ENOMEM only";
const LAB_MAY_FAIL: &str = "a request beyond the lab's heap may fail (errno unspecified)";
const ZERO_MAY_FAIL: &str = "malloc(0) returns NULL or a unique block (errno unspecified)";

fn sized(size: usize, align: usize, ctx: &Context) -> Expect {
    let lab = ctx.contract == Contract::MallocLab;
    let owed = size.saturating_add(align) <= ctx.limits.request
        && ctx.spent.saturating_add(cost(size, align)) <= ctx.limits.budget
        && !ctx.faults_pending;
    let (need, errnos, rule) = if size > PTRDIFF_MAX && !lab {
        (Need::Failure, ENOMEM_ONLY, TOO_LARGE)
    } else if lab && size > LAB_HEAP {
        (Need::Failure, ANY_ERRNO, LAB_TOO_LARGE)
    } else if size == 0 && ctx.contract != Contract::Glibc {
        (Need::Either, ANY_ERRNO, ZERO_MAY_FAIL)
    } else if owed {
        (
            Need::Success,
            ENOMEM_ONLY,
            if lab { LAB_OWED } else { OWED },
        )
    } else if lab {
        (Need::Either, ANY_ERRNO, LAB_MAY_FAIL)
    } else {
        (Need::Either, ENOMEM_ONLY, MAY_FAIL)
    };
    let align = if lab {
        LAB_ALIGN
    } else {
        fundamental_align(size).max(align)
    };
    Expect {
        need,
        errnos,
        align,
        size,
        rule,
    }
}

fn refused(errnos: &'static [i32], size: usize, rule: &'static str) -> Expect {
    Expect {
        need: Need::Failure,
        errnos,
        align: 1,
        size,
        rule,
    }
}

/// `malloc(size)`, and `realloc(p, size)` for `size > 0`.
pub fn malloc(size: usize, ctx: &Context) -> Expect {
    sized(size, 1, ctx)
}

/// `calloc(count, size)`.
pub fn calloc(count: usize, size: usize, ctx: &Context) -> Expect {
    match count.checked_mul(size) {
        Some(total) => sized(total, 1, ctx),
        None if ctx.contract == Contract::MallocLab => refused(
            ANY_ERRNO,
            usize::MAX,
            "calloc whose product overflows fails",
        ),
        None => refused(
            ENOMEM_ONLY,
            usize::MAX,
            "calloc whose product overflows fails with ENOMEM",
        ),
    }
}

/// `memalign(align, size)`.
pub fn memalign(align: usize, size: usize, ctx: &Context) -> Expect {
    if ctx.contract == Contract::Posix {
        if align == 0 || !align.is_power_of_two() {
            let mut e = sized(size, 1, ctx);
            if e.need == Need::Success {
                e.need = Need::Either;
            }
            e.errnos = ANY_ERRNO;
            e.rule = "memalign is in no standard: an alignment of 0 or not a power of two may \
                      fail (errno unspecified), and then only the fundamental alignment is owed";
            return e;
        }
        // A power of two: owed like aligned_alloc, but a failure's errno is unspecified.
        let mut e = sized(size, align, ctx);
        e.errnos = ANY_ERRNO;
        return e;
    }
    if align > usize::MAX / 2 + 1 {
        return refused(
            EINVAL_ONLY,
            size,
            "memalign refuses (EINVAL) an alignment above SIZE_MAX / 2 + 1",
        );
    }
    sized(size, align.max(1).next_power_of_two(), ctx)
}

/// `posix_memalign(&p, align, size)`.
pub fn posix_memalign(align: usize, size: usize, ctx: &Context) -> Expect {
    let word = std::mem::size_of::<usize>();
    if align % word != 0 || !align.is_power_of_two() {
        return refused(
            EINVAL_ONLY,
            size,
            "posix_memalign refuses (EINVAL) an alignment that is not a power-of-two multiple \
             of sizeof(void *)",
        );
    }
    sized(size, align, ctx)
}

/// `aligned_alloc(align, size)`.
pub fn aligned_alloc(align: usize, size: usize, ctx: &Context) -> Expect {
    if align.is_power_of_two() {
        return sized(size, align, ctx);
    }
    // Refusing is C17 and glibc 2.38; rounding up like memalign is older glibc.
    let mut e = memalign(align, size, ctx);
    if e.need == Need::Success {
        e.need = Need::Either;
    }
    e.errnos = &[EINVAL, ENOMEM];
    e.rule = "aligned_alloc with an alignment that is not a power of two fails with EINVAL \
              (POSIX.1-2024, glibc 2.38; C17 asks only for NULL) or rounds it up (older glibc)";
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    const CTX: Context = Context {
        limits: Limits::PROCESS,
        spent: 0,
        faults_pending: false,
        contract: Contract::Glibc,
    };

    #[test]
    fn contracts_differ_where_the_standards_leave_room() {
        let posix = Context {
            contract: Contract::Posix,
            ..CTX
        };
        let lab = Context {
            contract: Contract::MallocLab,
            limits: Limits::LAB,
            ..CTX
        };
        assert_eq!(malloc(0, &CTX).need, Need::Success);
        assert_eq!(malloc(0, &posix).need, Need::Either);
        assert!(malloc(0, &posix).errnos.is_empty());
        assert_eq!(memalign(0, 8, &posix).need, Need::Either);
        assert_eq!(memalign(0, 8, &CTX).need, Need::Success);
        assert_eq!(memalign(24, 100, &posix).align, 16);
        assert_eq!(malloc(SIZE_MAX_, &posix).need, Need::Failure);
        assert_eq!(malloc(1, &lab).align, LAB_ALIGN);
        assert_eq!(malloc(LAB_HEAP + 1, &lab).need, Need::Failure);
        assert_eq!(malloc(LAB_HEAP + 1, &CTX).need, Need::Either);
        assert_eq!(malloc(4096, &lab).need, Need::Success);
        assert!(malloc(LAB_HEAP, &lab).errnos.is_empty());
        for c in Contract::ALL {
            assert_eq!(Contract::from_name(c.name()), Some(c));
        }
    }

    const SIZE_MAX_: usize = usize::MAX;

    #[test]
    fn hostile_requests_must_fail() {
        assert_eq!(malloc(PTRDIFF_MAX + 1, &CTX).need, Need::Failure);
        assert_eq!(malloc(PTRDIFF_MAX, &CTX).need, Need::Either);
        assert_eq!(calloc(1 << 32, 1 << 32, &CTX).need, Need::Failure);
        assert_eq!(calloc(2, PTRDIFF_MAX / 2 + 1, &CTX).need, Need::Failure);
        assert_eq!(posix_memalign(4, 8, &CTX).errnos, &[EINVAL]);
        assert_eq!(posix_memalign(24, 8, &CTX).need, Need::Failure);
        assert_eq!(memalign(usize::MAX, 8, &CTX).need, Need::Failure);
    }

    #[test]
    fn small_requests_are_owed() {
        assert_eq!(malloc(0, &CTX).need, Need::Success);
        assert_eq!(memalign(24, 100, &CTX).align, 32);
        assert_eq!(aligned_alloc(24, 100, &CTX).need, Need::Either);
        let pending = Context {
            faults_pending: true,
            ..CTX
        };
        assert_eq!(malloc(8, &pending).need, Need::Either);
        assert_eq!(fundamental_align(8), 8);
        assert_eq!(fundamental_align(15), 8);
        assert_eq!(fundamental_align(100), 16);
    }
}
