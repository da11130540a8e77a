//! Deliberately broken variants of tagalloc, to measure the test suite against (feature `broken`).
//!
//! Each [`Variant`] plants one realistic defect at one site of the allocator: the heap core, the
//! thread caches, the transfer cache, trimming under small pads, large chunks, the aligned calls
//! and the lock-free paths. With the feature on, [`select`] switches one on at run time (one
//! build serves every variant); without it, the sites compile to nothing. No release build and
//! no default build enables the feature: only the suite's measurements do
//! (`cargo test -p tagalloc-diff --features broken`, the fuzz targets built with
//! `--features broken` and run with `TAGALLOC_BROKEN=NAME`).

use core::sync::atomic::{AtomicU8, Ordering};

macro_rules! variants {
    ($($(#[doc = $doc:literal])* $v:ident = $name:literal, $area:literal;)*) => {
        /// A planted defect.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(u8)]
        pub enum Variant {
            /// The allocator as it ships.
            Correct,
            $($(#[doc = $doc])* $v,)*
        }

        impl Variant {
            /// Every defect, in a fixed order.
            pub const ALL: &'static [Variant] = &[$(Variant::$v),*];

            /// The variant's name (`TAGALLOC_BROKEN=NAME`).
            pub const fn name(self) -> &'static str {
                match self {
                    Variant::Correct => "correct",
                    $(Variant::$v => $name,)*
                }
            }

            /// The part of the allocator the defect is in.
            pub const fn area(self) -> &'static str {
                match self {
                    Variant::Correct => "",
                    $(Variant::$v => $area,)*
                }
            }
        }
    };
}

variants! {
    /// `place` forgets to set the next block's `PREV_USED` when it hands out a whole block.
    PlaceNoPrevUsed = "place-no-prev-used", "heap core";
    /// `place` splits off remainders of 16 bytes, below the minimum block.
    SplitSliver = "split-sliver", "heap core";
    /// `free` does not coalesce with a free next block.
    NoCoalesceNext = "no-coalesce-next", "heap core";
    /// `calloc`, after clearing a block, writes one zero byte past the block's end, onto the next
    /// block's header. AddressSanitizer builds stop at that write (the header is poisoned:
    /// `crate::track`).
    CallocPastBlock = "calloc-past-block", "heap core";
    /// With a `top_pad` below a page, trimming rounds the released length up instead of down.
    TrimSmallPad = "trim-small-pad", "trimming";
    /// The thread caches' size classes forget the header: a request 1–7 bytes past a class's
    /// edge gets the class below.
    CacheClassEdge = "cache-class-edge", "thread cache";
    /// A batch leaving a thread cache is counted one block short.
    CacheBatchCount = "cache-batch-count", "thread cache";
    /// `free`'s cache push does not mark the block as cached.
    CachePushNoMark = "cache-push-no-mark", "thread cache";
    /// The transfer cache hands the same batch to two threads: a hand-off that is not exclusive.
    CentralTakeTwice = "central-take-twice", "transfer cache";
    /// The transfer cache keeps a batch one block short.
    CentralPutShort = "central-put-short", "transfer cache";
    /// A large chunk's header claims 8 bytes more than its mapping holds.
    LargeUsableLong = "large-usable-long", "large chunks";
    /// `memalign` keeps a leading gap smaller than the minimum block as a free block.
    MemalignSmallGap = "memalign-small-gap", "aligned calls";
    /// `memalign` of 4 KiB or more aligns to half the alignment asked.
    MemalignHalfAlign = "memalign-half-align", "aligned calls";
    /// The lock-free `realloc` keeps a block in place for a size 8 bytes past its usable size.
    ReallocInPlaceOver = "realloc-in-place-over", "lock-free realloc";
}

static ACTIVE: AtomicU8 = AtomicU8::new(Variant::Correct as u8);

/// Switches `v` on (and every other defect off).
pub fn select(v: Variant) {
    ACTIVE.store(v as u8, Ordering::Relaxed);
}

/// The variant switched on.
pub fn selected() -> Variant {
    let n = ACTIVE.load(Ordering::Relaxed);
    Variant::ALL
        .iter()
        .copied()
        .find(|v| *v as u8 == n)
        .unwrap_or(Variant::Correct)
}

/// The variant called `name`.
pub fn by_name(name: &str) -> Option<Variant> {
    if name == "correct" {
        return Some(Variant::Correct);
    }
    Variant::ALL.iter().copied().find(|v| v.name() == name)
}

/// Whether defect `v` is switched on.
#[inline]
pub(crate) fn on(v: Variant) -> bool {
    ACTIVE.load(Ordering::Relaxed) == v as u8
}
