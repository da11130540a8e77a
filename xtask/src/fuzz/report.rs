//! The end of a campaign: a table per target (executions, executions per second, coverage,
//! corpus size, crashes), for the terminal and as markdown in `target/fuzz-report.md`.

use std::time::{SystemTime, UNIX_EPOCH};

use std::path::Path;

use super::command;
use super::corpus::Size;
use super::crash::Found;
use super::progress::thousands;
use super::toolchain::Mode;

/// One target's line of the table.
pub struct Row {
    /// The target.
    pub target: String,
    /// Executions.
    pub execs: u64,
    /// Executions per second.
    pub rate: f64,
    /// Coverage (libFuzzer's `cov:`, edges).
    pub cov: u64,
    /// Features (`ft:`).
    pub ft: u64,
    /// The corpus before the run.
    pub before: Size,
    /// The corpus after the run.
    pub after: Size,
    /// The corpus after `cargo fuzz cmin`, when it ran.
    pub minimised: Option<Size>,
    /// Crashes found (libFuzzer stops at the first).
    pub crashes: usize,
}

/// Everything the report says.
pub struct Summary<'a> {
    /// The repository root (paths inside it are shown relative to it).
    pub root: &'a Path,
    /// Toolchain and sanitizer.
    pub mode: &'a Mode,
    /// Seconds per target.
    pub time: u64,
    /// Jobs per target.
    pub jobs: usize,
    /// One row per target fuzzed.
    pub rows: &'a [Row],
    /// The crashes, as regressions.
    pub found: &'a [Found],
    /// What went wrong besides crashes.
    pub errors: &'a [String],
}

const HEADER: [&str; 8] = [
    "target", "execs", "exec/s", "cov", "ft", "corpus", "cmin", "crashes",
];

fn cells(r: &Row) -> [String; 8] {
    let corpus = r.minimised.unwrap_or(r.after);
    let cmin = match r.minimised {
        Some(m) => format!("{} -> {} files", r.after.files, m.files),
        None => "-".into(),
    };
    [
        r.target.clone(),
        thousands(r.execs),
        thousands(r.rate.round() as u64),
        thousands(r.cov),
        thousands(r.ft),
        format!(
            "{corpus} (+{})",
            r.after.files.saturating_sub(r.before.files)
        ),
        cmin,
        r.crashes.to_string(),
    ]
}

/// The table, aligned for a terminal.
pub fn table(rows: &[Row]) -> String {
    let body: Vec<[String; 8]> = rows.iter().map(cells).collect();
    let width = |i: usize| {
        body.iter()
            .map(|r| r[i].chars().count())
            .chain([HEADER[i].len()])
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..HEADER.len()).map(width).collect();
    let line = |cells: &[String]| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            let pad = widths[i] - c.chars().count();
            // The name and the corpus read left to right; numbers line up on the right.
            if i == 0 || i == 5 || i == 6 {
                l += &format!("{c}{}  ", " ".repeat(pad));
            } else {
                l += &format!("{}{c}  ", " ".repeat(pad));
            }
        }
        l.trim_end().to_string() + "\n"
    };
    let mut out = line(&HEADER.map(String::from));
    for r in &body {
        out += &line(r);
    }
    out
}

/// The summary for the terminal.
pub fn terminal(s: &Summary) -> String {
    let mut out = format!(
        "fuzzed {} target(s) for {} s each on {} job(s), {}\n\n",
        s.rows.len(),
        s.time,
        s.jobs,
        s.mode.describe()
    );
    out += &table(s.rows);
    out += "(corpus: after cmin when it ran, and the inputs the run added; cov: edges reached)\n";
    for f in s.found {
        out += &format!(
            "\nCRASH in {}: {}\n  readable trace: {}\n  reproduce:\n",
            f.target,
            f.summary,
            command::shown(&f.trace, s.root).display()
        );
        for r in &f.reproduce {
            out += &format!("    {r}\n");
        }
    }
    for e in s.errors {
        out += &format!("\nERROR: {e}\n");
    }
    out
}

