//! What can go wrong, as values.
//!
//! The Rust API returns these; the C exports print the same text as one line on stderr and abort.
//! Displaying an error never allocates: `Display` writes straight into the formatter, and
//! [`Misuse::write_line`] renders into a caller's stack buffer.

use core::fmt;

/// The call in which a misuse was detected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Call {
    /// `malloc` or any other allocating call (corruption met while taking a free block).
    Malloc,
    /// `free`.
    Free,
    /// `realloc` (and `reallocarray`).
    Realloc,
    /// `malloc_usable_size`.
    UsableSize,
}

impl Call {
    /// The C name of the call.
    pub const fn name(self) -> &'static str {
        match self {
            Call::Malloc => "malloc",
            Call::Free => "free",
            Call::Realloc => "realloc",
            Call::UsableSize => "malloc_usable_size",
        }
    }
}

/// What was misused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MisuseKind {
    /// A pointer tagalloc never returned: a stack or static address, an interior or misaligned
    /// pointer, or one into memory tagalloc does not manage.
    InvalidPointer,
    /// A block that is already free.
    DoubleFree,
    /// A boundary tag or free-list link was overwritten, typically by an overflow of the block before.
    CorruptTag,
    /// A block met on a free list or in a cache, or a link leading to one, failed its checks: the
    /// freed block was written to after `free` (use after free). The address is the block's
    /// payload (the pointer `malloc` once returned for it).
    CorruptFree,
}

impl MisuseKind {
    const fn text(self) -> &'static str {
        match self {
            MisuseKind::InvalidPointer => "invalid pointer",
            MisuseKind::DoubleFree => "double free of",
            MisuseKind::CorruptTag => "corrupted boundary tag at",
            MisuseKind::CorruptFree => "corrupted free block at",
        }
    }
}

/// A misuse of the allocator, detected: the call, what was wrong and the address involved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Misuse {
    /// The call that detected it.
    pub call: Call,
    /// What was wrong.
    pub kind: MisuseKind,
    /// The pointer passed, or the address of the corrupted tag.
    pub addr: usize,
}

impl Misuse {
    /// What was wrong, in the words of the message: a freed block passed to anything but `free`
    /// is a use after free.
    const fn text(&self) -> &'static str {
        match (self.kind, self.call) {
            (MisuseKind::DoubleFree, Call::Realloc | Call::UsableSize) => "use after free of",
            (kind, _) => kind.text(),
        }
    }
}

impl fmt::Display for Misuse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}(): {} {:#x} detected",
            self.call.name(),
            self.text(),
            self.addr
        )
    }
}

impl Misuse {
    /// Renders `tagalloc: <message>\n` into `buf` without allocating; returns the bytes written.
    pub fn write_line(&self, buf: &mut [u8; 128]) -> usize {
        let mut w = crate::stats::LineWriter::new(buf);
        w.str("tagalloc: ");
        w.str(self.call.name());
        w.str("(): ");
        w.str(self.text());
        w.str(" ");
        w.hex(self.addr);
        w.str(" detected\n");
        w.len()
    }
}

/// Why a call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Error {
    /// Not enough memory, or a request larger than `PTRDIFF_MAX` (`errno` `ENOMEM`).
    OutOfMemory,
    /// An alignment the call does not accept (`errno` `EINVAL`).
    InvalidArgument,
    /// The caller misused the allocator.
    Misuse(Misuse),
}

impl Error {
    /// The `errno` value glibc sets for this failure.
    pub const fn errno(&self) -> i32 {
        match self {
            Error::OutOfMemory => libc::ENOMEM,
            Error::InvalidArgument | Error::Misuse(_) => libc::EINVAL,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::OutOfMemory => f.write_str("out of memory"),
            Error::InvalidArgument => f.write_str("invalid argument"),
            Error::Misuse(m) => m.fmt(f),
        }
    }
}

impl std::error::Error for Error {}

impl From<Misuse> for Error {
    fn from(m: Misuse) -> Error {
        Error::Misuse(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages() {
        let m = Misuse {
            call: Call::Free,
            kind: MisuseKind::DoubleFree,
            addr: 0x55d0c3a010,
        };
        assert_eq!(
            m.to_string(),
            "free(): double free of 0x55d0c3a010 detected"
        );
        let mut buf = [0; 128];
        let n = m.write_line(&mut buf);
        assert_eq!(
            &buf[..n],
            b"tagalloc: free(): double free of 0x55d0c3a010 detected\n"
        );
        let m = Misuse {
            call: Call::Malloc,
            kind: MisuseKind::CorruptFree,
            addr: 0x55d0c3a010,
        };
        assert_eq!(
            m.to_string(),
            "malloc(): corrupted free block at 0x55d0c3a010 detected"
        );
        assert_eq!(Error::OutOfMemory.errno(), libc::ENOMEM);
    }
}
