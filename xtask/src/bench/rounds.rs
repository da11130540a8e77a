//! The runs of one workload: a reference run without preload, then `runs` rounds over the
//! allocators, and the medians of what they measured.
//!
//! The reference run is not measured; it warms the page cache and gives the output every other
//! run must print (stdout without its `metric` lines). Each round runs every allocator once, and
//! the allocator that starts a round rotates, so a slow drift of the machine (another job, a
//! frequency change) falls on all allocators alike instead of on whichever ran last. A run that
//! fails (non-zero exit, a signal, the timeout, different output) fails its allocator on this
//! workload, whose remaining runs are skipped.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::Hasher;
use std::path::Path;
use std::time::Duration;

use super::allocators::Allocator;
use super::measure;
use super::report::{Cell, Figures};
use super::workloads::Family;
use super::{Paths, Prepared};

/// How long one run may take before it is killed and counted as failed.
const TIMEOUT: Duration = Duration::from_secs(120);

/// The standard output of a run: the digest of its lines that must match the reference, and the
/// `metric NAME VALUE` lines.
struct Output {
    digest: u64,
    first_line: String,
    metrics: HashMap<String, u64>,
}

fn read_output(path: &Path) -> Result<Output, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut hasher = DefaultHasher::new();
    let mut metrics = HashMap::new();
    let mut first_line = None;
    for line in bytes.split(|&b| b == b'\n') {
        if let Some(m) = line.strip_prefix(b"metric ") {
            let text = String::from_utf8_lossy(m);
            let mut words = text.split_whitespace();
            if let (Some(k), Some(Ok(v))) = (words.next(), words.next().map(str::parse)) {
                metrics.insert(k.to_string(), v);
            }
        } else {
            hasher.write(line);
            hasher.write_u8(b'\n');
            first_line.get_or_insert_with(|| String::from_utf8_lossy(line).into_owned());
        }
    }
    Ok(Output {
        digest: hasher.finish(),
        first_line: first_line.unwrap_or_default(),
        metrics,
    })
}

/// Removes an output file over 1 MiB (`sort` writes tens) once it has been checked: only its
/// digest is needed, and the logs would otherwise hold one per allocator. A failed run's output
/// stays, for the failure message points to it.
fn discard_if_large(path: &Path) {
    if std::fs::metadata(path).is_ok_and(|m| m.len() > 1 << 20) {
        let _ = std::fs::remove_file(path);
    }
}

/// The first line of a stderr log, for a failure message.
fn first_stderr_line(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(|l| format!(": {}", l.chars().take(160).collect::<String>()))
        .unwrap_or_default()
}

