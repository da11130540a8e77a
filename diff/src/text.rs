//! Text traces, for people: one op per line, `#` starts a comment.
//!
//! ```text
//! # grammar (one op per line; blank lines and comments anywhere)
//! malloc SLOT SIZE                 calloc SLOT COUNT SIZE           realloc SLOT SIZE
//! free SLOT                        usable_size SLOT                 check
//! posix_memalign SLOT ALIGN SIZE   aligned_alloc SLOT ALIGN SIZE    memalign SLOT ALIGN SIZE
//! misuse CALL PTR                  overwrite SLOT LEN               (misuse dialect)
//! write_freed SLOT WORD                                             (misuse dialect)
//! fail_next COUNT                  foreign_sbrk BYTES               (faults dialect)
//! thread N                         thread_exit                      fork (threads dialect)
//! a SLOT SIZE   r SLOT SIZE   f SLOT                                (CS:APP malloc lab)
//! config NAME=VALUE...             (header, before the first op; see below)
//! CALL   = free | realloc SIZE | usable_size
//! PTR    = freed SLOT | interior SLOT OFFSET | foreign stack|static|global|wild
//! NUMBER = (DECIMAL | 0xHEX | SIZE_MAX | PTRDIFF_MAX) [+DECIMAL | -DECIMAL]
//! ```
//!
//! The `config` header line sets the trace's [`Tunables`]: `mmap_threshold`, `trim_threshold`,
//! `top_pad` (NUMBERs), `trim_delay`, `cache_limit` (small counts), `dynamic_threshold` and
//! `fast_lists` (`on`/`off`), e.g. `config mmap_threshold=4096 top_pad=0 trim_delay=0 cache_limit=1`.
//! Unnamed tunables keep glibc's defaults; values beyond a tunable's range are an error.
//!
//! CS:APP malloc-lab trace files replay unchanged: their header (up to four lines holding one
//! integer each: suggested heap size, number of ids, number of ops, weight) is accepted before the
//! first op and ignored, and `a`/`r`/`f` are aliases of `malloc`/`realloc`/`free`.
//!
//! Contract: [`parse`] never panics; what it accepts is already fixed up ([`Trace::fixup`] with
//! [`Dialect::All`](crate::op::Dialect::All) changes nothing), and `parse(&trace.to_string())`
//! gives back `trace` for every fixed-up trace. Errors name the line: `FILE:LINE: message`.

use std::fmt;

use crate::op::FREED_WORDS;
use crate::op::{
    BadCall, BadPtr, Foreign, Op, Trace, MAX_FAIL_NEXT, MAX_FOREIGN_SBRK, MAX_OVERWRITE, MAX_SLOTS,
    MAX_THREADS, PTRDIFF_MAX,
};
use crate::tunables::{self, Tunables};

/// A malformed line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong, in words.
    pub message: String,
}

