//! The operation language: what a trace asks an allocator to do.
//!
//! A [`Trace`] is a list of [`Op`]s on numbered *slots*. A slot holds at most one live block; the ops
//! name slots, never addresses, so the same trace means the same thing on every backend. The meaning
//! of each op, including the corner cases (an op on an empty slot, an allocation into a slot that is
//! still live), is documented on [`Op`] and is the same for every runner.
//!
//! Sizes and alignments are drawn from [`SIZES`] and [`ALIGNS`] when they come from fuzz bytes: the
//! values where allocators break (0, 1, the minimum block and its neighbours, 2^k and 2^k±1, the page
//! size ±1, the mmap threshold ±1, the largest small size class) and hostile values (`PTRDIFF_MAX`,
//! `SIZE_MAX`, products that overflow in `calloc`).
//!
//! Every trace that reaches a runner is first put through [`Trace::fixup`], the one normalisation
//! step; both encodings (text in [`crate::text`], fuzz bytes in [`crate::bytes`]) are exact inverses
//! of their printers on fixed-up traces.

use std::fmt;

use crate::tunables::Tunables;

/// Slots are numbered `0..MAX_SLOTS` (a million live blocks: enough for traces recorded from real
/// programs by the preload library's `TAGALLOC_TRACE`).
pub const MAX_SLOTS: usize = 1 << 20;
/// Longest trace a runner accepts; [`Trace::fixup`] truncates longer ones.
pub const MAX_OPS: usize = 1 << 24;
/// Most bytes an [`Op::Overwrite`] writes past the usable end of a block: one tag.
pub const MAX_OVERWRITE: usize = 8;
/// How many places an [`Op::WriteFreed`] can write to (see [`Op::WriteFreed`]'s `word`).
pub const FREED_WORDS: usize = 4;
/// Most OS requests one [`Op::FailNext`] makes fail.
pub const MAX_FAIL_NEXT: usize = 8;
/// Most bytes one [`Op::ForeignSbrk`] moves the simulated break by.
pub const MAX_FOREIGN_SBRK: usize = 1 << 20;

/// Threads a trace of the threads dialect names: `0..MAX_THREADS`.
pub const MAX_THREADS: usize = 4;

/// `PTRDIFF_MAX`: every request above it must fail.
pub const PTRDIFF_MAX: usize = isize::MAX as usize;

/// The sizes fuzz bytes draw from by index (see [`crate::bytes`]); any other size is still
/// expressible as a literal. Order matters: the byte encoding names sizes by their index here.
#[rustfmt::skip]
pub const SIZES: &[usize] = &[
    // Zero, one, and the minimum block and its neighbours.
    0, 1, 2, 7, 8, 9, 15, 16, 17, 23, 24, 25, 31, 32, 33, 40, 47, 48, 49, 56, 63, 64,
    65,
    // Small size classes and their edges (glibc fastbins end at 160, tcache at 1032).
    96, 112, 120, 127, 128, 129, 136, 160, 176, 255, 256, 257, 504, 511, 512, 513, 1000,
    1008, 1016, 1023, 1024, 1025, 1032, 1040, 2047, 2048, 2049,
    // The page size, ±1, and the powers of two up to the mmap threshold.
    4095, 4096, 4097, 8191, 8192, 8193, 16383, 16384, 16385, 32767, 32768, 32769, 65535,
    65536, 65537,
    // The default mmap threshold (128 KiB), ±1, and its chunk-header neighbours.
    131_040, 131_056, 131_071, 131_072, 131_073, 131_088, 262_143, 262_144, 262_145, 524_288,
    1_048_575, 1_048_576, 1_048_577, 4_194_304, 16_777_216,
    // Hostile: requests that must fail, and factors whose products overflow in calloc.
    1 << 32, (1 << 32) + 1, 1 << 40, 1 << 48, 1 << 62, PTRDIFF_MAX - 4096, PTRDIFF_MAX - 1,
    PTRDIFF_MAX, PTRDIFF_MAX + 1, usize::MAX - 4096, usize::MAX - 15, usize::MAX - 1,
    usize::MAX,
];

