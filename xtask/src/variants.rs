//! `cargo xtask variants`: how fast the fuzz targets find each of tagalloc's deliberately broken
//! variants (`tagalloc::broken`), starting from the hand-written seeds only.
//!
//! Builds the targets with the `broken` feature, then for each variant runs the fuzz target that
//! reaches its code, with `TAGALLOC_BROKEN=NAME`, on a fresh corpus made of `corpus/seeds/*.trace`
//! alone (never the grown corpora), for at most `--time` seconds, with the target's dictionary
//! `fuzz/TARGET.dict` when there is one (as `cargo xtask fuzz`). Prints a table: the seconds to
//! the first failure (wall time of the fuzz binary, start-up included), and the oracle that fired.
//! With `--runs N` each variant is fuzzed N times, with libFuzzer seeds 1 to N (so a run can be
//! repeated), and the table shows the median and every run, in seconds and in executions (which,
//! unlike seconds, do not depend on the machine's load). It first runs each seed alone on the
//! variant and says how many find it without any mutation; `--without-finders` leaves those seeds
//! out of the corpus, so what is timed is the fuzzer's own search. A benchmark, not a test: it
//! measures, and fails only when it cannot run.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use tagalloc_diff::{bytes, text};

use crate::fuzz::toolchain::{self, Sanitizer};

const USAGE: &str =
    "usage: cargo xtask variants [--time SECONDS] [--runs N] [--without-finders] [--sanitizer asan|none] [VARIANT...]

Fuzzes each deliberately broken variant of tagalloc (default: all) from the hand-written seeds
only (corpus/seeds/) and prints how many seconds the target took to find it (default --time 60).
--runs N fuzzes each N times, with libFuzzer's -seed=1 to N, and prints the median (a run that
does not find it counts as --time) and every run's time (default 1, libFuzzer's own seed).
--without-finders leaves out the seeds that find the variant alone, without a mutation.
";

/// The variants and the target that reaches each one's code.
const VARIANTS: &[(&str, &str)] = &[
    ("place-no-prev-used", "ops"),
    ("split-sliver", "ops"),
    ("no-coalesce-next", "ops"),
    ("calloc-past-block", "ops"),
    ("trim-small-pad", "ops"),
    ("cache-class-edge", "locked"),
    ("cache-batch-count", "locked"),
    ("cache-push-no-mark", "locked"),
    ("central-take-twice", "threads"),
    ("central-put-short", "threads"),
    ("large-usable-long", "ops"),
    ("memalign-small-gap", "ops"),
    ("memalign-half-align", "ops"),
    ("realloc-in-place-over", "locked"),
];

