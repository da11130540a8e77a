//! What each call must do, in glibc's terms: when it must succeed, when it must fail and with which
//! `errno`, and how its result must be aligned.
//!
//! - Any request above `PTRDIFF_MAX`, and `calloc` whose product overflows or exceeds it, must fail
//!   with `ENOMEM`.
//! - `posix_memalign` must refuse (`EINVAL`) an alignment that is not a power-of-two multiple of
//!   `sizeof(void *)`; `memalign` one above `SIZE_MAX / 2 + 1`. `aligned_alloc` with a
//!   non-power-of-two alignment may refuse (`EINVAL`, glibc 2.38 and later) or round it up
//!   (earlier glibc).
//! - A request is *owed* (must succeed) when it is small ([`Limits::request`]), the trace's
//!   cumulative demand is within [`Limits::budget`], and no injected fault is pending. Any other
//!   request may fail, with `ENOMEM` only.
//! - A block of `n` bytes must be aligned for any object of `n` bytes: to 16 (`max_align_t`) when
//!   `n >= 16`, else to the largest power of two not above `n`; aligned calls to their (rounded
//!   up) alignment as well.

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

/// What a call must do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expect {
    /// Whether it must succeed.
    pub need: Need,
    /// The `errno` values a failure may set.
    pub errnos: &'static [i32],
    /// Alignment a returned block must have.
    pub align: usize,
    /// Bytes the block must hold.
    pub size: usize,
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

fn sized(size: usize, align: usize, ctx: &Context) -> Expect {
    let need = if size > PTRDIFF_MAX {
        Need::Failure
    } else if size.saturating_add(align) <= ctx.limits.request
        && ctx.spent.saturating_add(cost(size, align)) <= ctx.limits.budget
        && !ctx.faults_pending
    {
        Need::Success
    } else {
        Need::Either
    };
    Expect {
        need,
        errnos: ENOMEM_ONLY,
        align: fundamental_align(size).max(align),
        size,
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
        None => Expect {
            need: Need::Failure,
            errnos: ENOMEM_ONLY,
            align: 1,
            size: usize::MAX,
        },
    }
}

/// `memalign(align, size)`.
pub fn memalign(align: usize, size: usize, ctx: &Context) -> Expect {
    if align > usize::MAX / 2 + 1 {
        return Expect {
            need: Need::Failure,
            errnos: EINVAL_ONLY,
            align: 1,
            size,
        };
    }
    sized(size, align.max(1).next_power_of_two(), ctx)
}

/// `posix_memalign(&p, align, size)`.
pub fn posix_memalign(align: usize, size: usize, ctx: &Context) -> Expect {
    let word = std::mem::size_of::<usize>();
    if align % word != 0 || !align.is_power_of_two() {
        return Expect {
            need: Need::Failure,
            errnos: EINVAL_ONLY,
            align: 1,
            size,
        };
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
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    const CTX: Context = Context {
        limits: Limits::PROCESS,
        spent: 0,
        faults_pending: false,
    };

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
