//! A keep-going run over many traces, as `tagalloc-diff run` and `diff` make it: every trace runs
//! to its end ([`Judge::failures`]), failures are grouped by [`Signature`], each signature is
//! shrunk once (on the first trace that showed it) and its minimal trace saved, and the run ends
//! with a summary table. Reports point at the user's `FILE:LINE`, with the minimal trace beside.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::op::Trace;
use crate::signature::Signature;
use crate::text::Lines;
use crate::verdict::{Judge, Verdict};

/// A trace to run: where it came from, and the line of each op.
pub struct Input {
    /// The path as the user gave it.
    pub path: String,
    /// The trace.
    pub trace: Trace,
    /// The line of each op in `path`.
    pub lines: Lines,
}

impl Input {
    /// `FILE:LINE` of op `at` (`None`: the end of the trace).
    pub fn place(&self, at: Option<usize>) -> String {
        match at.and_then(|i| self.lines.get(i)) {
            Some(line) => format!("{}:{line}", self.path),
            None => format!("{}: at the end", self.path),
        }
    }
}

/// One line of the summary table.
#[derive(Clone, Debug)]
pub struct Row {
    /// The trace's path.
    pub path: String,
    /// `ok`, `skipped` or `FAILED (N)`.
    pub verdict: String,
    /// The first failure: `FILE:LINE signature`.
    pub first: String,
    /// Where the minimal trace of the first failure's signature was saved.
    pub minimal: String,
}

/// What a keep-going run found.
#[derive(Debug, Default)]
pub struct Summary {
    /// One row per trace, in order.
    pub rows: Vec<Row>,
    /// Every signature seen, with the path of its minimal trace and how many failures had it.
    pub signatures: BTreeMap<Signature, (String, usize)>,
}

impl Summary {
    /// Whether any trace failed.
    pub fn failed(&self) -> bool {
        !self.signatures.is_empty()
    }

    /// The summary table, as text.
    pub fn table(&self) -> String {
        let mut rows = vec![Row {
            path: "trace".into(),
            verdict: "verdict".into(),
            first: "first failure".into(),
            minimal: "minimal trace".into(),
        }];
        rows.extend(self.rows.iter().cloned());
        let w = |f: fn(&Row) -> usize| rows.iter().map(f).max().unwrap_or(0);
        let (a, b, c) = (
            w(|r| r.path.chars().count()),
            w(|r| r.verdict.chars().count()),
            w(|r| r.first.chars().count()),
        );
        let mut out = String::new();
        for r in &rows {
            let line = format!(
                "{:a$}  {:b$}  {:c$}  {}",
                r.path, r.verdict, r.first, r.minimal
            );
            out.push_str(line.trim_end());
            out.push('\n');
        }
        let failures: usize = self.signatures.values().map(|(_, n)| n).sum();
        out.push_str(&format!(
            "{} traces: {} ok, {} skipped, {} failed; {failures} failures, {} distinct signatures\n",
            self.rows.len(),
            self.rows.iter().filter(|r| r.verdict == "ok").count(),
            self.rows.iter().filter(|r| r.verdict == "skipped").count(),
            self.rows
                .iter()
                .filter(|r| r.verdict.starts_with("FAILED"))
                .count(),
            self.signatures.len(),
        ));
        out
    }
}

/// The file name of the minimal trace of `sig`, first seen in `path`.
fn minimal_name(path: &str, sig: &Signature) -> String {
    let stem = Path::new(path)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("stdin")
        .trim_end_matches(".gz")
        .trim_end_matches(".trace")
        .trim_end_matches(".rep");
    format!("{stem}-{}.trace", sig.slug())
}

/// Runs every input with `judge`, writing each verdict to `out` as it comes, shrinking each new
/// signature once and saving its minimal trace under `save`. `Err`: a backend cannot open, or the
/// minimal trace cannot be written.
pub fn run(
    judge: &Judge,
    inputs: &[Input],
    save: &Path,
    out: &mut dyn Write,
) -> Result<Summary, String> {
    let mut summary = Summary::default();
    let io = |e: io::Error| format!("writing the report: {e}");
    for input in inputs {
        let mut row = Row {
            path: input.path.clone(),
            verdict: "ok".into(),
            first: String::new(),
            minimal: String::new(),
        };
        let n = input.trace.len();
        if let Verdict::Skipped(why) = match judge.skip_reason(&input.trace)? {
            Some(why) => Verdict::Skipped(why),
            None => Verdict::Pass,
        } {
            writeln!(out, "{}: skipped: {why}", input.path).map_err(io)?;
            row.verdict = "skipped".into();
            summary.rows.push(row);
            continue;
        }
        let found = judge.failures(&input.trace)?;
        if found.is_empty() {
            writeln!(out, "{}: ok ({n} ops)", input.path).map_err(io)?;
            summary.rows.push(row);
            continue;
        }
        row.verdict = format!("FAILED ({})", found.len());
        writeln!(
            out,
            "{}: FAILED ({} failures in {n} ops)",
            input.path,
            found.len()
        )
        .map_err(io)?;
        for (k, f) in found.iter().enumerate() {
            let sig = Signature::of(&f.report);
            let place = input.place(f.at);
            let op = f.report.op().map_or(String::new(), |op| format!(" `{op}`"));
            writeln!(
                out,
                "{place}:{op} {} [{}]\n  broke contract {}, rule: {}",
                f.report.failure,
                f.report.failure.kind(),
                f.report.contract,
                f.report.failure.rule()
            )
            .map_err(io)?;
            let minimal = match summary.signatures.get_mut(&sig) {
                Some((path, count)) => {
                    *count += 1;
                    writeln!(
                        out,
                        "  same signature ({sig}) as before: minimal trace {path}"
                    )
                    .map_err(io)?;
                    path.clone()
                }
                None => {
                    let min = judge.shrink(&f.report);
                    std::fs::create_dir_all(save)
                        .map_err(|e| format!("{}: {e}", save.display()))?;
                    let file: PathBuf = save.join(minimal_name(&input.path, &sig));
                    let text = format!("# found at {place}\n{}", min.regression());
                    std::fs::write(&file, text).map_err(|e| format!("{}: {e}", file.display()))?;
                    let path = file.display().to_string();
                    writeln!(out, "  new signature ({sig}); minimal trace {path}:\n{min}")
                        .map_err(io)?;
                    summary.signatures.insert(sig.clone(), (path.clone(), 1));
                    path
                }
            };
            if k == 0 {
                row.first = format!("{place} {sig}");
                row.minimal = minimal;
            }
        }
        summary.rows.push(row);
    }
    Ok(summary)
}