pub fn run(args: &[String]) -> ExitCode {
    let mut time = 60u64;
    let mut runs = 0u32;
    let mut without_finders = false;
    let mut forced = None;
    let mut names = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-h" | "--help" => {
                print!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            "--time" => match it.next().and_then(|v| v.parse().ok()) {
                Some(t) => time = t,
                None => return usage("--time needs a number of seconds"),
            },
            "--without-finders" => without_finders = true,
            "--runs" => match it.next().and_then(|v| v.parse().ok()) {
                Some(n) if n > 0 => runs = n,
                _ => return usage("--runs needs a positive number"),
            },
            "--sanitizer" => match it.next().map(String::as_str) {
                Some("asan") => forced = Some(Sanitizer::Address),
                Some("none") => forced = Some(Sanitizer::None),
                _ => return usage("--sanitizer is asan or none"),
            },
            name if VARIANTS.iter().any(|(n, _)| *n == name) => names.push(name.to_string()),
            other => return usage(&format!("unknown variant or option `{other}`")),
        }
    }
    let root = crate::root();
    let scratch = root.join("target/variants");
    let _ = fs::remove_dir_all(&scratch);
    if let Err(e) = fs::create_dir_all(&scratch) {
        eprintln!("cargo xtask variants: {}: {e}", scratch.display());
        return ExitCode::from(2);
    }
    let mode = match toolchain::choose(forced, &scratch) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("cargo xtask variants: {e}");
            return ExitCode::from(2);
        }
    };
    eprintln!(
        "==> building the fuzz targets with --features broken ({})",
        mode.describe()
    );
    let mut build = mode.cargo_fuzz("build");
    build.args(["--features", "broken"]).current_dir(&root);
    if !build.status().is_ok_and(|s| s.success()) {
        eprintln!("cargo xtask variants: cargo fuzz build failed");
        return ExitCode::from(2);
    }
    let bin_dir = root.join("fuzz/target/x86_64-unknown-linux-gnu/release");
    let seeds = match seed_inputs(&root.join("corpus/seeds")) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cargo xtask variants: {e}");
            return ExitCode::from(2);
        }
    };
    println!(
        "| variant | target | seeds that find it alone | found after (median) | runs (s) | executions (median) | runs (executions) | oracle |\n\
         | --- | --- | ---: | ---: | --- | ---: | --- | --- |"
    );
    let mut found = 0;
    let mut ran = 0;
    for &(name, target) in VARIANTS {
        if !names.is_empty() && !names.iter().any(|n| n == name) {
            continue;
        }
        ran += 1;
        let dict = root.join("fuzz").join(format!("{target}.dict"));
        let dict = dict.is_file().then_some(dict);
        let bin = bin_dir.join(target);
        let finders = match finders(&bin, &scratch.join(name), &seeds, name) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("cargo xtask variants: {e}");
                return ExitCode::from(2);
            }
        };
        let corpus_seeds: Vec<(String, Vec<u8>)> = seeds
            .iter()
            .filter(|(n, _)| !(without_finders && finders.contains(n)))
            .cloned()
            .collect();
        eprintln!(
            "==> {name} on {target}, from {} seeds ({} find it alone: {})",
            corpus_seeds.len(),
            finders.len(),
            finders.join(" ")
        );
        let mut times = Vec::new();
        let mut execs = Vec::new();
        let mut oracle = None;
        for run in 0..runs.max(1) {
            let dir = scratch.join(name).join(format!("run-{run}"));
            let corpus = dir.join("corpus");
            if let Err(e) = write_seeds(&corpus, &corpus_seeds) {
                eprintln!("cargo xtask variants: {e}");
                return ExitCode::from(2);
            }
            let how = Fuzz {
                bin: &bin,
                dir: &dir,
                corpus: &corpus,
                dict: dict.as_deref(),
                variant: name,
                time,
                seed: (runs > 0).then_some(run + 1),
            };
            match fuzz(&how) {
                Ok(r) => {
                    let found = r.oracle.is_some();
                    times.push(found.then_some(r.secs));
                    execs.push(r.execs.filter(|_| found).map(|e| e as f64));
                    if let Some(o) = r.oracle {
                        oracle.get_or_insert(o);
                    }
                }
                Err(e) => {
                    eprintln!("cargo xtask variants: {e}");
                    return ExitCode::from(2);
                }
            }
        }
        let each: Vec<String> = times
            .iter()
            .map(|t| t.map_or_else(|| "-".to_string(), |s| format!("{s:.1}")))
            .collect();
        let each_exec: Vec<String> = execs
            .iter()
            .map(|t| t.map_or_else(|| "-".to_string(), |e| format!("{e:.0}")))
            .collect();
        let median_exec =
            median(&execs, f64::INFINITY).map_or_else(|| "-".to_string(), |e| format!("{e:.0}"));
        let median = median(&times, time as f64);
        let shown = match median {
            Some(m) => {
                found += 1;
                format!("{m:.1} s")
            }
            None => format!("not in {time} s"),
        };
        println!(
            "| {name} | {target} | {} of {} | {shown} | {} | {median_exec} | {} | {} |",
            finders.len(),
            seeds.len(),
            each.join(" "),
            each_exec.join(" "),
            oracle.unwrap_or_default()
        );
    }
    println!(
        "\n{found} of {ran} variants found within {time} s (median of {} runs each), from the seeds only{}",
        runs.max(1),
        if without_finders {
            ", less those that find the variant alone"
        } else {
            ""
        }
    );
    ExitCode::SUCCESS
}

fn usage(why: &str) -> ExitCode {
    eprintln!("cargo xtask variants: {why}\n\n{USAGE}");
    ExitCode::from(2)
}

/// Every seed trace encoded as fuzz bytes.
fn seed_inputs(dir: &Path) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut out = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for p in paths {
        if p.extension() != Some("trace".as_ref()) {
            continue;
        }
        let data = fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        let trace = text::parse_bytes(&data).map_err(|e| e.in_file(&p.display().to_string()))?;
        let name = p
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        out.push((name, bytes::encode(&trace)));
    }
    Ok(out)
}

