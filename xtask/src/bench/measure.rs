//! One measured run: a workload started with or without `LD_PRELOAD`, its wall time, its peak
//! resident set size, and how it ended; and the median that turns several runs into one figure.
//!
//! The workload is not forked from this process but from the `launch` driver
//! (`xtask/bench/launch.c`), which forks, sets `LD_PRELOAD` in the child, execs the workload, reaps
//! it with `wait4` and writes its wait status, `ru_maxrss` and wall time to a result file. The
//! reason: the kernel carries the peak RSS of a process image across `execve` into `ru_maxrss`,
//! so a child forked (or vforked, or posix_spawned) from this process would report at least this
//! process's own peak, tens of MiB, whatever the workload used; forked from the launcher, whose
//! RSS is about 1 MiB, it reports its own. `ru_maxrss` is the largest resident set of the workload
//! or of any descendant it waited for (for `gcc`, the largest of `gcc`, `cc1` and `as`; a
//! maximum, not a sum).
//!
//! The launcher runs in a process group of its own, which the workload shares; a watchdog thread
//! kills the whole group when the run outlives its timeout. The launcher is waited for with
//! `waitid(WNOWAIT)` and reaped only after the watchdog is stopped, so the watchdog can never
//! signal a recycled process id.

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Environment variables that would change what a run measures; removed from every child.
const SCRUBBED_ENV: &[&str] = &["LD_PRELOAD", "TAGALLOC_STATS", "TAGALLOC_TRACE"];

/// What to run: a program, its arguments, extra environment and standard input.
#[derive(Clone, Debug)]
pub struct Spec {
    /// The program (a path, or a name looked up in `PATH`).
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// The file read as standard input; `/dev/null` when `None`.
    pub stdin: Option<PathBuf>,
}

impl Spec {
    /// The command as a shell-like line, for the report.
    pub fn display(&self) -> String {
        let mut words: Vec<String> = self.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        words.push(self.program.display().to_string());
        words.extend(self.args.iter().map(|a| a.to_string_lossy().into_owned()));
        let mut line = words.join(" ");
        if let Some(input) = &self.stdin {
            line.push_str(&format!(" < {}", input.display()));
        }
        line
    }
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// Exited with this status.
    Exited(i32),
    /// Killed by this signal.
    Signaled(i32),
    /// Killed by the watchdog after the timeout.
    TimedOut,
}

impl Ending {
    /// Whether the run succeeded (exit status 0).
    pub fn is_success(self) -> bool {
        self == Ending::Exited(0)
    }

    /// The ending in words: "exit status 1", "killed by signal 11 (SIGSEGV)", "timed out".
    pub fn describe(self, timeout: Duration) -> String {
        match self {
            Ending::Exited(code) => format!("exit status {code}"),
            Ending::Signaled(sig) => format!("killed by signal {sig}{}", signal_name(sig)),
            Ending::TimedOut => format!("timed out after {} s", timeout.as_secs()),
        }
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGABRT => " (SIGABRT)",
        libc::SIGSEGV => " (SIGSEGV)",
        libc::SIGBUS => " (SIGBUS)",
        libc::SIGKILL => " (SIGKILL)",
        libc::SIGILL => " (SIGILL)",
        libc::SIGFPE => " (SIGFPE)",
        _ => "",
    }
}

/// The measurements of one run.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// From just before the spawn to the child's exit.
    pub wall: Duration,
    /// `ru_maxrss` of the reaped child, in KiB.
    pub max_rss_kib: u64,
    /// How the child ended.
    pub ending: Ending,
}

