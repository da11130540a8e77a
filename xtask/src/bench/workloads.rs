//! The workloads: what each one runs, at which size, and what it needs prepared first.
//!
//! Three families, all ours but modelled on the standard allocator benchmarks:
//! - synthetic drivers, C programs in `xtask/bench/` compiled with `gcc -O2 -pthread` into
//!   `target/bench/bin/` (`cfrac`, `alloctest`, `realloc`, `large`, and `larson`/`xmalloc` at 1 and
//!   2 threads; the shapes the standard suite found us slow on: `batch` (sh6bench/sh8bench: large
//!   batches of small blocks freed LIFO, FIFO, at random, and across 2 threads), `pool` (rptest:
//!   runs of a pool of variable-size blocks recycled by 1 or 2 threads) and `loops` (glibc's
//!   bench-malloc-simple and bench-malloc-thread loops));
//! - trace replays through the `replay` driver (see [`super::traces`]);
//! - real programs: a Python script building and sorting strings and dicts, `sort` over a
//!   generated file, and `gcc -O2` compiling a generated C file, with the generators that the
//!   preload tests use (`allocator/preload/tests/real/`).
//!
//! `--quick` runs a subset at a smaller size ([`Scale::Quick`]): the single-threaded drivers, the
//! 2-thread ones (not the 1-thread `larson` and `xmalloc`), every trace (replays are fast, and the
//! recorded traces are kept small enough for the repository) and the real programs; its figures
//! are comparable within one run, not with a full run's.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::measure::Spec;
use super::traces::TraceFile;
use super::Paths;

/// How big the workloads are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// Every workload at full size.
    Full,
    /// A subset, smaller, for a check in under two minutes.
    Quick,
}

impl Scale {
    fn pick(self, full: u64, quick: u64) -> u64 {
        match self {
            Scale::Full => full,
            Scale::Quick => quick,
        }
    }
}

/// Which family a workload belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// A synthetic driver.
    Synthetic,
    /// A trace replay (the report adds space utilisation).
    Replay,
    /// A real program.
    Program,
}

