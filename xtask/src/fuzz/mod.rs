//! `cargo xtask fuzz`: the campaign runner, the project's main job in one command.
//!
//! 1. makes sure cargo-fuzz is installed ([`toolchain::ensure_cargo_fuzz`]);
//! 2. picks nightly with AddressSanitizer when it works, else stable without ([`toolchain::choose`]);
//!    regenerates the seed inputs from the readable traces into `target/fuzz-seeds/`
//!    ([`crate::corpus::generate`]), a read-only second corpus for libFuzzer;
//! 3. builds every target, then fuzzes each selected one in turn for `--time` seconds on `--jobs`
//!    processes, with a live status line ([`campaign`]);
//! 4. turns a crash into a minimal readable trace in `corpus/regressions/` ([`crash`]);
//! 5. with `--cmin`, minimises the corpora of the targets that did not crash
//!    ([`corpus::minimise`]); without it, nothing committed under `corpus/` is deleted or rewritten
//!    (libFuzzer only adds new inputs);
//! 6. prints a table per target and writes it to `target/fuzz-report.md` ([`report`]).
//!
//! With `--backend X.so` it does none of this: it runs `tagalloc-diff fuzz` on that object instead,
//! passing on the flags that matter there ([`backend`]).
//!
//! Exit status: 0 clean, 1 a target crashed, 2 a usage or setup error (or a run that failed
//! without a crashing input).

mod backend;
mod campaign;
pub(crate) mod command;
mod corpus;
mod crash;
mod libfuzzer;
mod options;
mod progress;
mod report;
mod targets;
pub(crate) mod toolchain;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use corpus::Size;
use options::{Options, Parsed, USAGE};
use report::{Row, Summary};

/// Exit status when a target crashed.
const CRASHED: u8 = 1;
/// Exit status of a usage or setup error.
const SETUP: u8 = 2;

/// Why the campaign could not run.
enum Stop {
    /// A bad command line: the message, then the usage.
    Usage(String),
    /// Something missing or broken around the fuzzers: the message says what and how to fix it.
    Setup(String),
}

