//! Large chunks: blocks mapped on their own, and the registry that knows them.
//!
//! A request at or above the mmap threshold gets its own mapping `M` of `len` bytes:
//!
//! ```text
//!  M                        P - 16      P - 8     P (payload, aligned)        M + len
//!  |  (alignment slack)     |  lead     | header  | ...usable...               |
//! ```
//!
//! `lead` is the distance from `M` to the header, so `free` finds the mapping again; the header's size
//! is the usable bytes, `len - lead - 8`, and it has `USED | MAPPED` set. Every live chunk's payload address is in the
//! [`Registry`], an open-addressing hash set kept in memory mapped from the heap's source, so `free`
//! of a pointer outside every segment is judged without touching memory that may not be mapped.

use crate::os::PAGE;
use crate::source::Source;
use core::ptr;

const EMPTY: usize = 0;
const FIRST_CAP: usize = PAGE / 8;

/// The set of live large-chunk payload addresses (linear probing, backward-shift deletion).
#[derive(Debug)]
pub struct Registry {
    slots: *mut usize,
    cap: usize,
    len: usize,
}

impl Registry {
    /// An empty registry; it maps its table on first insertion.
    pub const fn new() -> Registry {
        Registry {
            slots: ptr::null_mut(),
            cap: 0,
            len: 0,
        }
    }

    /// How many chunks are registered.
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    fn home(&self, addr: usize) -> usize {
        ((addr >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 20) & (self.cap - 1)
    }

    #[inline]
    fn slot(&self, i: usize) -> usize {
        // SAFETY: i < cap and the table holds cap initialised words while cap > 0.
        unsafe { self.slots.add(i).read() }
    }

    #[inline]
    fn set_slot(&mut self, i: usize, v: usize) {
        // SAFETY: as in `slot`.
        unsafe { self.slots.add(i).write(v) }
    }

    /// Whether `addr` is registered.
    pub fn contains(&self, addr: usize) -> bool {
        if self.cap == 0 || addr == EMPTY {
            return false;
        }
        let mut i = self.home(addr);
        loop {
            match self.slot(i) {
                EMPTY => return false,
                a if a == addr => return true,
                _ => i = (i + 1) & (self.cap - 1),
            }
        }
    }

    /// Makes room for one more entry, growing the table if it would pass half full; returns
    /// `false` (changing nothing) if the source cannot map a larger table. Returns the change in
    /// mapped bytes through `mapped_delta`.
    pub fn reserve_one<S: Source>(&mut self, source: &mut S, mapped_delta: &mut isize) -> bool {
        if (self.len + 1) * 2 <= self.cap {
            return true;
        }
        let new_cap = if self.cap == 0 {
            FIRST_CAP
        } else {
            self.cap * 2
        };
        let Some(table) = source.map(new_cap * 8) else {
            return false;
        };
        let old = Registry {
            slots: self.slots,
            cap: self.cap,
            len: self.len,
        };
        self.slots = table.as_ptr().cast();
        self.cap = new_cap;
        self.len = 0;
        for i in 0..old.cap {
            let a = old.slot(i);
            if a != EMPTY {
                self.insert_unchecked(a);
            }
        }
        if old.cap > 0 {
            // SAFETY: the old table was mapped from this source with exactly this length, and
            // nothing refers to it any more.
            unsafe { source.unmap(old.slots.cast(), old.cap * 8) };
        }
        *mapped_delta = (new_cap * 8) as isize - (old.cap * 8) as isize;
        true
    }

    /// Registers `addr`; [`reserve_one`](Registry::reserve_one) must have succeeded first.
    pub fn insert_unchecked(&mut self, addr: usize) {
        debug_assert!(self.cap > 0 && (self.len + 1) * 2 <= self.cap);
        let mut i = self.home(addr);
        while self.slot(i) != EMPTY {
            i = (i + 1) & (self.cap - 1);
        }
        self.set_slot(i, addr);
        self.len += 1;
    }

    /// Unregisters `addr`; returns whether it was there.
    pub fn remove(&mut self, addr: usize) -> bool {
        if self.cap == 0 {
            return false;
        }
        let mask = self.cap - 1;
        let mut i = self.home(addr);
        loop {
            match self.slot(i) {
                EMPTY => return false,
                a if a == addr => break,
                _ => i = (i + 1) & mask,
            }
        }
        // Backward-shift deletion: pull later members of the probe run into the hole.
        let mut hole = i;
        let mut j = (i + 1) & mask;
        loop {
            let a = self.slot(j);
            if a == EMPTY {
                break;
            }
            let home = self.home(a);
            // Move `a` into the hole if its home is not cyclically in (hole, j].
            let in_range = if hole <= j {
                hole < home && home <= j
            } else {
                hole < home || home <= j
            };
            if !in_range {
                self.set_slot(hole, a);
                hole = j;
            }
            j = (j + 1) & mask;
        }
        self.set_slot(hole, EMPTY);
        self.len -= 1;
        true
    }

    /// Calls `f` with every registered address.
    pub fn for_each(&self, mut f: impl FnMut(usize)) {
        for i in 0..self.cap {
            let a = self.slot(i);
            if a != EMPTY {
                f(a);
            }
        }
    }

    /// Unmaps the table.
    ///
    /// # Safety
    /// The table must have been mapped from `source`; the registry is empty afterwards.
    pub unsafe fn release<S: Source>(&mut self, source: &mut S) {
        if self.cap > 0 {
            // SAFETY: mapped from this source with this length (contract).
            unsafe { source.unmap(self.slots.cast(), self.cap * 8) };
        }
        *self = Registry::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Sim;

    #[test]
    fn insert_remove_contains() {
        let mut sim = Sim::new(1 << 16);
        let mut r = Registry::new();
        let mut d = 0;
        let addrs: Vec<usize> = (1..3000).map(|i| i * 4096 + 16).collect();
        for &a in &addrs {
            assert!(r.reserve_one(&mut sim, &mut d));
            r.insert_unchecked(a);
        }
        assert_eq!(r.len(), addrs.len());
        for &a in addrs.iter().step_by(3) {
            assert!(r.remove(a));
            assert!(!r.remove(a));
        }
        for (i, &a) in addrs.iter().enumerate() {
            assert_eq!(r.contains(a), i % 3 != 0, "{a:#x}");
        }
        assert!(!r.contains(12345 * 16));
        // SAFETY: the table came from `sim`.
        unsafe { r.release(&mut sim) };
        assert_eq!(sim.mappings(), 0);
    }
}