/// The alignments fuzz bytes draw from by index; any other value is still expressible.
#[rustfmt::skip]
pub const ALIGNS: &[usize] = &[
    0, 1, 2, 3, 4, 8, 12, 16, 24, 32, 48, 64, 100, 128, 256, 512, 1024, 2048, 4096, 8192,
    65536, 1 << 20, 1 << 21, 1 << 32, 1 << 62, PTRDIFF_MAX, PTRDIFF_MAX + 1, PTRDIFF_MAX + 2,
    usize::MAX,
];

/// One step of a trace. `slot` is always `< MAX_SLOTS`.
///
/// Allocation ops (`Malloc`, `Calloc`, `PosixMemalign`, `AlignedAlloc`, `Memalign`) into a slot
/// that still holds a live block leave that block allocated but unnamed (leaked until the end of the
/// trace, when the runner frees it); so one op is always exactly one allocator call. Ops that read a
/// slot (`Free`, `Realloc`, `UsableSize`) pass NULL when the slot is empty, which C defines: `free`
/// does nothing, `realloc` allocates, `malloc_usable_size` returns 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// `slot = malloc(size)`.
    Malloc {
        /// Slot that receives the block.
        slot: usize,
        /// Bytes requested.
        size: usize,
    },
    /// `slot = calloc(count, size)`.
    Calloc {
        /// Slot that receives the block.
        slot: usize,
        /// Number of elements.
        count: usize,
        /// Size of one element.
        size: usize,
    },
    /// `slot = realloc(slot, size)`; size 0 on a live slot frees it (glibc).
    Realloc {
        /// Slot resized.
        slot: usize,
        /// New size in bytes.
        size: usize,
    },
    /// `free(slot)`.
    Free {
        /// Slot freed.
        slot: usize,
    },
    /// `posix_memalign(&slot, align, size)`.
    PosixMemalign {
        /// Slot that receives the block.
        slot: usize,
        /// Alignment asked.
        align: usize,
        /// Bytes requested.
        size: usize,
    },
    /// `slot = aligned_alloc(align, size)`.
    AlignedAlloc {
        /// Slot that receives the block.
        slot: usize,
        /// Alignment asked.
        align: usize,
        /// Bytes requested.
        size: usize,
    },
    /// `slot = memalign(align, size)`.
    Memalign {
        /// Slot that receives the block.
        slot: usize,
        /// Alignment asked.
        align: usize,
        /// Bytes requested.
        size: usize,
    },
    /// `malloc_usable_size(slot)`.
    UsableSize {
        /// Slot asked about.
        slot: usize,
    },
    /// Check everything now: every live block's content, and the backend's own heap walker.
    Check,
    /// Misuse dialect: hand the allocator a pointer it must reject (see [`BadPtr`]).
    Misuse {
        /// The call that receives the bad pointer.
        call: BadCall,
        /// Which bad pointer.
        ptr: BadPtr,
    },
    /// Misuse dialect: write `len` bytes just past the usable end of the slot's block, which
    /// overwrites the next block's tag; then free the slot, which must report the broken tag. The
    /// trace ends there (the heap is corrupt). Ignored on an empty slot or an mmap-sized block.
    Overwrite {
        /// Slot whose block overflows.
        slot: usize,
        /// Bytes written past the usable size, `1..=MAX_OVERWRITE`.
        len: usize,
    },
    /// Misuse dialect: free the slot's block, write into it (a use after free), then allocate
    /// blocks of its size again. The allocator must report the damage (a misuse reply, or its heap
    /// walker) or come to no harm (no block it returns overlaps a live one); never crash. The trace
    /// ends there. Ignored on an empty slot or an mmap-sized block.
    WriteFreed {
        /// Slot whose block is freed and then written to.
        slot: usize,
        /// What is overwritten, `0..FREED_WORDS`: 0 the header word before the payload, 1 the
        /// first payload word (a free-list or cache link), 2 the second, 3 the first 16 to 64
        /// payload bytes.
        word: usize,
    },
    /// Faults dialect: the next `count` OS requests fail (`1..=MAX_FAIL_NEXT`).
    FailNext {
        /// How many requests fail.
        count: usize,
    },
    /// Faults dialect: someone else moves the break by `bytes` (`<= MAX_FOREIGN_SBRK`), so the
    /// heap's next growth is not contiguous.
    ForeignSbrk {
        /// Bytes taken by the foreign caller.
        bytes: usize,
    },
    /// Threads dialect: the ops that follow run on thread `thread` (`< MAX_THREADS`), until the
    /// next `Thread`. A trace starts on thread 0. The order of the ops *is* the schedule: each op
    /// runs on its own thread while the others wait, so an interleaving replays and shrinks like
    /// any other trace. Slots are shared: a block may be freed or resized by any thread.
    Thread {
        /// The thread that runs what follows.
        thread: usize,
    },
    /// Threads dialect: the current thread exits (its cache goes back to the heap while other
    /// threads may still hold its blocks); the next op on its number runs on a new thread.
    ThreadExit,
    /// Threads dialect: the current thread forks; the child checks its heap (the walker, every
    /// live block's content, an allocation and a free of each size kind) and exits, and the parent
    /// goes on. Only the first [`MAX_FORKS`](crate::runner::MAX_FORKS) of a trace fork; later ones
    /// are skipped.
    Fork,
}

