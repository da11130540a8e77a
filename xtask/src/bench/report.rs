//! The results of a benchmark, and the tables that show them: plain text for the terminal and
//! markdown for `target/bench/results.md` (the SVG chart is [`super::chart`]).
//!
//! Every figure is the median over the runs of one workload under one allocator; ratios are to
//! glibc's median on the same workload. Times are wall times of the whole process, except for
//! trace replays, whose time is the replay alone as the driver measures it. Space utilisation (trace replays only) follows the CS:APP
//! malloc-lab driver: peak live requested bytes over peak heap footprint, where the footprint is
//! the process's peak RSS minus its RSS just before the replay started (after the trace was
//! loaded); see [`UTILISATION`].

use super::workloads::Family;

/// The definition of space utilisation, as printed under the tables.
pub const UTILISATION: &str = "space utilisation = peak live requested bytes / peak heap \
footprint, where peak heap footprint = peak RSS of the replay process minus its RSS just before \
the replay started (trace loaded, slot table touched); higher is better, 1.00 would be no \
overhead at all";

/// How trace replays are timed, as printed under the time table.
pub const REPLAY_TIME: &str = "trace replays: the replay alone, as the replay driver times it; \
loading and parsing the trace are excluded";

/// The name of the baseline column.
pub const BASELINE: &str = "glibc";

/// The medians of one workload under one allocator.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Figures {
    /// Median wall time, seconds.
    pub time_s: f64,
    /// Median peak RSS, KiB.
    pub rss_kib: f64,
    /// Median space utilisation (replays only, when the footprint was positive).
    pub utilisation: Option<f64>,
}

/// One workload under one allocator.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    /// Every run succeeded.
    Measured(Figures),
    /// Some run failed; why.
    Failed(String),
    /// Not run (the workload could not be prepared); why.
    NotRun(String),
}

/// One workload's row.
#[derive(Clone, Debug)]
pub struct Row {
    /// The workload's name.
    pub workload: String,
    /// Its family.
    pub family: Family,
    /// One cell per allocator, in [`Results::allocators`] order.
    pub cells: Vec<Cell>,
}

/// Everything measured.
#[derive(Clone, Debug)]
pub struct Results {
    /// The allocators measured, in column order.
    pub allocators: Vec<String>,
    /// The rows, in workload order.
    pub rows: Vec<Row>,
}

impl Row {
    fn baseline(&self, allocators: &[String]) -> Option<Figures> {
        let i = allocators.iter().position(|a| a == BASELINE)?;
        match self.cells.get(i) {
            Some(Cell::Measured(f)) => Some(*f),
            _ => None,
        }
    }

    /// The time ratio of each allocator to glibc (`None` where either was not measured).
    pub fn time_ratios(&self, allocators: &[String]) -> Vec<Option<f64>> {
        let base = self.baseline(allocators);
        self.cells
            .iter()
            .map(|c| match (c, base) {
                (Cell::Measured(f), Some(b)) if b.time_s > 0.0 => Some(f.time_s / b.time_s),
                _ => None,
            })
            .collect()
    }
}

/// Which table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Measure {
    /// Wall time and its ratio to glibc.
    Time,
    /// Peak RSS and its ratio to glibc.
    Rss,
    /// Space utilisation (replay rows only).
    Utilisation,
}

impl Measure {
    /// All tables, in report order.
    pub const ALL: [Measure; 3] = [Measure::Time, Measure::Rss, Measure::Utilisation];

    /// The table's title.
    pub fn title(self, runs: usize) -> String {
        match self {
            Measure::Time => format!("Wall time, median of {runs} runs (ratio to glibc)"),
            Measure::Rss => format!("Peak RSS, median of {runs} runs (ratio to glibc)"),
            Measure::Utilisation => {
                format!("Space utilisation of trace replays, median of {runs} runs")
            }
        }
    }
}

