//! `cargo xtask variants`: how fast the fuzz targets find each of tagalloc's deliberately broken
//! variants (`tagalloc::broken`), starting from the hand-written seeds only.
//!
//! Builds the targets with the `broken` feature, then for each variant runs the fuzz target that
//! reaches its code, with `TAGALLOC_BROKEN=NAME`, on a fresh corpus made of `corpus/seeds/*.trace`
//! alone (never the grown corpora), for at most `--time` seconds, with the target's dictionary
//! `fuzz/TARGET.dict` when there is one (as `cargo xtask fuzz`). Prints a table: the seconds to
//! the first failure (wall time of the fuzz binary, start-up included), and the oracle that fired.
//! With `--runs N` each variant is fuzzed N times, with libFuzzer seeds 1 to N (so a run can be
//! repeated), and the table shows the median and every run. A benchmark, not a test: it
//! measures, and fails only when it cannot run.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use tagalloc_diff::{bytes, text};

use crate::fuzz::toolchain::{self, Sanitizer};

const USAGE: &str =
    "usage: cargo xtask variants [--time SECONDS] [--runs N] [--sanitizer asan|none] [VARIANT...]

Fuzzes each deliberately broken variant of tagalloc (default: all) from the hand-written seeds
only (corpus/seeds/) and prints how many seconds the target took to find it (default --time 60).
--runs N fuzzes each N times, with libFuzzer's -seed=1 to N, and prints the median (a run that
does not find it counts as --time) and every run's time (default 1, libFuzzer's own seed).
";

/// The variants and the target that reaches each one's code.
const VARIANTS: &[(&str, &str)] = &[
    ("place-no-prev-used", "ops"),
    ("split-sliver", "ops"),
    ("no-coalesce-next", "ops"),
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
        "| variant | target | found after (median) | runs | oracle |\n| --- | --- | ---: | --- | --- |"
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
        eprintln!("==> {name} on {target}, from {} seeds", seeds.len());
        let mut times = Vec::new();
        let mut oracle = None;
        for run in 0..runs.max(1) {
            let dir = scratch.join(name).join(format!("run-{run}"));
            let corpus = dir.join("corpus");
            if let Err(e) = write_seeds(&corpus, &seeds) {
                eprintln!("cargo xtask variants: {e}");
                return ExitCode::from(2);
            }
            let how = Fuzz {
                bin: &bin_dir.join(target),
                dir: &dir,
                corpus: &corpus,
                dict: dict.as_deref(),
                variant: name,
                time,
                seed: (runs > 0).then_some(run + 1),
            };
            match fuzz(&how) {
                Ok((secs, Some(o))) => {
                    times.push(Some(secs));
                    oracle.get_or_insert(o);
                }
                Ok((_, None)) => times.push(None),
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
        let median = median(&times, time as f64);
        let shown = match median {
            Some(m) => {
                found += 1;
                format!("{m:.1} s")
            }
            None => format!("not in {time} s"),
        };
        println!(
            "| {name} | {target} | {shown} | {} | {} |",
            each.join(" "),
            oracle.unwrap_or_default()
        );
    }
    println!(
        "\n{found} of {ran} variants found within {time} s (median of {} runs each), from the seeds only",
        runs.max(1)
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

/// Runs the fuzz binary on `corpus` with the variant on; the seconds it ran and, if it failed,
/// the oracle that fired (the `[kind]` of its report).
fn fuzz(f: &Fuzz<'_>) -> Result<(f64, Option<String>), String> {
    let log = f.dir.join("fuzz.log");
    let out = fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let mut cmd = Command::new(f.bin);
    cmd.arg(f.corpus)
        .arg(format!("-max_total_time={}", f.time))
        .arg(format!("-artifact_prefix={}/", f.dir.display()))
        .arg("-timeout=30");
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
    if status.success() {
        return Ok((secs, None));
    }
    let text = fs::read_to_string(&log).unwrap_or_default();
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
    Ok((secs, Some(oracle)))
}
