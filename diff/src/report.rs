//! What broke, said so that a person can act on it: the failure, the operation index, the blocks
//! involved, and a minimal trace that reproduces it, printed as a text trace ready to save as a
//! regression.

use std::fmt;

use crate::backend::MisuseKind;
use crate::op::{Op, Trace};
use crate::shadow::rules::Contract;
use crate::text::Number;

/// A block as a report names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockRef {
    /// The slot holding it (`None`: leaked by an allocation into a live slot).
    pub slot: Option<usize>,
    /// Its address.
    pub addr: usize,
    /// Bytes requested.
    pub size: usize,
}

impl fmt::Display for BlockRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.slot {
            Some(s) => write!(f, "slot {s}")?,
            None => f.write_str("leaked block")?,
        }
        write!(f, " at {:#x}, {} bytes", self.addr, Number(self.size))
    }
}

/// One oracle firing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// A returned block overlaps a live one.
    Overlap {
        /// The block just returned.
        new: BlockRef,
        /// The live block it overlaps.
        old: BlockRef,
    },
    /// A returned block is not aligned as required.
    Misaligned {
        /// The block.
        block: BlockRef,
        /// Alignment required.
        align: usize,
        /// The contract's rule that was broken, in words.
        rule: String,
    },
    /// A live block's content changed while the program was not writing to it.
    ContentChanged {
        /// The block.
        block: BlockRef,
        /// First changed offset.
        offset: usize,
        /// Byte found.
        found: u8,
        /// Byte written there.
        expected: u8,
    },
    /// `calloc` returned memory that is not zero.
    CallocNotZero {
        /// The block.
        block: BlockRef,
        /// First nonzero offset.
        offset: usize,
        /// Byte found.
        found: u8,
    },
    /// `realloc` lost part of the common prefix of the old and new block.
    ReallocLostPrefix {
        /// The new block.
        block: BlockRef,
        /// The old block.
        old: BlockRef,
        /// First wrong offset.
        offset: usize,
        /// Byte found.
        found: u8,
        /// Byte the old block held there.
        expected: u8,
    },
    /// `malloc_usable_size` below the request.
    UsableTooSmall {
        /// The block.
        block: BlockRef,
        /// What it said.
        usable: usize,
    },
    /// `malloc_usable_size(NULL)` was not 0.
    UsableOfNull {
        /// What it said.
        usable: usize,
    },
    /// NULL (or an error) where the request must succeed.
    NullWhereSuccessRequired {
        /// The call, in C.
        call: String,
        /// `errno` it set.
        errno: i32,
        /// The contract's rule that was broken, in words.
        rule: String,
    },
    /// A block where the request must fail.
    SuccessWhereFailureRequired {
        /// The call, in C.
        call: String,
        /// Address returned.
        addr: usize,
        /// The contract's rule that was broken, in words.
        rule: String,
    },
    /// A failure with an `errno` the call may not set.
    WrongErrno {
        /// The call, in C.
        call: String,
        /// `errno` set.
        errno: i32,
        /// Those allowed.
        allowed: Vec<i32>,
        /// The contract's rule that was broken, in words.
        rule: String,
    },
    /// A reply the call cannot give (a misuse report for a valid call, say).
    UnexpectedReply {
        /// The call, in C.
        call: String,
        /// What came back.
        reply: String,
    },
    /// The backend's heap walker found the heap broken.
    HeapCheck {
        /// Its message.
        message: String,
    },
    /// A block the allocator keeps in a cache (no caller's) is live in the shadow: handed out
    /// and cached at once.
    CachedWhileLive {
        /// The live block.
        block: BlockRef,
    },
    /// A forked child found its heap broken, or died or hung checking it.
    ForkChild {
        /// What the child reported.
        message: String,
    },
    /// A misuse was not reported as it should be.
    MisuseMissed {
        /// The call, in C.
        call: String,
        /// Kinds of report that would be right.
        expected: Vec<MisuseKind>,
        /// What came back.
        reply: String,
    },
    /// The backend panicked.
    Panic {
        /// The panic message.
        message: String,
    },
    /// Two backends disagreed where glibc's semantics leave no room.
    Divergence {
        /// What differs.
        what: String,
        /// The first backend's answer.
        left: String,
        /// The second backend's answer.
        right: String,
    },
    /// A text trace that parsed printed back to text that parses differently (or not at all).
    TextRoundTrip {
        /// What went wrong.
        message: String,
    },
    /// The process running the trace (a forked child, see [`crate::isolate`]) died during this
    /// op, or stopped making progress in it.
    Crashed {
        /// How it ended.
        death: Death,
    },
}

/// How an isolated run ended without a verdict ([`Failure::Crashed`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Death {
    /// Killed by this signal (`SIGSEGV`, `SIGABRT`, ...).
    Signal(i32),
    /// The allocator ended the process itself, with `exit` or `_exit` and this status.
    Exit(i32),
    /// No progress for this many milliseconds, so it was killed.
    Hang(u64),
}