/// The reference run and the rounds of one workload; one cell per allocator. Failures are also
/// appended to `failures` as "WORKLOAD under ALLOCATOR: why".
pub fn measure(
    p: &Prepared,
    allocators: &[Allocator],
    runs: usize,
    paths: &Paths,
    failures: &mut Vec<String>,
) -> Vec<Cell> {
    let name = &p.workload.name;
    let log = |who: &str, ext: &str| paths.logs.join(format!("{name}.{who}.{ext}"));
    let launcher = paths.bin.join("launch");

    // The reference: one run without preload, not measured (it also warms the page cache).
    let (out, err) = (log("reference", "out"), log("reference", "err"));
    let reference = match measure::run(&launcher, &p.spec, None, TIMEOUT, &out, &err) {
        Ok(s) if s.ending.is_success() => read_output(&out).inspect(|_| discard_if_large(&out)),
        Ok(s) => Err(format!(
            "{}{}",
            s.ending.describe(TIMEOUT),
            first_stderr_line(&err)
        )),
        Err(e) => Err(format!("cannot run {}: {e}", p.spec.program.display())),
    };
    let reference = match reference {
        Ok(r) => r,
        Err(why) => {
            failures.push(format!("{name} without preload (reference run): {why}"));
            return allocators
                .iter()
                .map(|_| Cell::NotRun("the reference run failed".into()))
                .collect();
        }
    };

    let n = allocators.len();
    let mut samples: Vec<Vec<Figures>> = vec![Vec::new(); n];
    let mut failed: Vec<Option<String>> = vec![None; n];
    for round in 0..runs {
        for k in 0..n {
            let a = (round + k) % n;
            if failed[a].is_some() {
                continue;
            }
            let allocator = &allocators[a];
            let (out, err) = (log(allocator.name, "out"), log(allocator.name, "err"));
            let result = measure::run(
                &launcher,
                &p.spec,
                allocator.preload.as_deref(),
                TIMEOUT,
                &out,
                &err,
            )
            .map_err(|e| format!("cannot run {}: {e}", p.spec.program.display()))
            .and_then(|s| {
                if !s.ending.is_success() {
                    return Err(format!(
                        "{}{} (log: {})",
                        s.ending.describe(TIMEOUT),
                        first_stderr_line(&err),
                        paths.show(&err)
                    ));
                }
                let output = read_output(&out)?;
                if output.digest != reference.digest {
                    return Err(format!(
                        "output differs from the run without preload (first line `{}`, \
                             reference `{}`; log: {})",
                        output.first_line,
                        reference.first_line,
                        paths.show(&out)
                    ));
                }
                Ok((s, output))
            });
            match result {
                Ok((s, output)) => {
                    discard_if_large(&out);
                    let replay = p.workload.family == Family::Replay;
                    let utilisation = replay
                        .then(|| utilisation(&output.metrics, s.max_rss_kib))
                        .flatten();
                    // A replay is timed by the driver, without the loading of the trace.
                    let replay_ns = output.metrics.get("replay_ns").filter(|_| replay);
                    samples[a].push(Figures {
                        time_s: replay_ns.map_or(s.wall.as_secs_f64(), |&ns| ns as f64 / 1e9),
                        rss_kib: s.max_rss_kib as f64,
                        utilisation,
                    });
                }
                Err(why) => {
                    failures.push(format!("{name} under {}: {why}", allocator.name));
                    failed[a] = Some(why);
                }
            }
        }
    }
    (0..n)
        .map(|a| match &failed[a] {
            Some(why) => Cell::Failed(why.clone()),
            None => {
                let column = |f: fn(&Figures) -> Option<f64>| {
                    measure::median(&samples[a].iter().filter_map(f).collect::<Vec<_>>())
                };
                Cell::Measured(Figures {
                    time_s: column(|s| Some(s.time_s)).unwrap_or(f64::NAN),
                    rss_kib: column(|s| Some(s.rss_kib)).unwrap_or(f64::NAN),
                    utilisation: column(|s| s.utilisation),
                })
            }
        })
        .collect()
}

/// Space utilisation of one replay run: peak live requested bytes over peak heap footprint
/// (peak RSS minus the RSS just before the replay, as the driver reported it); `None` when the
/// driver did not report or the footprint is not positive. See [`super::report::UTILISATION`].
fn utilisation(metrics: &HashMap<String, u64>, max_rss_kib: u64) -> Option<f64> {
    let live = *metrics.get("peak_live_bytes")?;
    let baseline = *metrics.get("baseline_rss_kib")?;
    let footprint_kib = max_rss_kib.checked_sub(baseline).filter(|&f| f > 0)?;
    Some(live as f64 / (footprint_kib as f64 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utilisation_is_live_over_footprint() {
        let m: HashMap<String, u64> = [
            ("peak_live_bytes".to_string(), 3 << 20),
            ("baseline_rss_kib".to_string(), 1000),
        ]
        .into();
        assert_eq!(utilisation(&m, 1000 + 4096), Some(0.75));
        assert_eq!(utilisation(&m, 1000), None);
        assert_eq!(utilisation(&HashMap::new(), 5000), None);
    }
}
