//! The shadow model: what every live block should be, and the checks that compare it with what the
//! allocator did.
//!
//! For every live block the shadow keeps its address, requested and usable size, the alignment
//! asked and a fill seed; the block's bytes, up to the usable size the allocator reported (the
//! contract is from both sides: a caller may use every usable byte), hold a per-block, per-offset
//! pattern ([`pattern`]), so an allocator that overstates the usable size shows as an overlap or a
//! corrupted neighbour. From that it flags: a returned block that overlaps a live one; misalignment; a
//! block whose content changed while we were not writing; `calloc` memory that is not zero;
//! `realloc` that lost the common prefix; `malloc_usable_size` below the request. What each call
//! must do (succeed, fail, which `errno`) is in [`rules`].
//!
//! The shadow only knows addresses and bytes; the [`Runner`](crate::runner::Runner) decides when
//! to ask it what.

pub mod pattern;
pub mod rules;

use std::collections::BTreeMap;

use crate::report::{BlockRef, Failure};

/// A live block as the shadow sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    /// Address returned.
    pub addr: usize,
    /// Bytes requested.
    pub size: usize,
    /// What `malloc_usable_size` said, if the backend has it.
    pub usable: Option<usize>,
    /// Alignment asked (1 for plain `malloc`).
    pub align: usize,
    /// Seed of its content pattern.
    pub seed: u64,
    /// Index of the op that made it (to tell the same block on two backends).
    pub born: usize,
}

/// Who holds a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Owner {
    /// A slot of the trace.
    Slot(usize),
    /// Leaked: allocated into a slot that was still live (the number is its leak order).
    Leaked(usize),
}

impl Owner {
    fn slot(self) -> Option<usize> {
        match self {
            Owner::Slot(s) => Some(s),
            Owner::Leaked(_) => None,
        }
    }
}

/// Slots kept in a vector; higher ones in a map.
const DENSE_SLOTS: usize = 4096;

/// The model of a heap: live blocks by slot and by address.
#[derive(Debug, Default)]
pub struct Shadow {
    /// Slots below [`DENSE_SLOTS`], by index.
    slots: Vec<Option<Block>>,
    /// Higher slots (a fuzz input may name slot 1,000,000: a vector that long costs 56 MB of
    /// fresh pages per run).
    sparse: BTreeMap<usize, Block>,
    leaked: Vec<Option<Block>>,
    by_addr: BTreeMap<usize, (usize, Owner)>,
    /// Cumulative demand of the trace (see [`rules::cost`]).
    pub spent: usize,
}

impl Block {
    /// The bytes the caller may use, and the shadow writes and checks: everything
    /// `malloc_usable_size` promised (glibc lets a caller use all of it), at least the request.
    ///
    /// Except for `malloc(0)`: AddressSanitizer answers `malloc_usable_size` with 1 for it, and
    /// then reports a write of that byte as an overflow (glibc's 24 bytes go unchecked with it).
    pub fn covered(&self) -> usize {
        if self.size == 0 {
            return 0;
        }
        self.usable.unwrap_or(0).max(self.size)
    }
}

fn extent(b: &Block) -> (usize, usize) {
    // Zero-byte blocks occupy one byte, so two equal malloc(0) results count as overlapping.
    (b.addr, b.addr.saturating_add(b.covered().max(1)))
}

impl Shadow {
    /// An empty heap.
    pub fn new() -> Shadow {
        Shadow::default()
    }

    /// The block in `slot`.
    pub fn get(&self, slot: usize) -> Option<&Block> {
        if slot >= DENSE_SLOTS {
            return self.sparse.get(&slot);
        }
        self.slots.get(slot).and_then(Option::as_ref)
    }

    /// The block held by `owner`.
    pub fn owned(&self, owner: Owner) -> Option<&Block> {
        match owner {
            Owner::Slot(s) => self.get(s),
            Owner::Leaked(i) => self.leaked.get(i).and_then(Option::as_ref),
        }
    }

    /// A report's view of the block held by `owner`.
    pub fn block_ref(&self, owner: Owner, b: &Block) -> BlockRef {
        BlockRef {
            slot: owner.slot(),
            addr: b.addr,
            size: b.size,
        }
    }

    /// The live block that starts at `addr`, if any.
    pub fn at(&self, addr: usize) -> Option<(Owner, Block)> {
        let &(_, owner) = self.by_addr.get(&addr)?;
        Some((owner, *self.owned(owner)?))
    }

    /// The live block overlapping `b`, if any.
    pub fn overlapping(&self, b: &Block) -> Option<(Owner, Block)> {
        let (start, end) = extent(b);
        let (&addr, &(other_end, owner)) = self.by_addr.range(..end).next_back()?;
        let _ = addr;
        (other_end > start).then(|| (owner, *self.owned(owner).expect("indexed block is live")))
    }

    /// Records `b` in `slot`; a block still in the slot becomes leaked. Fails if `b` overlaps a
    /// live block.
    pub fn insert(&mut self, slot: usize, b: Block) -> Result<(), Failure> {
        if let Some((owner, old)) = self.overlapping(&b) {
            return Err(Failure::Overlap {
                new: BlockRef {
                    slot: Some(slot),
                    addr: b.addr,
                    size: b.size,
                },
                old: self.block_ref(owner, &old),
            });
        }
        let held = if slot >= DENSE_SLOTS {
            self.sparse.insert(slot, b)
        } else {
            if self.slots.len() <= slot {
                self.slots.resize(slot + 1, None);
            }
            self.slots[slot].replace(b)
        };
        if let Some(old) = held {
            let i = self.leaked.len();
            self.leaked.push(Some(old));
            self.by_addr
                .insert(old.addr, (extent(&old).1, Owner::Leaked(i)));
        }
        self.by_addr
            .insert(b.addr, (extent(&b).1, Owner::Slot(slot)));
        Ok(())
    }

