//! Boundary tags: the one word at each end of a block.
//!
//! A block is a run of memory `[b, b + size)`. Its first word, at `b`, is the *header*; the payload a
//! caller sees starts at `b + 8` and is 16-byte aligned, so every block starts at an address that is
//! 8 modulo 16 and every size is a multiple of 16. A free block also carries a *footer*, a copy of its
//! header, in its last word, and its free-list links in the two words after the header; an allocated
//! block has no footer (the next block's `PREV_INUSE` bit says it is allocated), so its whole
//! `size - 8` bytes after the header are usable.
//!
//! The tag word, 64 bits:
//!
//! ```text
//!  63            48 47                                  4  3     2      1         0
//! +----------------+-------------------------------------+------+------+---------+-------+
//! | check (16 bits)|  size / 16                          |FENCE |MAPPED|PREV_USED| USED  |
//! +----------------+-------------------------------------+------+------+---------+-------+
//! ```
//!
//! The check is a hash of the tag's own address and its low 48 bits. A word that was overwritten, or
//! that was never a tag (an interior pointer's preceding word, a stack slot), fails it with
//! probability 65535/65536, which is how corruption and invalid pointers are told apart from blocks.

/// Payload alignment: x86-64's `max_align_t`.
pub const ALIGN: usize = 16;
/// Bytes of header in front of every payload.
pub const HEADER: usize = 8;
/// The smallest block: header, two free-list links and a footer.
pub const MIN_BLOCK: usize = 32;

/// This block is allocated.
pub const USED: u64 = 1;
/// The block just before this one in memory is allocated (or is the segment's start).
pub const PREV_USED: u64 = 2;
/// This block is a chunk mapped on its own with `mmap`.
pub const MAPPED: u64 = 4;
/// This tag is a segment fencepost (the epilogue), not a block.
pub const FENCE: u64 = 8;

const FLAGS: u64 = 0xF;
const LOW: u64 = (1 << 48) - 1;
const SIZE: u64 = LOW & !FLAGS;

/// The largest block size a tag can hold.
pub const MAX_SIZE: usize = SIZE as usize;

/// A decoded tag: size and flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tag {
    /// The low 48 bits: size and flags.
    bits: u64,
}

impl Tag {
    /// A tag for a block of `size` bytes with `flags`.
    #[inline]
    pub const fn new(size: usize, flags: u64) -> Tag {
        Tag {
            bits: (size as u64 & SIZE) | (flags & FLAGS),
        }
    }

    /// The block's size in bytes.
    #[inline]
    pub const fn size(self) -> usize {
        (self.bits & SIZE) as usize
    }

    /// Whether every flag in `flag` is set.
    #[inline]
    pub const fn has(self, flag: u64) -> bool {
        self.bits & flag == flag
    }

    /// Whether this is an allocated block's tag: `USED` set, neither `MAPPED` nor `FENCE`, whatever
    /// its `PREV_USED` bit (one mask and one comparison).
    #[inline(always)]
    pub const fn is_block_in_use(self) -> bool {
        self.bits & (USED | MAPPED | FENCE) == USED
    }

    /// The same tag with `flag` set or cleared.
    #[inline]
    #[must_use]
    pub const fn with(self, flag: u64, on: bool) -> Tag {
        Tag {
            bits: if on {
                self.bits | flag
            } else {
                self.bits & !flag
            },
        }
    }

    /// The word stored at `addr` for this tag.
    #[inline]
    pub const fn encode(self, addr: usize) -> u64 {
        self.bits | (check(addr, self.bits) << 48)
    }

    /// Whether `word`, its check bits not looked at, is the tag of an allocated block (not mapped,
    /// not a fencepost) of `size` or `size + 16` bytes, whatever its `PREV_USED` bit: the cache's
    /// hot-path test of a cached block's header (see `cache::intact`), in three operations.
    #[inline(always)]
    pub const fn is_allocated_of(word: u64, size: usize) -> bool {
        let bits = word & LOW & !PREV_USED;
        bits.wrapping_sub(size as u64 | USED) & !16 == 0
    }

    /// The tag bits of `word` without verifying its check: only for choosing among blocks whose
    /// chosen one is then read with [`decode`](Tag::decode) before anything relies on it.
    #[inline]
    pub const fn unchecked(word: u64) -> Tag {
        Tag { bits: word & LOW }
    }

    /// The tag stored as `word` at `addr`, or `None` if the word's check does not match.
    #[inline]
    pub const fn decode(addr: usize, word: u64) -> Option<Tag> {
        let bits = word & LOW;
        if word >> 48 == check(addr, bits) {
            Some(Tag { bits })
        } else {
            None
        }
    }
}

#[inline]
const fn check(addr: usize, bits: u64) -> u64 {
    // Fibonacci hashing of address and contents; the top 16 bits are the check. A zero word never
    // decodes, because the check of (addr, 0) is made non-zero below.
    let h = ((addr as u64).rotate_left(29) ^ bits).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 48;
    if h == 0 {
        1
    } else {
        h
    }
}

/// The block size that serves a request of `n` payload bytes, or `None` if it cannot be represented.
#[inline]
pub const fn block_size(n: usize) -> Option<usize> {
    if n > MAX_SIZE - HEADER - ALIGN {
        return None;
    }
    let s = (n + HEADER + ALIGN - 1) & !(ALIGN - 1);
    Some(if s < MIN_BLOCK { MIN_BLOCK } else { s })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_check() {
        let t = Tag::new(48, USED | PREV_USED);
        let w = t.encode(0x1008);
        assert_eq!(Tag::decode(0x1008, w), Some(t));
        assert_eq!(Tag::decode(0x1018, w), None, "same word at another address");
        assert_eq!(Tag::decode(0x1008, w ^ 0x10), None, "size changed");
        assert_eq!(Tag::decode(0x1008, 0), None, "zero never decodes");
        assert_eq!(t.size(), 48);
        assert!(t.has(USED) && !t.has(MAPPED));
        assert!(!t.with(USED, false).has(USED));
    }

    #[test]
    fn block_sizes() {
        assert_eq!(block_size(0), Some(32));
        assert_eq!(block_size(24), Some(32));
        assert_eq!(block_size(25), Some(48));
        assert_eq!(block_size(40), Some(48));
        assert_eq!(block_size(usize::MAX), None);
    }
}