impl ParseError {
    /// The error as `FILE:LINE: message`.
    pub fn in_file(&self, file: &str) -> String {
        format!("{file}:{}: {}", self.line, self.message)
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

/// Parses raw bytes (which must be UTF-8) as a text trace.
pub fn parse_bytes(data: &[u8]) -> Result<Trace, ParseError> {
    match std::str::from_utf8(data) {
        Ok(text) => parse(text),
        Err(e) => Err(ParseError {
            line: 1 + data[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count(),
            message: "not UTF-8 text".into(),
        }),
    }
}

/// Parses a text trace.
pub fn parse(text: &str) -> Result<Trace, ParseError> {
    parse_located(text).map(|(trace, _)| trace)
}

/// Which line of its file each op of a trace came from (1-based), for reports that point at the
/// user's file rather than at an op number.
pub type Lines = Vec<usize>;

/// [`parse`], also giving the line of every op.
///
/// The malloc-lab aliases get the lab's meaning: `f -1` is `free(NULL)` (a free of a slot no op
/// of the trace uses), and `f ID` of an id already freed is the trace's own error (a double free,
/// which no allocator need survive), not a quiet `free(NULL)`.
pub fn parse_located(text: &str) -> Result<(Trace, Lines), ParseError> {
    let mut lines = Vec::new();
    // Slots an `f -1` named, to become one slot the trace never uses.
    let mut null_frees = Vec::new();
    // Per slot: the line that last freed it, while it stays freed.
    let mut freed_at: std::collections::HashMap<usize, usize> = Default::default();
    let mut ops = Vec::new();
    let mut config = None;
    let mut header_lines = 0;
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let content = raw.split('#').next().unwrap_or("");
        let words: Vec<&str> = content.split_whitespace().collect();
        if words.is_empty() {
            continue;
        }
        let error = |message: String| ParseError {
            line,
            message: elide_long_quotes(&message),
        };
        if ops.is_empty()
            && header_lines < 4
            && words.len() == 1
            && words[0].bytes().all(|b| b.is_ascii_digit())
        {
            header_lines += 1;
            continue;
        }
        if words[0] == "config" {
            if !ops.is_empty() || config.is_some() {
                return Err(error("`config` must come once, before the first op".into()));
            }
            config = Some(parse_config(&words[1..]).map_err(error)?);
            continue;
        }
        if words == ["f", "-1"] {
            null_frees.push(ops.len());
            lines.push(line);
            ops.push(Op::Free { slot: 0 });
            continue;
        }
        let op = parse_op(&words).map_err(error)?;
        match op {
            Op::Free { slot } if words[0] == "f" => {
                if let Some(first) = freed_at.get(&slot) {
                    return Err(error(format!(
                        "`f {slot}` frees id {slot} again (freed on line {first}): the trace \
                         itself double-frees; to test that an allocator detects a double free, \
                         write `misuse free freed {slot}` in place of the first free"
                    )));
                }
                freed_at.insert(slot, line);
            }
            Op::Free { slot } | Op::Realloc { slot, size: 0 } => {
                freed_at.insert(slot, line);
            }
            op => {
                if let Some(slot) = op.slot() {
                    freed_at.remove(&slot);
                }
            }
        }
        if ops.len() >= crate::op::MAX_OPS {
            return Err(ParseError {
                line,
                message: format!("more than {} ops", crate::op::MAX_OPS),
            });
        }
        lines.push(line);
        ops.push(op);
    }
    if !null_frees.is_empty() {
        let used: std::collections::BTreeSet<usize> = ops
            .iter()
            .enumerate()
            .filter(|(i, _)| !null_frees.contains(i))
            .filter_map(|(_, op)| op.slot())
            .collect();
        let unused = (0..).find(|s| !used.contains(s)).unwrap_or(0);
        for &i in &null_frees {
            ops[i] = Op::Free { slot: unused };
        }
    }
    let trace = Trace::new(ops).with_config(config.unwrap_or_default());
    Ok((trace, lines))
}

/// The `NAME=VALUE` words of a `config` line.
fn parse_config(words: &[&str]) -> Result<Tunables, String> {
    let mut t = Tunables::default();
    for w in words {
        let (name, value) = w
            .split_once('=')
            .ok_or_else(|| format!("`{}` is not NAME=VALUE", shorten(w)))?;
        let number = |max: usize| match parse_number(value) {
            Some(v) if v <= max => Ok(v),
            Some(v) => Err(format!("{name}={v} is above its limit {max}")),
            None => Err(format!("bad value `{}` for {name}", shorten(value))),
        };
        let count = |max: u8, min: u8| -> Result<u8, String> {
            let v = number(usize::from(max))?;
            if v < usize::from(min) {
                return Err(format!("{name}={v} is below its minimum {min}"));
            }
            Ok(v as u8)
        };
        // Every size limit fits in 32 bits.
        let size = |max: usize| number(max).map(|v| Some(v as u32));
        match name {
            "mmap_threshold" => t.mmap_threshold = size(tagalloc::heap::MMAP_THRESHOLD_MAX)?,
            "trim_threshold" => t.trim_threshold = size(tunables::MAX_TRIM_THRESHOLD)?,
            "top_pad" => t.top_pad = size(tunables::MAX_TOP_PAD)?,
            "trim_delay" => t.trim_delay = Some(count(tunables::MAX_TRIM_DELAY, 0)?),
            "cache_limit" => t.cache_limit = Some(count(tunables::MAX_CACHE_LIMIT, 1)?),
            "dynamic_threshold" | "fast_lists" => {
                let on = match value {
                    "on" | "1" | "true" => true,
                    "off" | "0" | "false" => false,
                    _ => return Err(format!("{name} is on or off, not `{}`", shorten(value))),
                };
                if name == "fast_lists" {
                    t.fast_lists = Some(on);
                } else {
                    t.dynamic_threshold = Some(on);
                }
            }
            _ => {
                return Err(format!(
                    "unknown tunable `{}` (mmap_threshold, trim_threshold, top_pad, trim_delay, \
                     dynamic_threshold, cache_limit, fast_lists)",
                    shorten(name)
                ))
            }
        }
    }
    Ok(t)
}

/// A word as an error message quotes it: at most 40 characters.
fn shorten(w: &str) -> String {
    match w.char_indices().nth(40) {
        Some((i, _)) => format!("{}...", &w[..i]),
        None => w.to_string(),
    }
}

/// A trace's `config` header line, as [`parse`] reads it back.
pub struct ConfigLine<'a>(pub &'a Tunables);

impl fmt::Display for ConfigLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.0;
        f.write_str("config")?;
        for (name, v) in [
            ("mmap_threshold", t.mmap_threshold),
            ("trim_threshold", t.trim_threshold),
            ("top_pad", t.top_pad),
        ] {
            if let Some(v) = v {
                write!(f, " {name}={}", Number(v as usize))?;
            }
        }
        if let Some(v) = t.trim_delay {
            write!(f, " trim_delay={v}")?;
        }
        if let Some(on) = t.dynamic_threshold {
            write!(f, " dynamic_threshold={}", if on { "on" } else { "off" })?;
        }
        if let Some(v) = t.cache_limit {
            write!(f, " cache_limit={v}")?;
        }
        if let Some(on) = t.fast_lists {
            write!(f, " fast_lists={}", if on { "on" } else { "off" })?;
        }
        Ok(())
    }
}