/// `cargo xtask fuzz ARGS`.
pub fn run(args: &[String]) -> ExitCode {
    let opts = match options::parse(args) {
        Ok(Parsed::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Parsed::Run(o)) => o,
        Err(e) => {
            eprintln!("cargo xtask fuzz: {e}\n\n{USAGE}");
            return ExitCode::from(SETUP);
        }
    };
    match fuzz_all(&opts) {
        Ok(code) => ExitCode::from(code),
        Err(Stop::Usage(e)) => {
            eprintln!("cargo xtask fuzz: {e}\n\n{USAGE}");
            ExitCode::from(SETUP)
        }
        Err(Stop::Setup(e)) => {
            eprintln!("cargo xtask fuzz: {e}");
            ExitCode::from(SETUP)
        }
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Where the corpus and the regressions of `target` live: `--corpus-root` when given, else
/// `corpus/` for a real target and `target/fixtures/` for a `selftest_*` fixture, so that running a
/// fixture (which crashes on purpose) leaves nothing in the committed tree.
fn corpus_root_for(opts: &Options, root: &Path, target: &str) -> PathBuf {
    match &opts.corpus_root {
        Some(dir) => absolute(dir),
        None if targets::is_fixture(target) => root.join("target").join("fixtures"),
        None => root.join("corpus"),
    }
}

fn fuzz_all(opts: &Options) -> Result<u8, Stop> {
    if let Some(so) = &opts.backend {
        return backend::fuzz(opts, so);
    }
    let root = crate::root();
    let fuzz_dir = root.join("fuzz");
    let all = targets::discover(&fuzz_dir).map_err(Stop::Setup)?;
    let selected = targets::select(&all, &opts.targets).map_err(Stop::Usage)?;
    let report_path = absolute(
        opts.report
            .as_deref()
            .unwrap_or(&root.join("target").join("fuzz-report.md")),
    );
    let logs = report_path.parent().unwrap_or(&root).join("fuzz-logs");
    fs::create_dir_all(&logs).map_err(|e| Stop::Setup(format!("{}: {e}", logs.display())))?;

    eprintln!("==> checking for cargo-fuzz");
    let version = toolchain::ensure_cargo_fuzz().map_err(Stop::Setup)?;
    eprintln!("    {version}");
    eprintln!("==> choosing the sanitizer");
    let mode = toolchain::choose(opts.sanitizer, &root.join("target").join("fuzz-probe"))
        .map_err(Stop::Setup)?;
    eprintln!("    {}\n    because {}", mode.describe(), mode.why);

    eprintln!("==> generating the seed inputs from corpus/seeds and corpus/regressions");
    let (n, seeds) = crate::corpus::generate(&root).map_err(Stop::Setup)?;
    eprintln!(
        "    {n} inputs in {}",
        command::shown(&seeds, &root).display()
    );

    let mut build = mode.cargo_fuzz("build");
    build.current_dir(&root);
    eprintln!(
        "==> building the fuzz targets ({})\n    $ {}",
        toolchain::BUILD_TIME,
        command::line(&build)
    );
    let built = build.status().is_ok_and(|s| s.success());
    if !built {
        return Err(Stop::Setup(format!(
            "building the fuzz targets failed (the compiler's output is above); \
             `{}` from {} shows it again",
            command::line(&build),
            root.display()
        )));
    }
    let extra = if opts.cmin {
        ", then minimising each corpus"
    } else {
        ""
    };
    eprintln!(
        "==> fuzzing {} target(s) for {} s each: about {} min{extra}",
        selected.len(),
        opts.time,
        (selected.len() as u64 * (opts.time + 5)).div_ceil(60)
    );

    let mut rows = Vec::new();
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for target in &selected {
        let corpus_root = corpus_root_for(opts, &root, target);
        let dir = corpus_root.join(target);
        let regressions = corpus_root.join("regressions");
        let target_seeds: Vec<PathBuf> = Some(seeds.join(target))
            .filter(|d| d.is_dir())
            .into_iter()
            .collect();
        fs::create_dir_all(&dir).map_err(|e| Stop::Setup(format!("{}: {e}", dir.display())))?;
        let before = Size::of(&dir);
        eprintln!(
            "==> fuzzing {target} for {} s on {} job(s), corpus {} ({before})",
            opts.time,
            opts.jobs,
            command::shown(&dir, &root).display()
        );
        let log = logs.join(format!("{target}.log"));
        let plan = campaign::Plan {
            mode: &mode,
            target,
            corpus: &dir,
            time: opts.time,
            jobs: opts.jobs,
            root: &root,
            log: &log,
            seeds: &target_seeds,
            libfuzzer: &opts.libfuzzer,
        };
        let run = match campaign::fuzz(&plan, &fuzz_dir.join("artifacts").join(target)) {
            Ok(run) => run,
            Err(e) => {
                eprintln!("    {e}");
                errors.push(format!("{target}: {e}"));
                continue;
            }
        };
        eprintln!("    log: {}", command::shown(&log, &root).display());
        if run.artifact.is_some() {
            eprintln!("==> {target} crashed; it reported:");
            for l in run.report.iter().take(20) {
                eprintln!("    | {l}");
            }
            let paths = crash::Paths {
                root: &root,
                regressions: &regressions,
                logs: &logs,
            };
            match crash::handle(&mode, target, &run, &paths) {
                Ok(f) => {
                    eprintln!(
                        "    wrote the readable trace ({} ops): {}",
                        f.ops,
                        command::shown(&f.trace, &root).display()
                    );
                    for n in &f.notes {
                        eprintln!("    note: {n}");
                    }
                    eprintln!("    reproduce with:");
                    for r in &f.reproduce {
                        eprintln!("      {r}");
                    }
                    found.push(f);
                }
                Err(e) => {
                    eprintln!("    could not turn the crash into a trace: {e}");
                    errors.push(format!("{target}: crashed, but {e}"));
                }
            }
        } else if !run.success {
            eprintln!("    `cargo fuzz run` failed without a crashing input; its last lines:");
            for l in &run.tail {
                eprintln!("    | {l}");
            }
            errors.push(format!(
                "{target}: `cargo fuzz run` failed without a crashing input (see {})",
                command::shown(&log, &root).display()
            ));
        }
        rows.push(Row {
            target: target.clone(),
            execs: run.execs,
            rate: run.rate(),
            cov: run.status.cov,
            ft: run.status.ft,
            before,
            after: Size::of(&dir),
            minimised: None,
            crashes: usize::from(run.artifact.is_some()),
        });
    }

    if opts.cmin {
        for row in rows.iter_mut() {
            if row.crashes > 0 {
                eprintln!(
                    "==> not minimising the corpus of {}: it crashed",
                    row.target
                );
                continue;
            }
            let dir = corpus_root_for(opts, &root, &row.target).join(&row.target);
            eprintln!(
                "==> minimising the corpus of {} ({})",
                row.target, row.after
            );
            let log = logs.join(format!("{}-cmin.log", row.target));
            match corpus::minimise(&mode, &row.target, &dir, &root, &log) {
                Ok(size) => {
                    eprintln!("    {} -> {size}", row.after);
                    row.minimised = Some(size);
                }
                Err(e) => {
                    eprintln!("    {e}");
                    errors.push(format!("{}: {e}", row.target));
                }
            }
        }
    }

    let summary = Summary {
        root: &root,
        mode: &mode,
        time: opts.time,
        jobs: opts.jobs,
        rows: &rows,
        found: &found,
        errors: &errors,
    };
    println!("\n{}", report::terminal(&summary));
    match fs::write(&report_path, report::markdown(&summary)) {
        Ok(()) => eprintln!("report: {}", command::shown(&report_path, &root).display()),
        Err(e) => eprintln!("could not write the report {}: {e}", report_path.display()),
    }
    Ok(if !found.is_empty() {
        CRASHED
    } else if !errors.is_empty() {
        SETUP
    } else {
        0
    })
}
