//! The crash path: a failing input becomes a minimal, readable regression trace.
//!
//! 1. `cargo fuzz tmin` minimises the bytes;
//! 2. `tagalloc-diff decode` prints them as a text trace (`trace_parse` inputs are text already);
//! 3. `tagalloc-diff shrink` shrinks the trace outside the fuzz build, where the target's oracle
//!    applies (it also confirms the failure reproduces without the fuzzer);
//! 4. the trace goes to `corpus/regressions/<target>-<hash>.trace` under a header saying what
//!    found it, when and how, with the commands that reproduce it.
//!
//! A step that fails is noted in the header and the output; the crash is reported regardless.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::campaign::{self, Run};
use super::command;
use super::report;
use super::targets::{self, Check, Input};
use super::toolchain::Mode;

/// How long `cargo fuzz tmin` may spend.
const TMIN_SECONDS: u64 = 120;

/// Where things go.
pub struct Paths<'a> {
    /// The repository root.
    pub root: &'a Path,
    /// `corpus/regressions`.
    pub regressions: &'a Path,
    /// Logs of the steps.
    pub logs: &'a Path,
}

/// A crash, turned into a regression.
pub struct Found {
    /// The target that crashed.
    pub target: String,
    /// The input libFuzzer wrote.
    pub artifact: PathBuf,
    /// The minimised input (the artifact itself when tmin found nothing smaller).
    pub minimised: PathBuf,
    /// Size of the input before and after minimising.
    pub bytes: (u64, u64),
    /// The readable regression trace written.
    pub trace: PathBuf,
    /// Its number of ops.
    pub ops: usize,
    /// Commands that reproduce the crash, from the repository root.
    pub reproduce: Vec<String>,
    /// What did not go as planned.
    pub notes: Vec<String>,
    /// The first line of what the target reported.
    pub summary: String,
}

/// Turns the crash of `target` in `run` into a regression trace.
pub fn handle(mode: &Mode, target: &str, run: &Run, paths: &Paths) -> Result<Found, String> {
    let root = paths.root;
    let artifact = run
        .artifact
        .clone()
        .ok_or("the run left no crashing input")?;
    let original = fs::read(&artifact).map_err(|e| format!("{}: {e}", artifact.display()))?;
    let mut notes = Vec::new();

    // 1. Minimise.
    let (minimised, input) = minimise(mode, target, &artifact, &original, paths, &mut notes);
    let hash = short_hash(&input);
    eprintln!(
        "    minimised: {} -> {} bytes ({})",
        original.len(),
        input.len(),
        command::shown(&minimised, root).display()
    );

    // 2 and 3. Readable, then shrunk where an oracle applies outside the fuzz build.
    let trace_path = paths.regressions.join(format!("{target}-{hash}.trace"));
    let mut how = vec![format!(
        "minimised by `cargo fuzz tmin` from {} to {} bytes ({})",
        original.len(),
        input.len(),
        command::shown(&minimised, root).display()
    )];
    let mut replay = None;
    let body = match targets::input(target) {
        Input::Text => {
            how.push("the input is a text trace already".into());
            String::from_utf8_lossy(&input).into_owned()
        }
        Input::Bytes { decode_as, check } => {
            let mut args = vec!["decode".to_string()];
            if let Some(t) = decode_as {
                args.extend(["--target".into(), t.into()]);
            }
            let decoded_path = minimised.with_extension("trace");
            args.push(command::shown(&minimised, root).display().to_string());
            let decoded = match tagalloc_diff(&args, root) {
                Ok((0, out, _)) => out,
                Ok((code, _, err)) | Err((code, err)) => {
                    notes.push(format!("tagalloc-diff decode failed (exit {code}): {err}"));
                    String::new()
                }
            };
            how.push(format!(
                "decoded by `tagalloc-diff {}`",
                args[..args.len() - 1].join(" ")
            ));
            let _ = fs::write(&decoded_path, &decoded);
            match check {
                Check::None => decoded,
                Check::Run | Check::RunLocked | Check::Diff => {
                    let verb = match check {
                        Check::Diff => "diff",
                        Check::RunLocked => "run --backend locked",
                        _ => "run",
                    };
                    let mut args = vec!["shrink".to_string()];
                    match check {
                        Check::Diff => args.extend(["--against".into(), "libc".into()]),
                        Check::RunLocked => args.extend(["--backend".into(), "locked".into()]),
                        _ => {}
                    }
                    let shown_args = args.join(" ");
                    args.push(command::shown(&decoded_path, root).display().to_string());
                    match tagalloc_diff(&args, root) {
                        Ok((1, out, _)) => {
                            how.push(format!("shrunk by `tagalloc-diff {shown_args}`"));
                            replay = Some(verb);
                            out
                        }
                        Ok((0, _, _)) => {
                            notes.push(format!(
                                "the decoded trace does not fail under `tagalloc-diff {verb}` \
                                 outside the fuzz build: the failure may need the sanitizer or \
                                 the fuzzer's process state, so it is kept as decoded"
                            ));
                            decoded
                        }
                        Ok((code, _, err)) | Err((code, err)) => {
                            notes.push(format!("tagalloc-diff shrink failed (exit {code}): {err}"));
                            decoded
                        }
                    }
                }
            }
        }
    };

    // 4. The regression file and the commands.
    let mut reproduce = vec![format!(
        "{} {target} {}",
        mode.cargo_fuzz_shown("run"),
        command::shown(&minimised, root).display()
    )];
    if let Some(verb) = replay {
        reproduce.push(format!(
            "cargo run -p tagalloc-diff -- {verb} {}",
            command::shown(&trace_path, root).display()
        ));
    }
    let summary = run
        .report
        .iter()
        .find(|l| !l.trim().is_empty() && !l.ends_with("target:"))
        .cloned()
        .unwrap_or_else(|| "the target crashed".into());
    let header = header(mode, target, run, &how, &notes, &reproduce);
    let mut text = header + &body;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    fs::create_dir_all(paths.regressions)
        .and_then(|()| fs::write(&trace_path, &text))
        .map_err(|e| format!("{}: {e}", trace_path.display()))?;
    let ops = body
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .count();
    Ok(Found {
        target: target.to_string(),
        artifact,
        minimised,
        bytes: (original.len() as u64, input.len() as u64),
        trace: trace_path,
        ops,
        reproduce,
        notes,
        summary,
    })
}

