//! The C programs of `xtask/bench/`, compiled with `gcc -O2 -pthread` into `target/bench/bin/`:
//! the workload drivers, `replay` for traces, and two helpers of the runner, `launch` (starts
//! every measured run, see [`super::measure`]) and `probe` (says which library serves `malloc`).
//!
//! They are compiled with `-fno-builtin-malloc` and its siblings, so that gcc cannot remove a
//! `malloc`/`free` pair it sees through: every call in the source reaches the allocator. A binary
//! is rebuilt when it is missing or older than its source or the shared header.

use std::path::Path;
use std::process::Command;

use super::Paths;

/// The programs, each `xtask/bench/NAME.c`.
pub const DRIVERS: &[&str] = &[
    "launch",
    "probe",
    "cfrac",
    "alloctest",
    "realloc",
    "large",
    "larson",
    "xmalloc",
    "batch",
    "pool",
    "loops",
    "replay",
];

/// The header every driver includes.
const HEADER: &str = "driver.h";

/// Compiles every driver that is missing or out of date; progress on stderr.
pub fn compile_all(paths: &Paths) -> Result<(), String> {
    let src = paths.root.join("xtask/bench");
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let header_time = modified(&src.join(HEADER));
    for name in DRIVERS {
        let source = src.join(format!("{name}.c"));
        let binary = paths.bin.join(name);
        let newest_input = modified(&source).max(header_time);
        if modified(&binary).is_some_and(|b| Some(b) >= newest_input) {
            continue;
        }
        eprintln!("==> gcc -O2 -pthread {}", paths.show(&source));
        compile(&source, &binary)?;
    }
    Ok(())
}

/// `gcc -O2 -pthread -Wall -fno-builtin-malloc ... -o BINARY SOURCE -lm`.
pub fn compile(source: &Path, binary: &Path) -> Result<(), String> {
    let status = Command::new("gcc")
        .args(["-O2", "-pthread", "-Wall"])
        .args([
            "-fno-builtin-malloc",
            "-fno-builtin-calloc",
            "-fno-builtin-realloc",
            "-fno-builtin-free",
        ])
        .arg("-o")
        .arg(binary)
        .arg(source)
        .arg("-lm")
        .status()
        .map_err(|e| format!("cannot run gcc: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("gcc failed on {} ({status})", source.display()))
    }
}

/// Tests compile the drivers they run into a temporary directory of their own.
#[cfg(test)]
pub mod testing {
    use std::path::PathBuf;

    /// `xtask/bench/NAME.c` compiled into a fresh directory named after `test`.
    pub fn compiled(name: &str, test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("bench/{name}.c"));
        let binary = dir.join(name);
        super::compile(&source, &binary).unwrap();
        binary
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    /// The replay driver's parser and semantics on every form of the grammar.
    #[test]
    fn replay_reads_the_grammar_and_counts_live_bytes() {
        let replay = super::testing::compiled("replay", "replay");
        let dir = replay.parent().unwrap().to_path_buf();
        let run = |name: &str, text: &str| {
            let trace = dir.join(name);
            std::fs::write(&trace, text).unwrap();
            Command::new(&replay).arg(&trace).output().unwrap()
        };
        let good = "20000\n3\n5\n1\n\
                    a 0 100\n\
                    a 1 0x20   # a comment\n\
                    r 0 300\n\
                    check\n\
                    f 1\n\
                    \n\
                    malloc 5 SIZE_MAX\n\
                    calloc 2 10 16\n\
                    posix_memalign 3 64 1000\n\
                    memalign 4 PTRDIFF_MAX+1 5\n\
                    usable_size 3\n\
                    realloc 3 0\n\
                    free 2\n\
                    misuse free freed 3\n\
                    free 9\n\
                    aligned_alloc 6 64 64";
        let out = run("good.trace", good);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut lines = stdout.lines();
        assert_eq!(lines.next(), Some("replay: 13 ops replayed, 2 ops ignored"));
        let metric = |name: &str| -> u64 {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(&format!("metric {name} "))?.parse().ok())
                .unwrap_or_else(|| panic!("no metric {name} in {stdout}"))
        };
        // 100 + 32, then 300 + 32, minus 32, plus 160 and 1000 (the rest fails or is freed)
        assert_eq!(metric("peak_live_bytes"), 1460);
        // malloc(SIZE_MAX) and memalign(PTRDIFF_MAX + 1, 5)
        assert_eq!(metric("failed_calls"), 2);
        assert!(metric("baseline_rss_kib") > 0);

        for (name, bad, line) in [
            ("missing.trace", "malloc 0 1\nmalloc 1\n", ":2:"),
            ("number.trace", "malloc x 5\n", ":1:"),
            ("extra.trace", "free 1 2\n", ":1:"),
            ("slot.trace", "malloc 16777216 1\n", ":1:"),
        ] {
            let out = run(name, bad);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
            assert!(stderr.contains(line), "{name}: {stderr}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
