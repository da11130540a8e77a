//! tagalloc: a boundary-tag `malloc` over `brk` and `mmap`, with a heap walker.
//!
//! Every block carries its size and state in tags at both ends (a header, and a footer while it is
//! free), so a freed block coalesces with both neighbours in O(1). Free blocks live on segregated
//! explicit free lists. Small and medium blocks come from heap segments grown with the program break;
//! large ones are mapped on their own. See [`heap`] for the layout and the numbered invariants that
//! [`Heap::check`] verifies.
//!
//! Three faces over one core:
//! - [`Heap`], a heap value over any [`source::Source`]: independent heaps for tests, including over
//!   [`source::Sim`], a simulated OS with fault injection that runs under Miri;
//! - [`TagAlloc`], a thread-safe `GlobalAlloc` for `#[global_allocator]`;
//! - the preload library (crate `tagalloc-preload` in `allocator/preload`), `libtagalloc.so`, which
//!   exports the C `malloc` family. Linking this crate never replaces the process's `malloc`.

#![warn(missing_docs)]

/// Whether the planted defect `Variant::$v` of [`broken`] is switched on: `false`, at no cost,
/// unless the crate is built with the `broken` feature.
macro_rules! broken {
    ($v:ident) => {{
        #[cfg(feature = "broken")]
        {
            crate::broken::on(crate::broken::Variant::$v)
        }
        #[cfg(not(feature = "broken"))]
        {
            false
        }
    }};
}

pub mod addrmap;
mod binning;
mod block;
#[cfg(feature = "broken")]
pub mod broken;
pub mod cache;
mod error;
mod family;
mod fast;
mod fork;
pub mod global;
pub mod heap;
mod link;
mod lock;
pub mod os;
pub mod source;
mod stats;
mod tag;
pub mod track;
mod transfer;
mod walk;

pub use error::{Call, Error, Misuse, MisuseKind};
pub use global::{LockedHeap, TagAlloc};
pub use heap::{Config, Heap};
pub use lock::Lock;
pub use stats::{LineWriter, Stats};
pub use walk::{Corruption, Near, CHECKPOINT_FRESH, INVARIANTS};

/// Block geometry, for tools that reason about tagalloc's layout (the fuzz suite's misuse traces).
pub mod layout {
    pub use crate::tag::{block_size, ALIGN, HEADER, MIN_BLOCK};
}
