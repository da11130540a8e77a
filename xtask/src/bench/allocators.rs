//! The allocators compared, each loaded the way users load it: glibc is the run without preload;
//! tagalloc is `target/release/libtagalloc.so`, built here; jemalloc, mimalloc and tcmalloc are
//! Debian's packages, installed with `apt-get` when missing and this process runs as root.
//!
//! An allocator counts as loaded only when the probe driver, run under its `LD_PRELOAD`, says that
//! its `malloc` comes from that library (the dynamic loader merely warns when a preload fails, and
//! the program goes on with glibc's `malloc`). Whatever cannot be built, installed or loaded is
//! reported with the reason, and the benchmark goes on without it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::Paths;

/// Every allocator, in the order of the report's columns. `glibc` comes first: it is the baseline.
pub const NAMES: &[&str] = &["glibc", "tagalloc", "jemalloc", "mimalloc", "tcmalloc"];

/// The environment variable naming a second `libtagalloc.so` (another commit's build) to measure
/// beside this one, as the column [`BASELINE_NAME`].
pub const BASELINE_ENV: &str = "TAGALLOC_BENCH_BASELINE";
/// The column of that second build.
pub const BASELINE_NAME: &str = "tagalloc-base";

/// An allocator from Debian: its package and the file name its shared object starts with.
struct Debian {
    name: &'static str,
    package: &'static str,
    so_prefix: &'static str,
}

const DEBIAN: &[Debian] = &[
    Debian {
        name: "jemalloc",
        package: "libjemalloc2",
        so_prefix: "libjemalloc.so",
    },
    Debian {
        name: "mimalloc",
        package: "libmimalloc2.0",
        so_prefix: "libmimalloc.so",
    },
    Debian {
        name: "tcmalloc",
        package: "libtcmalloc-minimal4",
        so_prefix: "libtcmalloc_minimal.so",
    },
];

/// An allocator ready to measure.
#[derive(Clone, Debug)]
pub struct Allocator {
    /// Its name in [`NAMES`].
    pub name: &'static str,
    /// The library for `LD_PRELOAD`; `None` for glibc.
    pub preload: Option<PathBuf>,
    /// Its version, as its package or the repository says.
    pub version: String,
}

/// An allocator that could not be used, and why.
#[derive(Clone, Debug)]
pub struct Unavailable {
    /// Its name in [`NAMES`].
    pub name: &'static str,
    /// Why, in words.
    pub reason: String,
}

/// A library found (or built), not yet probed.
struct Library {
    so: PathBuf,
    version: String,
}

