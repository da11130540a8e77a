//! `cargo xtask`: the project's orchestration, in Rust so it runs wherever cargo does.
//!
//! - `cargo xtask test`: everything CI checks, in order: formatting, clippy (with the `unsafe`
//!   documentation lints), the workspace's tests, and real programs under the preload library.
//! - `cargo xtask corpus`: regenerates the fuzz seed inputs from the readable traces.
//! - `cargo xtask bench`: speed and memory of tagalloc next to glibc, jemalloc, mimalloc and
//!   tcmalloc, on synthetic workloads, trace replays and real programs (see `bench/mod.rs`).
//! - `cargo xtask fuzz`: fuzzes every target, prints a table, turns crashes into readable
//!   regression traces (see `fuzz/mod.rs`).

mod bench;
mod corpus;
mod fuzz;
mod test;
mod variants;

use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask <command>

commands:
  test     formatting, clippy, cargo test, real programs under LD_PRELOAD
  corpus   regenerate the fuzz seed inputs under corpus/ from corpus/seeds and corpus/regressions
  bench    time and peak RSS under glibc, tagalloc, jemalloc, mimalloc, tcmalloc
           (`cargo xtask bench --help` for its options)
  fuzz     fuzz every target, report, turn crashes into readable regression traces
           (`cargo xtask fuzz --help` for its options)
  variants how fast the fuzz targets find tagalloc's deliberately broken variants, from the
           hand-written seeds only (`cargo xtask variants --help`)
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("test") => test::run(&args[1..]),
        Some("bench") => bench::run(&args[1..]),
        Some("corpus") => corpus::run(&args[1..]),
        Some("fuzz") => fuzz::run(&args[1..]),
        Some("variants") => variants::run(&args[1..]),
        Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("cargo xtask: unknown command `{other}`\n\n{USAGE}");
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
