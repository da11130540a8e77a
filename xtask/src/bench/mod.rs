//! `cargo xtask bench`: speed and memory of tagalloc next to glibc, jemalloc, mimalloc and
//! tcmalloc, each loaded the way users load it (`LD_PRELOAD`; glibc is the run without preload).
//!
//! The steps: describe the machine; compile the C drivers of `xtask/bench/` into
//! `target/bench/bin/` ([`drivers`]); make the allocators ready ([`allocators`]); prepare the
//! workloads ([`workloads`], [`traces`]); run each workload once without preload as the
//! reference, then in rounds over the allocators ([`rounds`], [`measure`]); report medians as
//! tables on the terminal and in `target/bench/results.md`, and as `target/bench/chart.svg`
//! ([`report`], [`chart`]).
//! The logs of the last run of every workload and allocator are in `target/bench/logs/`.

mod allocators;
mod chart;
mod drivers;
mod machine;
mod measure;
mod report;
mod rounds;
mod traces;
mod workloads;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use allocators::{Allocator, Unavailable};
use measure::Spec;
use report::{Cell, Measure, Results, Row};
use workloads::{Family, Scale, Workload};

const USAGE: &str = "usage: cargo xtask bench [OPTIONS]

Runs every workload under glibc (no preload) and, with LD_PRELOAD, tagalloc, jemalloc,
mimalloc and tcmalloc; reports the median wall time and peak RSS of interleaved runs,
their ratio to glibc, and for trace replays the space utilisation, on the terminal, in
target/bench/results.md and as target/bench/chart.svg.

options:
  --quick                 smaller workloads, and (without --only) a subset of them;
                          3 runs; under two minutes once the builds are cached
  --runs N                runs per workload and allocator (default 5, with --quick 3)
  --only W[,W...]         only these workloads: a name, or the part before a `-`
                          (`larson` is larson-1t and larson-2t, `replay` every replay)
  --allocators A[,A...]   only these of glibc, tagalloc, jemalloc, mimalloc, tcmalloc
                          (glibc, the baseline of every ratio, is always run)
  --list                  list the workloads and exit
  -h, --help              this help

environment:
  TAGALLOC_BENCH_BASELINE=SO   also measure this libtagalloc.so (say, main's build) as the
                          column tagalloc-base, in the same interleaved rounds as tagalloc

Exit status: 0; 1 if some workload failed under some allocator (the table is still
printed); 2 on a bad option.
";

/// Where everything goes.
pub struct Paths {
    /// The repository.
    pub root: PathBuf,
    /// Cargo's target directory.
    pub target: PathBuf,
    /// `target/bench`: results.md, chart.svg.
    pub bench: PathBuf,
    /// `target/bench/bin`: the compiled drivers.
    pub bin: PathBuf,
    /// `target/bench/logs`: stdout and stderr of the last run of each workload and allocator.
    pub logs: PathBuf,
    /// `target/bench/work`: generated inputs.
    pub work: PathBuf,
    /// `target/bench/traces`: the traces the replay driver reads.
    pub traces: PathBuf,
}

impl Paths {
    fn new() -> Paths {
        let root = crate::root();
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| root.join("target"), |t| root.join(t));
        let bench = target.join("bench");
        Paths {
            bin: bench.join("bin"),
            logs: bench.join("logs"),
            work: bench.join("work"),
            traces: bench.join("traces"),
            root,
            target,
            bench,
        }
    }

    /// A path shown relative to the repository when it is inside it.
    fn show(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .display()
            .to_string()
    }
}

/// The options of the command line.
#[derive(Debug, Default, PartialEq)]
struct Options {
    quick: bool,
    runs: Option<usize>,
    only: Option<Vec<String>>,
    allocators: Option<Vec<String>>,
    list: bool,
    help: bool,
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut o = Options::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        let list = |v: String| -> Vec<String> {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        };
        match flag {
            "--quick" if inline.is_none() => o.quick = true,
            "--list" if inline.is_none() => o.list = true,
            "-h" | "--help" if inline.is_none() => o.help = true,
            "--runs" => {
                let v = value("--runs")?;
                match v.parse::<usize>() {
                    Ok(n) if n >= 1 => o.runs = Some(n),
                    _ => {
                        return Err(format!(
                            "--runs needs a whole number of at least 1, not `{v}`"
                        ))
                    }
                }
            }
            "--only" => o.only = Some(list(value("--only")?)),
            "--allocators" => {
                let names = list(value("--allocators")?);
                if let Some(bad) = names
                    .iter()
                    .find(|n| !allocators::NAMES.contains(&n.as_str()))
                {
                    return Err(format!(
                        "unknown allocator `{bad}` (known: {})",
                        allocators::NAMES.join(", ")
                    ));
                }
                o.allocators = Some(names);
            }
            _ => return Err(format!("unknown option `{arg}`")),
        }
    }
    Ok(o)
}