/// The summary as markdown.
pub fn markdown(s: &Summary) -> String {
    let mut out = format!(
        "# Fuzz report, {}\n\n{} target(s), {} s each, {} job(s); {} ({}).\n\n",
        now(),
        s.rows.len(),
        s.time,
        s.jobs,
        s.mode.describe(),
        s.mode.why
    );
    out += &format!("| {} |\n|", HEADER.join(" | "));
    for i in 0..HEADER.len() {
        out += if i == 0 || i == 5 || i == 6 {
            " --- |"
        } else {
            " ---: |"
        };
    }
    out += "\n";
    for r in s.rows {
        out += &format!("| {} |\n", cells(r).join(" | "));
    }
    if s.found.is_empty() && s.errors.is_empty() {
        out += "\nNo crashes.\n";
    }
    for f in s.found {
        out += &format!(
            "\n## Crash in `{}`\n\n{}\n\n- input: `{}` ({} bytes), minimised to `{}` ({} bytes)\n\
             - readable trace ({} ops): `{}`\n",
            f.target,
            f.summary,
            command::shown(&f.artifact, s.root).display(),
            f.bytes.0,
            command::shown(&f.minimised, s.root).display(),
            f.bytes.1,
            f.ops,
            command::shown(&f.trace, s.root).display()
        );
        for n in &f.notes {
            out += &format!("- note: {n}\n");
        }
        out += "\nReproduce:\n\n```sh\n";
        for r in &f.reproduce {
            out += &format!("{r}\n");
        }
        out += "```\n";
    }
    for e in s.errors {
        out += &format!("\n**Error:** {e}\n");
    }
    out
}

/// Today's date (UTC), `YYYY-MM-DD`.
pub fn today() -> String {
    let (y, m, d, _, _) = utc(SystemTime::now());
    format!("{y:04}-{m:02}-{d:02}")
}

/// Now (UTC), `YYYY-MM-DD HH:MM UTC`.
pub fn now() -> String {
    let (y, m, d, h, min) = utc(SystemTime::now());
    format!("{y:04}-{m:02}-{d:02} {h:02}:{min:02} UTC")
}

/// (year, month, day, hour, minute) of `t` in UTC.
fn utc(t: SystemTime) -> (i64, u32, u32, u32, u32) {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, (rest / 3600) as u32, (rest % 3600 / 60) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates() {
        let at = |s| utc(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), (1970, 1, 1, 0, 0));
        assert_eq!(at(951_782_400), (2000, 2, 29, 0, 0));
        assert_eq!(at(1_763_778_000), (2025, 11, 22, 2, 20));
        assert_eq!(today().len(), 10);
    }

    #[test]
    fn the_table_lines_up() {
        let size = |files, bytes| Size { files, bytes };
        let rows = [
            Row {
                target: "ops".into(),
                execs: 65_432,
                rate: 2181.2,
                cov: 2345,
                ft: 6789,
                before: size(12, 900),
                after: size(412, 31_744),
                minimised: Some(size(120, 10_035)),
                crashes: 0,
            },
            Row {
                target: "trace_parse".into(),
                execs: 1_000_000,
                rate: 33_333.0,
                cov: 800,
                ft: 2000,
                before: size(0, 0),
                after: size(5, 100),
                minimised: None,
                crashes: 1,
            },
        ];
        let t = table(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(
            lines[1].starts_with("ops             65,432   2,181  2,345"),
            "{t}"
        );
        assert!(
            lines[1].contains("120 files, 9.8 KiB (+400)  412 -> 120 files"),
            "{t}"
        );
        assert!(
            lines[2].contains("5 files, 100 B (+5)") && lines[2].ends_with(" 1"),
            "{t}"
        );
        // Every column starts at the same place on every line.
        let at = |l: &str, w: &str| l.find(w).unwrap() + w.len();
        assert_eq!(at(lines[0], "crashes"), lines[1].len());
    }
}
