//! Every command in README.md runs as written.
//!
//! Each line of each fenced `sh` block is a command, run with `bash -c` from the repository root
//! exactly as a reader would paste it, and must exit 0, or with the status its comment announces
//! (`# exits 1: ...`). A few long ones run shortened, each listed in [`SHORTENED`] with the
//! replacement and why, and `cargo xtask test` is not run from here, as it is what runs this test.
//! The test fails if a README command is missing from the blocks it expects (so the list cannot rot
//! silently), if a command fails, or if the commands left anything behind: no tracked file may
//! change, and a new untracked file is allowed only as a fuzzer's new corpus input
//! (`corpus/TARGET/`), which the test then removes, as it made it.
//!
//! Slow (it fuzzes every target and builds the fuzz targets), so it is `#[ignore]`d; the `readme`
//! step of `cargo xtask test` runs it (`TAGALLOC_FUZZ_TESTS=1`, always in CI).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Long commands and what runs instead: (as written, run as, why).
const SHORTENED: &[(&str, &str, &str)] = &[
    (
        "cargo xtask fuzz",
        "cargo xtask fuzz --time 3",
        "the main job at its default 60 s a target; the quick form just above runs as written",
    ),
    (
        "cargo +nightly fuzz run ops -- -max_total_time=60",
        "cargo +nightly fuzz run ops -- -max_total_time=10",
        "a minute of fuzzing by hand",
    ),
];

/// Not run: `cargo xtask test` runs this test.
const ITSELF: &str = "cargo xtask test";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The lines of every ```sh block.
fn commands(readme: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in readme.lines() {
        let t = line.trim();
        if t.starts_with("```") {
            inside = !inside && t == "```sh";
            continue;
        }
        if inside && !t.is_empty() && !t.starts_with('#') {
            out.push(t.to_string());
        }
    }
    out
}

/// The command without its trailing comment (a ` #` outside quotes; the README's commands quote
/// no `#`).
fn without_comment(line: &str) -> &str {
    line.split(" #").next().unwrap_or(line).trim()
}

/// The exit status a line's comment announces (`# exits N: ...`), else 0.
fn expected_status(line: &str) -> i32 {
    line.split_once("# exits ")
        .and_then(|(_, rest)| rest.split(':').next()?.trim().parse().ok())
        .unwrap_or(0)
}

/// `git status --porcelain` lines, untracked files listed one by one.
fn status(root: &Path) -> BTreeSet<String> {
    let out = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=all"])
        .current_dir(root)
        .output()
        .unwrap();
    assert!(out.status.success(), "git status failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn the_comments_say_what_is_expected() {
    assert_eq!(expected_status("cargo x   # exits 1: it fails"), 1);
    assert_eq!(expected_status("cargo x   # the main job"), 0);
    assert_eq!(
        without_comment("cargo x --time 10   # quick"),
        "cargo x --time 10"
    );
    let md = "text\n```sh\ncargo a  # one\n\n# note\ncargo b\n```\n```text\nmalloc 0 1\n```\n";
    assert_eq!(commands(md), ["cargo a  # one", "cargo b"]);
}

#[test]
#[ignore = "runs every README command, fuzzing included: the readme step of `cargo xtask test`"]
fn every_readme_command_runs_as_written() {
    let root = root();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let lines = commands(&readme);
    let bare: Vec<&str> = lines.iter().map(|l| without_comment(l)).collect();
    for (written, _, _) in SHORTENED {
        assert!(
            bare.contains(written),
            "README.md no longer has `{written}`: update SHORTENED in {}",
            file!()
        );
    }
    assert!(bare.contains(&ITSELF), "README.md no longer has `{ITSELF}`");
    let before = status(&root);

    let mut failures = Vec::new();
    let mut ran = 0;
    for line in &lines {
        let command = without_comment(line);
        if command == ITSELF {
            eprintln!("--- not run (it runs this test): {command}");
            continue;
        }
        let run_as = match SHORTENED.iter().find(|(w, _, _)| *w == command) {
            Some((_, short, why)) => {
                eprintln!("--- {command}\n    shortened ({why}): {short}");
                *short
            }
            None => {
                eprintln!("--- {command}");
                command
            }
        };
        let want = expected_status(line);
        let t = Instant::now();
        let out = Command::new("bash")
            .args(["-c", run_as])
            .current_dir(&root)
            .output()
            .unwrap();
        ran += 1;
        let code = out.status.code().unwrap_or(-1);
        eprintln!("    exit {code} in {:.1} s", t.elapsed().as_secs_f64());
        if code != want {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            failures.push(format!(
                "`{run_as}` exited {code}, not {want}:\n  {}",
                tail.join("\n  ")
            ));
        }
    }

    // What the commands left behind.
    let after = status(&root);
    let mut left = Vec::new();
    for line in after.difference(&before) {
        let (state, path) = line.split_at(3);
        let in_corpus = path
            .strip_prefix("corpus/")
            .and_then(|p| p.split_once('/'))
            .is_some_and(|(dir, name)| dir != "regressions" && !name.contains('/'));
        if state == "?? " && in_corpus {
            std::fs::remove_file(root.join(path)).unwrap();
        } else {
            left.push(line.clone());
        }
    }
    assert!(
        left.is_empty(),
        "README commands changed or left files behind:\n{}",
        left.join("\n")
    );
    assert!(
        failures.is_empty(),
        "{} of {ran} README commands failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("{ran} README commands ran as written");
}
