//! The transfer cache: whole batches of cached blocks in transit between thread caches, and the
//! chains they travel as.
//!
//! A batch is a run of cached blocks of one class linked through their first payload word, each
//! link protected ([`crate::link`]) and checked before it is followed, as in the thread caches
//! (`crate::cache`, whose checks these functions use). Its blocks stay marked (a second free of
//! one is still a double free) and allocated to the heap.

use crate::cache::{check_list, follow, shared, Follow, Owns, Range, CLASSES};
use crate::link;
use crate::walk::Corruption;
use core::ptr;

/// A run of marked blocks of one class, linked through their first payload word.
#[derive(Clone, Copy)]
pub(crate) struct Chain {
    pub(crate) first: *mut u8,
    pub(crate) last: *mut u8,
    pub(crate) len: u32,
}

impl Chain {
    /// Calls `f` with each block, unmarking it first (the block leaves the caches). Each link is
    /// checked before it is followed (`ask_heap` judges one outside the break range); a failed
    /// check stops the walk and returns the block whose link failed.
    pub(crate) fn drain(
        self,
        range: Range,
        mut ask_heap: impl FnMut(*mut u8) -> bool,
        mut f: impl FnMut(*mut u8),
    ) -> Result<(), *mut u8> {
        let mut p = self.first;
        for i in 0..self.len {
            // The last block's link is not the chain's: it is not followed.
            let next = if i + 1 < self.len {
                // SAFETY: p is a chain block in the heap's memory (checked when reached).
                checked_next(p, range, &mut ask_heap)?
            } else {
                ptr::null_mut()
            };
            // SAFETY: as above; its second word is the mark.
            unsafe { crate::track::store(p.add(8).cast(), 0) };
            f(p);
            p = next;
        }
        Ok(())
    }
}

/// The link in cached payload `p`, checked, or `Err(p)`.
pub(crate) fn checked_next(
    p: *mut u8,
    range: Range,
    ask_heap: &mut impl FnMut(*mut u8) -> bool,
) -> Result<*mut u8, *mut u8> {
    // SAFETY: callers pass chain or list blocks, each checked to lie in the heap's memory.
    match unsafe { follow(p, range) } {
        Follow::Yes(next) if !next.is_null() => Ok(next),
        Follow::AskHeap(next) if ask_heap(next) => Ok(next),
        _ => Err(p),
    }
}

/// Detaches up to `n` blocks from the front of the list at `head` (they keep their marks),
/// checking each link before following it; `Err` names the block whose link failed (the list is
/// left as it was).
pub(crate) fn detach(
    head: &mut *mut u8,
    count: &mut u32,
    n: usize,
    range: Range,
    mut ask_heap: impl FnMut(*mut u8) -> bool,
) -> Result<Option<Chain>, *mut u8> {
    let first = *head;
    if first.is_null() || n == 0 {
        return Ok(None);
    }
    // The count bounds the walk, so a link bent back into the list cannot make it endless.
    let n = n.min(*count as usize);
    let mut last = first;
    let mut len = 1;
    while len < n {
        last = checked_next(last, range, &mut ask_heap)?;
        len += 1;
    }
    let next = if len < *count as usize {
        checked_next(last, range, &mut ask_heap)?
    } else {
        ptr::null_mut()
    };
    *head = next;
    *count -= len as u32 - u32::from(broken!(CacheBatchCount) && len > 1);
    Ok(Some(Chain {
        first,
        last,
        len: len as u32,
    }))
}

/// Prepends `chain` to the list at `head`.
pub(crate) fn attach(head: &mut *mut u8, count: &mut u32, chain: Chain) {
    // SAFETY: the chain's last block is a cached block; its first word is its link.
    unsafe { link::store(chain.last, *head) };
    *head = chain.first;
    *count += chain.len;
}

/// Batches that threads gave back and other threads may take, by class: the transfer cache
/// between thread caches, so a producer thread refills with a batch a consumer thread freed in
/// one O(1) step under a short lock, instead of freeing and allocating each block. A batch is
/// kept whole (first, last, length), so neither side walks the other's blocks. Its blocks stay
/// marked (a second free of one is still a double free) and allocated to the heap.
pub(crate) struct Central {
    chains: [[Chain; CENTRAL_BATCHES]; CLASSES],
    counts: [usize; CLASSES],
}

/// Batches of each class the transfer cache holds at most.
const CENTRAL_BATCHES: usize = 8;

const NO_CHAIN: Chain = Chain {
    first: ptr::null_mut(),
    last: ptr::null_mut(),
    len: 0,
};

impl Central {
    /// Empty.
    pub(crate) const fn new() -> Central {
        Central {
            chains: [[NO_CHAIN; CENTRAL_BATCHES]; CLASSES],
            counts: [0; CLASSES],
        }
    }

    /// Takes `chain` of `class` if there is room and more than one thread uses the caches (a
    /// lone thread gains nothing from it, and blocks waiting here cannot coalesce); gives it
    /// back if not.
    pub(crate) fn put(&mut self, class: usize, chain: Chain) -> Option<Chain> {
        let Some(&n) = self.counts.get(class) else {
            return Some(chain);
        };
        if !shared() || n >= CENTRAL_BATCHES {
            return Some(chain);
        }
        let chain = if broken!(CentralPutShort) && chain.len > 1 {
            Chain {
                len: chain.len - 1,
                ..chain
            }
        } else {
            chain
        };
        self.chains[class][n] = chain;
        self.counts[class] = n + 1;
        None
    }

    /// The batch of `class` given back last, if any.
    pub(crate) fn take(&mut self, class: usize) -> Option<Chain> {
        let n = *self.counts.get(class)?;
        let chain = *self.chains[class].get(n.checked_sub(1)?)?;
        if !broken!(CentralTakeTwice) {
            self.counts[class] = n - 1;
        }
        Some(chain)
    }
}

impl Central {
    /// Invariant 10 over the transfer cache: each batch holds `len` checked blocks of its class,
    /// no more than a class may hold, and ends at its recorded last block.
    pub(crate) fn check(&self, owns: Owns) -> Result<(), Corruption> {
        for class in 0..CLASSES {
            for chain in &self.chains[class][..self.counts[class]] {
                // The length is judged before the walk it bounds.
                if chain.len > crate::cache::max_limit(class) {
                    return Err(Corruption {
                        invariant: 10,
                        addr: chain.first as usize,
                        what: "a transfer-cache batch is longer than a class may hold",
                    });
                }
                let last = check_list(chain.first, chain.len as usize, class, owns)?;
                if chain.len == 0 || last != chain.last {
                    return Err(Corruption {
                        invariant: 10,
                        addr: chain.first as usize,
                        what: "a transfer-cache batch does not end at its last block",
                    });
                }
            }
        }
        Ok(())
    }

    /// Calls `f` with every block in the transfer cache.
    pub(crate) fn for_each(&self, f: &mut dyn FnMut(*mut u8)) {
        for class in 0..CLASSES {
            for chain in &self.chains[class][..self.counts[class]] {
                let mut p = chain.first;
                for _ in 0..chain.len {
                    f(p);
                    // SAFETY: batch members are cached blocks whose first word links to the next.
                    p = unsafe { link::load(p) };
                }
            }
        }
    }
}
