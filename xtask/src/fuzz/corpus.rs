//! The corpora: how big each is, and minimising one with `cargo fuzz cmin`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::command;
use super::toolchain::Mode;

/// Size of a corpus directory: its files (not subdirectories) and their bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Size {
    /// Number of files.
    pub files: u64,
    /// Their total size.
    pub bytes: u64,
}

impl Size {
    /// Measures `dir` (an absent directory is empty).
    pub fn of(dir: &Path) -> Size {
        let mut size = Size::default();
        for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
            if let Ok(meta) = entry.metadata() {
                if meta.is_file() {
                    size.files += 1;
                    size.bytes += meta.len();
                }
            }
        }
        size
    }
}

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} files, {}", self.files, human_bytes(self.bytes))
    }
}

/// `1234` as `1.2 KiB`.
pub fn human_bytes(n: u64) -> String {
    match n {
        0..=1023 => format!("{n} B"),
        1024..=1_048_575 => format!("{:.1} KiB", n as f64 / 1024.0),
        _ => format!("{:.1} MiB", n as f64 / 1_048_576.0),
    }
}

/// Minimises the corpus `dir` of `target` in place with `cargo fuzz cmin`, its output going to
/// `log`. Returns the size after.
pub fn minimise(
    mode: &Mode,
    target: &str,
    dir: &Path,
    root: &Path,
    log: &Path,
) -> Result<Size, String> {
    // cmin merges into a temporary directory and then renames it over `dir`: the two must be on
    // one file system, or the rename fails and the corpus is left as it was.
    let tmp = same_device_tmp(dir);
    let mut cmd = mode.cargo_fuzz("cmin");
    cmd.arg(target).arg(command::shown(dir, root));
    cmd.env(tagalloc_diff::deadly::EXPLAIN, "0");
    cmd.current_dir(root);
    if let Some(tmp) = &tmp {
        fs::create_dir_all(tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
        cmd.env("TMPDIR", tmp);
    }
    eprintln!("    $ {}", command::line(&cmd));
    let out = run_logged(&mut cmd, log);
    if let Some(tmp) = &tmp {
        let _ = fs::remove_dir_all(tmp);
    }
    let output = out?;
    if !output.0 || output.1.contains("Failed to minimize corpus") {
        return Err(format!(
            "`cargo fuzz cmin {target}` failed; the corpus is unchanged (see {})",
            command::shown(log, root).display()
        ));
    }
    Ok(Size::of(dir))
}

/// Runs `cmd` with stdout and stderr into `log`; returns (success, the log's text).
fn run_logged(cmd: &mut Command, log: &Path) -> Result<(bool, String), String> {
    let file = fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err = file.try_clone().map_err(|e| e.to_string())?;
    let status = cmd
        .stdout(Stdio::from(file))
        .stderr(Stdio::from(err))
        .status()
        .map_err(|e| format!("could not run `{}`: {e}", command::line(cmd)))?;
    let text = fs::read_to_string(log).unwrap_or_default();
    Ok((status.success(), text))
}

/// A temporary directory beside `dir` when the system's is on another file system.
fn same_device_tmp(dir: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let dev = |p: &Path| fs::metadata(p).ok().map(|m| m.dev());
    let parent = dir.parent()?;
    if dev(&std::env::temp_dir()) == dev(dir) {
        return None;
    }
    let name = dir.file_name()?.to_string_lossy();
    Some(parent.join(format!(".cmin-tmp-{name}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        let dir = std::env::temp_dir().join(format!("xtask-corpus-size-{}", std::process::id()));
        fs::create_dir_all(dir.join("sub")).unwrap();
        fs::write(dir.join("a"), [0u8; 10]).unwrap();
        fs::write(dir.join("b"), [0u8; 2000]).unwrap();
        let s = Size::of(&dir);
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            s,
            Size {
                files: 2,
                bytes: 2010
            }
        );
        assert_eq!(s.to_string(), "2 files, 2.0 KiB");
        assert_eq!(Size::of(Path::new("/nonexistent/x")), Size::default());
        assert_eq!(human_bytes(3 << 20), "3.0 MiB");
    }
}
