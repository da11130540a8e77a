//! The SVG chart of `target/bench/chart.svg`, written by hand: for each workload, one horizontal
//! bar per allocator giving its wall time relative to glibc on a log2 scale, drawn from the
//! glibc line (1.0) outwards: bars to the left are faster than glibc, to the right slower.

use std::fmt::Write as _;

use super::report::{Cell, Results, BASELINE};

const WIDTH: f64 = 960.0;
const LABEL_W: f64 = 190.0;
const RIGHT_PAD: f64 = 70.0;
const BAR_H: f64 = 11.0;
const BAR_GAP: f64 = 2.0;
const GROUP_GAP: f64 = 12.0;
const TOP: f64 = 92.0;
const COLOURS: &[&str] = &[
    "#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2",
];

/// The chart of time ratios to glibc, with `title` above it.
pub fn svg(results: &Results, title: &str) -> String {
    let columns: Vec<usize> = (0..results.allocators.len())
        .filter(|&i| results.allocators[i] != BASELINE)
        .collect();
    let ratios: Vec<Vec<Option<f64>>> = results
        .rows
        .iter()
        .map(|r| r.time_ratios(&results.allocators))
        .collect();
    let finite = ratios.iter().flatten().flatten().copied();
    let (lo, hi) = finite.fold((0.5f64, 2.0f64), |(lo, hi), r| (lo.min(r), hi.max(r)));
    let (lo_exp, hi_exp) = (lo.log2().floor() as i32, hi.log2().ceil() as i32);
    let plot_x0 = LABEL_W;
    let plot_w = WIDTH - LABEL_W - RIGHT_PAD;
    let x = |r: f64| {
        let t = (r.log2() - f64::from(lo_exp)) / f64::from(hi_exp - lo_exp);
        plot_x0 + t.clamp(0.0, 1.0) * plot_w
    };
    let group_h = columns.len() as f64 * (BAR_H + BAR_GAP) + GROUP_GAP;
    let plot_h = results.rows.len() as f64 * group_h;
    let height = TOP + plot_h + 50.0;

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="11">"#
    );
    let _ = writeln!(
        s,
        r##"<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="22" font-size="15" font-weight="bold" text-anchor="middle">{}</text>
<text x="{}" y="40" text-anchor="middle" fill="#444">wall time relative to glibc, log scale: left of the glibc line is faster, right is slower</text>"##,
        WIDTH / 2.0,
        escape(title),
        WIDTH / 2.0
    );

    // Legend.
    let mut lx = plot_x0;
    for (k, &c) in columns.iter().enumerate() {
        let name = &results.allocators[c];
        let _ = writeln!(
            s,
            r#"<rect x="{lx}" y="54" width="12" height="12" fill="{}"/><text x="{}" y="64">{}</text>"#,
            COLOURS[k % COLOURS.len()],
            lx + 16.0,
            escape(name)
        );
        lx += 28.0 + 7.0 * name.len() as f64;
    }

    // Grid: one line per power of two, labelled at the bottom.
    for e in lo_exp..=hi_exp {
        let r = 2f64.powi(e);
        let gx = x(r);
        let (stroke, w) = if e == 0 { ("#000", 1.5) } else { ("#ccc", 1.0) };
        let label = if e == 0 {
            "1 = glibc".to_string()
        } else if e > 0 {
            format!("{r}x")
        } else {
            format!("1/{}", 2f64.powi(-e))
        };
        let _ = writeln!(
            s,
            r##"<line x1="{gx:.1}" y1="{}" x2="{gx:.1}" y2="{}" stroke="{stroke}" stroke-width="{w}"/><text x="{gx:.1}" y="{}" text-anchor="middle" fill="#444">{label}</text>"##,
            TOP - 8.0,
            TOP + plot_h,
            TOP + plot_h + 16.0
        );
    }
    let _ = writeln!(
        s,
        r##"<text x="{}" y="{}" text-anchor="middle" fill="#444">time / glibc's time (median of the runs)</text>"##,
        plot_x0 + plot_w / 2.0,
        TOP + plot_h + 36.0
    );

    // One group of bars per workload.
    for (g, row) in results.rows.iter().enumerate() {
        let gy = TOP + g as f64 * group_h;
        if g % 2 == 1 {
            let _ = writeln!(
                s,
                r##"<rect x="0" y="{:.1}" width="{WIDTH}" height="{:.1}" fill="#f3f3f3" fill-opacity="0.7"/>"##,
                gy - GROUP_GAP / 2.0,
                group_h
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{:.1}" text-anchor="end" font-weight="bold">{}</text>"#,
            LABEL_W - 10.0,
            gy + (group_h - GROUP_GAP) / 2.0 + 4.0,
            escape(&row.workload)
        );
        for (k, &c) in columns.iter().enumerate() {
            let by = gy + k as f64 * (BAR_H + BAR_GAP);
            let ty = by + BAR_H - 2.0;
            let one = x(1.0);
            match (&row.cells[c], ratios[g][c]) {
                (Cell::Measured(_), Some(r)) => {
                    let end = x(r);
                    let (left, w) = if end < one {
                        (end, one - end)
                    } else {
                        (one, end - one)
                    };
                    let (tx, anchor) = if end < one {
                        (end - 3.0, "end")
                    } else {
                        (end + 3.0, "start")
                    };
                    let _ = writeln!(
                        s,
                        r#"<rect x="{left:.1}" y="{by:.1}" width="{:.1}" height="{BAR_H}" fill="{}"><title>{} on {}: {r:.2}x glibc</title></rect><text x="{tx:.1}" y="{ty:.1}" font-size="9" text-anchor="{anchor}">{r:.2}</text>"#,
                        w.max(1.0),
                        COLOURS[k % COLOURS.len()],
                        escape(&results.allocators[c]),
                        escape(&row.workload)
                    );
                }
                (Cell::Failed(_), _) => {
                    let _ = writeln!(
                        s,
                        r#"<text x="{:.1}" y="{ty:.1}" font-size="9" fill="{}">{} failed</text>"#,
                        one + 3.0,
                        COLOURS[k % COLOURS.len()],
                        escape(&results.allocators[c])
                    );
                }
                _ => {}
            }
        }
    }
    s.push_str("</svg>\n");
    s
}

/// Text escaped for XML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::super::report::{Figures, Row};
    use super::super::workloads::Family;
    use super::*;

    #[test]
    fn chart_has_a_bar_per_measured_cell_and_escapes_text() {
        let f = |t| {
            Cell::Measured(Figures {
                time_s: t,
                rss_kib: 1.0,
                utilisation: None,
            })
        };
        let results = Results {
            allocators: vec!["glibc".into(), "tagalloc".into(), "jemalloc".into()],
            rows: vec![
                Row {
                    workload: "a<b".into(),
                    family: Family::Synthetic,
                    cells: vec![f(1.0), f(3.0), f(0.25)],
                },
                Row {
                    workload: "c".into(),
                    family: Family::Synthetic,
                    cells: vec![f(1.0), Cell::Failed("x".into()), f(1.0)],
                },
            ],
        };
        let svg = svg(&results, "t & u");
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("a&lt;b") && svg.contains("t &amp; u"));
        assert_eq!(svg.matches("x glibc</title>").count(), 3);
        assert!(svg.contains("tagalloc failed"));
        // the scale reaches 1/4 and 4x
        assert!(svg.contains(">1/4<") && svg.contains(">4x<"));
    }
}