/// The longest quoted word an error message shows whole.
const QUOTE_MAX: usize = 48;

/// `message` with every backquoted word longer than [`QUOTE_MAX`] cut to its start, its end and its
/// length: a 5 MB number in a trace gives a one-line error, not 5 MB of it.
fn elide_long_quotes(message: &str) -> String {
    let mut out = String::new();
    // Said after the closing backquote of a word that was cut.
    let mut after = String::new();
    for (i, part) in message.split('`').enumerate() {
        if i > 0 {
            out.push('`');
            out.push_str(&std::mem::take(&mut after));
        }
        // Odd parts sit between backquotes.
        if i % 2 == 1 && part.chars().count() > QUOTE_MAX {
            let head: String = part.chars().take(24).collect();
            let tail: Vec<char> = part.chars().rev().take(8).collect();
            out.push_str(&head);
            out.push('…');
            out.extend(tail.into_iter().rev());
            after = format!(" ({} bytes)", part.len());
        } else {
            out.push_str(part);
        }
    }
    out
}

/// The words of one line, consumed left to right.
struct Words<'a> {
    words: &'a [&'a str],
    next: usize,
}

impl<'a> Words<'a> {
    fn word(&mut self, what: &str) -> Result<&'a str, String> {
        let w = self
            .words
            .get(self.next)
            .ok_or_else(|| format!("`{}` needs {what}", self.words[0]))?;
        self.next += 1;
        Ok(w)
    }

    fn number(&mut self, what: &str) -> Result<usize, String> {
        let w = self.word(what)?;
        parse_number(w).ok_or_else(|| format!("bad {what} `{w}`"))
    }

    fn bounded(&mut self, what: &str, lo: usize, hi: usize) -> Result<usize, String> {
        let n = self.number(what)?;
        if n < lo || n > hi {
            return Err(format!("{what} {n} out of range {lo}..={hi}"));
        }
        Ok(n)
    }

    fn slot(&mut self) -> Result<usize, String> {
        self.bounded("a slot", 0, MAX_SLOTS - 1)
    }

    fn end(&self) -> Result<(), String> {
        match self.words.get(self.next) {
            None => Ok(()),
            Some(w) => Err(format!("unexpected `{w}` after `{}`", self.words[0])),
        }
    }
}

