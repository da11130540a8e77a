//! Reading and writing the tags of blocks in memory.
//!
//! A block is named by the address of its header (`b`); the payload is `b + 8`. These functions are
//! the only place tag words are loaded and stored. Headers are encoded with the header's address,
//! footers with the footer's own address (`b + size - 8`), so either can be checked on its own.
//! The words lie in memory AddressSanitizer builds poison, so they go through `crate::track`.

use crate::tag::{Tag, HEADER};

/// The tag in the header of block `b`, or `None` if the word fails its check.
///
/// # Safety
/// `b` must be 8-aligned and readable for 8 bytes (inside a segment the heap owns).
#[inline]
pub unsafe fn header(b: *mut u8) -> Option<Tag> {
    // SAFETY: readable and aligned (contract).
    let word = unsafe { crate::track::load(b.cast()) };
    Tag::decode(b as usize, word)
}

/// The tag in the header of block `b` without its check ([`Tag::unchecked`]).
///
/// # Safety
/// As for [`header`].
#[inline]
pub unsafe fn header_unchecked(b: *mut u8) -> Tag {
    // SAFETY: readable and aligned (contract).
    Tag::unchecked(unsafe { crate::track::load(b.cast()) })
}

/// Writes `tag` as the header of block `b`.
///
/// # Safety
/// `b` must be 8-aligned and writable for 8 bytes, and hold no word anyone else still needs.
#[inline]
pub unsafe fn set_header(b: *mut u8, tag: Tag) {
    // SAFETY: writable and aligned (contract).
    unsafe { crate::track::store(b.cast(), tag.encode(b as usize)) }
}

/// Writes `tag` as the footer of block `b` (its last word, at `b + tag.size() - 8`).
///
/// # Safety
/// The block `[b, b + tag.size())` must be writable and free.
#[inline]
pub unsafe fn set_footer(b: *mut u8, tag: Tag) {
    // SAFETY: the footer lies inside the block (contract).
    unsafe {
        let f = b.add(tag.size() - 8);
        crate::track::store(f.cast(), tag.encode(f as usize));
    }
}

/// The tag in the footer that ends just before block `b` (the previous block's footer).
///
/// # Safety
/// `b - 8` must be 8-aligned and readable.
#[inline]
pub unsafe fn footer_before(b: *mut u8) -> Option<Tag> {
    // SAFETY: readable and aligned (contract).
    unsafe {
        let f = b.sub(8);
        Tag::decode(f as usize, crate::track::load(f.cast()))
    }
}

/// The block whose payload is `p`.
#[inline]
pub fn of_payload(p: *mut u8) -> *mut u8 {
    p.wrapping_sub(HEADER)
}

/// The payload of block `b`.
#[inline]
pub fn payload(b: *mut u8) -> *mut u8 {
    b.wrapping_add(HEADER)
}
