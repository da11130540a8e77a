//! `cargo xtask test`: the one test command of the README and of CI.

use std::process::{Command, ExitCode};
use std::time::Instant;

struct Step {
    name: &'static str,
    program: &'static str,
    args: &'static [&'static str],
}

const STEPS: &[Step] = &[
    Step {
        name: "fmt",
        program: "cargo",
        args: &["fmt", "--all", "--check"],
    },
    Step {
        name: "clippy",
        program: "cargo",
        args: &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    },
    Step {
        name: "cargo test",
        program: "cargo",
        args: &["test", "--workspace"],
    },
    Step {
        name: "broken variants caught by the corpus replay",
        program: "cargo",
        args: &[
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
    },
    Step {
        name: "clippy (broken variants)",
        program: "cargo",
        args: &[
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
    },
    Step {
        name: "preload programs",
        program: "bash",
        args: &["allocator/preload/tests/programs.sh"],
    },
];

pub fn run(args: &[String]) -> ExitCode {
    if let Some(a) = args.first() {
        eprintln!("cargo xtask test: unexpected argument `{a}`\nusage: cargo xtask test");
        return ExitCode::from(2);
    }
    let root = crate::root();
    let mut failed = Vec::new();
    let mut passed = 0;
    for step in STEPS {
        eprintln!("==> {}", step.name);
        let t = Instant::now();
        let status = Command::new(step.program)
            .args(step.args)
            .current_dir(&root)
            .status();
        match status {
            Ok(s) if s.success() => {
                passed += 1;
                eprintln!("==> {}: ok ({:.1}s)", step.name, t.elapsed().as_secs_f64());
            }
            Ok(s) => {
                eprintln!("==> {}: FAILED ({s})", step.name);
                failed.push(step.name);
            }
            Err(e) => {
                eprintln!("==> {}: could not run `{}`: {e}", step.name, step.program);
                failed.push(step.name);
            }
        }
    }
    if !failed.is_empty() {
        eprintln!("failed steps: {}", failed.join(", "));
    }
    println!("steps: {passed} passed, {} failed", failed.len());
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
