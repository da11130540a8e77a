//! `cargo xtask fuzz --backend X.so`: `tagalloc-diff fuzz` on that object in a release build,
//! instead of the campaign over the targets, with the flags of its that matter passed on
//! ([`super::options::Pass`]).
//!
//! The command runs from the repository root (where `cargo run -p tagalloc-diff` works), so every
//! path the user gave relative to where they stand is made absolute first; backend names
//! (`libc`, `tagalloc`, `locked`) stay names.

use std::path::Path;
use std::process::Command;

use super::options::Options;
use super::Stop;

/// Whether `tagalloc-diff` reads `spec` as a backend name rather than a path.
fn named(spec: &str) -> bool {
    matches!(spec, "tagalloc" | "locked" | "libc")
}

/// `path` made absolute against `cwd` (as it is when already absolute).
fn from(cwd: &Path, path: &Path) -> String {
    cwd.join(path).display().to_string()
}

/// A backend spec as `tagalloc-diff` running from elsewhere reads it.
fn spec(cwd: &Path, spec: &str) -> String {
    if named(spec) {
        spec.to_string()
    } else {
        from(cwd, Path::new(spec))
    }
}

/// The command that fuzzes `so` as `opts` say, for a user standing in `cwd`, run from `root`.
pub fn command(opts: &Options, so: &str, cwd: &Path, root: &Path) -> Command {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root);
    cmd.args([
        "run",
        "--release",
        "-q",
        "-p",
        "tagalloc-diff",
        "--",
        "fuzz",
    ]);
    cmd.args([
        "--backend",
        &spec(cwd, so),
        "--time",
        &opts.time.to_string(),
    ]);
    let p = &opts.pass;
    if let Some(c) = &p.contract {
        cmd.args(["--contract", c]);
    }
    if let Some(b) = &p.against {
        cmd.args(["--against", &spec(cwd, b)]);
    }
    if let Some(d) = &p.corpus {
        cmd.args(["--corpus", &from(cwd, d)]);
    }
    if let Some(d) = &p.save {
        cmd.args(["--save", &from(cwd, d)]);
    }
    if let Some(n) = p.seed {
        cmd.args(["--seed", &n.to_string()]);
    }
    if let Some(s) = &p.hang_limit {
        cmd.args(["--hang-limit", s]);
    }
    if p.blind {
        cmd.arg("--blind");
    }
    if p.first {
        cmd.arg("--first");
    }
    cmd
}

/// Runs [`command`]: its exit status (0 clean, 1 failures found), or why it could not run.
pub fn fuzz(opts: &Options, so: &str) -> Result<u8, Stop> {
    let cwd = std::env::current_dir()
        .map_err(|e| Stop::Setup(format!("cannot read the current directory: {e}")))?;
    let mut cmd = command(opts, so, &cwd, &crate::root());
    eprintln!(
        "==> tagalloc-diff fuzz --backend {so} for {} s\n    $ {}",
        opts.time,
        super::command::line(&cmd)
    );
    let status = cmd
        .status()
        .map_err(|e| Stop::Setup(format!("cannot run cargo: {e}")))?;
    match status.code() {
        Some(c @ (0 | 1)) => Ok(c as u8),
        Some(2) => Err(Stop::Usage(format!(
            "tagalloc-diff fuzz refused --backend {so} (its message is above)"
        ))),
        _ => Err(Stop::Setup(format!("tagalloc-diff fuzz failed: {status}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::super::command::line;
    use super::super::options::{parse, Parsed};
    use super::*;

    fn built(args: &str) -> String {
        let args: Vec<String> = args.split_whitespace().map(String::from).collect();
        let Ok(Parsed::Run(o)) = parse(&args) else {
            panic!("{args:?} does not parse")
        };
        let so = o.backend.clone().expect("--backend");
        let cmd = command(&o, &so, Path::new("/home/me"), Path::new("/repo"));
        assert_eq!(cmd.get_current_dir(), Some(Path::new("/repo")));
        // The program is $CARGO under cargo; the arguments are what matters.
        let line = line(&cmd);
        let (_, args) = line.split_once(' ').expect("arguments");
        args.to_string()
    }

    #[test]
    fn every_flag_passed_on_with_paths_made_absolute() {
        assert_eq!(
            built(
                "--backend ./mm.so --time 30 --contract posix --against libc --corpus traces \
                 --save /tmp/min --seed 7 --hang-limit 5.5 --blind --first"
            ),
            "run --release -q -p tagalloc-diff -- fuzz --backend /home/me/./mm.so --time 30 \
             --contract posix --against libc --corpus /home/me/traces --save /tmp/min --seed 7 \
             --hang-limit 5.5 --blind --first"
        );
    }

    #[test]
    fn the_least_command_and_another_object_against() {
        assert_eq!(
            built("--backend /x/a.so"),
            "run --release -q -p tagalloc-diff -- fuzz --backend /x/a.so --time 60"
        );
        assert!(built("--backend a.so --against b.so").ends_with("--against /home/me/b.so"));
        assert!(built("--backend libc --against=tagalloc")
            .ends_with("--backend libc --time 60 --against tagalloc"));
    }
}