/// Runs `spec` once through `launcher` (the compiled `launch` driver), with `preload` as
/// `LD_PRELOAD` (none: no preload, the glibc run), standard output and error written to the two
/// files, killed after `timeout`. The launcher's result goes to `stdout` with the extension
/// `result`.
pub fn run(
    launcher: &Path,
    spec: &Spec,
    preload: Option<&Path>,
    timeout: Duration,
    stdout: &Path,
    stderr: &Path,
) -> io::Result<Sample> {
    let result = stdout.with_extension("result");
    let _ = std::fs::remove_file(&result);
    let mut cmd = Command::new(launcher);
    cmd.arg(&result)
        .arg(preload.map_or_else(|| "-".into(), |p| p.as_os_str().to_owned()))
        .arg(&spec.program)
        .args(&spec.args);
    for var in SCRUBBED_ENV {
        cmd.env_remove(var);
    }
    cmd.envs(spec.env.iter().map(|(k, v)| (k, v)));
    cmd.stdin(match &spec.stdin {
        Some(path) => Stdio::from(File::open(path)?),
        None => Stdio::null(),
    });
    cmd.stdout(File::create(stdout)?);
    cmd.stderr(File::create(stderr)?);
    cmd.process_group(0);

    let start = Instant::now();
    let child = cmd.spawn()?;
    let pid = libc::pid_t::try_from(child.id()).expect("a pid fits pid_t");
    let (stop, stopped) = mpsc::channel::<()>();
    let watchdog = thread::spawn(move || match stopped.recv_timeout(timeout) {
        Err(mpsc::RecvTimeoutError::Timeout) => {
            // SAFETY: kill has no memory effects; `-pid` names the launcher's process group,
            // which still exists because the launcher has not been reaped (it is reaped only
            // after this thread is joined).
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            true
        }
        _ => false,
    });
    let waited = wait_exit(pid);
    let elapsed = start.elapsed();
    drop(stop);
    let timed_out = watchdog.join().expect("the watchdog does not panic");
    waited?;
    let launcher_status = reap(pid)?;
    // The launcher is reaped by `reap`; `child` holds only the pid and closed handles.
    drop(child);
    if timed_out {
        return Ok(Sample {
            wall: elapsed,
            max_rss_kib: 0,
            ending: Ending::TimedOut,
        });
    }
    let text = std::fs::read_to_string(&result).map_err(|e| {
        io::Error::other(format!(
            "the launcher (wait status {launcher_status}) wrote no result to {}: {e}",
            result.display()
        ))
    })?;
    let field = |name: &str| -> io::Result<i64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .ok_or_else(|| io::Error::other(format!("no `{name}` in {}", result.display())))
    };
    let status = i32::try_from(field("status ")?).map_err(io::Error::other)?;
    let ending = if libc::WIFEXITED(status) {
        Ending::Exited(libc::WEXITSTATUS(status))
    } else {
        Ending::Signaled(libc::WTERMSIG(status))
    };
    Ok(Sample {
        wall: Duration::from_nanos(u64::try_from(field("wall_ns ")?).unwrap_or(0)),
        max_rss_kib: u64::try_from(field("maxrss_kib ")?).unwrap_or(0),
        ending,
    })
}

/// Waits until the child has exited, without reaping it.
fn wait_exit(pid: libc::pid_t) -> io::Result<()> {
    loop {
        // SAFETY: siginfo_t is plain data, valid when zeroed.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let id = libc::id_t::try_from(pid).expect("a child's pid is positive");
        // SAFETY: `info` is a valid, writable siginfo_t; WNOWAIT leaves the child a zombie.
        let r = unsafe { libc::waitid(libc::P_PID, id, &mut info, libc::WEXITED | libc::WNOWAIT) };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Reaps the exited child: its wait status.
fn reap(pid: libc::pid_t) -> io::Result<i32> {
    loop {
        let mut status = 0;
        // SAFETY: `status` is valid and writable for the call.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            return Ok(status);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// The median of `values` (the mean of the two middle values for an even count); `None` when
/// empty.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    Some(if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[4.0]), Some(4.0));
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[5.0, 5.0, 1.0, 9.0, 9.0]), Some(5.0));
    }

    /// Runs through the real launcher, compiled here with gcc as the runner does.
    #[test]
    fn a_run_reports_its_ending_rss_and_timeout() {
        let launcher = super::super::drivers::testing::compiled("launch", "measure");
        let dir = launcher.parent().unwrap().to_path_buf();
        let (out, err) = (dir.join("out"), dir.join("err"));
        let sh = |script: &str| Spec {
            program: "sh".into(),
            args: vec!["-c".into(), script.into()],
            env: vec![("XTASK_TEST".into(), "hi".into())],
            stdin: None,
        };
        let long = Duration::from_secs(60);

        let s = run(
            &launcher,
            &sh("echo $XTASK_TEST; exit 3"),
            None,
            long,
            &out,
            &err,
        )
        .unwrap();
        assert_eq!(s.ending, Ending::Exited(3));
        assert!(s.max_rss_kib > 0);
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "hi\n");

        let s = run(&launcher, &sh("kill -SEGV $$"), None, long, &out, &err).unwrap();
        assert_eq!(s.ending, Ending::Signaled(libc::SIGSEGV));

        let short = Duration::from_millis(200);
        let s = run(&launcher, &sh("sleep 30"), None, short, &out, &err).unwrap();
        assert_eq!(s.ending, Ending::TimedOut);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