/// `SIGSEGV` for 11, and so on for the signals an allocator dies of; `None` for the rest.
fn signal_name(signal: i32) -> Option<&'static str> {
    Some(match signal {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGABRT => "SIGABRT",
        libc::SIGFPE => "SIGFPE",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGSYS => "SIGSYS",
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        _ => return None,
    })
}

impl fmt::Display for Death {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Death::Signal(s) => match signal_name(s) {
                Some(name) => write!(f, "the allocator crashed: signal {s} ({name})"),
                None => write!(f, "the allocator crashed: signal {s}"),
            },
            Death::Exit(status) => {
                write!(f, "the allocator ended the process: exit status {status}")
            }
            Death::Hang(ms) => write!(
                f,
                "the allocator hung: no progress for {} s, killed",
                ms as f64 / 1000.0
            ),
        }
    }
}

impl Failure {
    /// A short stable name of the oracle, used to keep the shrinker on the same bug.
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::Overlap { .. } => "overlap",
            Failure::Misaligned { .. } => "misaligned",
            Failure::ContentChanged { .. } => "content-changed",
            Failure::CallocNotZero { .. } => "calloc-not-zero",
            Failure::ReallocLostPrefix { .. } => "realloc-lost-prefix",
            Failure::UsableTooSmall { .. } => "usable-too-small",
            Failure::UsableOfNull { .. } => "usable-of-null",
            Failure::NullWhereSuccessRequired { .. } => "null-where-success-required",
            Failure::SuccessWhereFailureRequired { .. } => "success-where-failure-required",
            Failure::WrongErrno { .. } => "wrong-errno",
            Failure::UnexpectedReply { .. } => "unexpected-reply",
            Failure::HeapCheck { .. } => "heap-check",
            Failure::CachedWhileLive { .. } => "cached-while-live",
            Failure::ForkChild { .. } => "fork-child",
            Failure::MisuseMissed { .. } => "misuse-missed",
            Failure::Panic { .. } => "panic",
            Failure::Divergence { .. } => "divergence",
            Failure::TextRoundTrip { .. } => "text-round-trip",
            Failure::Crashed {
                death: Death::Hang(_),
            } => "hang",
            Failure::Crashed { .. } => "crash",
        }
    }

    /// The rule of the contract the failure broke, in words: the one the shadow applied for the
    /// rules that depend on the contract, else the invariant every contract shares.
    pub fn rule(&self) -> &str {
        match self {
            Failure::Misaligned { rule, .. }
            | Failure::NullWhereSuccessRequired { rule, .. }
            | Failure::SuccessWhereFailureRequired { rule, .. }
            | Failure::WrongErrno { rule, .. } => rule,
            Failure::Overlap { .. } => "a block returned overlaps no live block",
            Failure::ContentChanged { .. } => "a live block keeps its contents until freed",
            Failure::CallocNotZero { .. } => "calloc returns zeroed memory",
            Failure::ReallocLostPrefix { .. } => {
                "realloc keeps the contents up to the smaller of the old and new sizes"
            }
            Failure::UsableTooSmall { .. } => "malloc_usable_size covers the request",
            Failure::UsableOfNull { .. } => "malloc_usable_size(NULL) is 0",
            Failure::UnexpectedReply { .. } => "a call answers as its C signature allows",
            Failure::HeapCheck { .. } => "the allocator's own heap check passes",
            Failure::CachedWhileLive { .. } => "no live block sits in the allocator's cache",
            Failure::ForkChild { .. } => "after fork the child's heap and blocks are intact",
            Failure::MisuseMissed { .. } => "misuse is detected and reported",
            Failure::Panic { .. } => "the allocator does not panic",
            Failure::Divergence { .. } => {
                "two allocators agree where the contract leaves them no choice"
            }
            Failure::TextRoundTrip { .. } => "a trace prints back to text that parses to itself",
            Failure::Crashed {
                death: Death::Hang(_),
            } => "every call returns",
            Failure::Crashed { .. } => "no call crashes the process",
        }
    }

    /// The blocks the failure names.
    pub fn blocks(&self) -> Vec<BlockRef> {
        match self {
            Failure::Overlap { new, old } => vec![*new, *old],
            Failure::ReallocLostPrefix { block, old, .. } => vec![*block, *old],
            Failure::Misaligned { block, .. }
            | Failure::ContentChanged { block, .. }
            | Failure::CallocNotZero { block, .. }
            | Failure::UsableTooSmall { block, .. }
            | Failure::CachedWhileLive { block } => vec![*block],
            _ => Vec::new(),
        }
    }
}