fn parse_op(words: &[&str]) -> Result<Op, String> {
    let mut w = Words { words, next: 1 };
    let op = match words[0] {
        "malloc" | "a" => Op::Malloc {
            slot: w.slot()?,
            size: w.number("a size")?,
        },
        "calloc" => Op::Calloc {
            slot: w.slot()?,
            count: w.number("a count")?,
            size: w.number("a size")?,
        },
        "realloc" | "r" => Op::Realloc {
            slot: w.slot()?,
            size: w.number("a size")?,
        },
        "free" | "f" => Op::Free { slot: w.slot()? },
        "posix_memalign" => Op::PosixMemalign {
            slot: w.slot()?,
            align: w.number("an alignment")?,
            size: w.number("a size")?,
        },
        "aligned_alloc" => Op::AlignedAlloc {
            slot: w.slot()?,
            align: w.number("an alignment")?,
            size: w.number("a size")?,
        },
        "memalign" => Op::Memalign {
            slot: w.slot()?,
            align: w.number("an alignment")?,
            size: w.number("a size")?,
        },
        "usable_size" | "malloc_usable_size" => Op::UsableSize { slot: w.slot()? },
        "check" => Op::Check,
        "misuse" => {
            let call = match w.word("a call (free, realloc SIZE, usable_size)")? {
                "free" => BadCall::Free,
                "realloc" => BadCall::Realloc {
                    size: w.number("a size")?,
                },
                "usable_size" => BadCall::UsableSize,
                other => {
                    return Err(format!(
                        "unknown call `{other}` (free, realloc, usable_size)"
                    ))
                }
            };
            let ptr = match w.word("a pointer (freed, interior, foreign)")? {
                "freed" => BadPtr::Freed { slot: w.slot()? },
                "interior" => BadPtr::Interior {
                    slot: w.slot()?,
                    offset: w.bounded("an offset", 1, usize::MAX)?,
                },
                "foreign" => {
                    let kind = w.word("stack, static, global or wild")?;
                    let found = Foreign::ALL.into_iter().find(|f| f.name() == kind);
                    BadPtr::Foreign(found.ok_or_else(|| {
                        format!("unknown foreign pointer `{kind}` (stack, static, global, wild)")
                    })?)
                }
                other => {
                    return Err(format!(
                        "unknown pointer `{other}` (freed, interior, foreign)"
                    ))
                }
            };
            Op::Misuse { call, ptr }
        }
        "overwrite" => Op::Overwrite {
            slot: w.slot()?,
            len: w.bounded("a length", 1, MAX_OVERWRITE)?,
        },
        "write_freed" => Op::WriteFreed {
            slot: w.slot()?,
            word: w.bounded("a word", 0, FREED_WORDS - 1)?,
        },
        "fail_next" => Op::FailNext {
            count: w.bounded("a count", 1, MAX_FAIL_NEXT)?,
        },
        "foreign_sbrk" => Op::ForeignSbrk {
            bytes: w.bounded("a byte count", 0, MAX_FOREIGN_SBRK)?,
        },
        "thread" => Op::Thread {
            thread: w.bounded("a thread", 0, MAX_THREADS - 1)?,
        },
        "thread_exit" => Op::ThreadExit,
        "fork" => Op::Fork,
        other => return Err(format!("unknown operation `{other}`")),
    };
    w.end()?;
    Ok(op)
}

/// Parses `DECIMAL`, `0xHEX`, `SIZE_MAX` or `PTRDIFF_MAX`, optionally followed by `+N` or `-N`.
pub fn parse_number(word: &str) -> Option<usize> {
    let split = word
        .char_indices()
        .skip(1)
        .find(|&(_, c)| c == '+' || c == '-')
        .map(|(i, _)| i);
    let (base, delta) = match split {
        Some(i) => (&word[..i], Some(&word[i..])),
        None => (word, None),
    };
    let base = match base {
        "SIZE_MAX" => usize::MAX,
        "PTRDIFF_MAX" => PTRDIFF_MAX,
        _ => unsigned(base)?,
    };
    match delta {
        None => Some(base),
        Some(d) => {
            let n = unsigned(&d[1..])?;
            if d.starts_with('+') {
                base.checked_add(n)
            } else {
                base.checked_sub(n)
            }
        }
    }
}

fn unsigned(s: &str) -> Option<usize> {
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        usize::from_str_radix(hex, 16).ok()
    } else {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    }
}

/// A number as people read it: near `SIZE_MAX`/`PTRDIFF_MAX` relative to them, large values in
/// hex, the rest in decimal. [`parse_number`] reads every form back.
pub struct Number(pub usize);

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        for (name, base) in [("SIZE_MAX", usize::MAX), ("PTRDIFF_MAX", PTRDIFF_MAX)] {
            let d = v as i128 - base as i128;
            if d.abs() <= 65536 {
                return match d {
                    0 => f.write_str(name),
                    d if d > 0 => write!(f, "{name}+{d}"),
                    d => write!(f, "{name}-{}", -d),
                };
            }
        }
        if v >= 1 << 32 {
            write!(f, "{v:#x}")
        } else {
            write!(f, "{v}")
        }
    }
}