/// The call a [`Op::Misuse`] makes with its bad pointer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BadCall {
    /// `free(p)`.
    Free,
    /// `realloc(p, size)`.
    Realloc {
        /// Size passed along.
        size: usize,
    },
    /// `malloc_usable_size(p)`.
    UsableSize,
}

/// The pointer a [`Op::Misuse`] passes. Ops naming an empty slot are ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BadPtr {
    /// Free the slot correctly, then pass its old address again (double free, use after free).
    Freed {
        /// Slot whose block is freed twice.
        slot: usize,
    },
    /// An address inside the slot's block: `offset` is reduced to `1..size` (or 1 for blocks of
    /// 0 or 1 bytes); offsets not a multiple of 16 are also misaligned.
    Interior {
        /// Slot whose block is pointed into.
        slot: usize,
        /// Offset into the block, at least 1.
        offset: usize,
    },
    /// An address the allocator never returned, from outside its heap.
    Foreign(Foreign),
}

/// Where a [`BadPtr::Foreign`] pointer points.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Foreign {
    /// A local variable of the runner.
    Stack,
    /// A static array.
    Static,
    /// A block from the Rust global allocator.
    Global,
    /// An unmapped low address (0x10000).
    Wild,
}

impl Foreign {
    /// All kinds, in byte-encoding order.
    pub const ALL: [Foreign; 4] = [
        Foreign::Stack,
        Foreign::Static,
        Foreign::Global,
        Foreign::Wild,
    ];

    /// The word used in text traces.
    pub fn name(self) -> &'static str {
        match self {
            Foreign::Stack => "stack",
            Foreign::Static => "static",
            Foreign::Global => "global",
            Foreign::Wild => "wild",
        }
    }
}

/// Which ops a runner accepts: every dialect includes the clean ops.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// Only well-defined calls: what any allocator, libc included, must handle.
    Clean,
    /// Clean ops plus [`Op::Misuse`] and [`Op::Overwrite`] (tagalloc only).
    Misuse,
    /// Clean ops plus [`Op::FailNext`] and [`Op::ForeignSbrk`] (simulated memory source only).
    Faults,
    /// Clean ops plus [`Op::Thread`], [`Op::ThreadExit`] and [`Op::Fork`] (tagalloc's locked heap
    /// with its thread caches, ops handed to 2–4 threads one at a time).
    Threads,
    /// Everything (text traces).
    All,
}

