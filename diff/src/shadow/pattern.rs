//! Block contents: a per-block, per-offset pattern, and the sampled regions it covers.
//!
//! Byte `i` of a block with seed `s` is a byte of word `i / 8` of the block's pattern, the
//! block's start word `mix(s)` plus `i / 8` times an odd constant ([`word`]): no two words of a
//! block are equal, and two blocks (whose seeds, hence start words, differ) never hold the same
//! word at the same offset, so an overlap, a shifted copy or a stray write shows up even between
//! blocks of equal size. The next word is the last one plus the constant, which keeps the fill
//! and check loops a few instructions a word. Blocks up to [`FULL`] bytes are covered entirely; larger ones at their head, a
//! window every [`STRIDE`] bytes (at most [`MAX_WINDOWS`] windows, spread evenly: farther apart
//! in blocks above 4 MiB) and their tail ([`regions`]), which keeps a 16 MiB block cheap (about 36
//! pages touched; a 90 MiB `calloc` as cheap, where a window every 128 KiB touched 700 pages, and
//! every page costs a page fault in a fuzzer's fresh mapping) while still catching a misplaced
//! header or a half-copied `realloc`.

use std::ops::Range;

/// Blocks up to this size are written and checked entirely.
pub const FULL: usize = 16 << 10;
/// Bytes covered at the head of a larger block.
const HEAD: usize = 8 << 10;
/// Bytes covered at its tail.
const TAIL: usize = 4 << 10;
/// Distance between the windows covered in between.
pub const STRIDE: usize = 128 << 10;
/// Size of each window.
const WINDOW: usize = 256;
/// Most windows covered in one block.
pub const MAX_WINDOWS: usize = 32;

/// Most regions of one block: head, windows, tail, and the slack's two ends.
const MAX_REGIONS: usize = MAX_WINDOWS + 4;

/// Covered offsets of a block, held inline (no allocation per fill or check); derefs to a slice
/// of ranges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Regions {
    ranges: [Range<usize>; MAX_REGIONS],
    len: usize,
}

impl Regions {
    fn new() -> Regions {
        Regions {
            ranges: std::array::from_fn(|_| 0..0),
            len: 0,
        }
    }

    fn push(&mut self, r: Range<usize>) {
        self.ranges[self.len] = r;
        self.len += 1;
    }
}

impl std::ops::Deref for Regions {
    type Target = [Range<usize>];
    fn deref(&self) -> &[Range<usize>] {
        &self.ranges[..self.len]
    }
}