impl fmt::Display for Op {
    /// The op as one line of a text trace.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = Number;
        match *self {
            Op::Malloc { slot, size } => write!(f, "malloc {slot} {}", n(size)),
            Op::Calloc { slot, count, size } => {
                write!(f, "calloc {slot} {} {}", n(count), n(size))
            }
            Op::Realloc { slot, size } => write!(f, "realloc {slot} {}", n(size)),
            Op::Free { slot } => write!(f, "free {slot}"),
            Op::PosixMemalign { slot, align, size } => {
                write!(f, "posix_memalign {slot} {} {}", n(align), n(size))
            }
            Op::AlignedAlloc { slot, align, size } => {
                write!(f, "aligned_alloc {slot} {} {}", n(align), n(size))
            }
            Op::Memalign { slot, align, size } => {
                write!(f, "memalign {slot} {} {}", n(align), n(size))
            }
            Op::UsableSize { slot } => write!(f, "usable_size {slot}"),
            Op::Check => f.write_str("check"),
            Op::Misuse { call, ptr } => {
                f.write_str("misuse ")?;
                match call {
                    BadCall::Free => f.write_str("free ")?,
                    BadCall::Realloc { size } => write!(f, "realloc {} ", n(size))?,
                    BadCall::UsableSize => f.write_str("usable_size ")?,
                }
                match ptr {
                    BadPtr::Freed { slot } => write!(f, "freed {slot}"),
                    BadPtr::Interior { slot, offset } => {
                        write!(f, "interior {slot} {}", n(offset))
                    }
                    BadPtr::Foreign(kind) => write!(f, "foreign {}", kind.name()),
                }
            }
            Op::Overwrite { slot, len } => write!(f, "overwrite {slot} {len}"),
            Op::WriteFreed { slot, word } => write!(f, "write_freed {slot} {word}"),
            Op::FailNext { count } => write!(f, "fail_next {count}"),
            Op::ForeignSbrk { bytes } => write!(f, "foreign_sbrk {}", n(bytes)),
            Op::Thread { thread } => write!(f, "thread {thread}"),
            Op::ThreadExit => f.write_str("thread_exit"),
            Op::Fork => f.write_str("fork"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_word_is_shown_cut_in_the_error() {
        let huge = "9".repeat(5_000_000);
        let e = parse(&format!("malloc 0 8\nmalloc 1 {huge}\n")).unwrap_err();
        assert_eq!(e.line, 2);
        assert_eq!(
            e.message,
            format!("bad a size `{}…99999999` (5000000 bytes)", "9".repeat(24))
        );
        let e = parse(&format!("x{huge} 1\n")).unwrap_err();
        assert!(e.message.len() < 100, "{}", e.message);
        // Short words stay whole.
        assert_eq!(
            parse("free zero\n").unwrap_err().message,
            "bad a slot `zero`"
        );
    }

    #[test]
    fn lab_traces_free_null_and_refuse_their_own_double_frees() {
        let (t, lines) = parse_located("20000\n2\n3\n1\na 0 8\nf -1\n\nf 0\n").unwrap();
        assert_eq!(t.ops[1], Op::Free { slot: 1 });
        assert_eq!(lines, vec![5, 6, 8]);
        let e = parse("a 0 8\nf 0\na 1 8\nf 0\n").unwrap_err();
        assert_eq!(e.line, 4, "{e}");
        assert!(e.message.contains("freed on line 2"), "{e}");
        // Reallocated in between, it is no double free; nor is `free` (our own: free(NULL)).
        parse("a 0 8\nf 0\nr 0 16\nf 0\n").unwrap();
        parse("a 0 8\nfree 0\nfree 0\n").unwrap();
    }

    #[test]
    fn parses_the_examples_of_the_issue() {
        let t = parse(
            "# a comment\nmalloc 0 24\ncalloc 1 10 8  # trailing\nrealloc 0 100\n\n\
             posix_memalign 2 64 200\nfree 0\n",
        )
        .unwrap();
        assert_eq!(
            t.ops,
            vec![
                Op::Malloc { slot: 0, size: 24 },
                Op::Calloc {
                    slot: 1,
                    count: 10,
                    size: 8
                },
                Op::Realloc { slot: 0, size: 100 },
                Op::PosixMemalign {
                    slot: 2,
                    align: 64,
                    size: 200
                },
                Op::Free { slot: 0 },
            ]
        );
    }

    #[test]
    fn accepts_csapp_traces_as_they_are() {
        let t = parse("20000\n2\n4\n1\na 0 2040\na 1 2040\nr 0 4000\nf 1\n").unwrap();
        assert_eq!(t.len(), 4);
        assert_eq!(
            t.ops[2],
            Op::Realloc {
                slot: 0,
                size: 4000
            }
        );
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse("malloc 0 8\nmalloc x 8\n").unwrap_err();
        assert_eq!(e.in_file("t.trace"), "t.trace:2: bad a slot `x`");
        assert_eq!(
            parse("frob 1").unwrap_err().message,
            "unknown operation `frob`"
        );
        assert_eq!(
            parse("free 1 2").unwrap_err().message,
            "unexpected `2` after `free`"
        );
        assert_eq!(
            parse("malloc 1").unwrap_err().message,
            "`malloc` needs a size"
        );
        assert!(parse("malloc 0 8\n5\n").is_err(), "a header after an op");
        assert!(parse("overwrite 0 9").is_err());
        assert!(parse_bytes(b"malloc 0 8\n\xff").unwrap_err().line == 2);
    }

    #[test]
    fn hostile_numbers_print_and_parse_back() {
        for v in [
            0,
            1,
            usize::MAX,
            PTRDIFF_MAX + 1,
            PTRDIFF_MAX - 4096,
            1 << 40,
            12345,
        ] {
            assert_eq!(parse_number(&Number(v).to_string()), Some(v), "{v}");
        }
        assert_eq!(Number(PTRDIFF_MAX + 1).to_string(), "PTRDIFF_MAX+1");
        assert_eq!(parse_number("SIZE_MAX+1"), None);
        assert_eq!(parse_number("0x10"), Some(16));
        assert_eq!(parse_number("-1"), None);
    }

    #[test]
    fn every_op_prints_and_parses_back() {
        let ops = vec![
            Op::Malloc {
                slot: 3,
                size: usize::MAX,
            },
            Op::UsableSize { slot: 1 },
            Op::Check,
            Op::AlignedAlloc {
                slot: 0,
                align: 24,
                size: 5,
            },
            Op::Memalign {
                slot: 0,
                align: PTRDIFF_MAX + 1,
                size: 5,
            },
            Op::Misuse {
                call: BadCall::Realloc { size: 7 },
                ptr: BadPtr::Interior { slot: 2, offset: 8 },
            },
            Op::Misuse {
                call: BadCall::UsableSize,
                ptr: BadPtr::Foreign(Foreign::Global),
            },
            Op::Misuse {
                call: BadCall::Free,
                ptr: BadPtr::Freed { slot: 9 },
            },
            Op::Overwrite { slot: 4, len: 8 },
            Op::WriteFreed { slot: 5, word: 3 },
            Op::FailNext { count: 2 },
            Op::ForeignSbrk { bytes: 4096 },
            Op::Thread { thread: 3 },
            Op::ThreadExit,
            Op::Fork,
        ];
        let t = Trace::new(ops);
        assert_eq!(parse(&t.to_string()).unwrap(), t);
        let t = t.with_config(Tunables {
            mmap_threshold: Some(4096),
            top_pad: Some(0),
            trim_delay: Some(0),
            dynamic_threshold: Some(false),
            cache_limit: Some(1),
            fast_lists: Some(false),
            ..Tunables::default()
        });
        let text = t.to_string();
        assert!(text.starts_with(
            "config mmap_threshold=4096 top_pad=0 trim_delay=0 dynamic_threshold=off cache_limit=1 \
             fast_lists=off\n"
        ));
        assert_eq!(parse(&text).unwrap(), t);
    }

    #[test]
    fn config_errors_name_the_problem() {
        let e = |t: &str| parse(t).unwrap_err().message;
        assert_eq!(
            e("malloc 0 1\nconfig top_pad=0"),
            "`config` must come once, before the first op"
        );
        assert!(e("config top_pad=SIZE_MAX").contains("above its limit"));
        assert!(e("config cache_limit=0").contains("below its minimum 1"));
        assert!(e("config frob=1").starts_with("unknown tunable `frob`"));
        assert!(e(&format!("config top_pad={}", "9".repeat(5000))).len() < 100);
    }
}