/// Runs `cargo fuzz tmin`; returns the minimised file and its bytes (the original when tmin found
/// nothing smaller or failed).
fn minimise(
    mode: &Mode,
    target: &str,
    artifact: &Path,
    original: &[u8],
    paths: &Paths,
    notes: &mut Vec<String>,
) -> (PathBuf, Vec<u8>) {
    let root = paths.root;
    let dir = artifact.parent().unwrap_or(root);
    let name = artifact
        .file_name()
        .map_or("input".into(), |n| n.to_string_lossy());
    let out = dir.join(format!("tmin-{name}"));
    let _ = fs::remove_file(&out);
    let mut cmd = mode.cargo_fuzz("tmin");
    cmd.arg(target)
        .arg(command::shown(artifact, root))
        .arg("--")
        .arg(format!(
            "-exact_artifact_path={}",
            command::shown(&out, root).display()
        ))
        .arg(format!("-max_total_time={TMIN_SECONDS}"))
        .arg(format!("-timeout={}", campaign::UNIT_TIMEOUT))
        // tmin crashes the target again and again on purpose: no report for each crash.
        .env(tagalloc_diff::deadly::EXPLAIN, "0")
        .current_dir(root);
    eprintln!(
        "==> minimising the input ({} bytes)\n    $ {}",
        original.len(),
        command::line(&cmd)
    );
    let log = paths.logs.join(format!("{target}-tmin.log"));
    let ok = fs::File::create(&log)
        .and_then(|f| Ok((f.try_clone()?, f)))
        .and_then(|(a, b)| cmd.stdout(a).stderr(b).status());
    if !ok.as_ref().is_ok_and(|s| s.success()) {
        notes.push(format!(
            "`cargo fuzz tmin` failed ({}); see {}",
            ok.map_or_else(|e| e.to_string(), |s| s.to_string()),
            command::shown(&log, root).display()
        ));
    }
    match fs::read(&out) {
        Ok(smaller) if smaller.len() < original.len() => {
            let minimised = dir.join(format!("minimized-{}", short_hash(&smaller)));
            match fs::rename(&out, &minimised) {
                Ok(()) => (minimised, smaller),
                Err(_) => (out, smaller),
            }
        }
        _ => {
            let _ = fs::remove_file(&out);
            notes.push("`cargo fuzz tmin` found no smaller input that still crashes".into());
            (artifact.to_path_buf(), original.to_vec())
        }
    }
}

