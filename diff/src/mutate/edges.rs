//! The values the mutator steers sizes, alignments and tunables towards: where allocators break.
//!
//! Each is drawn from tagalloc's own geometry ([`tagalloc::layout`], [`tagalloc::os::PAGE`], the
//! default and largest mmap thresholds) and from the trace being mutated (its own thresholds and
//! pads), so the edges move with the configuration under test:
//! - size-class and exact-bin edges: requests whose block is `MIN_BLOCK + ALIGN k`, ± 1;
//! - the minimum block: every request up to it, and one past;
//! - the sorted bins above the exact ones (four per power of two), ± 1;
//! - the mmap threshold (the trace's, the default, the largest) ± 16, ± 1, less a header;
//! - page multiples ± 16 and ± 1, the trace's `top_pad` and `trim_threshold` ± 16;
//! - hostile sizes: `PTRDIFF_MAX` and `SIZE_MAX` and their neighbours, large powers of two;
//! - for alignments: powers of two, mostly small, with their neighbours and hostile ones.

use tagalloc::heap::MMAP_THRESHOLD_MAX;
use tagalloc::layout::{ALIGN, HEADER, MIN_BLOCK};
use tagalloc::os::PAGE;
use tagalloc::Config;

use super::Rng;
use crate::op::{Trace, ALIGNS, PTRDIFF_MAX, SIZES};
use crate::tunables::{CORNERS, MAX_CACHE_LIMIT, MAX_TRIM_DELAY, SMALL_CORNERS};

/// Exact bins (and thread-cache size classes): blocks of `MIN_BLOCK + ALIGN k` for `k` below
/// this, so 32 to 1024 bytes (`allocator/src/binning.rs`, `cache.rs`).
const EXACT_BINS: usize = 63;
/// The largest power of two whose quarter bins the mutator aims at (64 MiB blocks).
const TOP_BIN_LOG: u32 = 26;

/// A small offset around an edge: mostly ± 1 and 0, sometimes a header or 16 bytes.
fn nudge(rng: &mut Rng) -> isize {
    const D: [isize; 9] = [
        -1,
        0,
        1,
        -1,
        1,
        -(HEADER as isize),
        HEADER as isize,
        -16,
        16,
    ];
    D[rng.below(D.len())]
}

fn plus(v: usize, d: isize) -> usize {
    v.saturating_add_signed(d)
}

/// The request whose block is exactly `block` bytes.
fn request_for(block: usize) -> usize {
    block - HEADER
}

/// A size where allocators break, often near `current` or the trace's own thresholds.
pub fn size(rng: &mut Rng, trace: &Trace, current: usize) -> usize {
    match rng.below(12) {
        // Near the value it replaces.
        0 => plus(current, nudge(rng)),
        1 => match rng.below(3) {
            0 => current.saturating_mul(2),
            1 => current / 2,
            _ => plus(current, ALIGN as isize),
        },
        // Size-class and exact-bin edges.
        2 | 3 => {
            let block = MIN_BLOCK + ALIGN * rng.below(EXACT_BINS + 1);
            plus(request_for(block), [-1, 0, 1][rng.below(3)])
        }
        // The minimum block and everything under it.
        4 => rng.below(request_for(MIN_BLOCK) + 2),
        // Sorted bins: four per power of two above the exact ones.
        5 => {
            let log = 10 + rng.below((TOP_BIN_LOG - 9) as usize) as u32;
            let block = (1usize << log) + rng.below(4) * (1usize << (log - 2));
            plus(request_for(block), [-1, 0, 1][rng.below(3)])
        }
        // The mmap threshold in force, the default one, the largest.
        6 | 7 => {
            let t = match rng.below(4) {
                0 | 1 => trace
                    .config
                    .mmap_threshold
                    .map_or(Config::DEFAULT.mmap_threshold, |v| v as usize),
                2 => Config::DEFAULT.mmap_threshold,
                _ => MMAP_THRESHOLD_MAX,
            };
            let t = if rng.below(3) == 0 {
                t.saturating_sub(HEADER)
            } else {
                t
            };
            plus(t, nudge(rng))
        }
        // Page multiples, and the trace's pad and trim threshold.
        8 => plus(PAGE * (1 + small_count(rng, 64)), nudge(rng)),
        9 => {
            let pad = match rng.below(2) {
                0 => trace.config.top_pad.map(|v| v as usize),
                _ => trace.config.trim_threshold.map(|v| v as usize),
            };
            plus(pad.unwrap_or(Config::DEFAULT.top_pad), nudge(rng))
        }
        // Requests that must fail.
        10 => match rng.below(4) {
            0 => plus(PTRDIFF_MAX, nudge(rng)),
            1 => usize::MAX - rng.below(2 * PAGE),
            2 => 1usize << (32 + rng.below(32)),
            _ => PTRDIFF_MAX - request_for(MIN_BLOCK) - rng.below(PAGE),
        },
        // The byte encoding's own table.
        _ => SIZES[rng.below(SIZES.len())],
    }
}

