//! The checking schedule: what the runner checks after each op, at checkpoints, and at the end.
//!
//! Three levels ([`Check`]), chosen for the whole process with [`set_level`] (the command line's
//! `--check`; a forked child inherits it):
//!
//! - [`Check::Touched`], the default (the fuzz targets and `cargo test` run it): after each op,
//!   the backend's local check around the blocks the op returned or freed
//!   ([`Backend::check_near`]: the blocks between the live neighbours, the bins, the segment's top
//!   and epilogue, a large chunk's registry entry, the lists of the thread cache that changed
//!   since the last local check, and the transfer cache); the shadow checks the
//!   content of those blocks and of their neighbours (as the runner always does). A checkpoint —
//!   the whole heap walk, the cached blocks against the shadow, and the content of every live
//!   block — runs every [`full_every`] ops, at every `check` op, after a thread exits or forks,
//!   and at the end of the trace.
//! - [`Check::Every`]: the whole heap walk after every op (what the suite did before the local
//!   check; it costs ops × live blocks).
//! - [`Check::End`]: no walker between ops; checkpoints only at `check` ops and at the end.
//!
//! Whatever the level, the end of a trace walks the whole heap before and after freeing every
//! live block, so no invariant is skipped before a trace is called clean.
//!
//! The walk at a checkpoint (a `check` op's too, and the one before those frees) compares the
//! first [`tagalloc::CHECKPOINT_FRESH`] bytes past the heap's fresh frontier with zero, not all
//! of its newest segment's fresh memory ([`Backend::check_checkpoint`]): that comparison alone
//! was a third of the instructions of the `ops` and `locked` targets on their corpora. The walk
//! after the frees, and every walk at level [`Check::Every`], compares all of it.

use std::sync::atomic::{AtomicU8, Ordering};

use crate::backend::{Backend, Near};
use crate::op::Op;
use crate::report::Failure;

use super::Runner;

/// How much the runner checks between the checkpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Check {
    /// The whole heap walk after every op.
    Every,
    /// What each op touched after it; the whole walk at checkpoints.
    #[default]
    Touched,
    /// The whole walk only at `check` ops and at the end.
    End,
}

impl Check {
    /// Every level, as `--check` names them.
    pub const ALL: [Check; 3] = [Check::Every, Check::Touched, Check::End];

    /// The level's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Check::Every => "every",
            Check::Touched => "touched",
            Check::End => "end",
        }
    }

    /// The level called `name`.
    pub fn from_name(name: &str) -> Option<Check> {
        Check::ALL.into_iter().find(|c| c.name() == name)
    }
}

static LEVEL: AtomicU8 = AtomicU8::new(1);

/// Sets the level every runner of this process uses from now on.
pub fn set_level(level: Check) {
    let n = Check::ALL.iter().position(|&c| c == level).unwrap_or(1);
    LEVEL.store(n as u8, Ordering::Relaxed);
}

/// The level runners use ([`Check::Touched`] unless [`set_level`] said otherwise).
pub fn level() -> Check {
    Check::ALL[LEVEL.load(Ordering::Relaxed) as usize % Check::ALL.len()]
}

/// Ops between two checkpoints at level [`Check::Touched`] with `live` blocks live: at least 64,
/// and as many as there are live blocks, so the whole walk costs about one block per op.
pub fn full_every(live: usize) -> usize {
    live.max(64)
}

impl<B: Backend> Runner<B> {
    /// The block in the slot `op` names, before it runs (what a free or realloc touches).
    pub(super) fn touched_before(&self, op: &Op) -> Option<usize> {
        op.slot().and_then(|s| self.shadow.get(s)).map(|b| b.addr)
    }

    /// The checks the level asks for after `op` ran; `before` is [`Runner::touched_before`].
    pub(super) fn check_after(&mut self, op: &Op, before: Option<usize>) -> Result<(), Failure> {
        self.since_full += 1;
        let full = match (self.level, op) {
            (_, Op::Check) => true,
            (Check::Every, _) => true,
            (Check::End, _) => false,
            (Check::Touched, Op::ThreadExit | Op::Fork) => true,
            (Check::Touched, _) => self.since_full >= full_every(self.shadow.len()),
        };
        if full {
            // `Every` walks as the suite always did, without sweeping every block's content.
            let sweep = self.level == Check::Touched && !matches!(op, Op::Check);
            // Level `Every` walks fresh memory whole after every op, as the suite always did.
            return self.checkpoint(sweep, self.level == Check::Every);
        }
        if self.level == Check::Touched && self.caps.walker {
            self.check_touched(op, before)?;
        }
        Ok(())
    }

    /// The local check around the blocks `op` returned or freed.
    fn check_touched(&mut self, op: &Op, before: Option<usize>) -> Result<(), Failure> {
        let after = self.touched_before(op);
        let mut near = [Near {
            addr: 0,
            from: None,
            live: false,
        }; 2];
        let mut n = 0;
        for (addr, live) in [(before, false), (after, true)] {
            let Some(addr) = addr else { continue };
            if n == 1 && near[0].addr == addr {
                near[0].live = true;
                continue;
            }
            near[n] = Near {
                addr,
                from: self.shadow.below(addr),
                live,
            };
            n += 1;
        }
        self.backend
            .check_near(&near[..n])
            .map_err(|message| Failure::HeapCheck { message })
    }

    /// A checkpoint: the whole heap walk (with the cached blocks against the shadow), and with
    /// `sweep` the content of every live block. The walk compares all of the heap's fresh memory
    /// with zero when `whole`, else its first part ([`Backend::check_checkpoint`]).
    pub(super) fn checkpoint(&mut self, sweep: bool, whole: bool) -> Result<(), Failure> {
        self.since_full = 0;
        if sweep {
            // SAFETY: every block in the shadow is live in the backend.
            unsafe { self.shadow.verify_all()? };
        }
        if self.caps.walker {
            self.walk(whole)?;
        }
        Ok(())
    }
}
