//! The command line of `cargo xtask fuzz`: flags, target names, and the usage text.

use std::path::PathBuf;

use super::toolchain::Sanitizer;

/// The usage text, printed by `--help` and after a bad flag.
pub const USAGE: &str = "\
usage: cargo xtask fuzz [OPTIONS] [TARGET...] [-- LIBFUZZER_FLAG...]

Fuzzes each TARGET (default: every target in fuzz/fuzz_targets/ except the selftest_* fixtures),
one after another, showing live progress, then prints a table per target and writes it to the
report. On a crash it minimises the input, writes it as a readable trace to corpus/regressions/,
prints the commands that reproduce it, and exits 1.

What it writes: new inputs into corpus/TARGET/ (committed files are never deleted or rewritten,
unless --cmin), a crash's trace into corpus/regressions/, everything else under target/ and
fuzz/artifacts/. A selftest_* fixture keeps its corpus and regressions under target/fixtures/.
By default it takes about (seconds x targets) plus the first build of the fuzz targets (about 2
minutes on 2 cores with AddressSanitizer, then seconds); `--time 10` is a quick run.

options:
  --time SECONDS         fuzzing time per target (default: 60)
  -j, --jobs N           fuzzing processes per target (default: the number of cores)
  --sanitizer asan|none  force AddressSanitizer (nightly) or no sanitizer (default: asan when a
                         nightly toolchain with a working ASan runtime is installed, else none)
  --cmin                 minimise each corpus that did not crash at the end (`cargo fuzz cmin`):
                         rewrites corpus/TARGET/, deleting inputs that add no coverage
  --no-cmin              do not minimise (the default; kept for old scripts)
  --corpus-root DIR      corpora in DIR/TARGET/, regressions in DIR/regressions/ (default: corpus)
  --report FILE          where the markdown report goes (default: target/fuzz-report.md)
  --backend X.so         fuzz that shared object instead of the targets: runs `tagalloc-diff fuzz
                         --backend X.so --time SECONDS` (release build), saving each distinct
                         failure, shrunk, under target/tagalloc-diff/fuzz/
  --contract C           with --backend: the rules it is held to (glibc, posix, malloc-lab)
  -h, --help             this text
  -- FLAG...             everything after `--` goes to libFuzzer, as with `cargo fuzz run`
                         (e.g. `cargo xtask fuzz ops -- -max_len=64`)

exit status: 0 clean, 1 a target crashed (see corpus/regressions/), 2 usage or setup error
";

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Seconds of fuzzing per target.
    pub time: u64,
    /// Fuzzing processes per target (`cargo fuzz run -j`, libFuzzer's `-fork`).
    pub jobs: usize,
    /// `None`: choose (AddressSanitizer when it works).
    pub sanitizer: Option<Sanitizer>,
    /// Minimise the corpora at the end (`--cmin`; off by default, as it rewrites `corpus/`).
    pub cmin: bool,
    /// Where the per-target corpora and `regressions/` live (`None`: `corpus/` in the repository).
    pub corpus_root: Option<PathBuf>,
    /// Where the markdown report goes (`None`: `target/fuzz-report.md`).
    pub report: Option<PathBuf>,
    /// Targets named on the command line (empty: the default list).
    pub targets: Vec<String>,
    /// The arguments after `--`, passed to libFuzzer after the runner's own.
    pub libfuzzer: Vec<String>,
    /// `--backend X.so`: fuzz that object with `tagalloc-diff fuzz` instead of the targets.
    pub backend: Option<String>,
    /// `--contract C`, for `--backend`.
    pub contract: Option<String>,
}

/// What parsing the command line gave.
#[derive(Debug, PartialEq)]
pub enum Parsed {
    /// Run with these options.
    Run(Options),
    /// `--help`: print the usage and succeed.
    Help,
}