/// Makes every allocator of `wanted` (names from [`NAMES`]) ready: builds tagalloc, installs the
/// missing Debian packages, and probes each library. Progress goes to stderr.
pub fn prepare(wanted: &[&'static str], paths: &Paths) -> (Vec<Allocator>, Vec<Unavailable>) {
    let mut found: Vec<(&'static str, Result<Library, String>)> = Vec::new();
    let mut ready = Vec::new();
    let mut missing = Vec::new();

    if wanted.contains(&"glibc") {
        ready.push(Allocator {
            name: "glibc",
            preload: None,
            version: command_line("getconf", &["GNU_LIBC_VERSION"]).unwrap_or_default(),
        });
    }
    if wanted.contains(&"tagalloc") {
        found.push(("tagalloc", build_tagalloc(paths)));
        // Another build of tagalloc to compare with, measured in the same interleaved rounds.
        if let Some(so) = std::env::var_os(BASELINE_ENV).filter(|v| !v.is_empty()) {
            found.push((
                BASELINE_NAME,
                Ok(Library {
                    so: PathBuf::from(so),
                    version: format!("the library in {BASELINE_ENV}"),
                }),
            ));
        }
    }

    let debian: Vec<&Debian> = DEBIAN.iter().filter(|d| wanted.contains(&d.name)).collect();
    let absent: Vec<&Debian> = debian
        .iter()
        .copied()
        .filter(|d| find_library(d.so_prefix).is_none())
        .collect();
    let mut install_error = None;
    if !absent.is_empty() {
        install_error = install(&absent, paths).err();
    }
    for d in debian {
        let result = match find_library(d.so_prefix) {
            Some(so) => Ok(Library {
                version: package_version(d.package),
                so,
            }),
            None => Err(match &install_error {
                Some(why) => format!("package {} is not installed: {why}", d.package),
                None => format!(
                    "package {} installed, but no {}* under {}",
                    d.package,
                    d.so_prefix,
                    library_dir().display()
                ),
            }),
        };
        found.push((d.name, result));
    }

    for (name, result) in found {
        match result.and_then(|lib| probe(&lib.so, paths).map(|()| lib)) {
            Ok(lib) => ready.push(Allocator {
                name,
                preload: Some(lib.so),
                version: lib.version,
            }),
            Err(reason) => missing.push(Unavailable { name, reason }),
        }
    }
    ready.sort_by_key(|a| {
        NAMES
            .iter()
            .position(|n| *n == a.name)
            .unwrap_or(NAMES.len())
    });
    (ready, missing)
}

/// `cargo build --release -p tagalloc-preload`; the library and the commit it was built from.
fn build_tagalloc(paths: &Paths) -> Result<Library, String> {
    eprintln!("==> building tagalloc (cargo build --release -p tagalloc-preload)");
    let log = paths.logs.join("tagalloc-build.log");
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["build", "--release", "-p", "tagalloc-preload"])
        .current_dir(&paths.root)
        .stdout(Stdio::null())
        .stderr(log_file(&log)?)
        .status()
        .map_err(|e| format!("could not run cargo: {e}"))?;
    let so = paths.target.join("release").join("libtagalloc.so");
    if !status.success() {
        return Err(format!(
            "cargo build failed ({status}); see {}",
            log.display()
        ));
    }
    if !so.is_file() {
        return Err(format!("cargo build did not produce {}", so.display()));
    }
    let root = paths.root.to_string_lossy();
    let commit =
        command_line("git", &["-C", &root, "log", "-1", "--format=%h"]).unwrap_or_default();
    let dirty = command_line("git", &["-C", &root, "status", "--porcelain", "allocator"])
        .is_some_and(|s| !s.is_empty());
    Ok(Library {
        so,
        version: format!("{commit}{}", if dirty { "+changes" } else { "" }),
    })
}

/// Installs the packages with apt-get (after one `apt-get update`), as root only.
fn install(packages: &[&Debian], paths: &Paths) -> Result<(), String> {
    let names: Vec<&str> = packages.iter().map(|d| d.package).collect();
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err(format!(
            "not running as root, so not installing it (apt-get install {})",
            names.join(" ")
        ));
    }
    eprintln!("==> installing {} with apt-get", names.join(" "));
    let log = paths.logs.join("apt-get.log");
    let apt = |args: &[&str]| -> Result<(), String> {
        let status = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .stdout(log_file(&log)?)
            .stderr(log_file(&log)?)
            .status()
            .map_err(|e| format!("could not run apt-get: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!(
                "apt-get {} failed ({status}); see {}",
                args[0],
                log.display()
            ))
        }
    };
    apt(&["update"])?;
    let mut args = vec!["install", "-y", "--no-install-recommends"];
    args.extend(&names);
    apt(&args)
}

/// Runs the probe driver under the library: it must say that its `malloc` comes from it.
fn probe(so: &Path, paths: &Paths) -> Result<(), String> {
    let output = Command::new(paths.bin.join("probe"))
        .env("LD_PRELOAD", so)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("could not run the probe: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let first_err = stderr.lines().next().unwrap_or("").trim();
    if !output.status.success() {
        return Err(format!(
            "the probe fails under it ({}): {first_err}",
            output.status
        ));
    }
    let served_by = stdout
        .lines()
        .find_map(|l| l.strip_prefix("malloc from "))
        .map(Path::new);
    let same = |p: &Path| p.canonicalize().ok() == so.canonicalize().ok();
    match served_by {
        Some(p) if same(p) => Ok(()),
        Some(p) => Err(format!(
            "not loaded: malloc still comes from {}{}",
            p.display(),
            if first_err.is_empty() {
                String::new()
            } else {
                format!(" ({first_err})")
            }
        )),
        None => Err(format!("the probe printed no answer: {first_err}")),
    }
}

/// The multiarch library directory, `/usr/lib/x86_64-linux-gnu` on this machine.
fn library_dir() -> PathBuf {
    PathBuf::from(format!("/usr/lib/{}-linux-gnu", std::env::consts::ARCH))
}

/// The shared object whose file name starts with `prefix`, the shortest such name (the soname
/// link, `libjemalloc.so.2`, rather than the versioned file).
fn find_library(prefix: &str) -> Option<PathBuf> {
    let entries = std::fs::read_dir(library_dir()).ok()?;
    entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
                && p.is_file()
        })
        .min_by_key(|p| (p.as_os_str().len(), p.clone()))
}

fn package_version(package: &str) -> String {
    command_line("dpkg-query", &["-W", "-f=${Version}", package]).unwrap_or_default()
}

/// The first line a command prints, if it succeeds.
pub fn command_line(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string(),
    )
}

fn log_file(path: &Path) -> Result<std::fs::File, String> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}