    /// Forgets the block held by `owner` (it was freed), returning it.
    pub fn remove(&mut self, owner: Owner) -> Option<Block> {
        let b = match owner {
            Owner::Slot(s) if s >= DENSE_SLOTS => self.sparse.remove(&s)?,
            Owner::Slot(s) => self.slots.get_mut(s)?.take()?,
            Owner::Leaked(i) => self.leaked.get_mut(i)?.take()?,
        };
        self.by_addr.remove(&b.addr);
        Some(b)
    }

    /// Every live block, in address order.
    pub fn live(&self) -> Vec<(Owner, Block)> {
        self.iter().collect()
    }

    /// Every live block, in address order, without collecting them.
    fn iter(&self) -> impl Iterator<Item = (Owner, Block)> + '_ {
        self.by_addr
            .values()
            .map(|&(_, owner)| (owner, *self.owned(owner).expect("indexed block is live")))
    }

    /// How many blocks are live (leaked ones included).
    pub fn len(&self) -> usize {
        self.by_addr.len()
    }

    /// Whether no block is live.
    pub fn is_empty(&self) -> bool {
        self.by_addr.is_empty()
    }

    /// The address of the live block that starts nearest below `addr`, if any.
    pub fn below(&self, addr: usize) -> Option<usize> {
        self.by_addr.range(..addr).next_back().map(|(&a, _)| a)
    }

    /// The live blocks just below and just above `addr` (the neighbours an allocator's
    /// bookkeeping at `addr` could have written into).
    pub fn neighbours(&self, addr: usize) -> Vec<(Owner, Block)> {
        self.neighbours_iter(addr).collect()
    }

    fn neighbours_iter(&self, addr: usize) -> impl Iterator<Item = (Owner, Block)> + '_ {
        let below = self.by_addr.range(..addr).next_back();
        let above = self.by_addr.range(addr.saturating_add(1)..).next();
        below
            .into_iter()
            .chain(above)
            .map(|(_, &(_, owner))| (owner, *self.owned(owner).expect("indexed block is live")))
    }

    /// Writes `b`'s pattern over its covered regions, up to its usable size.
    ///
    /// # Safety
    ///
    /// `b` must be a live block of at least `b.covered()` writable bytes.
    pub unsafe fn fill(b: &Block) {
        for r in pattern::regions_with_slack(b.size, b.covered())
            .iter()
            .cloned()
        {
            // SAFETY: the region lies inside the block, which the caller vouches for.
            unsafe { pattern::fill(b.addr as *mut u8, b.seed, r) };
        }
    }

    /// Checks that `b` still holds its pattern, up to its usable size.
    ///
    /// # Safety
    ///
    /// `b` must be a live block of at least `b.covered()` readable bytes.
    pub unsafe fn verify(&self, owner: Owner, b: &Block) -> Result<(), Failure> {
        for r in pattern::regions_with_slack(b.size, b.covered())
            .iter()
            .cloned()
        {
            // SAFETY: the region lies inside the block, which the caller vouches for.
            let bad = unsafe { pattern::mismatch(b.addr as *const u8, Some(b.seed), r) };
            if let Some((offset, found, expected)) = bad {
                return Err(Failure::ContentChanged {
                    block: self.block_ref(owner, b),
                    offset,
                    found,
                    expected,
                });
            }
        }
        Ok(())
    }

    /// Checks every live block's content.
    ///
    /// # Safety
    ///
    /// Every block in the shadow must still be live in the allocator.
    pub unsafe fn verify_all(&self) -> Result<(), Failure> {
        for (owner, b) in self.iter() {
            // SAFETY: the caller vouches that every recorded block is live.
            unsafe { self.verify(owner, &b)? };
        }
        Ok(())
    }

    /// Checks the content of the live neighbours of `addr`.
    ///
    /// # Safety
    ///
    /// As for [`Shadow::verify_all`].
    pub unsafe fn verify_neighbours(&self, addr: usize) -> Result<(), Failure> {
        for (owner, b) in self.neighbours_iter(addr) {
            // SAFETY: the caller vouches that every recorded block is live.
            unsafe { self.verify(owner, &b)? };
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(addr: usize, size: usize) -> Block {
        Block {
            addr,
            size,
            usable: None,
            align: 1,
            seed: addr as u64,
            born: 0,
        }
    }

    #[test]
    fn overlap_is_found_on_either_side() {
        let mut s = Shadow::new();
        s.insert(0, block(100, 50)).unwrap();
        s.insert(1, block(200, 0)).unwrap();
        assert!(s.insert(2, block(149, 1)).is_err());
        assert!(s.insert(2, block(60, 41)).is_err());
        assert!(
            s.insert(2, block(200, 0)).is_err(),
            "equal malloc(0) results"
        );
        s.insert(2, block(150, 50)).unwrap();
        // Allocating into a live slot leaks the old block, which stays in the model.
        s.insert(2, block(300, 8)).unwrap();
        assert!(s.insert(3, block(160, 8)).is_err());
        assert_eq!(s.live().len(), 4);
        assert_eq!(s.neighbours(150).len(), 2);
        assert!(s.remove(Owner::Leaked(0)).is_some());
        s.insert(3, block(160, 8)).unwrap();
    }
}
