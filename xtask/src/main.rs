//! `cargo xtask`: the project's orchestration, in Rust so it runs wherever cargo does.
//!
//! - `cargo xtask test`: everything CI checks, in order: formatting, clippy (with the `unsafe`
//!   documentation lints), the workspace's tests, and real programs under the preload library.
//! - `cargo xtask corpus`: regenerates the fuzz seed inputs (under `target/`) from the readable
//!   traces.
//! - `cargo xtask bench`: speed and memory of tagalloc next to glibc, jemalloc, mimalloc and
//!   tcmalloc, on synthetic workloads, trace replays and real programs (see `bench/mod.rs`).
//! - `cargo xtask fuzz`: fuzzes every target, prints a table, turns crashes into readable
//!   regression traces (see `fuzz/mod.rs`).

mod bench;
mod corpus;
mod fuzz;
mod harness;
mod test;
mod variants;

use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask <command> [ARGS]

commands:
  test     everything CI checks: fmt, clippy, cargo test, real programs under LD_PRELOAD, the
           workflow lint, Miri, and (TAGALLOC_FUZZ_TESTS=1 or CI=true) the fuzzing checks
  corpus   regenerate the fuzz seed inputs in target/fuzz-seeds/ from the readable traces
  bench    time and peak RSS under glibc, tagalloc, jemalloc, mimalloc, tcmalloc
           (--harness: the suite's own speed, fuzz targets' exec/s and replay ops/s)
  fuzz     fuzz every target, report, turn crashes into readable regression traces
  variants how fast the fuzz targets find tagalloc's deliberately broken variants, from the
           hand-written seeds only

`cargo xtask COMMAND --help` shows a command's options.

options:
  -h, --help     this text
  -V, --version  the version of xtask
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("test") => test::run(&args[1..]),
        Some("bench") if args.iter().any(|a| a == "--harness") => harness::run(&args[1..]),
        Some("bench") => bench::run(&args[1..]),
        Some("corpus") => corpus::run(&args[1..]),
        Some("fuzz") => fuzz::run(&args[1..]),
        Some("variants") => variants::run(&args[1..]),
        Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some("-V" | "--version") => {
            println!("xtask {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some(other) => {
            let what = if other.starts_with('-') {
                "option"
            } else {
                "command"
            };
            eprintln!("cargo xtask: unknown {what} `{other}`\n\n{USAGE}");
            ExitCode::from(2)
        }
        None => {
            eprint!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// The repository root (the parent of this crate's directory).
pub fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the repository")
        .to_path_buf()
}