fn write_seeds(corpus: &Path, seeds: &[(String, Vec<u8>)]) -> Result<(), String> {
    fs::create_dir_all(corpus).map_err(|e| format!("{}: {e}", corpus.display()))?;
    for (name, data) in seeds {
        let f = corpus.join(name);
        fs::write(&f, data).map_err(|e| format!("{}: {e}", f.display()))?;
    }
    Ok(())
}

/// The median of the runs' times, a run that found nothing counting as `limit`; `None` when
/// the median run found nothing.
fn median(times: &[Option<f64>], limit: f64) -> Option<f64> {
    let mut t: Vec<f64> = times.iter().map(|t| t.unwrap_or(f64::INFINITY)).collect();
    t.sort_by(f64::total_cmp);
    let m = match t.len() {
        0 => return None,
        n if n % 2 == 1 => t[n / 2],
        n => (t[n / 2 - 1] + t[n / 2].min(limit)) / 2.0,
    };
    m.is_finite().then_some(m)
}

/// One fuzzing run of a variant.
struct Fuzz<'a> {
    bin: &'a Path,
    dir: &'a Path,
    corpus: &'a Path,
    dict: Option<&'a Path>,
    variant: &'a str,
    time: u64,
    /// libFuzzer's `-seed` (`None`: its own).
    seed: Option<u32>,
}

/// What one fuzzing run found.
struct Outcome {
    /// Seconds the fuzz binary ran.
    secs: f64,
    /// Inputs it executed (libFuzzer's `stat::number_of_executed_units`).
    execs: Option<u64>,
    /// The oracle that fired (the `[kind]` of its report), if one did.
    oracle: Option<String>,
}

/// The names of the seeds that find `variant` when run alone on `bin`, with no mutation.
fn finders(
    bin: &Path,
    dir: &Path,
    seeds: &[(String, Vec<u8>)],
    variant: &str,
) -> Result<Vec<String>, String> {
    let alone = dir.join("alone");
    write_seeds(&alone, seeds)?;
    let mut found = Vec::new();
    for (name, _) in seeds {
        let status = Command::new(bin)
            .arg(alone.join(name))
            .arg(format!("-artifact_prefix={}/", alone.display()))
            .env("TAGALLOC_BROKEN", variant)
            .env(tagalloc_diff::deadly::EXPLAIN, "0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| format!("{}: {e}", bin.display()))?;
        if !status.success() {
            found.push(name.clone());
        }
    }
    Ok(found)
}

/// Runs the fuzz binary on `corpus` with the variant on.
fn fuzz(f: &Fuzz<'_>) -> Result<Outcome, String> {
    let log = f.dir.join("fuzz.log");
    let out = fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let mut cmd = Command::new(f.bin);
    cmd.arg(f.corpus)
        .arg(format!("-max_total_time={}", f.time))
        .arg(format!("-artifact_prefix={}/", f.dir.display()))
        .arg("-timeout=30")
        .arg("-print_final_stats=1");
    if let Some(d) = f.dict {
        cmd.arg(format!("-dict={}", d.display()));
    }
    if let Some(s) = f.seed {
        cmd.arg(format!("-seed={s}"));
    }
    let start = Instant::now();
    let status = cmd
        .env("TAGALLOC_BROKEN", f.variant)
        // The time to find it is what is measured: no explaining of crashes on the way.
        .env(tagalloc_diff::deadly::EXPLAIN, "0")
        .stdout(Stdio::null())
        .stderr(out)
        .status()
        .map_err(|e| format!("{}: {e}", f.bin.display()))?;
    let secs = start.elapsed().as_secs_f64();
    let text = fs::read_to_string(&log).unwrap_or_default();
    let execs = text.lines().find_map(|l| {
        l.strip_prefix("stat::number_of_executed_units:")
            .and_then(|v| v.trim().parse().ok())
    });
    if status.success() {
        return Ok(Outcome {
            secs,
            execs,
            oracle: None,
        });
    }
    let oracle = text
        .lines()
        .find_map(|l| {
            l.strip_suffix(']')?
                .rsplit_once('[')
                .map(|(_, k)| k.to_string())
        })
        .or_else(|| {
            text.lines()
                .find(|l| l.contains("ERROR:") || l.contains("deadly signal"))
                .map(|l| l.trim().to_string())
        })
        .unwrap_or_else(|| format!("exit {status}"));
    Ok(Outcome {
        secs,
        execs,
        oracle: Some(oracle),
    })
}