/// The number of cores, the default for `--jobs`.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Parses the arguments after `fuzz`. `Err` is a message for a usage error (exit 2).
pub fn parse(args: &[String]) -> Result<Parsed, String> {
    let mut o = Options {
        time: 60,
        jobs: cores(),
        sanitizer: None,
        cmin: false,
        corpus_root: None,
        report: None,
        targets: Vec::new(),
        libfuzzer: Vec::new(),
        backend: None,
        contract: None,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg == "--" {
            o.libfuzzer = it.cloned().collect();
            break;
        }
        // `--flag=value` and `--flag value` both work.
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--time" => o.time = positive(flag, &value()?)?,
            "--jobs" | "-j" => o.jobs = positive(flag, &value()?)? as usize,
            "--sanitizer" => {
                o.sanitizer = Some(match value()?.as_str() {
                    "asan" | "address" => Sanitizer::Address,
                    "none" => Sanitizer::None,
                    other => return Err(format!("--sanitizer: `{other}` is not asan or none")),
                })
            }
            "--cmin" if inline.is_none() => o.cmin = true,
            "--no-cmin" if inline.is_none() => o.cmin = false,
            "--corpus-root" => o.corpus_root = Some(PathBuf::from(value()?)),
            "--report" => o.report = Some(PathBuf::from(value()?)),
            "--backend" => o.backend = Some(value()?),
            "--contract" => o.contract = Some(value()?),
            f if f.starts_with('-') => return Err(format!("unknown option `{arg}`")),
            name => {
                if !o.targets.iter().any(|t| t == name) {
                    o.targets.push(name.to_string());
                }
            }
        }
    }
    if o.contract.is_some() && o.backend.is_none() {
        return Err(
            "--contract needs --backend (the targets fuzz tagalloc under glibc's rules)".into(),
        );
    }
    Ok(Parsed::Run(o))
}

fn positive(flag: &str, v: &str) -> Result<u64, String> {
    match v.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{flag}: `{v}` is not a positive whole number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn run(s: &str) -> Options {
        match parse(&args(s)) {
            Ok(Parsed::Run(o)) => o,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn backend_and_contract_go_together() {
        let Parsed::Run(o) = parse(&args("--backend ./x.so --contract posix --time 7")).unwrap()
        else {
            panic!("not a run")
        };
        assert_eq!(o.backend.as_deref(), Some("./x.so"));
        assert_eq!(o.contract.as_deref(), Some("posix"));
        assert!(parse(&args("--contract posix")).is_err());
    }

    #[test]
    fn defaults() {
        let o = run("");
        assert_eq!((o.time, o.jobs, o.cmin), (60, cores(), false));
        assert_eq!((o.sanitizer, o.corpus_root, o.report), (None, None, None));
        assert!(o.targets.is_empty());
    }

    #[test]
    fn flags_and_targets() {
        let o = run("diff --time 30 --jobs=2 --sanitizer none --no-cmin ops diff --corpus-root /x");
        assert_eq!((o.time, o.jobs, o.cmin), (30, 2, false));
        assert_eq!(o.sanitizer, Some(Sanitizer::None));
        assert_eq!(o.targets, ["diff", "ops"]);
        assert_eq!(o.corpus_root, Some(PathBuf::from("/x")));
        assert_eq!(run("--sanitizer=asan").sanitizer, Some(Sanitizer::Address));
        assert!(run("--no-cmin --cmin").cmin && !run("--cmin --no-cmin").cmin);
        assert_eq!(run("-j 3").jobs, 3);
    }

    #[test]
    fn after_the_double_dash_everything_goes_to_libfuzzer() {
        let o = run("ops -- -max_len=64 --time 5 diff");
        assert_eq!(o.targets, ["ops"]);
        assert_eq!(o.time, 60);
        assert_eq!(o.libfuzzer, ["-max_len=64", "--time", "5", "diff"]);
        assert!(run("ops --").libfuzzer.is_empty());
    }

    #[test]
    fn every_option_is_in_the_help() {
        for flag in [
            "--time",
            "-j, --jobs",
            "--sanitizer",
            "--cmin",
            "--no-cmin",
            "--corpus-root",
            "--report",
            "-h, --help",
            "-- FLAG...",
        ] {
            assert!(
                USAGE.contains(&format!("  {flag} ")),
                "{flag} is not in the help"
            );
        }
    }

    #[test]
    fn help_and_errors() {
        assert_eq!(parse(&args("ops --help")), Ok(Parsed::Help));
        for bad in [
            "--time",
            "--time 0",
            "--time x",
            "--jobs -1",
            "--sanitizer msan",
            "--frobnicate",
            "--no-cmin=1",
            "--cmin=yes",
        ] {
            assert!(parse(&args(bad)).is_err(), "{bad} should be a usage error");
        }
    }
}
