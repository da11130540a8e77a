//! Production allocators under `--contract posix`: Debian's jemalloc (loaded through the
//! static-TLS retry), mimalloc and tcmalloc over the seeds and the lab-style traces. Every report
//! left is a real deviation from POSIX, checked outside the suite too (a C program calling each
//! through `LD_PRELOAD`, errno cleared before each call, gave the same results):
//!
//! - jemalloc 5.3.0: `realloc(p, PTRDIFF_MAX + 1)` returns NULL without setting `errno` (its
//!   `malloc` and `calloc` of the same size set `ENOMEM`). POSIX: a failing `realloc` sets
//!   `errno` (`ENOMEM`).
//! - mimalloc 2.0.9: `malloc`, `calloc` and `realloc` of more than `PTRDIFF_MAX` bytes return NULL
//!   without setting `errno` to `ENOMEM` (through `LD_PRELOAD` `errno` stays 0; in the suite's
//!   forked child the call leaves `ENOENT`, set by something mimalloc does inside it), and
//!   `aligned_alloc(0, 5)` returns NULL with `errno` untouched, where POSIX.1-2024 (which added
//!   `aligned_alloc`) says `EINVAL`; C17 alone would accept that NULL.
//! - tcmalloc 2.10: `calloc(PTRDIFF_MAX + 1, 2)`, whose product overflows, returns NULL without
//!   setting `errno` (the same call with a product that does not overflow, `calloc(2^62, 2)`,
//!   sets `ENOMEM`). POSIX: a failing `calloc` sets `errno` (`ENOMEM`).
//!
//! The figures are those of Debian's packages of these versions, which `.ci/run` installs; an
//! allocator that is not installed is skipped, saying so (as GitHub's runner, which has none of
//! them, does).

use std::path::Path;

use crate::cli::{dir, run, text};

/// The signatures `run` prints ("new signature (SIG)"), in order of appearance.
fn signatures(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.trim().strip_prefix("new signature ("))
        .filter_map(|l| l.split_once("); minimal trace").map(|(s, _)| s.to_string()))
        .collect()
}

/// The seeds and the lab-style traces, as files.
fn traces() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus/seeds");
    let mut all: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "trace"))
        .map(|p| p.display().to_string())
        .collect();
    all.sort();
    let lab = dir().join("posix-lab");
    std::fs::create_dir_all(&lab).unwrap();
    for t in tagalloc_diff::lab::traces::all() {
        let path = lab.join(format!("{}.trace", t.name));
        std::fs::write(&path, t.trace.to_string()).unwrap();
        all.push(path.display().to_string());
    }
    all
}

#[test]
fn production_allocators_under_posix_report_only_their_real_deviations() {
    let expected: [(&str, &[&str]); 3] = [
        (
            "libjemalloc.so.2",
            &["wrong-errno on realloc (impossible size)"],
        ),
        (
            "libmimalloc.so.2",
            &[
                "wrong-errno on malloc (impossible size)",
                "wrong-errno on calloc (impossible size)",
                "wrong-errno on realloc (impossible size)",
                "wrong-errno on aligned_alloc (small size)",
            ],
        ),
        (
            "libtcmalloc_minimal.so.4",
            &["wrong-errno on calloc (impossible size)"],
        ),
    ];
    let traces = traces();
    for (lib, want) in expected {
        let so = format!("/usr/lib/x86_64-linux-gnu/{lib}");
        if !Path::new(&so).exists() {
            eprintln!("SKIPPED: {so} is not installed");
            continue;
        }
        let save = dir().join(format!("posix-{lib}"));
        let mut args = vec![
            "run",
            "--contract",
            "posix",
            "--save",
            save.to_str().unwrap(),
            "--backend",
            &so,
        ];
        args.extend(traces.iter().map(String::as_str));
        let o = run(&args);
        let out = text(&o);
        println!("{lib}:\n{out}");
        assert_eq!(o.status.code(), Some(1), "{out}");
        assert_eq!(signatures(&out), want, "{lib}:\n{out}");
        assert!(out.contains("broke contract posix"), "{out}");
        // Only the five misuse and faults seeds are skipped; every other trace ran.
        let summary = format!("{} traces: ", traces.len());
        assert!(
            out.contains(&summary) && out.contains(" ok, 5 skipped, "),
            "{out}"
        );
        let preset = std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("static_tls"));
        if lib.contains("jemalloc") && !preset {
            assert!(out.contains("running again with GLIBC_TUNABLES="), "{out}");
        }
    }
}
