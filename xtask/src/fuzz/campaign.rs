//! Fuzzing one target: `cargo fuzz run` for a fixed time, its output parsed into the live status
//! line and kept whole in a log, and what it found.

use std::collections::{BTreeSet, VecDeque};
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::command;
use super::libfuzzer::{self, Event, Status};
use super::progress::{self, Progress};
use super::toolchain::Mode;

/// Seconds one input may run before libFuzzer calls it a hang (a failing input is shrunk inside
/// the target, within `tagalloc_diff::targets::SHRINK_BUDGET`, 15 s).
pub const UNIT_TIMEOUT: u64 = 60;

/// One target's run, as planned.
pub struct Plan<'a> {
    /// The mode (toolchain and sanitizer).
    pub mode: &'a Mode,
    /// The target's name.
    pub target: &'a str,
    /// Its corpus directory.
    pub corpus: &'a Path,
    /// Seconds of fuzzing.
    pub time: u64,
    /// Fuzzing processes.
    pub jobs: usize,
    /// The repository root (commands run there).
    pub root: &'a Path,
    /// Where the whole output goes.
    pub log: &'a Path,
    /// More corpus directories libFuzzer reads but never writes (the seeds generated from traces).
    pub seeds: &'a [PathBuf],
    /// Flags given after `--`, passed to libFuzzer after the runner's own (so they win).
    pub libfuzzer: &'a [String],
}

/// What a run gave.
pub struct Run {
    /// The last status line.
    pub status: Status,
    /// Executions (exact when libFuzzer printed its final statistics).
    pub execs: u64,
    /// Seconds spent fuzzing (from libFuzzer's start to its exit).
    pub seconds: f64,
    /// Whether `cargo fuzz run` exited 0.
    pub success: bool,
    /// The input it reported as a crash (or hang, or leak), if any.
    pub artifact: Option<PathBuf>,
    /// What the target said when it failed: the panic message or the sanitizer's summary.
    pub report: Vec<String>,
    /// The last lines of output, to show when something went wrong.
    pub tail: Vec<String>,
}

impl Run {
    /// Executions per second.
    pub fn rate(&self) -> f64 {
        if self.seconds > 0.0 {
            self.execs as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// The command of `plan`.
pub fn command(plan: &Plan) -> Command {
    let mut cmd = plan.mode.cargo_fuzz("run");
    if plan.jobs > 1 {
        cmd.args(["-j", &plan.jobs.to_string()]);
    }
    // The first corpus directory is where libFuzzer writes new inputs; the others it only reads.
    cmd.arg(plan.target)
        .arg(command::shown(plan.corpus, plan.root))
        .args(plan.seeds.iter().map(|s| command::shown(s, plan.root)))
        .arg("--")
        .arg(format!("-max_total_time={}", plan.time))
        .arg(format!("-timeout={UNIT_TIMEOUT}"))
        .arg("-print_final_stats=1");
    let dict = plan.root.join("fuzz").join(format!("{}.dict", plan.target));
    if dict.is_file() {
        cmd.arg(format!(
            "-dict={}",
            command::shown(&dict, plan.root).display()
        ));
    }
    cmd.args(plan.libfuzzer);
    cmd.current_dir(plan.root);
    cmd
}

/// Runs `plan`, showing progress on one line.
pub fn fuzz(plan: &Plan, artifacts: &Path) -> Result<Run, String> {
    let before = findings(artifacts);
    let mut cmd = command(plan);
    eprintln!("    $ {}", command::line(&cmd));
    let log = fs::File::create(plan.log).map_err(|e| format!("{}: {e}", plan.log.display()))?;
    let mut log_lines = log.try_clone().map_err(|e| e.to_string())?;
    let mut child = cmd
        .stdout(Stdio::from(log))
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("could not run `{}`: {e}", command::line(&cmd)))?;
    let stderr = child.stderr.take().expect("stderr is piped");

    // Lines arrive on a channel so the status line keeps ticking while libFuzzer is quiet.
    let (send, lines) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut r = BufReader::new(stderr);
        let mut buf = Vec::new();
        while r.read_until(b'\n', &mut buf).is_ok_and(|n| n > 0) {
            let _ = log_lines.write_all(&buf);
            let line = String::from_utf8_lossy(&buf).trim_end().to_string();
            buf.clear();
            if send.send(line).is_err() {
                break;
            }
        }
    });