/// A count below `max`, small ones far more often than large ones.
pub(super) fn small_count(rng: &mut Rng, max: usize) -> usize {
    let bits = rng.below(max.ilog2() as usize + 1);
    rng.below((1 << bits).min(max))
}

/// An alignment where allocators break: mostly a power of two, sometimes its neighbour or a
/// hostile value.
pub fn align(rng: &mut Rng, current: usize) -> usize {
    match rng.below(8) {
        0..=3 => 1usize << rng.below(17),
        4 => 1usize << (17 + rng.below(47)),
        5 => plus(1usize << rng.below(13), [-1, 1][rng.below(2)]),
        6 => match current.checked_mul(2) {
            Some(v) if rng.below(2) == 0 => v,
            _ => (current / 2).max(1),
        },
        _ => ALIGNS[rng.below(ALIGNS.len())],
    }
}

/// A `calloc` pair whose product lands just below or past `PTRDIFF_MAX` or `SIZE_MAX`.
pub fn calloc_overflow(rng: &mut Rng) -> (usize, usize) {
    let k = 1 + rng.below(62) as u32;
    let count = 1usize << k;
    let limit = if rng.below(2) == 0 {
        PTRDIFF_MAX
    } else {
        usize::MAX
    };
    let size = plus(limit >> k, [0, 1, -1][rng.below(3)]);
    (count, size)
}

/// A value for a size tunable (`mmap_threshold`, `trim_threshold`, `top_pad`).
pub fn tunable_size(rng: &mut Rng) -> u32 {
    let v = match rng.below(4) {
        0 => CORNERS[rng.below(CORNERS.len())],
        1 => plus(PAGE * small_count(rng, 64), nudge(rng)),
        2 => plus(
            request_for(MIN_BLOCK + ALIGN * rng.below(EXACT_BINS + 1)),
            nudge(rng),
        ),
        _ => plus(Config::DEFAULT.mmap_threshold, nudge(rng)),
    };
    v.min(u32::MAX as usize) as u32
}

/// A value for a small tunable (`trim_delay`, `cache_limit`).
pub fn tunable_small(rng: &mut Rng) -> u8 {
    let max = MAX_TRIM_DELAY.max(MAX_CACHE_LIMIT);
    match rng.below(2) {
        0 => SMALL_CORNERS[rng.below(SMALL_CORNERS.len())],
        _ => rng.below(usize::from(max) + 1) as u8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Draws many values and says whether `want` is among them.
    fn reached(mut draw: impl FnMut(&mut Rng) -> usize, want: usize) -> bool {
        let mut rng = Rng::new(7);
        (0..200_000).any(|_| draw(&mut rng) == want)
    }

    #[test]
    fn sizes_reach_the_edges() {
        let t = Trace::default();
        let th = Config::DEFAULT.mmap_threshold;
        for want in [
            0,
            MIN_BLOCK - HEADER,
            MIN_BLOCK - HEADER + 1,
            1024 - HEADER + 1,
            2048 + 512 - HEADER - 1,
            th - 16,
            th + 16,
            th - HEADER + 1,
            3 * PAGE + 16,
            PTRDIFF_MAX,
            PTRDIFF_MAX + 1,
            usize::MAX,
        ] {
            assert!(reached(|r| size(r, &t, 100), want), "size {want}");
        }
    }

    #[test]
    fn sizes_follow_the_traces_own_threshold() {
        let mut t = Trace::default();
        t.config.mmap_threshold = Some(5000);
        assert!(reached(|r| size(r, &t, 1), 5016));
        assert!(reached(|r| size(r, &t, 1), 4999));
    }

    #[test]
    fn alignments_are_mostly_powers_of_two_and_reach_hostile_ones() {
        let mut rng = Rng::new(3);
        let pow2 = (0..10_000)
            .filter(|_| align(&mut rng, 16).is_power_of_two())
            .count();
        assert!(pow2 > 7_000, "{pow2}");
        assert!(reached(|r| align(r, 16), 1 << 63));
        assert!(reached(|r| align(r, 16), 4097));
        assert!(reached(|r| align(r, 16), 0));
    }

    #[test]
    fn calloc_pairs_straddle_the_limits() {
        let mut rng = Rng::new(5);
        let (mut over, mut under) = (false, false);
        for _ in 0..1000 {
            let (c, s) = calloc_overflow(&mut rng);
            match c.checked_mul(s) {
                Some(p) if p <= PTRDIFF_MAX => under |= p > PTRDIFF_MAX / 2,
                _ => over = true,
            }
        }
        assert!(over && under);
    }
}
