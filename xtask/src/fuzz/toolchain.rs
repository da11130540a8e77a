//! Which compiler and sanitizer the campaign uses, and making sure cargo-fuzz is there.
//!
//! AddressSanitizer needs a nightly toolchain. We use it when `rustup toolchain list` has a nightly
//! and a two-line program built with `-Zsanitizer=address` runs and sees its heap redzones;
//! otherwise the default (stable) toolchain with `--sanitizer none`. Either way the output says
//! which, and why.

use std::path::Path;
use std::process::Command;

use super::command;

/// How long building the fuzz targets takes, as the build step says before it starts (measured on
/// 2 cores with a cold cargo cache; the time is mostly the dependencies and the allocator with
/// AddressSanitizer, so it hardly depends on the number of targets).
pub const BUILD_TIME: &str = "about 2 min on 2 cores the first time, seconds after that";

/// How long `cargo install cargo-fuzz --locked` takes (2 cores, cold cargo cache).
const INSTALL_TIME: &str = "1 to 2 min on 2 cores";

/// The sanitizer the fuzz targets are built with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sanitizer {
    /// AddressSanitizer, on nightly.
    Address,
    /// No sanitizer, on the default toolchain.
    None,
}

/// The toolchain and sanitizer chosen, with the reason.
#[derive(Clone, Debug)]
pub struct Mode {
    /// The sanitizer.
    pub sanitizer: Sanitizer,
    /// `rustc --version` of the toolchain used.
    pub rustc: String,
    /// Why this mode, in words.
    pub why: String,
}

impl Mode {
    /// `cargo [+nightly] fuzz SUBCOMMAND [--sanitizer none]`.
    pub fn cargo_fuzz(&self, sub: &str) -> Command {
        let mut c = Command::new("cargo");
        if self.sanitizer == Sanitizer::Address {
            c.arg("+nightly");
        }
        c.args(["fuzz", sub]);
        if self.sanitizer == Sanitizer::None {
            c.args(["--sanitizer", "none"]);
        }
        c
    }

    /// `cargo fuzz SUBCOMMAND` as a person types it in this mode.
    pub fn cargo_fuzz_shown(&self, sub: &str) -> String {
        command::line(&self.cargo_fuzz(sub))
    }

    /// One line: "AddressSanitizer on nightly (rustc ...)".
    pub fn describe(&self) -> String {
        match self.sanitizer {
            Sanitizer::Address => format!("AddressSanitizer, on {}", self.rustc),
            Sanitizer::None => format!("no sanitizer, on {}", self.rustc),
        }
    }
}

/// Makes sure `cargo fuzz` runs, installing it with `cargo install cargo-fuzz --locked` if it does
/// not. Returns its version line.
pub fn ensure_cargo_fuzz() -> Result<String, String> {
    if let Some(v) = cargo_fuzz_version() {
        return Ok(v);
    }
    let mut install = Command::new("cargo");
    install.args(["install", "cargo-fuzz", "--locked"]);
    eprintln!(
        "==> cargo-fuzz is not installed; installing it ({INSTALL_TIME}): {}",
        command::line(&install)
    );
    let installed = install.status().is_ok_and(|s| s.success());
    match cargo_fuzz_version() {
        Some(v) if installed => Ok(v),
        _ => Err(
            "cargo-fuzz is not installed and `cargo install cargo-fuzz --locked` failed; \
             install it yourself (that command, or a prebuilt binary from \
             https://github.com/rust-fuzz/cargo-fuzz/releases) and run again"
                .into(),
        ),
    }
}