    let mut run = Run {
        status: Status::default(),
        execs: 0,
        seconds: 0.0,
        success: false,
        artifact: None,
        report: Vec::new(),
        tail: Vec::new(),
    };
    let mut final_execs = None;
    let mut started: Option<Instant> = None;
    let mut report = Report::default();
    let mut tail = VecDeque::new();
    let mut progress = Progress::new();
    let secs = |started: Option<Instant>| started.map_or(0.0, |t| t.elapsed().as_secs_f64());
    loop {
        match lines.recv_timeout(Duration::from_millis(250)) {
            Ok(line) => {
                match libfuzzer::parse(&line) {
                    Event::Started => started = started.or(Some(Instant::now())),
                    Event::Status(s) => run.status = s,
                    Event::Artifact(p) => run.artifact = Some(plan.root.join(p)),
                    Event::FinalExecs(n) => final_execs = Some(n),
                    Event::Other => {}
                }
                report.see(&line);
                tail.push_back(line);
                if tail.len() > 30 {
                    tail.pop_front();
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if started.is_some() {
            progress.show(&progress::line(
                plan.target,
                secs(started),
                plan.time,
                &run.status,
            ));
        }
    }
    let _ = reader.join();
    let status = child
        .wait()
        .map_err(|e| format!("waiting for `cargo fuzz run`: {e}"))?;
    run.seconds = secs(started);
    run.success = status.success();
    run.execs = final_execs
        .unwrap_or(run.status.execs)
        .max(run.status.execs);
    run.status.execs = run.execs;
    run.report = report.lines;
    run.tail = tail.into();
    if run.artifact.is_none() && !run.success {
        // libFuzzer did not say where it wrote the input: look for a new file.
        run.artifact = findings(artifacts)
            .difference(&before)
            .next()
            .map(|n| artifacts.join(n));
    }
    let verdict = match (&run.artifact, run.success) {
        (Some(_), _) => "CRASHED".to_string(),
        (None, true) => "done".to_string(),
        (None, false) => format!("FAILED ({status})"),
    };
    progress.finish(&format!(
        "{}  {verdict}",
        progress::line(plan.target, run.seconds, plan.time, &run.status)
    ));
    Ok(run)
}

/// Names of the findings in `dir` (crash-, oom-, timeout-, leak- files).
fn findings(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| libfuzzer::is_finding(n))
        .collect()
}

/// Collects what a failing target said: its panic message, or the sanitizer's error and summary.
#[derive(Default)]
struct Report {
    lines: Vec<String>,
    in_panic: bool,
}

impl Report {
    const MAX: usize = 80;

    fn see(&mut self, line: &str) {
        if self.lines.len() >= Self::MAX {
            return;
        }
        if line.contains(" panicked at ") {
            self.in_panic = true;
            return;
        }
        if self.in_panic {
            let end = line.starts_with("stack backtrace:")
                || line.starts_with("note: ")
                || line.starts_with("==");
            if !end {
                self.lines.push(line.to_string());
                return;
            }
            self.in_panic = false;
            while self.lines.last().is_some_and(|l| l.trim().is_empty()) {
                self.lines.pop();
            }
        }
        let sanitizer = (line.starts_with("==") && line.contains("ERROR:"))
            || line.starts_with("SUMMARY:")
            || line.starts_with("ALARM:");
        if sanitizer && !self.lines.iter().any(|l| l == line) {
            self.lines.push(line.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_is_the_panic_message_and_the_summary() {
        let mut r = Report::default();
        for l in [
            "Running: x",
            "thread '<unnamed>' (10359) panicked at diff/src/targets.rs:183:9:",
            "tagalloc-diff diff target:",
            "oracle fired on libc at op 0 `aligned_alloc 0 2 1`",
            "",
            "stack backtrace:",
            "   0: std::panicking",
            "==10359== ERROR: libFuzzer: deadly signal",
            "    #0 0x55c88ecbf361 in __sanitizer_print_stack_trace",
            "SUMMARY: libFuzzer: deadly signal",
        ] {
            r.see(l);
        }
        assert_eq!(
            r.lines,
            [
                "tagalloc-diff diff target:",
                "oracle fired on libc at op 0 `aligned_alloc 0 2 1`",
                "==10359== ERROR: libFuzzer: deadly signal",
                "SUMMARY: libFuzzer: deadly signal",
            ]
        );
    }

    #[test]
    fn the_command() {
        let mode = Mode {
            sanitizer: super::super::toolchain::Sanitizer::None,
            rustc: String::new(),
            why: String::new(),
        };
        let root = Path::new("/repo");
        let plan = Plan {
            mode: &mode,
            target: "ops",
            corpus: Path::new("/repo/corpus/ops"),
            time: 30,
            jobs: 2,
            root,
            log: Path::new("/repo/target/fuzz-logs/ops.log"),
            seeds: &[PathBuf::from("/repo/target/fuzz-seeds/ops")],
            libfuzzer: &["-max_len=64".into()],
        };
        assert_eq!(
            command::line(&command(&plan)),
            "cargo fuzz run --sanitizer none -j 2 ops corpus/ops target/fuzz-seeds/ops -- \
             -max_total_time=30 -timeout=60 -print_final_stats=1 -max_len=64"
        );
    }
}