impl<'a> IntoIterator for &'a Regions {
    type Item = &'a Range<usize>;
    type IntoIter = std::slice::Iter<'a, Range<usize>>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// The covered offsets of a block of `size` bytes: sorted, disjoint, inside `0..size`.
pub fn regions(size: usize) -> Regions {
    let mut out = Regions::new();
    if size == 0 {
        return out;
    }
    if size <= FULL {
        out.push(0..size);
        return out;
    }
    let tail = (size - TAIL) & !7;
    out.push(0..HEAD);
    let stride = STRIDE.max((size / MAX_WINDOWS) & !4095);
    let mut at = stride - WINDOW / 2;
    while at + WINDOW < tail && out.len < MAX_WINDOWS + 1 {
        out.push(at..at + WINDOW);
        at += stride;
    }
    out.push(tail..size);
    out
}

/// Bytes of the slack past the request that are covered at each of its ends.
const SLACK_END: usize = 4 << 10;

/// The covered offsets of a block of `size` requested and `usable` usable bytes: those of
/// [`regions`]`(size)`, then the slack `size..usable`, entirely up to `2 * SLACK_END` bytes and at
/// both its ends beyond (an overstated usable size is caught where it runs into a neighbour).
pub fn regions_with_slack(size: usize, usable: usize) -> Regions {
    let mut out = regions(size);
    if usable > size {
        if usable - size <= 2 * SLACK_END {
            out.push(size..usable);
        } else {
            out.push(size..size + SLACK_END);
            out.push(usable - SLACK_END..usable);
        }
    }
    out
}

/// The covered offsets of a block of `size` bytes that lie below `limit`.
pub fn regions_below(size: usize, limit: usize) -> Regions {
    let mut out = Regions::new();
    for r in regions(size).iter().filter(|r| r.start < limit) {
        out.push(r.start..r.end.min(limit));
    }
    out
}

/// The start word of the pattern with `seed` (splitmix64's finaliser, a bijection: distinct
/// seeds, distinct start words).
fn mix(seed: u64) -> u64 {
    let mut z = seed;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// What consecutive words of a pattern differ by: odd, so the `2^64` words of a pattern are all
/// distinct.
const WORD_STEP: u64 = 0x9e37_79b9_7f4a_7c15;

/// Word `k` of the pattern whose start word is `start` (native value, stored little-endian).
#[inline(always)]
fn word(start: u64, k: u64) -> u64 {
    start.wrapping_add(k.wrapping_mul(WORD_STEP))
}

/// Byte `offset` of the pattern with `seed`.
pub fn byte_at(seed: u64, offset: usize) -> u8 {
    word(mix(seed), (offset / 8) as u64).to_le_bytes()[offset % 8]
}

/// Words handled per chunk of the fill and check loops: in a fuzz build every comparison is
/// traced for libFuzzer (`-sanitizer-coverage-trace-compares`), and a comparison per word made
/// these loops a third of an AddressSanitizer target's time. A chunk is one copy of 256 bytes
/// and one comparison (the loop over its words has a constant count, which the compiler
/// unrolls); the words short of a chunk go in steps of [`STEP`], the rest one at a time.
const CHUNK: usize = 32;
/// Words handled per step after the chunks (and per step of [`digest`]).
const STEP: usize = 4;
// `digest` folds a step's four words by hand.
const _: () = assert!(STEP == 4);

/// A range of offsets in the pieces the loops take: the bytes before the first whole word, whole
/// words (as word indices) in chunks of [`CHUNK`], then in steps of [`STEP`], then the whole
/// words short of a step, and the bytes after the last whole word. The loops over them are plain
/// index loops: an iterator adaptor (`chain`, `find`) adds a traced comparison of its own state
/// per byte in a fuzz build, and small blocks are mostly head and tail.
struct Parts {
    head: Range<usize>,
    chunks: Range<usize>,
    steps: Range<usize>,
    words: Range<usize>,
    tail: Range<usize>,
}

fn parts(range: &Range<usize>) -> Parts {
    let first = range.start.div_ceil(8);
    let last = range.end / 8;
    if first >= last {
        return Parts {
            head: range.clone(),
            chunks: 0..0,
            steps: 0..0,
            words: 0..0,
            tail: 0..0,
        };
    }
    let chunked = first + (last - first) / CHUNK * CHUNK;
    let stepped = chunked + (last - chunked) / STEP * STEP;
    Parts {
        head: range.start..first * 8,
        chunks: first..chunked,
        steps: chunked..stepped,
        words: stepped..last,
        tail: last * 8..range.end,
    }
}

/// Byte `i` of the little-endian word `w`.
#[inline(always)]
fn byte_of(w: u64, i: usize) -> u8 {
    (w >> (8 * (i % 8))) as u8
}

/// Writes the `N` pattern words from word `k` on at `base`.
///
/// # Safety
///
/// The `N` words at word `k` of `base` must be writable memory owned by the caller.
#[inline(always)]
unsafe fn fill_words<const N: usize>(base: *mut u8, start: u64, k: usize) {
    let w: [u64; N] = std::array::from_fn(|j| word(start, (k + j) as u64).to_le());
    // SAFETY: the caller vouches for the N words at word k.
    unsafe {
        base.add(k * 8)
            .copy_from_nonoverlapping(w.as_ptr().cast(), 8 * N)
    };
}

/// Writes the pattern over `range` of the block at `base`.
///
/// # Safety
///
/// `base + range` must be writable memory owned by the caller.
pub unsafe fn fill(base: *mut u8, seed: u64, range: Range<usize>) {
    let start = mix(seed);
    let p = parts(&range);
    for bytes in [p.head, p.tail] {
        let mut i = bytes.start;
        while i < bytes.end {
            // SAFETY: i lies inside the range the caller vouches for.
            unsafe { base.add(i).write(byte_of(word(start, (i / 8) as u64), i)) };
            i += 1;
        }
    }
    let mut k = p.chunks.start;
    while k < p.chunks.end {
        // SAFETY: the chunk at word k lies inside the range the caller vouches for.
        unsafe { fill_words::<CHUNK>(base, start, k) };
        k += CHUNK;
    }
    let mut k = p.steps.start;
    while k < p.steps.end {
        // SAFETY: the step at word k lies inside the range the caller vouches for.
        unsafe { fill_words::<STEP>(base, start, k) };
        k += STEP;
    }
    let mut k = p.words.start;
    while k < p.words.end {
        // SAFETY: word k lies inside the range the caller vouches for.
        unsafe { fill_words::<1>(base, start, k) };
        k += 1;
    }
}

/// The first offset in `range` whose byte differs from the pattern (or from zero when `seed` is
/// `None`): `(offset, found, expected)`.
///
/// # Safety
///
/// `base + range` must be readable memory.
pub unsafe fn mismatch(
    base: *const u8,
    seed: Option<u64>,
    range: Range<usize>,
) -> Option<(usize, u8, u8)> {
    // One loop per kind of expectation, so that no loop tests `seed` at every word.
    match seed {
        Some(s) => {
            let start = mix(s);
            // SAFETY: forwarded contract.
            unsafe { mismatch_with(base, range, |k| word(start, k)) }
        }
        // SAFETY: forwarded contract.
        None => unsafe { mismatch_with(base, range, |_| 0) },
    }
}

/// Whether the `N` words at word `k` of `base` differ from `want`.
///
/// # Safety
///
/// The `N` words at word `k` of `base` must be readable memory.
#[inline(always)]
unsafe fn words_differ<const N: usize>(
    base: *const u8,
    k: usize,
    want: &impl Fn(u64) -> u64,
) -> bool {
    let mut w = [0u64; N];
    // SAFETY: the caller vouches for the N words at word k.
    unsafe {
        base.add(k * 8)
            .copy_to_nonoverlapping(w.as_mut_ptr().cast(), 8 * N)
    };
    let mut d = 0;
    for (j, &got) in w.iter().enumerate() {
        d |= got ^ want((k + j) as u64).to_le();
    }
    d != 0
}

/// [`mismatch`] against the words `want(word index)` (native values, stored little-endian).
///
/// # Safety
///
/// As for [`mismatch`].
#[inline(always)]
unsafe fn mismatch_with(
    base: *const u8,
    range: Range<usize>,
    want: impl Fn(u64) -> u64,
) -> Option<(usize, u8, u8)> {
    let p = parts(&range);
    // The loops only fold differences; the offending byte is searched for once one shows.
    let first_bad = |r: Range<usize>| {
        r.map(|i| {
            // SAFETY: i lies inside the range the caller vouches for.
            (
                i,
                unsafe { base.add(i).read() },
                byte_of(want((i / 8) as u64), i),
            )
        })
        .find(|&(_, found, expected)| found != expected)
    };
    let mut differ = 0u64;
    for bytes in [p.head.clone(), p.tail.clone()] {
        let mut i = bytes.start;
        while i < bytes.end {
            // SAFETY: i lies inside the range the caller vouches for.
            let got = unsafe { base.add(i).read() };
            differ |= u64::from(got ^ byte_of(want((i / 8) as u64), i));
            i += 1;
        }
    }
    if differ != 0 {
        if let Some(m) = first_bad(p.head.clone()) {
            return Some(m);
        }
    }
    let mut k = p.chunks.start;
    while k < p.chunks.end {
        // SAFETY: the chunk at word k lies inside the range the caller vouches for.
        if unsafe { words_differ::<CHUNK>(base, k, &want) } {
            return first_bad(k * 8..(k + CHUNK) * 8);
        }
        k += CHUNK;
    }
    let mut k = p.steps.start;
    while k < p.steps.end {
        // SAFETY: the step at word k lies inside the range the caller vouches for.
        if unsafe { words_differ::<STEP>(base, k, &want) } {
            return first_bad(k * 8..(k + STEP) * 8);
        }
        k += STEP;
    }
    let mut k = p.words.start;
    while k < p.words.end {
        // SAFETY: word k lies inside the range the caller vouches for.
        if unsafe { words_differ::<1>(base, k, &want) } {
            return first_bad(k * 8..k * 8 + 8);
        }
        k += 1;
    }
    if differ != 0 {
        return first_bad(p.tail);
    }
    None
}

/// A digest of the bytes in `ranges` of the block at `base` (to compare contents across backends).
///
/// # Safety
///
/// `base + r` must be readable memory for every `r` in `ranges`.
pub unsafe fn digest(base: *const u8, ranges: &[Range<usize>]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    let mut add = |v: u64| h = (h ^ v).wrapping_mul(0x100_0000_01b3);
    for r in ranges {
        // In the pieces `mismatch` reads, for the same reason.
        let p = parts(r);
        const _: () = assert!(CHUNK % STEP == 0);
        for bytes in [p.head, p.tail] {
            let mut i = bytes.start;
            while i < bytes.end {
                // SAFETY: the caller vouches for every offset of every range.
                add(u64::from(unsafe { base.add(i).read() }));
                i += 1;
            }
        }
        // The chunks and the steps after them, all in steps (a chunk is whole steps).
        let mut k = p.chunks.start;
        while k < p.steps.end {
            let mut w = [0u64; STEP];
            // SAFETY: as above, for the STEP words at word k.
            unsafe {
                base.add(k * 8)
                    .copy_to_nonoverlapping(w.as_mut_ptr().cast(), 8 * STEP)
            };
            add(w[0] ^ w[1].rotate_left(16) ^ w[2].rotate_left(32) ^ w[3].rotate_left(48));
            k += STEP;
        }
        let mut k = p.words.start;
        while k < p.words.end {
            // SAFETY: as above, for word k.
            add(unsafe { base.add(k * 8).cast::<u64>().read_unaligned() });
            k += 1;
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_sorted_disjoint_and_inside() {
        for size in [0, 1, FULL, FULL + 1, 1 << 20, (16 << 20) + 3] {
            let rs = regions(size);
            let mut end = 0;
            for r in &rs {
                assert!(
                    r.start >= end && r.start < r.end && r.end <= size,
                    "{size} {rs:?}"
                );
                end = r.end;
            }
            if size > 0 {
                assert_eq!(rs.last().unwrap().end, size);
            }
        }
        let below = regions_below(1 << 20, 100);
        assert_eq!((below.len(), below[0].clone()), (1, 0..100));
    }

    #[test]
    fn every_changed_byte_of_every_small_range_is_found_first() {
        // Head, step, single-word and tail pieces in every combination, against byte_at.
        for start in 0..20 {
            for end in start..start + 80 {
                let mut buf = vec![0u8; 128];
                // SAFETY: buf is ours and 128 bytes long; end < 100.
                unsafe { fill(buf.as_mut_ptr(), 3, start..end) };
                for (i, &got) in buf.iter().enumerate() {
                    let want = if (start..end).contains(&i) {
                        byte_at(3, i)
                    } else {
                        0
                    };
                    assert_eq!(got, want, "fill {start}..{end} at {i}");
                }
                // SAFETY: as above.
                let clean = unsafe { mismatch(buf.as_ptr(), Some(3), start..end) };
                assert_eq!(clean, None, "{start}..{end}");
                for i in start..end {
                    let mut bad = buf.clone();
                    bad[i] ^= 0x10;
                    bad[end - 1] ^= 0x01; // a later difference must not be reported first
                    let expect = if i == end - 1 && bad[i] == buf[i] {
                        None
                    } else {
                        Some((i, bad[i], buf[i]))
                    };
                    // SAFETY: as above.
                    let m = unsafe { mismatch(bad.as_ptr(), Some(3), start..end) };
                    assert_eq!(m, expect, "{start}..{end} changed at {i}");
                    // SAFETY: as above.
                    let z = unsafe { mismatch(bad.as_ptr(), None, start..end) };
                    assert_eq!(z.map(|z| z.0), Some(start), "{start}..{end} against zero");
                }
            }
        }
    }

    #[test]
    fn a_changed_byte_in_a_chunk_or_a_step_after_one_is_found_first() {
        // Ranges of one or two chunks, then steps, words and a tail.
        for (start, end) in [
            (0, 8 * CHUNK),
            (3, 8 * CHUNK + 45),
            (5, 16 * CHUNK + 8 * STEP + 3),
        ] {
            let mut buf = vec![0u8; end + 8];
            // SAFETY: buf is ours and longer than `end`.
            unsafe { fill(buf.as_mut_ptr(), 11, start..end) };
            for (i, &got) in buf.iter().enumerate().take(end).skip(start) {
                assert_eq!(got, byte_at(11, i), "fill {start}..{end} at {i}");
            }
            // SAFETY: as above.
            let clean = unsafe { mismatch(buf.as_ptr(), Some(11), start..end) };
            assert_eq!(clean, None);
            for i in (start..end).step_by(7) {
                let mut bad = buf.clone();
                bad[i] ^= 0x40;
                bad[end - 1] ^= 0x02;
                // SAFETY: as above.
                let m = unsafe { mismatch(bad.as_ptr(), Some(11), start..end) };
                assert_eq!(
                    m,
                    Some((i, bad[i], buf[i])),
                    "{start}..{end} changed at {i}"
                );
                // SAFETY: as above.
                let z = unsafe { mismatch(bad.as_ptr(), None, start..end) };
                assert_eq!(z.map(|z| z.0), Some(start), "{start}..{end} against zero");
            }
        }
    }

    #[test]
    fn blocks_never_share_a_word_at_an_offset_and_a_shifted_copy_differs() {
        let (a, b) = (mix(1), mix(2));
        for k in 0..1000 {
            assert_ne!(word(a, k), word(b, k));
            assert_ne!(word(a, k), word(a, k + 1));
        }
    }

    #[test]
    fn fill_then_mismatch_finds_the_changed_byte() {
        let mut buf = vec![0u8; 300];
        // SAFETY: buf is ours and 300 bytes long.
        unsafe {
            fill(buf.as_mut_ptr(), 7, 3..300);
            assert_eq!(mismatch(buf.as_ptr(), Some(7), 3..300), None);
            assert_eq!(mismatch(buf.as_ptr(), None, 0..3), None);
        }
        buf[77] ^= 1;
        // SAFETY: as above.
        let m = unsafe { mismatch(buf.as_ptr(), Some(7), 0..300) };
        assert_eq!(m.map(|m| m.0), Some(0), "bytes 0..3 were never filled");
        // SAFETY: as above.
        let m = unsafe { mismatch(buf.as_ptr(), Some(7), 3..300) };
        assert_eq!(m, Some((77, buf[77], byte_at(7, 77))));
        assert_ne!(byte_at(7, 5), byte_at(8, 5));
    }
}
