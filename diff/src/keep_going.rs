//! A keep-going run over many traces, as `tagalloc-diff run` and `diff` make it: every trace runs
//! to its end ([`Judge::failures`]), failures are grouped by [`Signature`], each signature is
//! shrunk once (on the first trace that showed it) and its minimal trace saved, and the run ends
//! with a summary table. Reports point at the user's `FILE:LINE`, with the minimal trace beside.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::backend::dylib::DylibBackend;
use crate::backend::Spec;
use crate::op::Trace;
use crate::signature::{size_class, Signature};
use crate::space::{self, Measure};
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

/// Longest a measurement of one trace may take.
const MEASURE_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Utilisation below which a trace whose heap reached [`LOW_UTIL_FROM`] bytes is warned about.
pub const LOW_UTIL: f64 = 0.3;
/// Smaller heaps are mostly the allocator's fixed overhead: no utilisation warning.
pub const LOW_UTIL_FROM: usize = 4 << 20;

/// The rule an out-of-memory failure breaks, beside libc.
pub const OOM_RULE: &str =
    "an allocation that libc's succeeds on the same trace does not fail for \
                            want of memory";

fn bytes(n: usize) -> String {
    match n {
        0..=9_999 => format!("{n} B"),
        10_000..=9_999_999 => format!("{:.1} KiB", n as f64 / 1024.0),
        _ => format!("{:.1} MiB", n as f64 / (1 << 20) as f64),
    }
}

/// The backend's space and speed on `trace`, and libc's (`None`: it crashed or hung measured).
fn measure(judge: &Judge, trace: &Trace) -> (Option<Measure>, Option<Measure>) {
    let lab = match &judge.backend {
        Spec::Dylib(p) => DylibBackend::open(p).is_ok_and(|b| b.heap_size().is_some()),
        _ => false,
    };
    let mm = match &judge.backend {
        Spec::Dylib(p) if lab => space::measure(p, trace, MEASURE_LIMIT),
        spec => space::measure_any(&|| judge.open(spec, trace).ok(), trace, MEASURE_LIMIT),
    };
    (mm, space::measure_libc(trace, MEASURE_LIMIT))
}

/// `peak live X, heap Y (util Z%), N ops/s`, and a warning where utilisation is low.
fn space_text(m: &Measure) -> String {
    let mut t = format!("peak live {}", bytes(m.peak_payload));
    if let Some(u) = m.util() {
        t.push_str(&format!(
            ", heap {} at that peak (util {:.0}%)",
            bytes(m.heap_at_peak),
            100.0 * u
        ));
    }
    t.push_str(&format!(", {:.0} ops/s", 1000.0 * m.kops()));
    if m.util().is_some_and(|u| u < LOW_UTIL) && m.heap_at_peak >= LOW_UTIL_FROM {
        t.push_str("; warning: low utilisation: the heap grows where freed memory could be reused");
    }
    t
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
///
/// With `space`, each trace that passes is also replayed alone, on the backend and on libc, for
/// its space and speed ([`crate::space`]); running out of memory where libc did not is a failure
/// (not shrunk: the contract allows the failure alone, only the comparison condemns it).
pub fn run(
    judge: &Judge,
    inputs: &[Input],
    save: &Path,
    space: bool,
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
        if found.is_empty() && space && judge.against.is_none() {
            let (mm, libc) = measure(judge, &input.trace);
            let oom = mm
                .filter(|m| m.out_of_memory && !libc.is_some_and(|l| l.out_of_memory))
                .and_then(|m| m.first_null);
            if let Some(i) = oom {
                let op = input.trace.ops[i];
                let sig = Signature {
                    kind: "out-of-memory",
                    op: op.name(),
                    size: size_class(op.requested(), true),
                };
                let place = input.place(Some(i));
                writeln!(
                    out,
                    "{}: FAILED (1 failure in {n} ops)\n{place}: `{op}` out of memory where \
                     libc's allocator is not [out-of-memory]\n  broke contract {}, rule: \
                     {OOM_RULE}",
                    input.path, judge.contract
                )
                .map_err(io)?;
                let unshrunk = "(not shrunk)".to_string();
                summary
                    .signatures
                    .entry(sig.clone())
                    .or_insert((unshrunk.clone(), 0))
                    .1 += 1;
                row.verdict = "FAILED (1)".into();
                row.first = format!("{place} {sig}");
                row.minimal = unshrunk;
                summary.rows.push(row);
                continue;
            }
            let figures = mm.map_or("crashed or hung when replayed alone".into(), |m| {
                space_text(&m)
            });
            writeln!(out, "{}: ok ({n} ops; {figures})", input.path).map_err(io)?;
            summary.rows.push(row);
            continue;
        }
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