/// What a workload runs.
#[derive(Clone, Debug)]
enum Kind {
    /// A driver with `NAME=VALUE` arguments.
    Driver {
        driver: &'static str,
        args: Vec<(&'static str, u64)>,
        /// Arguments whose value is a word (`order=lifo`).
        words: Vec<(&'static str, &'static str)>,
    },
    /// The replay driver over a trace.
    Replay(TraceFile),
    /// `python3 python_sort.py N`.
    Python { records: u64 },
    /// `sort` over a generated file of `lines` lines.
    Sort { lines: u64 },
    /// `gcc -O2 -c` of a generated file of `functions` functions.
    Gcc { functions: u64 },
}

/// One workload.
#[derive(Clone, Debug)]
pub struct Workload {
    /// Its name, as `--only` takes it.
    pub name: String,
    /// What it does, in one line.
    pub about: String,
    /// Its family.
    pub family: Family,
    /// Whether `--quick` runs it.
    pub quick: bool,
    kind: Kind,
}

/// Every workload at the given scale, in report order.
pub fn catalog(scale: Scale, traces: Vec<TraceFile>) -> Vec<Workload> {
    let s = |full, quick| scale.pick(full, quick);
    let driver = |name: &str,
                  about: &str,
                  quick: bool,
                  driver: &'static str,
                  args: Vec<(&'static str, u64)>| Workload {
        name: name.to_string(),
        about: about.to_string(),
        family: Family::Synthetic,
        quick,
        kind: Kind::Driver {
            driver,
            args,
            words: vec![],
        },
    };
    let mut w = vec![
        driver(
            "cfrac",
            "cfrac-like: bignum temporaries of 16-64 B, short-lived, mostly LIFO",
            true,
            "cfrac",
            vec![("steps", s(1_500_000, 800_000))],
        ),
        driver(
            "alloctest",
            "alloc-test-like: random replacement in 20k blocks, heavy-tailed sizes up to 1 KiB",
            true,
            "alloctest",
            vec![("steps", s(8_000_000, 4_000_000)), ("live", 20_000)],
        ),
        driver(
            "realloc",
            "buffers grown by realloc (exact and doubling) from 0 to 64 B-512 KiB",
            true,
            "realloc",
            vec![("steps", s(1_500_000, 800_000)), ("buffers", 32)],
        ),
        driver(
            "large",
            "16 live blocks of 64-320 KiB replaced at random, every page touched",
            true,
            "large",
            vec![("steps", s(100_000, 50_000)), ("live", 16)],
        ),
    ];
    for threads in [1, 2] {
        w.push(driver(
            &format!("larson-{threads}t"),
            &format!(
                "larson-like: {} 16-512 B blocks, tables passed to new threads each round",
                if threads == 1 {
                    "1 thread replaces"
                } else {
                    "2 threads replace"
                }
            ),
            threads == 2,
            "larson",
            vec![
                ("threads", threads),
                ("steps", s(6_000_000, 3_000_000)),
                ("rounds", s(40, 20)),
                ("slots", 2000),
            ],
        ));
    }
    for threads in [1, 2] {
        w.push(driver(
            &format!("xmalloc-{threads}t"),
            &format!(
                "xmalloc-like: {}, 16-256 B blocks passed in batches",
                if threads == 1 {
                    "1 producer and 1 consumer thread"
                } else {
                    "2 producer and 2 consumer threads"
                }
            ),
            threads == 2,
            "xmalloc",
            vec![("threads", threads), ("blocks", s(3_000_000, 1_500_000))],
        ));
    }
    for order in ["lifo", "fifo", "random"] {
        w.push(driver(
            &format!("batch-{order}"),
            &format!(
                "sh6bench-like: batches of 20000 blocks of 1-512 B, freed in {} order",
                order.to_uppercase()
            ),
            order == "random",
            "batch",
            vec![("blocks", s(6_000_000, 3_000_000)), ("batch", 20_000)],
        ));
        if let Some(Workload {
            kind: Kind::Driver { words, .. },
            ..
        }) = w.last_mut()
        {
            words.push(("order", order));
        }
    }
    w.push(driver(
        "batch-2t",
        "sh8bench-like: 2 threads allocate batches of 20000 blocks, each frees the other's",
        true,
        "batch",
        vec![
            ("threads", 2),
            ("blocks", s(6_000_000, 3_000_000)),
            ("batch", 20_000),
        ],
    ));
    for threads in [1, 2] {
        w.push(driver(
            &format!("pool-{threads}t"),
            &format!(
                "rptest-like: {threads} thread(s) recycle runs of a pool of 8192 blocks of 16 B-16 KiB{}",
                if threads == 2 { ", swapping runs" } else { "" }
            ),
            threads == 2,
            "pool",
            vec![("threads", threads), ("steps", s(4_000_000, 2_000_000))],
        ));
    }
    w.push(driver(
        "glibc-simple",
        "bench-malloc-simple-like: 25-1600 blocks of 16-1024 B allocated, then freed",
        true,
        "loops",
        vec![("blocks", s(20_000_000, 10_000_000))],
    ));
    for threads in [1, 2] {
        w.push(driver(
            &format!("glibc-thread-{threads}t"),
            &format!(
                "bench-malloc-thread-like: {threads} thread(s) replace random blocks of 8 B-32 KiB in sets of 400"
            ),
            threads == 2,
            "loops",
            vec![("threads", threads), ("blocks", s(8_000_000, 4_000_000))],
        ));
        if let Some(Workload {
            kind: Kind::Driver { words, .. },
            ..
        }) = w.last_mut()
        {
            words.push(("mode", "thread"));
        }
    }
    for trace in traces {
        w.push(Workload {
            name: format!("replay-{}", trace.name),
            about: format!("replays {}", trace.origin()),
            family: Family::Replay,
            quick: true,
            kind: Kind::Replay(trace),
        });
    }
    let records = s(100_000, 50_000);
    let lines = s(600_000, 300_000);
    let functions = s(100, 60);
    w.push(Workload {
        name: "python".into(),
        about: format!("python3 python_sort.py {records}: builds and sorts strings and dicts"),
        family: Family::Program,
        quick: true,
        kind: Kind::Python { records },
    });
    w.push(Workload {
        name: "sort".into(),
        about: format!("LC_ALL=C sort of a generated file of {lines} lines"),
        family: Family::Program,
        quick: true,
        kind: Kind::Sort { lines },
    });
    w.push(Workload {
        name: "gcc".into(),
        about: format!("gcc -O2 -c of a generated C file of {functions} functions"),
        family: Family::Program,
        quick: true,
        kind: Kind::Gcc { functions },
    });
    w
}

/// Whether `word` (from `--only`) selects the workload: its name, or a prefix of it up to a `-`
/// (`larson` selects `larson-1t` and `larson-2t`, `replay` every replay).
pub fn matches(workload: &str, word: &str) -> bool {
    workload == word
        || workload
            .strip_prefix(word)
            .is_some_and(|rest| rest.starts_with('-'))
}

impl Workload {
    /// Generates what the workload needs (inputs, trace copies) and returns the command to
    /// measure, or why it cannot run here.
    pub fn prepare(&self, paths: &Paths) -> Result<Spec, String> {
        let real = paths.root.join("allocator/preload/tests/real");
        let work = &paths.work;
        let plain = |program: PathBuf, args: Vec<OsString>, env: Vec<(&str, &str)>| Spec {
            program,
            args,
            env: env
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            stdin: None,
        };
        Ok(match &self.kind {
            Kind::Driver {
                driver,
                args,
                words,
            } => plain(
                paths.bin.join(driver),
                args.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .chain(words.iter().map(|(k, v)| format!("{k}={v}")))
                    .map(OsString::from)
                    .collect(),
                vec![],
            ),
            Kind::Replay(trace) => plain(
                paths.bin.join("replay"),
                vec![trace.materialize(&paths.traces)?.into()],
                vec![],
            ),
            Kind::Python { records } => plain(
                python()?,
                vec![
                    real.join("python_sort.py").into(),
                    records.to_string().into(),
                ],
                vec![("PYTHONHASHSEED", "0")],
            ),
            Kind::Sort { lines } => {
                let input = work.join(format!("sort-{lines}.in"));
                generate(&input, || {
                    let mut c = Command::new("awk");
                    c.arg("-v")
                        .arg(format!("LINES={lines}"))
                        .arg("-f")
                        .arg(real.join("sort_input.awk"));
                    c
                })?;
                plain(
                    find_program("sort")?,
                    vec![input.into()],
                    vec![("LC_ALL", "C")],
                )
            }
            Kind::Gcc { functions } => {
                let unit = work.join(format!("unit-{functions}.c"));
                generate(&unit, || {
                    let mut c = Command::new("python3");
                    c.arg(real.join("compile_unit.py"))
                        .arg(functions.to_string());
                    c
                })?;
                let object = work.join(format!("unit-{functions}.o"));
                plain(
                    find_program("gcc")?,
                    vec![
                        "-O2".into(),
                        "-c".into(),
                        "-o".into(),
                        object.into(),
                        unit.into(),
                    ],
                    vec![],
                )
            }
        })
    }
}

/// Writes the standard output of `command()` into `file`, unless the file exists already (its
/// name carries the size, and the generators are deterministic).
fn generate(file: &Path, command: impl FnOnce() -> Command) -> Result<(), String> {
    if file.is_file() {
        return Ok(());
    }
    let partial = file.with_extension("partial");
    let out = std::fs::File::create(&partial)
        .map_err(|e| format!("cannot write {}: {e}", partial.display()))?;
    let mut cmd = command();
    let status = cmd
        .stdout(out)
        .stderr(Stdio::inherit())
        .status()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    if !status.success() {
        return Err(format!("{:?} failed ({status})", cmd.get_program()));
    }
    std::fs::rename(&partial, file).map_err(|e| format!("cannot write {}: {e}", file.display()))
}

/// The real Python interpreter (`sys.executable`), not a wrapper script such as pyenv's shim,
/// which would be measured too.
fn python() -> Result<PathBuf, String> {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("python3 not found: {e}"))?;
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || path.is_empty() {
        return Err("python3 does not say where its interpreter is".into());
    }
    Ok(PathBuf::from(path))
}

/// The full path of a program in `PATH`.
fn find_program(name: &str) -> Result<PathBuf, String> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("{name} not found in PATH"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_matches_names_and_families() {
        assert!(matches("larson-2t", "larson"));
        assert!(matches("larson-2t", "larson-2t"));
        assert!(!matches("larson-2t", "lars"));
        assert!(matches("replay-synthetic-lab", "replay"));
        assert!(matches("replay-synthetic-lab", "replay-synthetic"));
        assert!(!matches("cfrac", "cfrac-1t"));
    }

    #[test]
    fn names_are_unique_and_quick_is_a_subset() {
        let traces = super::super::traces::all(Path::new("/nonexistent"));
        let full = catalog(Scale::Full, traces.clone());
        let mut names: Vec<&str> = full.iter().map(|w| w.name.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), full.len());
        let quick = catalog(Scale::Quick, traces);
        assert!(quick.iter().any(|w| w.quick));
        assert!(quick.iter().all(|w| names.contains(&w.name.as_str())));
    }
}