impl Dialect {
    /// Whether `op` belongs to this dialect.
    pub fn allows(self, op: &Op) -> bool {
        let own = op.dialect();
        own == Dialect::Clean || self == Dialect::All || own == self
    }
}

impl Op {
    /// The smallest dialect containing this op.
    pub fn dialect(&self) -> Dialect {
        match self {
            Op::Misuse { .. } | Op::Overwrite { .. } => Dialect::Misuse,
            Op::WriteFreed { .. } => Dialect::Misuse,
            Op::FailNext { .. } | Op::ForeignSbrk { .. } => Dialect::Faults,
            Op::Thread { .. } | Op::ThreadExit | Op::Fork => Dialect::Threads,
            _ => Dialect::Clean,
        }
    }

    /// Bytes the op asks the allocator for (a `calloc`'s product, saturated; 0 for ops that
    /// allocate nothing).
    pub fn requested(&self) -> usize {
        match *self {
            Op::Calloc { count, size, .. } => count.saturating_mul(size),
            Op::Malloc { size, .. }
            | Op::Realloc { size, .. }
            | Op::PosixMemalign { size, .. }
            | Op::AlignedAlloc { size, .. }
            | Op::Memalign { size, .. } => size,
            _ => 0,
        }
    }

    /// The op's name, as a trace writes it (`malloc`, `free`, `misuse`...).
    pub fn name(&self) -> String {
        let text = self.to_string();
        text.split_whitespace().next().unwrap_or("").to_string()
    }

    /// The slot the op names, if any.
    pub fn slot(&self) -> Option<usize> {
        match *self {
            Op::Malloc { slot, .. }
            | Op::Calloc { slot, .. }
            | Op::Realloc { slot, .. }
            | Op::Free { slot }
            | Op::PosixMemalign { slot, .. }
            | Op::AlignedAlloc { slot, .. }
            | Op::Memalign { slot, .. }
            | Op::UsableSize { slot }
            | Op::Overwrite { slot, .. } => Some(slot),
            Op::WriteFreed { slot, .. } => Some(slot),
            Op::Misuse {
                ptr: BadPtr::Freed { slot } | BadPtr::Interior { slot, .. },
                ..
            } => Some(slot),
            _ => None,
        }
    }

    /// The same op naming `slot` instead (ops without a slot are returned unchanged).
    pub fn with_slot(mut self, new: usize) -> Op {
        match &mut self {
            Op::Malloc { slot, .. }
            | Op::Calloc { slot, .. }
            | Op::Realloc { slot, .. }
            | Op::Free { slot }
            | Op::PosixMemalign { slot, .. }
            | Op::AlignedAlloc { slot, .. }
            | Op::Memalign { slot, .. }
            | Op::UsableSize { slot }
            | Op::Overwrite { slot, .. } => *slot = new,
            Op::WriteFreed { slot, .. } => *slot = new,
            Op::Misuse {
                ptr: BadPtr::Freed { slot } | BadPtr::Interior { slot, .. },
                ..
            } => *slot = new,
            _ => {}
        }
        self
    }

    /// The op with every value brought into its documented range (see [`Trace::fixup`]).
    pub fn fixed(self) -> Op {
        let op = match self.slot() {
            Some(slot) => self.with_slot(slot % MAX_SLOTS),
            None => self,
        };
        match op {
            Op::Overwrite { slot, len } => Op::Overwrite {
                slot,
                len: len.clamp(1, MAX_OVERWRITE),
            },
            Op::WriteFreed { slot, word } => Op::WriteFreed {
                slot,
                word: word % FREED_WORDS,
            },
            Op::FailNext { count } => Op::FailNext {
                count: count.clamp(1, MAX_FAIL_NEXT),
            },
            Op::ForeignSbrk { bytes } => Op::ForeignSbrk {
                bytes: bytes.min(MAX_FOREIGN_SBRK),
            },
            Op::Thread { thread } => Op::Thread {
                thread: thread % MAX_THREADS,
            },
            Op::Misuse {
                call,
                ptr: BadPtr::Interior { slot, offset },
            } => Op::Misuse {
                call,
                ptr: BadPtr::Interior {
                    slot,
                    offset: offset.max(1),
                },
            },
            op => op,
        }
    }