fn errno_name(e: i32) -> String {
    match e {
        libc::ENOMEM => "ENOMEM".into(),
        libc::EINVAL => "EINVAL".into(),
        0 => "0".into(),
        e => e.to_string(),
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Overlap { new, old } => {
                write!(
                    f,
                    "returned block overlaps a live block: new {new}; live {old}"
                )
            }
            Failure::Misaligned { block, align, .. } => {
                write!(f, "block not aligned to {align}: {block}")
            }
            Failure::ContentChanged {
                block,
                offset,
                found,
                expected,
            } => write!(
                f,
                "content of a live block changed: {block}: byte {offset} is {found:#04x}, \
                 expected {expected:#04x}"
            ),
            Failure::CallocNotZero {
                block,
                offset,
                found,
            } => write!(
                f,
                "calloc memory not zero: {block}: byte {offset} is {found:#04x}"
            ),
            Failure::ReallocLostPrefix {
                block,
                old,
                offset,
                found,
                expected,
            } => write!(
                f,
                "realloc lost the common prefix: {block} (was {old}): byte {offset} is \
                 {found:#04x}, expected {expected:#04x}"
            ),
            Failure::UsableTooSmall { block, usable } => {
                write!(f, "malloc_usable_size {usable} below the request: {block}")
            }
            Failure::UsableOfNull { usable } => {
                write!(f, "malloc_usable_size(NULL) is {usable}, expected 0")
            }
            Failure::NullWhereSuccessRequired { call, errno, .. } => write!(
                f,
                "{call} returned NULL (errno {}) where success is required",
                errno_name(*errno)
            ),
            Failure::SuccessWhereFailureRequired { call, addr, .. } => {
                write!(f, "{call} returned {addr:#x} where failure is required")
            }
            Failure::WrongErrno {
                call,
                errno,
                allowed,
                ..
            } => {
                let allowed: Vec<String> = allowed.iter().map(|&e| errno_name(e)).collect();
                write!(
                    f,
                    "{call} failed with errno {}, expected {}",
                    errno_name(*errno),
                    allowed.join(" or ")
                )
            }
            Failure::UnexpectedReply { call, reply } => write!(f, "{call} answered {reply}"),
            Failure::HeapCheck { message } => write!(f, "heap walker: {message}"),
            Failure::CachedWhileLive { block } => {
                write!(f, "a live block is also in the allocator's cache: {block}")
            }
            Failure::ForkChild { message } => write!(f, "after fork: {message}"),
            Failure::MisuseMissed {
                call,
                expected,
                reply,
            } => write!(
                f,
                "misuse not reported: {call} should report {expected:?}, answered {reply}"
            ),
            Failure::Panic { message } => write!(f, "backend panicked: {message}"),
            Failure::Divergence { what, left, right } => {
                write!(f, "backends diverge on {what}: {left} vs {right}")
            }
            Failure::TextRoundTrip { message } => write!(f, "text round trip: {message}"),
            Failure::Crashed { death } => write!(f, "{death}"),
        }
    }
}

/// A failure in context: which backend, which op, and the trace that reproduces it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// Backend (or `A vs B` for the differential).
    pub backend: String,
    /// Index of the op at which the oracle fired; `trace.len()` for the end-of-trace checks.
    pub index: usize,
    /// What broke (boxed: reports are rare, and a small `Result` keeps the happy path cheap).
    pub failure: Box<Failure>,
    /// The trace run (after shrinking, the minimal one).
    pub trace: Trace,
    /// Length of the original trace, when `trace` is a shrunk version of it.
    pub shrunk_from: Option<usize>,
    /// The contract the backend was held to.
    pub contract: Contract,
}

impl Report {
    /// A report of `failure` at op `index` of `trace`.
    pub fn new(
        backend: impl Into<String>,
        trace: &Trace,
        index: usize,
        failure: Failure,
    ) -> Report {
        Report {
            backend: backend.into(),
            index,
            failure: Box::new(failure),
            trace: trace.clone(),
            shrunk_from: None,
            contract: Contract::Glibc,
        }
    }
}

impl Report {
    /// The op at which the oracle fired (`None`: at the end of the trace).
    pub fn op(&self) -> Option<Op> {
        self.trace.ops.get(self.index).copied()
    }
}

impl Report {
    /// The report's trace as a regression file: comment lines saying what it reproduces (the
    /// failure, the contract and its rule), then the trace.
    pub fn regression(&self) -> String {
        format!(
            "# {} [{}]\n# contract {}, rule: {}\n{}",
            self.failure,
            self.failure.kind(),
            self.contract,
            self.failure.rule(),
            self.trace
        )
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "oracle fired on {} at ", self.backend)?;
        match self.op() {
            Some(op) => writeln!(f, "op {} `{op}`", self.index)?,
            None => writeln!(f, "the end of the trace (final check and cleanup)")?,
        }
        writeln!(f, "  {} [{}]", self.failure, self.failure.kind())?;
        writeln!(
            f,
            "  broke contract {}, rule: {}",
            self.contract,
            self.failure.rule()
        )?;
        let blocks = self.failure.blocks();
        if !blocks.is_empty() {
            writeln!(f, "blocks involved:")?;
            for b in blocks {
                writeln!(f, "  {b}")?;
            }
        }
        match self.shrunk_from {
            Some(n) => writeln!(
                f,
                "minimal trace ({} ops, shrunk from {n}):",
                self.trace.len()
            )?,
            None => writeln!(f, "trace ({} ops):", self.trace.len())?,
        }
        writeln!(
            f,
            "# reproduces: {} [{}]",
            self.failure,
            self.failure.kind()
        )?;
        write!(f, "{}", self.trace)
    }
}

impl std::error::Error for Report {}
