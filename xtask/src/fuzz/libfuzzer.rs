//! Reading libFuzzer's output: status lines, the artifact it wrote, its final statistics.
//!
//! Status lines come in two shapes, both understood:
//!
//! ```text
//! #23675  NEW    cov: 2345 ft: 6789 corp: 577/45Kb lim: 48 exec/s: 2152 rss: 275Mb L: 12/48 MS: 1 ...
//! #37827: cov: 742 ft: 1828 corp: 314 exec/s: 1240 oom/timeout/crash: 0/0/0 time: 12s job: 5
//! ```
//!
//! (the second with `-fork=N`, which `cargo fuzz run -j N` passes when N > 1).

/// The figures of one status line (the latest one wins).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// Inputs executed so far (`#N`).
    pub execs: u64,
    /// Coverage: edges (`cov:`).
    pub cov: u64,
    /// Features (`ft:`).
    pub ft: u64,
    /// Inputs in the corpus (`corp: A`).
    pub corpus: u64,
    /// Their size, when the line gives it (`corp: A/Bb`).
    pub corpus_bytes: Option<u64>,
    /// libFuzzer's own rate (`exec/s:`).
    pub exec_per_sec: u64,
}

/// What one line of libFuzzer output means to the runner.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// libFuzzer started (the build is over): `INFO: Seed: ...`.
    Started,
    /// A status line.
    Status(Status),
    /// A crashing (or timing out, or leaking) input was written to this path.
    Artifact(String),
    /// The exact number of executions, from `-print_final_stats=1` or `Done N runs`.
    FinalExecs(u64),
    /// Anything else.
    Other,
}

/// What `line` says.
pub fn parse(line: &str) -> Event {
    let line = line.trim_end();
    if line.starts_with("INFO: Seed:") {
        return Event::Started;
    }
    if let Some((_, path)) = line.split_once("Test unit written to ") {
        // A slow unit (one input that took over 10 s) is no failure: the run goes on.
        if path.contains("slow-unit-") {
            return Event::Other;
        }
        return Event::Artifact(path.trim().to_string());
    }
    if let Some(n) = line.strip_prefix("stat::number_of_executed_units:") {
        return n.trim().parse().map_or(Event::Other, Event::FinalExecs);
    }
    if let Some(rest) = line.strip_prefix("Done ") {
        let n = rest.split_whitespace().next().and_then(|n| n.parse().ok());
        if rest.contains(" runs in ") {
            return n.map_or(Event::Other, Event::FinalExecs);
        }
    }
    status(line).map_or(Event::Other, Event::Status)
}

fn status(line: &str) -> Option<Status> {
    let rest = line.strip_prefix('#')?;
    let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let after = &rest[digits..];
    if digits == 0 || !(after.starts_with(':') || after.starts_with(char::is_whitespace)) {
        return None;
    }
    let mut s = Status {
        execs: rest[..digits].parse().ok()?,
        ..Status::default()
    };
    let mut seen_cov = false;
    let mut words = after.trim_start_matches(':').split_whitespace();
    while let Some(key) = words.next() {
        let field = match key {
            "cov:" | "ft:" | "corp:" | "exec/s:" => words.next()?,
            _ => continue,
        };
        match key {
            "cov:" => {
                s.cov = field.parse().ok()?;
                seen_cov = true;
            }
            "ft:" => s.ft = field.parse().ok()?,
            "corp:" => {
                let (files, size) = match field.split_once('/') {
                    Some((f, b)) => (f, Some(bytes(b)?)),
                    None => (field, None),
                };
                s.corpus = files.parse().ok()?;
                s.corpus_bytes = size;
            }
            _ => s.exec_per_sec = field.parse().ok()?,
        }
    }
    seen_cov.then_some(s)
}

/// `345b`, `12Kb`, `3Mb` (libFuzzer's corpus sizes) in bytes.
fn bytes(s: &str) -> Option<u64> {
    let (n, unit) = if let Some(n) = s.strip_suffix("Mb") {
        (n, 1 << 20)
    } else if let Some(n) = s.strip_suffix("Kb") {
        (n, 1 << 10)
    } else {
        (s.strip_suffix('b')?, 1)
    };
    n.parse::<u64>().ok().map(|n| n * unit)
}

/// Whether an artifact file name is a finding (not `slow-unit-`, which libFuzzer also writes).
pub fn is_finding(file_name: &str) -> bool {
    ["crash-", "oom-", "timeout-", "leak-"]
        .iter()
        .any(|p| file_name.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_status_lines() {
        let s = |l| match parse(l) {
            Event::Status(s) => s,
            e => panic!("{l}: {e:?}"),
        };
        let a = s("#23675\tNEW    cov: 2345 ft: 6789 corp: 577/45Kb lim: 48 exec/s: 2152 rss: 275Mb L: 12/48 MS: 1 ChangeByte-");
        assert_eq!(
            a,
            Status {
                execs: 23675,
                cov: 2345,
                ft: 6789,
                corpus: 577,
                corpus_bytes: Some(45 << 10),
                exec_per_sec: 2152
            }
        );
        let b = s("#2\tINITED cov: 12 ft: 13 corp: 1/1b exec/s: 0 rss: 31Mb");
        assert_eq!((b.execs, b.cov, b.corpus_bytes), (2, 12, Some(1)));
        let c = s(
            "#1048576\tpulse  cov: 742 ft: 1828 corp: 314/3Mb lim: 4096 exec/s: 34952 rss: 80Mb",
        );
        assert_eq!((c.execs, c.corpus_bytes), (1 << 20, Some(3 << 20)));
    }

    #[test]
    fn fork_status_lines() {
        let l = "#37827: cov: 742 ft: 1828 corp: 314 exec/s: 1240 oom/timeout/crash: 0/0/0 time: 12s job: 5 dft_time: 0";
        let Event::Status(s) = parse(l) else {
            panic!("{l}")
        };
        assert_eq!((s.execs, s.cov, s.ft, s.corpus), (37827, 742, 1828, 314));
        assert_eq!((s.corpus_bytes, s.exec_per_sec), (None, 1240));
    }

    #[test]
    fn other_lines() {
        assert_eq!(parse("INFO: Seed: 3572631775"), Event::Started);
        assert_eq!(
            parse("artifact_prefix='/r/fuzz/artifacts/diff/'; Test unit written to /r/fuzz/artifacts/diff/crash-ebb9"),
            Event::Artifact("/r/fuzz/artifacts/diff/crash-ebb9".into())
        );
        assert_eq!(
            parse("stat::number_of_executed_units: 23675"),
            Event::FinalExecs(23675)
        );
        assert_eq!(
            parse("Done 23675 runs in 11 second(s)"),
            Event::FinalExecs(23675)
        );
        for l in [
            "###### Recommended dictionary. ######",
            "#0 0x55fe1ae25b32 in aligned_alloc",
            "    #12 0x55 in main",
            "",
        ] {
            assert_eq!(parse(l), Event::Other, "{l}");
        }
        assert!(is_finding("crash-abc") && is_finding("timeout-1") && !is_finding("slow-unit-1"));
    }
}
