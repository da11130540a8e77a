//! An address map in memory mapped from a source: the registry of large chunks, and the
//! trace recorder's address-to-slot map.
//!
//! Open addressing with linear probing and backward-shift deletion (no tombstones), kept at most
//! half full. It allocates nothing from any heap: its table is mapped from the [`Source`] given to
//! [`AddrMap::reserve_one`], so it can serve inside an allocator.

use crate::os::PAGE;
use crate::source::Source;
use core::ptr;

const EMPTY: usize = 0;
const FIRST_CAP: usize = PAGE / 16;

/// A map from addresses to words (linear probing, backward-shift deletion), in memory mapped from a
/// [`Source`]. Each entry is two words: the address (never 0) and its value.
#[derive(Debug)]
pub struct AddrMap {
    slots: *mut usize,
    cap: usize,
    len: usize,
}

impl Default for AddrMap {
    fn default() -> Self {
        AddrMap::new()
    }
}

// SAFETY: the table is owned by the map alone.
unsafe impl Send for AddrMap {}

impl AddrMap {
    /// An empty map; it maps its table on first insertion.
    pub const fn new() -> AddrMap {
        AddrMap {
            slots: ptr::null_mut(),
            cap: 0,
            len: 0,
        }
    }

    /// How many entries there are.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    fn home(&self, addr: usize) -> usize {
        ((addr >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 20) & (self.cap - 1)
    }

    #[inline]
    fn slot(&self, i: usize) -> usize {
        // SAFETY: i < cap and the table holds 2 cap initialised words while cap > 0.
        unsafe { self.slots.add(2 * i).read() }
    }

    #[inline]
    fn value(&self, i: usize) -> usize {
        // SAFETY: as in `slot`.
        unsafe { self.slots.add(2 * i + 1).read() }
    }

    #[inline]
    fn set_slot(&mut self, i: usize, key: usize, value: usize) {
        // SAFETY: as in `slot`.
        unsafe {
            self.slots.add(2 * i).write(key);
            self.slots.add(2 * i + 1).write(value);
        }
    }

    /// The value of `addr`, if it is in the map.
    pub fn get(&self, addr: usize) -> Option<usize> {
        if self.cap == 0 || addr == EMPTY {
            return None;
        }
        let mut i = self.home(addr);
        loop {
            match self.slot(i) {
                EMPTY => return None,
                a if a == addr => return Some(self.value(i)),
                _ => i = (i + 1) & (self.cap - 1),
            }
        }
    }

