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
                         failure, shrunk, under target/tagalloc-diff/fuzz/; with it, and only with
                         it, these go to `tagalloc-diff fuzz` as they are (paths made absolute):
    --contract C         the rules it is held to (glibc, posix, malloc-lab; default glibc)
    --against B          differential against B (libc, tagalloc or another .so)
    --corpus DIR         start the corpus from the traces in DIR
    --blind              no feedback: independent random draws
    --seed N             the random seed (default: from the clock)
    --first              stop at the first failure, shrunk and saved
    --save DIR           where the minimal traces go
    --hang-limit S       seconds an op may take before it is a hang (default 2, plus 16 a GiB)
                         (targets, `--` flags, --jobs, --sanitizer, --cmin, --corpus-root and
                         --report are the campaign's and refused with --backend)
  -h, --help             this text
  -- FLAG...             everything after `--` goes to libFuzzer, as with `cargo fuzz run`
                         (e.g. `cargo xtask fuzz ops -- -max_len=64`)

exit status: 0 clean, 1 a target crashed (see corpus/regressions/) or, with --backend, the object
failed (see target/tagalloc-diff/fuzz/ or --save), 2 usage or setup error
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
    /// The flags `--backend` passes on to `tagalloc-diff fuzz`.
    pub pass: Pass,
}

/// The flags of `tagalloc-diff fuzz` that `--backend` passes on, each checked here so that a bad
/// one is a usage error of `cargo xtask fuzz` before anything is built.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pass {
    /// `--contract C`.
    pub contract: Option<String>,
    /// `--against B`.
    pub against: Option<String>,
    /// `--corpus DIR`.
    pub corpus: Option<PathBuf>,
    /// `--save DIR`.
    pub save: Option<PathBuf>,
    /// `--seed N`.
    pub seed: Option<u64>,
    /// `--hang-limit S`, as given (a positive number of seconds).
    pub hang_limit: Option<String>,
    /// `--blind`.
    pub blind: bool,
    /// `--first`.
    pub first: bool,
}

/// The contracts `tagalloc-diff --contract` knows.
const CONTRACTS: [&str; 3] = ["glibc", "posix", "malloc-lab"];

/// What parsing the command line gave.
#[derive(Debug, PartialEq)]
pub enum Parsed {
    /// Run with these options.
    Run(Box<Options>),
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
        pass: Pass::default(),
    };
    // The first flag given that only one of the two modes takes, for the error after the loop.
    let (mut passed, mut campaign): (Option<String>, Option<String>) = (None, None);
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg == "--" {
            o.libfuzzer = it.cloned().collect();
            if !o.libfuzzer.is_empty() {
                campaign.get_or_insert_with(|| "flags after `--`".into());
            }
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
        if PASSED.contains(&flag) {
            passed.get_or_insert_with(|| flag.to_string());
        } else if CAMPAIGN.contains(&flag) {
            campaign.get_or_insert_with(|| flag.to_string());
        }
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
            "--contract" => {
                let c = value()?;
                if !CONTRACTS.contains(&c.as_str()) {
                    return Err(format!(
                        "--contract: `{c}` is not glibc, posix or malloc-lab"
                    ));
                }
                o.pass.contract = Some(c);
            }
            "--against" => o.pass.against = Some(value()?),
            "--corpus" => o.pass.corpus = Some(PathBuf::from(value()?)),
            "--save" => o.pass.save = Some(PathBuf::from(value()?)),
            "--seed" => {
                let v = value()?;
                let n = v
                    .parse()
                    .map_err(|_| format!("--seed: `{v}` is not a whole number"))?;
                o.pass.seed = Some(n);
            }
            "--hang-limit" => {
                let v = value()?;
                if !v.parse::<f64>().is_ok_and(|s| s.is_finite() && s > 0.0) {
                    return Err(format!(
                        "--hang-limit: `{v}` is not a positive number of seconds"
                    ));
                }
                o.pass.hang_limit = Some(v);
            }
            "--blind" if inline.is_none() => o.pass.blind = true,
            "--first" if inline.is_none() => o.pass.first = true,
            f if f.starts_with('-') => return Err(format!("unknown option `{arg}`")),
            name => {
                campaign.get_or_insert_with(|| format!("the target `{name}`"));
                if !o.targets.iter().any(|t| t == name) {
                    o.targets.push(name.to_string());
                }
            }
        }
    }
    match (&o.backend, passed, campaign) {
        (None, Some(flag), _) => Err(format!(
            "{flag} needs --backend (the targets fuzz tagalloc, under glibc's rules, from their \
             own corpora)"
        )),
        (Some(_), _, Some(what)) => Err(format!(
            "{what}: not with --backend (it runs `tagalloc-diff fuzz`, not the campaign)"
        )),
        _ => Ok(Parsed::Run(Box::new(o))),
    }
}

/// Flags passed on to `tagalloc-diff fuzz`, which only `--backend` takes.
const PASSED: [&str; 8] = [
    "--contract",
    "--against",
    "--corpus",
    "--save",
    "--seed",
    "--hang-limit",
    "--blind",
    "--first",
];

/// Flags of the campaign over the targets, which `--backend` does not take.
const CAMPAIGN: [&str; 7] = [
    "--jobs",
    "-j",
    "--sanitizer",
    "--cmin",
    "--no-cmin",
    "--corpus-root",
    "--report",
];

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
            Ok(Parsed::Run(o)) => *o,
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
        assert_eq!(o.pass.contract.as_deref(), Some("posix"));
        assert!(parse(&args("--contract posix")).is_err());
    }

    #[test]
    fn the_flags_backend_passes_on() {
        let o = run(
            "--backend x.so --against=libc --corpus d --save s --seed 0 --hang-limit 0.5 --blind \
             --first --contract malloc-lab",
        );
        let want = Pass {
            contract: Some("malloc-lab".into()),
            against: Some("libc".into()),
            corpus: Some(PathBuf::from("d")),
            save: Some(PathBuf::from("s")),
            seed: Some(0),
            hang_limit: Some("0.5".into()),
            blind: true,
            first: true,
        };
        assert_eq!(o.pass, want);
        assert_eq!(run("--backend x.so").pass, Pass::default());
    }

    #[test]
    fn each_mode_refuses_the_other_modes_flags() {
        for bad in [
            // The campaign's flags with --backend.
            "--backend x.so ops",
            "--backend x.so -j 2",
            "--backend x.so --cmin",
            "--backend x.so --corpus-root d",
            "--backend x.so --report r",
            "--backend x.so --sanitizer none",
            "--backend x.so -- -max_len=4",
            // --backend's flags without it.
            "--blind",
            "--first",
            "--corpus d",
            "--against libc",
            "--seed 3",
            "--save d",
            "--hang-limit 3",
            "ops --contract posix",
            // Bad values.
            "--backend x.so --contract musl",
            "--backend x.so --seed -1",
            "--backend x.so --hang-limit 0",
            "--backend x.so --hang-limit x",
            "--backend x.so --blind=yes",
            "--backend x.so --corpus",
        ] {
            assert!(parse(&args(bad)).is_err(), "{bad} should be a usage error");
        }
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
            "--backend",
            "--contract",
            "--against",
            "--corpus",
            "--blind",
            "--seed",
            "--first",
            "--save",
            "--hang-limit",
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