    /// Numbers in the op that a shrinker may make smaller, in a fixed order.
    pub fn numbers(&self) -> Vec<usize> {
        match *self {
            Op::Malloc { size, .. } | Op::Realloc { size, .. } => vec![size],
            Op::Calloc { count, size, .. } => vec![count, size],
            Op::PosixMemalign { align, size, .. }
            | Op::AlignedAlloc { align, size, .. }
            | Op::Memalign { align, size, .. } => vec![align, size],
            Op::Overwrite { len, .. } => vec![len],
            Op::WriteFreed { word, .. } => vec![word],
            Op::FailNext { count } => vec![count],
            Op::ForeignSbrk { bytes } => vec![bytes],
            Op::Misuse { call, ptr } => {
                let mut v = Vec::new();
                if let BadCall::Realloc { size } = call {
                    v.push(size);
                }
                if let BadPtr::Interior { offset, .. } = ptr {
                    v.push(offset);
                }
                v
            }
            Op::Free { .. } | Op::UsableSize { .. } | Op::Check | Op::ThreadExit | Op::Fork => {
                Vec::new()
            }
            Op::Thread { thread } => vec![thread],
        }
    }

    /// The op with its `i`th number (in [`Op::numbers`] order) replaced by `value`.
    pub fn with_number(self, i: usize, value: usize) -> Op {
        let mut op = self;
        match &mut op {
            Op::Malloc { size, .. } | Op::Realloc { size, .. } => *size = value,
            Op::Calloc { count, size, .. } => *[count, size][i] = value,
            Op::PosixMemalign { align, size, .. }
            | Op::AlignedAlloc { align, size, .. }
            | Op::Memalign { align, size, .. } => *[align, size][i] = value,
            Op::Overwrite { len, .. } => *len = value,
            Op::WriteFreed { word, .. } => *word = value,
            Op::FailNext { count } => *count = value,
            Op::ForeignSbrk { bytes } => *bytes = value,
            Op::Thread { thread } => *thread = value,
            Op::Misuse { call, ptr } => {
                let mut fields: Vec<&mut usize> = Vec::new();
                if let BadCall::Realloc { size } = call {
                    fields.push(size);
                }
                if let BadPtr::Interior { offset, .. } = ptr {
                    fields.push(offset);
                }
                if let Some(f) = fields.into_iter().nth(i) {
                    *f = value;
                }
            }
            Op::Free { .. } | Op::UsableSize { .. } | Op::Check | Op::ThreadExit | Op::Fork => {}
        }
        op.fixed()
    }
}

/// A sequence of operations: the unit every runner, encoder and shrinker works on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Trace {
    /// The tunables the trace runs with (its `config` header line).
    pub config: Tunables,
    /// The operations, run in order.
    pub ops: Vec<Op>,
}

impl Trace {
    /// A trace of these ops (not yet fixed up), in the default configuration.
    pub fn new(ops: Vec<Op>) -> Trace {
        Trace {
            config: Tunables::default(),
            ops,
        }
    }

    /// The same trace with these tunables.
    pub fn with_config(mut self, config: Tunables) -> Trace {
        self.config = config;
        self
    }

