//! Integration tests of `tagalloc-diff`, one binary (as bumpalo does): oracles against broken
//! backends, quickcheck properties, the fuzz targets on seeded bytes, the command-line tool,
//! shared objects isolated in forked children, and production allocators under the posix contract.

mod broken;
mod cli;
mod fuzz_so;
mod isolation;
mod lab;
mod oracles;
mod posix;
mod quickchecks;
mod targets;

/// A small deterministic generator (splitmix64) for seeded inputs.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn word(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.word() as u8).collect()
    }
}