/// The cells of one table as text: a header row (`workload`, then the allocators) and one row
/// per workload; the utilisation table has only the replay rows.
pub fn table(results: &Results, measure: Measure) -> (Vec<String>, Vec<Vec<String>>) {
    let mut header = vec!["workload".to_string()];
    header.extend(results.allocators.iter().cloned());
    let mut rows = Vec::new();
    for row in &results.rows {
        if measure == Measure::Utilisation && row.family != Family::Replay {
            continue;
        }
        let base = row.baseline(&results.allocators);
        let mut line = vec![row.workload.clone()];
        for (cell, allocator) in row.cells.iter().zip(&results.allocators) {
            line.push(match cell {
                Cell::Failed(_) => "FAILED".to_string(),
                Cell::NotRun(_) => "-".to_string(),
                Cell::Measured(f) => {
                    let ratio = |value: f64, base: Option<f64>| match base {
                        Some(b) if allocator != BASELINE && b > 0.0 => {
                            format!(" {:.2}x", value / b)
                        }
                        _ => String::new(),
                    };
                    match measure {
                        Measure::Time => format!(
                            "{}{}",
                            seconds(f.time_s),
                            ratio(f.time_s, base.map(|b| b.time_s))
                        ),
                        Measure::Rss => format!(
                            "{}{}",
                            mebibytes(f.rss_kib),
                            ratio(f.rss_kib, base.map(|b| b.rss_kib))
                        ),
                        Measure::Utilisation => match f.utilisation {
                            Some(u) => format!("{u:.2}"),
                            None => "n/a".to_string(),
                        },
                    }
                }
            });
        }
        rows.push(line);
    }
    (header, rows)
}

/// The markdown document of `target/bench/results.md`: the `header` lines (machine, command,
/// allocators), the tables, the definitions, the workloads (name, description, command), and
/// what was skipped or failed.
pub fn document(
    results: &Results,
    runs: usize,
    header: &[String],
    workloads: &[(String, String, String)],
    skipped: &[String],
    failures: &[String],
) -> String {
    let mut md = String::from("# tagalloc benchmark\n\n");
    for line in header {
        md.push_str(line);
        md.push('\n');
    }
    md.push('\n');
    for measure in Measure::ALL {
        let (header, rows) = table(results, measure);
        if rows.is_empty() {
            continue;
        }
        md.push_str(&format!("## {}\n\n", measure.title(runs)));
        md.push_str(&render_markdown(&header, &rows));
        md.push('\n');
        if measure == Measure::Utilisation {
            md.push_str(&format!("Definition: {UTILISATION}.\n\n"));
        }
        if measure == Measure::Time && results.rows.iter().any(|r| r.family == Family::Replay) {
            md.push_str(&format!("Times of {REPLAY_TIME}.\n\n"));
        }
    }
    md.push_str(
        "Wall time is measured from the fork of the process to its exit, except for trace \
         replays, where it is the replay alone as the driver times it (loading and parsing the \
         trace excluded, as in the malloc-lab driver); peak RSS is `ru_maxrss` from `wait4` (for a program that runs others, such as `gcc`, the largest \
         of the process and the children it waited for). Ratios are to glibc's median on the \
         same workload; below 1.00x is faster or smaller than glibc. The chart is `chart.svg`.\n\n",
    );
    md.push_str("## Workloads\n\n| workload | what it does | command |\n| --- | --- | --- |\n");
    for (name, about, command) in workloads {
        md.push_str(&format!(
            "| {name} | {} | `{command}` |\n",
            about.replace('|', "\\|")
        ));
    }
    for (title, list) in [("Skipped", skipped), ("Failures", failures)] {
        if !list.is_empty() {
            md.push_str(&format!("\n## {title}\n\n"));
            for item in list {
                md.push_str(&format!("- {item}\n"));
            }
        }
    }
    md
}

/// Seconds with three significant digits or so (milliseconds below 0.1 s).
pub fn seconds(s: f64) -> String {
    if s < 0.01 {
        format!("{:.2} ms", s * 1e3)
    } else if s < 0.1 {
        format!("{:.1} ms", s * 1e3)
    } else if s < 1.0 {
        format!("{s:.3} s")
    } else if s < 10.0 {
        format!("{s:.2} s")
    } else {
        format!("{s:.1} s")
    }
}

