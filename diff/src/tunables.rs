//! Tunables a trace chooses: the heap's thresholds and pads, the thread caches' limit and whether
//! the heap keeps fast lists.
//!
//! A trace carries its [`Tunables`] with it (the text header line `config mmap_threshold=4096
//! top_pad=0 ...`, or the first bytes of a fuzz input), so a failure that needs a particular
//! configuration replays from the trace alone. Unset fields keep glibc's defaults
//! ([`Config::DEFAULT`]). Backends that cannot be configured (libc, a shared object) ignore them:
//! thresholds change where blocks come from, never what a call must do.
//!
//! Values are kept inside the ranges glibc's `mallopt` accepts (see [`Tunables::fixed`]); the fuzz
//! encoding draws them mostly from [`CORNERS`], the values where thresholds and pads misbehave.

use tagalloc::heap::MMAP_THRESHOLD_MAX;
use tagalloc::Config;

/// Largest `top_pad` a trace may set: 16 MiB (glibc accepts any; more only wastes the arena).
pub const MAX_TOP_PAD: usize = 16 << 20;
/// Largest `trim_threshold` a trace may set: 4 GiB - 1 (beyond a test heap's size nothing is
/// ever trimmed anyway). Every tunable fits in 32 bits, which keeps traces and reports small.
pub const MAX_TRIM_THRESHOLD: usize = u32::MAX as usize;
/// Largest `trim_delay` a trace may set.
pub const MAX_TRIM_DELAY: u8 = 64;
/// Largest `cache_limit` a trace may set: the built-in table's largest limit.
pub const MAX_CACHE_LIMIT: u8 = 64;

/// Sizes where thresholds and pads misbehave: 0 and 1, around the minimum block and the small
/// classes' edge, a page ± 16, the defaults ± 16, and the largest mmap threshold.
#[rustfmt::skip]
pub const CORNERS: &[usize] = &[
    0, 1, 8, 15, 16, 17, 24, 31, 32, 33, 48, 64, 1008, 1016, 1024, 1032, 1040, 4080, 4095, 4096,
    4097, 4112, 8192, 65536, 131_056, 131_072, 131_088, 262_144, 1 << 20, 4 << 20, 32 << 20,
];

/// Small counts where limits and delays misbehave.
pub const SMALL_CORNERS: &[u8] = &[0, 1, 2, 3, 4, 7, 8, 16, 31, 32, 63, 64];

/// The tunables a trace sets; `None` keeps the default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Tunables {
    /// [`Config::mmap_threshold`], at most [`MMAP_THRESHOLD_MAX`].
    pub mmap_threshold: Option<u32>,
    /// [`Config::trim_threshold`], at most [`MAX_TRIM_THRESHOLD`].
    pub trim_threshold: Option<u32>,
    /// [`Config::top_pad`], at most [`MAX_TOP_PAD`].
    pub top_pad: Option<u32>,
    /// [`Config::trim_delay`], at most [`MAX_TRIM_DELAY`].
    pub trim_delay: Option<u8>,
    /// [`Config::dynamic_threshold`].
    pub dynamic_threshold: Option<bool>,
    /// [`Config::cache_limit`], `1..=MAX_CACHE_LIMIT`.
    pub cache_limit: Option<u8>,
    /// [`Config::fast_lists`].
    pub fast_lists: Option<bool>,
}

impl Tunables {
    /// Whether every field keeps its default.
    pub fn is_default(&self) -> bool {
        *self == Tunables::default()
    }

    /// The tunables with every value brought into its range (part of [`Trace::fixup`]).
    ///
    /// [`Trace::fixup`]: crate::op::Trace::fixup
    pub fn fixed(self) -> Tunables {
        Tunables {
            mmap_threshold: self
                .mmap_threshold
                .map(|v| v.min(MMAP_THRESHOLD_MAX as u32)),
            trim_threshold: self.trim_threshold,
            top_pad: self.top_pad.map(|v| v.min(MAX_TOP_PAD as u32)),
            trim_delay: self.trim_delay.map(|v| v.min(MAX_TRIM_DELAY)),
            dynamic_threshold: self.dynamic_threshold,
            cache_limit: self.cache_limit.map(|v| v.clamp(1, MAX_CACHE_LIMIT)),
            fast_lists: self.fast_lists,
        }
    }

    /// `base` with the fields this trace sets.
    pub fn apply(&self, base: Config) -> Config {
        Config {
            mmap_threshold: self
                .mmap_threshold
                .map_or(base.mmap_threshold, |v| v as usize),
            trim_threshold: self
                .trim_threshold
                .map_or(base.trim_threshold, |v| v as usize),
            top_pad: self.top_pad.map_or(base.top_pad, |v| v as usize),
            trim_delay: self.trim_delay.map_or(base.trim_delay, u32::from),
            dynamic_threshold: self.dynamic_threshold.unwrap_or(base.dynamic_threshold),
            cache_limit: self.cache_limit.map_or(base.cache_limit, u32::from),
            fast_lists: self.fast_lists.unwrap_or(base.fast_lists),
        }
    }

    /// The tunables' [`Config`] over glibc's defaults.
    pub fn config(&self) -> Config {
        self.apply(Config::DEFAULT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_clamps_and_is_idempotent() {
        let t = Tunables {
            mmap_threshold: Some(u32::MAX),
            top_pad: Some(u32::MAX),
            cache_limit: Some(0),
            trim_delay: Some(200),
            ..Tunables::default()
        }
        .fixed();
        assert_eq!(t.mmap_threshold, Some(MMAP_THRESHOLD_MAX as u32));
        assert_eq!(t.top_pad, Some(MAX_TOP_PAD as u32));
        assert_eq!(t.cache_limit, Some(1));
        assert_eq!(t.trim_delay, Some(MAX_TRIM_DELAY));
        assert_eq!(t.fixed(), t);
        let c = t.config();
        assert_eq!(c.trim_threshold, Config::DEFAULT.trim_threshold);
        assert_eq!(c.cache_limit, 1);
    }
}
