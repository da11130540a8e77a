//! `tagalloc-diff lab` on three small lab allocators written for this test (`examples/lab/`): one
//! correct (CMU 15-213 style, with a heap checker), one that never reuses memory and one that
//! keeps pointers in 4 bytes (both CS:APP style). Each verdict is checked; the correct one's
//! table is printed.

use std::process::Command;

use crate::cli::{dir, run, text};

fn lab(name: &str) -> Option<(i32, String)> {
    if Command::new("gcc").arg("--version").output().is_err() {
        eprintln!("SKIPPED: gcc not found, so no lab allocator can be built for this test");
        return None;
    }
    let src = format!("{}/examples/lab/{name}.c", env!("CARGO_MANIFEST_DIR"));
    let save = dir().join(format!("lab-{name}"));
    let o = run(&["lab", "--time", "3", "--save", save.to_str().unwrap(), &src]);
    Some((o.status.code().unwrap_or(-1), text(&o)))
}

/// The table's line for trace `name`.
fn row<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(&format!("{name}.trace ")))
        .unwrap_or_else(|| panic!("no row for {name}:\n{out}"))
}

#[test]
fn a_correct_lab_allocator_is_valid_on_every_trace() {
    let Some((code, out)) = lab("mm-correct") else {
        return;
    };
    println!("{out}");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("mm_checkheap: called after every op"), "{out}");
    assert!(out.contains("calloc: tested"), "{out}");
    for t in ["binary", "coalescing", "random", "realloc"] {
        let r = row(&out, t);
        assert_eq!(r.split_whitespace().nth(1), Some("yes"), "{r}");
    }
    assert!(out.contains("Perf index = "), "{out}");
    assert!(!out.contains("warning: low utilisation"), "{out}");
    assert!(out.contains(", 0 distinct failures"), "{out}");
}

#[test]
fn a_lab_allocator_that_never_reuses_runs_out_and_is_warned() {
    let Some((code, out)) = lab("mm-noreuse") else {
        return;
    };
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("mm_checkheap: none"), "{out}");
    assert!(
        out.contains("realloc.trace: not valid: out of memory: an allocation failed that libc's"),
        "{out}"
    );
    assert!(
        out.contains("coalescing.trace: warning: low utilisation"),
        "{out}"
    );
    assert!(out.contains("Perf index: none"), "{out}");
}

#[test]
fn a_lab_allocator_with_4_byte_pointers_is_named_so() {
    let Some((code, out)) = lab("mm-ptr32") else {
        return;
    };
    assert_eq!(code, 1, "{out}");
    for t in ["binary", "coalescing", "random", "realloc"] {
        assert!(
            out.contains(&format!(
                "{t}.trace: not valid: works only with 4-byte pointers"
            )),
            "{t}: {out}"
        );
    }
}