/// KiB shown as MiB.
pub fn mebibytes(kib: f64) -> String {
    format!("{:.1} MiB", kib / 1024.0)
}

/// A plain-text table: the first column left-aligned, the others right-aligned, two spaces
/// between columns, a rule under the header.
pub fn render_text(header: &[String], rows: &[Vec<String>]) -> String {
    let widths = column_widths(header, rows);
    let line = |cells: &[String]| -> String {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i == 0 {
                s.push_str(&format!("{cell:<w$}"));
            } else {
                s.push_str(&format!("  {cell:>w$}"));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header);
    let total = widths.iter().sum::<usize>() + 2 * widths.len().saturating_sub(1);
    out.push_str(&"-".repeat(total));
    out.push('\n');
    for row in rows {
        out.push_str(&line(row));
    }
    out
}

/// A markdown table, numbers right-aligned.
pub fn render_markdown(header: &[String], rows: &[Vec<String>]) -> String {
    let line = |cells: &[String]| format!("| {} |\n", cells.join(" | "));
    let mut out = line(header);
    let rule: Vec<String> = (0..header.len())
        .map(|i| if i == 0 { "---".into() } else { "---:".into() })
        .collect();
    out.push_str(&line(&rule));
    for row in rows {
        out.push_str(&line(row));
    }
    out
}

fn column_widths(header: &[String], rows: &[Vec<String>]) -> Vec<usize> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    widths
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Results {
        let f = |t, r, u| {
            Cell::Measured(Figures {
                time_s: t,
                rss_kib: r,
                utilisation: u,
            })
        };
        Results {
            allocators: vec!["glibc".into(), "tagalloc".into()],
            rows: vec![
                Row {
                    workload: "cfrac".into(),
                    family: Family::Synthetic,
                    cells: vec![f(0.5, 2048.0, None), f(1.5, 1024.0, None)],
                },
                Row {
                    workload: "replay-x".into(),
                    family: Family::Replay,
                    cells: vec![f(12.0, 4096.0, Some(0.8)), Cell::Failed("boom".into())],
                },
            ],
        }
    }

    #[test]
    fn time_table_shows_ratios_to_glibc_and_failures() {
        let (header, rows) = table(&sample(), Measure::Time);
        assert_eq!(header, ["workload", "glibc", "tagalloc"]);
        assert_eq!(rows[0], ["cfrac", "0.500 s", "1.50 s 3.00x"]);
        assert_eq!(rows[1], ["replay-x", "12.0 s", "FAILED"]);
        let (_, rows) = table(&sample(), Measure::Rss);
        assert_eq!(rows[0], ["cfrac", "2.0 MiB", "1.0 MiB 0.50x"]);
    }

    #[test]
    fn seconds_keep_three_digits() {
        let shown: Vec<String> = [0.00123, 0.0456, 0.789, 2.5, 31.0]
            .into_iter()
            .map(seconds)
            .collect();
        assert_eq!(shown, ["1.23 ms", "45.6 ms", "0.789 s", "2.50 s", "31.0 s"]);
    }

    #[test]
    fn utilisation_table_has_only_replays() {
        let (_, rows) = table(&sample(), Measure::Utilisation);
        assert_eq!(rows, [["replay-x", "0.80", "FAILED"]]);
    }

    #[test]
    fn text_table_aligns_columns() {
        let header = vec!["workload".to_string(), "glibc".to_string()];
        let rows = vec![
            vec!["a".to_string(), "0.500 s".to_string()],
            vec!["longer-name".to_string(), "12.0 s".to_string()],
        ];
        let text = render_text(&header, &rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "workload       glibc");
        assert_eq!(lines[1], "--------------------");
        assert_eq!(lines[2], "a            0.500 s");
        assert_eq!(lines[3], "longer-name   12.0 s");
    }

    #[test]
    fn markdown_table_has_a_rule_row() {
        let md = render_markdown(
            &["w".into(), "glibc".into()],
            &[vec!["a".into(), "1".into()]],
        );
        assert_eq!(md, "| w | glibc |\n| --- | ---: |\n| a | 1 |\n");
    }
}
