//! `cargo xtask bench --harness`: how fast the suite itself runs.
//!
//! First `tagalloc-diff bench --harness` (release build): each fuzz target's exec/s over its
//! committed corpus in-process without a sanitizer, and replay ops/s at 1k, 10k and 100k live
//! blocks. Then the fuzz targets as `cargo fuzz` builds them with AddressSanitizer (nightly): each
//! binary runs on one core for `--time` seconds (default 10) from its committed corpus, and the
//! table gives its executions per CPU second (libFuzzer's `stat::number_of_executed_units` over
//! the child's user and system time, which on a shared machine still says what one core does),
//! and libFuzzer's own wall-clock exec/s while it replays the corpus (its `INITED` line). New inputs go to a scratch directory under
//! `target/harness-bench/`, so nothing committed changes. Without a working nightly AddressSanitizer
//! that half is reported as skipped, with the reason.

use std::path::Path;
use std::process::{Command, ExitCode};

use crate::fuzz::toolchain::{self, Sanitizer};

const USAGE: &str = "usage: cargo xtask bench --harness [--time S]

  --time S   seconds each fuzz target runs under AddressSanitizer (default 10)
";

/// Runs the benchmark; `args` are those after `bench`.
pub fn run(args: &[String]) -> ExitCode {
    let mut time = 10u64;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--harness" => {}
            "--time" => match it.next().and_then(|v| v.parse().ok()) {
                Some(t) => time = t,
                None => return usage("--time needs a number of seconds"),
            },
            "-h" | "--help" => {
                print!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => return usage(&format!("unknown option `{other}`")),
        }
    }
    let root = crate::root();
    eprintln!("==> cargo run --release -p tagalloc-diff -- bench --harness");
    let ok = Command::new("cargo")
        .args(["run", "--release", "-q", "-p", "tagalloc-diff", "--"])
        .args(["bench", "--harness"])
        .current_dir(&root)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("cargo xtask bench --harness: tagalloc-diff bench --harness failed");
        return ExitCode::from(1);
    }
    match asan(&root, time) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cargo xtask bench --harness: {e}");
            ExitCode::from(1)
        }
    }
}

fn usage(message: &str) -> ExitCode {
    eprint!("cargo xtask bench --harness: {message}\n\n{USAGE}");
    ExitCode::from(2)
}

/// The AddressSanitizer table, or the line saying why it is skipped.
fn asan(root: &Path, time: u64) -> Result<(), String> {
    println!();
    let scratch = root.join("target").join("harness-bench");
    let mode = toolchain::choose(None, &scratch.join("probe"))?;
    if mode.sanitizer != Sanitizer::Address {
        println!("exec/s under AddressSanitizer: skipped ({})", mode.why);
        return Ok(());
    }
    toolchain::ensure_cargo_fuzz()?;
    let mut build = mode.cargo_fuzz("build");
    build.current_dir(root);
    eprintln!(
        "==> building the fuzz targets ({}): {}",
        toolchain::BUILD_TIME,
        mode.cargo_fuzz_shown("build")
    );
    if !build.status().is_ok_and(|s| s.success()) {
        return Err("building the fuzz targets failed (the output is above)".into());
    }
    let bin = root.join("fuzz/target/x86_64-unknown-linux-gnu/release");
    println!("exec/s under AddressSanitizer ({}), {time} s per target on one core, from its committed corpus:", mode.describe());
    println!(
        "{:<12} {:>7} {:>8} {:>7} {:>12} {:>16}",
        "target", "inputs", "execs", "CPU s", "exec/CPU s", "INITED exec/s"
    );
    for t in tagalloc_diff::targets::Target::ALL {
        let name = t.name();
        let corpus = root.join("corpus").join(name);
        let out = scratch.join("new").join(name);
        std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
        let cpu = children_cpu();
        let run = Command::new(bin.join(name))
            .arg(format!("-max_total_time={time}"))
            .arg("-print_final_stats=1")
            .arg(&out)
            .arg(&corpus)
            .output()
            .map_err(|e| format!("{}: {e}", bin.join(name).display()))?;
        let log = String::from_utf8_lossy(&run.stderr);
        let inited = log
            .lines()
            .find(|l| l.contains("INITED"))
            .and_then(|l| l.split("exec/s: ").nth(1))
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or("?");
        let cpu = children_cpu() - cpu;
        let execs: u64 = log
            .lines()
            .find_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let inputs = std::fs::read_dir(&corpus).map_or(0, |d| d.count());
        println!(
            "{name:<12} {inputs:>7} {execs:>8} {cpu:>7.1} {:>12.0} {inited:>16}",
            execs as f64 / cpu.max(1e-9)
        );
        if !run.status.success() {
            let log_path = scratch.join(format!("{name}.log"));
            let _ = std::fs::write(&log_path, log.as_bytes());
            println!(
                "  {name} exited with {} (its output: {})",
                run.status,
                log_path.display()
            );
        }
    }
    Ok(())
}

/// CPU seconds (user and system) of the children this process has waited for.
fn children_cpu() -> f64 {
    // SAFETY: an all-zero rusage is a valid value to overwrite.
    let mut r: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `r` is a valid out-pointer.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut r) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    secs(r.ru_utime) + secs(r.ru_stime)
}