/// `cargo xtask bench ARGS`.
pub fn run(args: &[String]) -> ExitCode {
    let options = match parse_args(args) {
        Ok(o) => o,
        Err(e) => {
            eprint!("cargo xtask bench: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if options.help {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let paths = Paths::new();
    let scale = if options.quick {
        Scale::Quick
    } else {
        Scale::Full
    };
    let catalog = workloads::catalog(scale, traces::all(&paths.root.join("corpus/recorded")));
    if options.list {
        for w in &catalog {
            println!(
                "{:<26} {}{}",
                w.name,
                w.about,
                if w.quick { "  [quick]" } else { "" }
            );
        }
        return ExitCode::SUCCESS;
    }
    let selected: Vec<Workload> = match &options.only {
        Some(words) => {
            if let Some(bad) = words
                .iter()
                .find(|word| !catalog.iter().any(|w| workloads::matches(&w.name, word)))
            {
                let names: Vec<&str> = catalog.iter().map(|w| w.name.as_str()).collect();
                eprint!(
                    "cargo xtask bench: no workload `{bad}` (known: {})\n\n{USAGE}",
                    names.join(", ")
                );
                return ExitCode::from(2);
            }
            catalog
                .into_iter()
                .filter(|w| words.iter().any(|word| workloads::matches(&w.name, word)))
                .collect()
        }
        None => catalog
            .into_iter()
            .filter(|w| !options.quick || w.quick)
            .collect(),
    };
    let wanted: Vec<&'static str> = allocators::NAMES
        .iter()
        .copied()
        .filter(|n| {
            *n == report::BASELINE
                || options
                    .allocators
                    .as_ref()
                    .map_or(true, |a| a.iter().any(|x| x == n))
        })
        .collect();
    let runs = options.runs.unwrap_or(if options.quick { 3 } else { 5 });
    match bench(&paths, &selected, &wanted, runs, args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("cargo xtask bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A workload ready to run.
pub struct Prepared<'a> {
    /// The workload.
    pub workload: &'a Workload,
    /// What runs.
    pub spec: Spec,
}

/// Everything after the command line; `Ok(false)` when some workload failed.
fn bench(
    paths: &Paths,
    selected: &[Workload],
    wanted: &[&'static str],
    runs: usize,
    args: &[String],
) -> Result<bool, String> {
    let started = Instant::now();
    for dir in [&paths.bin, &paths.work, &paths.traces] {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let _ = std::fs::remove_dir_all(&paths.logs);
    std::fs::create_dir_all(&paths.logs)
        .map_err(|e| format!("cannot create {}: {e}", paths.logs.display()))?;

    let machine = machine::Machine::describe();
    println!("machine: {machine}");
    drivers::compile_all(paths)?;
    let (allocators, unavailable) = allocators::prepare(wanted, paths);
    let allocator_lines = describe_allocators(&allocators, &unavailable, paths);
    println!("allocators:");
    for (name, line) in &allocator_lines {
        println!("  {name:<9} {line}");
    }
    if !allocators.iter().any(|a| a.name == report::BASELINE) {
        return Err("glibc, the baseline, cannot run".into());
    }

    let mut prepared = Vec::new();
    let mut skipped = Vec::new();
    for w in selected {
        match w.prepare(paths) {
            Ok(spec) => prepared.push(Prepared { workload: w, spec }),
            Err(why) => {
                println!("skipped {}: {why}", w.name);
                skipped.push(format!("{}: {why}", w.name));
            }
        }
    }
    eprintln!(
        "==> {} workloads x {} allocators x {runs} runs (and one reference run each)",
        prepared.len(),
        allocators.len()
    );

    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for (i, p) in prepared.iter().enumerate() {
        let t = Instant::now();
        let cells = rounds::measure(p, &allocators, runs, paths, &mut failures);
        let summary: Vec<String> = allocators
            .iter()
            .zip(&cells)
            .map(|(a, c)| match c {
                Cell::Measured(f) => format!("{} {}", a.name, report::seconds(f.time_s)),
                Cell::Failed(_) => format!("{} FAILED", a.name),
                Cell::NotRun(_) => format!("{} -", a.name),
            })
            .collect();
        eprintln!(
            "  [{}/{}] {}: {} ({:.1} s)",
            i + 1,
            prepared.len(),
            p.workload.name,
            summary.join(", "),
            t.elapsed().as_secs_f64()
        );
        rows.push(Row {
            workload: p.workload.name.clone(),
            family: p.workload.family,
            cells,
        });
    }
    let results = Results {
        allocators: allocators.iter().map(|a| a.name.to_string()).collect(),
        rows,
    };

    println!();
    for measure in Measure::ALL {
        let (header, rows) = report::table(&results, measure);
        if rows.is_empty() {
            continue;
        }
        println!("{}", measure.title(runs));
        print!("{}", report::render_text(&header, &rows));
        if measure == Measure::Utilisation {
            println!("({})", report::UTILISATION);
        }
        if measure == Measure::Time && results.rows.iter().any(|r| r.family == Family::Replay) {
            println!("(times of {})", report::REPLAY_TIME);
        }
        println!();
    }
    for line in unavailable
        .iter()
        .map(|u| format!("not loaded: {}: {}", u.name, u.reason))
    {
        println!("{line}");
    }
    for f in &failures {
        println!("FAILED: {f}");
    }

    let command = format!("cargo xtask bench {}", args.join(" "));
    let mut header = vec![
        format!("Machine: {machine}."),
        format!(
            "Command: `{}`; {runs} interleaved runs per workload and allocator, medians; \
             total time {:.0} s.",
            command.trim_end(),
            started.elapsed().as_secs_f64()
        ),
        String::new(),
        "Allocators:".to_string(),
    ];
    header.extend(
        allocator_lines
            .iter()
            .map(|(name, line)| format!("- **{name}**: {line}")),
    );
    let described: Vec<(String, String, String)> = prepared
        .iter()
        .map(|p| {
            let root = format!("{}/", paths.root.display());
            (
                p.workload.name.clone(),
                p.workload.about.clone(),
                p.spec.display().replace(&root, ""),
            )
        })
        .collect();
    let md = report::document(&results, runs, &header, &described, &skipped, &failures);
    let md_path = paths.bench.join("results.md");
    std::fs::write(&md_path, md).map_err(|e| format!("cannot write {}: {e}", md_path.display()))?;
    let svg_path = paths.bench.join("chart.svg");
    let title = format!("tagalloc benchmark: {} ({} runs)", machine.cpu, runs);
    std::fs::write(&svg_path, chart::svg(&results, &title))
        .map_err(|e| format!("cannot write {}: {e}", svg_path.display()))?;
    println!(
        "wrote {} and {} ({:.0} s in all)",
        paths.show(&md_path),
        paths.show(&svg_path),
        started.elapsed().as_secs_f64()
    );
    Ok(failures.is_empty())
}

/// Per allocator: its name, then its version and how it is loaded, or why it is not.
fn describe_allocators(
    ready: &[Allocator],
    missing: &[Unavailable],
    paths: &Paths,
) -> Vec<(&'static str, String)> {
    let mut lines: Vec<(&'static str, String)> = ready
        .iter()
        .map(|a| {
            let how = a.preload.as_deref().map_or("no preload".to_string(), |p| {
                format!("LD_PRELOAD={}", paths.show(p))
            });
            (a.name, format!("{} ({how})", a.version))
        })
        .collect();
    lines.extend(
        missing
            .iter()
            .map(|u| (u.name, format!("NOT LOADED: {}", u.reason))),
    );
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn options_parse() {
        let o = parse_args(&args(
            "--quick --runs 7 --only cfrac,larson --allocators=glibc,tagalloc",
        ))
        .unwrap();
        assert!(o.quick);
        assert_eq!(o.runs, Some(7));
        assert_eq!(
            o.only,
            Some(vec!["cfrac".to_string(), "larson".to_string()])
        );
        assert_eq!(
            o.allocators,
            Some(vec!["glibc".to_string(), "tagalloc".to_string()])
        );
        assert_eq!(parse_args(&[]).unwrap(), Options::default());
    }

    #[test]
    fn bad_options_are_errors() {
        for bad in [
            "--fast",
            "--runs",
            "--runs 0",
            "--runs x",
            "--allocators ptmalloc",
            "--quick=1",
            "extra",
        ] {
            assert!(parse_args(&args(bad)).is_err(), "{bad}");
        }
    }
}
