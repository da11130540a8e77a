//! The live status line: redrawn in place on a terminal, printed every few seconds otherwise (so CI
//! logs stay short).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use super::libfuzzer::Status;

/// One target's status line.
pub struct Progress {
    tty: bool,
    every: Duration,
    last: Option<Instant>,
}

impl Progress {
    /// A status line on standard error.
    pub fn new() -> Progress {
        let tty = std::io::stderr().is_terminal();
        Progress {
            tty,
            every: Duration::from_millis(if tty { 250 } else { 10_000 }),
            last: None,
        }
    }

    /// Shows `line`, unless the last one went out too recently.
    pub fn show(&mut self, line: &str) {
        if self.last.is_some_and(|t| t.elapsed() < self.every) {
            return;
        }
        self.last = Some(Instant::now());
        if self.tty {
            eprint!("\r\x1b[2K{line}");
        } else {
            eprintln!("{line}");
        }
    }

    /// Replaces the status line with a final one.
    pub fn finish(&mut self, line: &str) {
        if self.tty && self.last.is_some() {
            eprint!("\r\x1b[2K");
        }
        eprintln!("{line}");
    }
}

/// The status line of `target` after `secs` of `total` seconds.
pub fn line(target: &str, secs: f64, total: u64, s: &Status) -> String {
    let rate = if secs > 0.5 {
        (s.execs as f64 / secs) as u64
    } else {
        s.exec_per_sec
    };
    format!(
        "    {target:<12} {:>4.0}/{total}s  {:>10} execs  {:>7} exec/s  cov {:>6}  ft {:>6}  corpus {:>6}",
        secs.min(total as f64),
        thousands(s.execs),
        thousands(rate),
        s.cov,
        s.ft,
        s.corpus
    )
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn status_line() {
        let s = Status {
            execs: 20_000,
            cov: 700,
            ft: 1800,
            corpus: 300,
            corpus_bytes: None,
            exec_per_sec: 1,
        };
        let l = line("diff", 10.0, 30, &s);
        assert!(l.contains("10/30s") && l.contains("20,000 execs") && l.contains("2,000 exec/s"));
        assert!(l.contains("cov    700"), "{l}");
    }
}