    /// The one normalisation step, applied to every trace before it runs and by both decoders:
    ///
    /// 1. ops outside `dialect` are dropped (so one byte format serves every fuzz target);
    /// 2. slots are reduced modulo [`MAX_SLOTS`];
    /// 3. bounded values are clamped: [`Op::Overwrite`] length to `1..=MAX_OVERWRITE`,
    ///    [`Op::FailNext`] count to `1..=MAX_FAIL_NEXT`, [`Op::ForeignSbrk`] bytes to
    ///    `..=MAX_FOREIGN_SBRK`, [`BadPtr::Interior`] offsets to at least 1, [`Op::WriteFreed`]
    ///    words modulo [`FREED_WORDS`];
    /// 4. the trace is cut to [`MAX_OPS`] operations;
    /// 5. the tunables are brought into their ranges ([`Tunables::fixed`]).
    ///
    /// Sizes and alignments are never changed: hostile values are the point. Fixing up a fixed-up
    /// trace changes nothing.
    pub fn fixup(&mut self, dialect: Dialect) {
        self.ops.retain(|op| dialect.allows(op));
        self.ops.truncate(MAX_OPS);
        for op in &mut self.ops {
            *op = op.fixed();
        }
        self.config = self.config.fixed();
    }

    /// The trace after [`Trace::fixup`].
    pub fn fixed(mut self, dialect: Dialect) -> Trace {
        self.fixup(dialect);
        self
    }

    /// Whether some op of the trace belongs to `dialect` (beyond the clean ops).
    pub fn uses(&self, dialect: Dialect) -> bool {
        self.ops.iter().any(|op| op.dialect() == dialect)
    }

    /// The smallest dialect that holds every op of the trace.
    pub fn dialect(&self) -> Dialect {
        let mut found = Dialect::Clean;
        for op in &self.ops {
            match (found, op.dialect()) {
                (_, Dialect::Clean) => {}
                (Dialect::Clean, own) => found = own,
                (now, own) if now == own => {}
                _ => return Dialect::All,
            }
        }
        found
    }

    /// Number of ops.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether the trace has no ops.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

impl fmt::Display for Trace {
    /// Prints the trace as text: its `config` line if it sets any tunable, then one op per line
    /// (see [`crate::text`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.config.is_default() {
            writeln!(f, "{}", crate::text::ConfigLine(&self.config))?;
        }
        for op in &self.ops {
            writeln!(f, "{op}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_fit_the_byte_encoding() {
        assert!(SIZES.len() <= 128 && ALIGNS.len() <= 128);
        for table in [SIZES, ALIGNS] {
            for (i, v) in table.iter().enumerate() {
                assert!(!table[..i].contains(v), "duplicate {v}");
            }
        }
    }

    #[test]
    fn fixup_is_idempotent_and_filters_dialects() {
        let mut t = Trace::new(vec![
            Op::Malloc {
                slot: MAX_SLOTS + 3,
                size: usize::MAX,
            },
            Op::FailNext { count: 100 },
            Op::Overwrite { slot: 1, len: 0 },
        ]);
        t.fixup(Dialect::Misuse);
        assert_eq!(
            t.ops,
            vec![
                Op::Malloc {
                    slot: 3,
                    size: usize::MAX
                },
                Op::Overwrite { slot: 1, len: 1 }
            ]
        );
        let again = t.clone().fixed(Dialect::Misuse);
        assert_eq!(again, t);
        assert_eq!(t.dialect(), Dialect::Misuse);
    }

    #[test]
    fn numbers_round_trip_through_with_number() {
        let op = Op::Misuse {
            call: BadCall::Realloc { size: 5 },
            ptr: BadPtr::Interior { slot: 2, offset: 9 },
        };
        assert_eq!(op.numbers(), vec![5, 9]);
        let op2 = op.with_number(1, 3);
        assert_eq!(op2.numbers(), vec![5, 3]);
        let op3 = Op::Calloc {
            slot: 0,
            count: 4,
            size: 8,
        };
        assert_eq!(op3.with_number(1, 2).numbers(), vec![4, 2]);
    }
}