    /// Whether `addr` is in the map.
    pub fn contains(&self, addr: usize) -> bool {
        self.get(addr).is_some()
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
        let Some(table) = source.map(new_cap * 16) else {
            return false;
        };
        let old = AddrMap {
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
                self.insert_unchecked(a, old.value(i));
            }
        }
        if old.cap > 0 {
            // SAFETY: the old table was mapped from this source with exactly this length, and
            // nothing refers to it any more.
            unsafe { source.unmap(old.slots.cast(), old.cap * 16) };
        }
        *mapped_delta = (new_cap * 16) as isize - (old.cap * 16) as isize;
        true
    }

    /// Maps `addr` (not already present, never 0) to `value`; [`reserve_one`](AddrMap::reserve_one)
    /// must have succeeded first.
    pub fn insert_unchecked(&mut self, addr: usize, value: usize) {
        debug_assert!(self.cap > 0 && (self.len + 1) * 2 <= self.cap && addr != EMPTY);
        let mut i = self.home(addr);
        while self.slot(i) != EMPTY {
            i = (i + 1) & (self.cap - 1);
        }
        self.set_slot(i, addr, value);
        self.len += 1;
    }

    /// Removes `addr`; returns its value if it was there.
    pub fn remove(&mut self, addr: usize) -> Option<usize> {
        if self.cap == 0 || addr == EMPTY {
            return None;
        }
        let mask = self.cap - 1;
        let mut i = self.home(addr);
        loop {
            match self.slot(i) {
                EMPTY => return None,
                a if a == addr => break,
                _ => i = (i + 1) & mask,
            }
        }
        let removed = self.value(i);
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
                let v = self.value(j);
                self.set_slot(hole, a, v);
                hole = j;
            }
            j = (j + 1) & mask;
        }
        self.set_slot(hole, EMPTY, 0);
        self.len -= 1;
        Some(removed)
    }

    /// Calls `f` with every address and its value.
    pub fn for_each(&self, mut f: impl FnMut(usize, usize)) {
        for i in 0..self.cap {
            let a = self.slot(i);
            if a != EMPTY {
                f(a, self.value(i));
            }
        }
    }

    /// Unmaps the table.
    ///
    /// # Safety
    /// The table must have been mapped from `source`; the map is empty afterwards.
    pub unsafe fn release<S: Source>(&mut self, source: &mut S) {
        if self.cap > 0 {
            // SAFETY: mapped from this source with this length (contract).
            unsafe { source.unmap(self.slots.cast(), self.cap * 16) };
        }
        *self = AddrMap::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Sim;

    #[test]
    fn insert_remove_get() {
        let mut sim = Sim::new(1 << 16);
        let mut r = AddrMap::new();
        let mut d = 0;
        let addrs: Vec<usize> = (1..3000).map(|i| i * 4096 + 16).collect();
        for (i, &a) in addrs.iter().enumerate() {
            assert!(r.reserve_one(&mut sim, &mut d));
            r.insert_unchecked(a, i);
        }
        assert_eq!(r.len(), addrs.len());
        for (i, &a) in addrs.iter().enumerate().step_by(3) {
            assert_eq!(r.remove(a), Some(i));
            assert_eq!(r.remove(a), None);
        }
        for (i, &a) in addrs.iter().enumerate() {
            assert_eq!(r.get(a), (i % 3 != 0).then_some(i), "{a:#x}");
        }
        assert!(!r.contains(12345 * 16));
        // SAFETY: the table came from `sim`.
        unsafe { r.release(&mut sim) };
        assert_eq!(sim.mappings(), 0);
    }

    #[test]
    fn is_empty_follows_len() {
        let mut sim = Sim::new(1 << 16);
        let mut r = AddrMap::new();
        let mut d = 0;
        assert!(r.is_empty());
        assert!(r.reserve_one(&mut sim, &mut d));
        assert!(r.is_empty(), "a reserved table holds no entry yet");
        r.insert_unchecked(4096 + 16, 7);
        assert!(!r.is_empty());
        assert_eq!(r.remove(4096 + 16), Some(7));
        assert!(r.is_empty());
        // SAFETY: the table came from `sim`.
        unsafe { r.release(&mut sim) };
    }

    /// The first table is one page (the least a source maps) and each growth doubles it, so a
    /// heap with one large chunk pays one page for its registry.
    #[test]
    fn tables_start_at_one_page_and_double() {
        let mut sim = Sim::new(1 << 16);
        let mut r = AddrMap::new();
        let mut d = 0;
        assert!(r.reserve_one(&mut sim, &mut d));
        assert_eq!(d, PAGE as isize, "first table");
        let mut bytes = PAGE;
        let mut next = 1;
        for _ in 0..3 {
            d = 0;
            while d == 0 {
                r.insert_unchecked(next * PAGE + 16, next);
                next += 1;
                assert!(r.reserve_one(&mut sim, &mut d));
            }
            // The table grows when the next entry would pass half full: cap / 2 entries.
            assert_eq!(r.len(), bytes / 16 / 2, "entries before growth");
            assert_eq!(d, bytes as isize, "growth from {bytes} bytes");
            bytes *= 2;
        }
        // SAFETY: the table came from `sim`.
        unsafe { r.release(&mut sim) };
        assert_eq!(sim.mappings(), 0);
    }

    /// The longest distance from an entry's home slot to where it sits.
    fn longest_probe(r: &AddrMap) -> usize {
        (0..r.cap)
            .filter(|&i| r.slot(i) != EMPTY)
            .map(|i| i.wrapping_sub(r.home(r.slot(i))) & (r.cap - 1))
            .max()
            .unwrap_or(0)
    }

    /// Large-chunk payloads (a page-aligned mapping plus its 16-byte header) spread over the table
    /// whatever their spacing: lookups stay a few probes long, not a scan of the table.
    #[test]
    fn home_spreads_chunk_addresses() {
        let base = 0x7f3a_1c40_0000usize;
        for stride in [PAGE, 3 * PAGE, 16 * PAGE, 1 << 20, (1 << 21) + PAGE] {
            let mut sim = Sim::new(1 << 16);
            let mut r = AddrMap::new();
            let mut d = 0;
            for i in 0..120 {
                assert!(r.reserve_one(&mut sim, &mut d));
                r.insert_unchecked(base + i * stride + 16, i);
            }
            let longest = longest_probe(&r);
            assert!(
                longest <= 12,
                "stride {stride:#x}: longest probe {longest} of {} entries",
                r.len()
            );
            // SAFETY: the table came from `sim`.
            unsafe { r.release(&mut sim) };
        }
    }
}