fn cargo_fuzz_version() -> Option<String> {
    let out = Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Chooses the mode: `forced` if given (failing when AddressSanitizer cannot work), else
/// AddressSanitizer when it works, else none. `scratch` is a directory for the probe.
pub fn choose(forced: Option<Sanitizer>, scratch: &Path) -> Result<Mode, String> {
    if forced == Some(Sanitizer::None) {
        return Ok(Mode {
            sanitizer: Sanitizer::None,
            rustc: rustc_version(None),
            why: "forced with --sanitizer none".into(),
        });
    }
    let asan = match nightly() {
        Err(why) => Err(why),
        Ok(()) => probe_asan(scratch),
    };
    match (asan, forced) {
        (Ok(()), _) => Ok(Mode {
            sanitizer: Sanitizer::Address,
            rustc: rustc_version(Some("+nightly")),
            why: if forced.is_some() {
                "forced with --sanitizer asan".into()
            } else {
                "a nightly toolchain is installed and its AddressSanitizer runtime works".into()
            },
        }),
        (Err(why), Some(Sanitizer::Address)) => Err(format!(
            "--sanitizer asan: AddressSanitizer cannot be used: {why}"
        )),
        (Err(why), _) => Ok(Mode {
            sanitizer: Sanitizer::None,
            rustc: rustc_version(None),
            why,
        }),
    }
}

/// `Ok` when rustup lists a nightly toolchain; otherwise why not, with the fix.
fn nightly() -> Result<(), String> {
    let out = Command::new("rustup")
        .args(["toolchain", "list"])
        .output()
        .map_err(|e| {
            format!("rustup is not available ({e}), so no nightly toolchain can be selected")
        })?;
    let list = String::from_utf8_lossy(&out.stdout);
    if list.lines().any(|l| l.starts_with("nightly")) {
        Ok(())
    } else {
        Err(
            "no nightly toolchain is installed (`rustup toolchain install nightly` \
             enables AddressSanitizer)"
                .into(),
        )
    }
}

/// Builds and runs a program under AddressSanitizer that checks the redzone after a heap block.
const PROBE: &str = r#"
extern "C" {
    fn __asan_address_is_poisoned(addr: *const u8) -> i32;
}
fn main() {
    let block = vec![7u8; 24];
    // SAFETY: the ASan runtime only inspects shadow memory for this address.
    let poisoned = unsafe { __asan_address_is_poisoned(block.as_ptr().wrapping_add(24)) };
    if poisoned == 1 && block[0] == 7 {
        println!("asan works");
    }
}
"#;

fn probe_asan(scratch: &Path) -> Result<(), String> {
    std::fs::create_dir_all(scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    let src = scratch.join("asan_probe.rs");
    let bin = scratch.join("asan_probe");
    std::fs::write(&src, PROBE).map_err(|e| format!("{}: {e}", src.display()))?;
    let built = Command::new("rustc")
        .args(["+nightly", "-Zsanitizer=address", "--edition", "2021", "-o"])
        .arg(&bin)
        .arg(&src)
        .output()
        .map_err(|e| format!("could not run rustc +nightly: {e}"))?;
    if !built.status.success() {
        return Err(format!(
            "nightly rustc cannot build with -Zsanitizer=address: {}",
            last_line(&built.stderr)
        ));
    }
    let ran = Command::new(&bin)
        .output()
        .map_err(|e| format!("the AddressSanitizer probe did not start: {e}"))?;
    if ran.status.success() && String::from_utf8_lossy(&ran.stdout).contains("asan works") {
        Ok(())
    } else {
        Err(format!(
            "a program built with AddressSanitizer does not run here ({}): {}",
            ran.status,
            last_line(&ran.stderr)
        ))
    }
}

fn last_line(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let line = text.lines().rev().find(|l| !l.trim().is_empty());
    line.unwrap_or("no output").trim().to_string()
}

fn rustc_version(toolchain: Option<&str>) -> String {
    let mut c = Command::new("rustc");
    c.args(toolchain).arg("--version");
    c.output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "rustc (version unknown)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_as_shown() {
        let m = |sanitizer| Mode {
            sanitizer,
            rustc: String::new(),
            why: String::new(),
        };
        assert_eq!(
            m(Sanitizer::Address).cargo_fuzz_shown("run"),
            "cargo +nightly fuzz run"
        );
        assert_eq!(
            m(Sanitizer::None).cargo_fuzz_shown("tmin"),
            "cargo fuzz tmin --sanitizer none"
        );
    }
}