/// `cargo run --quiet --release -p tagalloc-diff -- ARGS` from the root: (exit code, stdout,
/// last line of stderr), or (2, why) when it did not run.
fn tagalloc_diff(args: &[String], root: &Path) -> Result<(i32, String, String), (i32, String)> {
    let mut cmd = Command::new("cargo");
    cmd.args(["run", "--quiet", "--release", "-p", "tagalloc-diff", "--"])
        .args(args)
        .current_dir(root);
    eprintln!("    $ {}", command::line(&cmd));
    let out = cmd.output().map_err(|e| (2, e.to_string()))?;
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    Ok((
        out.status.code().unwrap_or(2),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        last.trim().to_string(),
    ))
}

fn header(
    mode: &Mode,
    target: &str,
    run: &Run,
    how: &[String],
    notes: &[String],
    reproduce: &[String],
) -> String {
    let mut h = vec![
        format!(
            "Regression found by `cargo xtask fuzz` on {} (UTC): target `{target}`,",
            report::today()
        ),
        format!(
            "fuzzed with {}, crashed after {} executions in {:.0} s.",
            mode.describe(),
            run.execs,
            run.seconds
        ),
    ];
    h.push("How the input became this trace:".into());
    for (i, step) in how.iter().enumerate() {
        let end = if i + 1 == how.len() { "." } else { "," };
        h.push(format!("  {step}{end}"));
    }
    if !run.report.is_empty() {
        h.push("What the target reported:".into());
        h.extend(run.report.iter().take(30).map(|l| format!("  {l}")));
    }
    h.extend(notes.iter().map(|n| format!("Note: {n}")));
    h.push("Reproduce (from the repository root):".into());
    h.extend(reproduce.iter().map(|r| format!("  {r}")));
    let mut text: String = h
        .iter()
        .map(|l| format!("# {l}").trim_end().to_string() + "\n")
        .collect();
    text.push('\n');
    text
}

/// A short content hash (FNV-1a, 8 hex digits) naming an input and its trace.
pub fn short_hash(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:08x}", (h ^ (h >> 32)) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzz::libfuzzer::Status;
    use crate::fuzz::toolchain::Sanitizer;

    #[test]
    fn hashes_are_short_and_stable() {
        assert_eq!(short_hash(b"").len(), 8);
        assert_eq!(short_hash(b"malloc 0 1"), short_hash(b"malloc 0 1"));
        assert_ne!(short_hash(b"malloc 0 1"), short_hash(b"malloc 0 2"));
    }

    #[test]
    fn the_header_is_all_comments() {
        let mode = Mode {
            sanitizer: Sanitizer::Address,
            rustc: "rustc 1.0.0-nightly".into(),
            why: String::new(),
        };
        let run = Run {
            status: Status::default(),
            execs: 109,
            seconds: 3.0,
            success: false,
            artifact: None,
            report: vec!["oracle fired".into(), String::new()],
            tail: Vec::new(),
        };
        let h = header(
            &mode,
            "diff",
            &run,
            &["minimised".into(), "decoded".into()],
            &["a note".into()],
            &["cargo +nightly fuzz run diff x".into()],
        );
        assert!(h.ends_with("\n\n"));
        for l in h.lines().filter(|l| !l.is_empty()) {
            assert!(l.starts_with('#'), "{l}");
        }
        assert!(h.contains("target `diff`") && h.contains("109 executions"));
        assert!(h.contains("#   cargo +nightly fuzz run diff x\n"));
        assert!(h.contains("#   minimised,\n#   decoded.\n"));
    }
}
