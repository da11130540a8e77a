//! `tagalloc-diff lab mm.c`: a malloc-lab allocator tested out of the box.
//!
//! [`build`] compiles the student's `mm.c` with the suite's own `memlib` (one private 20 MiB
//! region from `mmap`, never from `malloc`: `mem_sbrk`, `mem_heap_lo`/`hi`, `mem_heapsize`) and a
//! shim that exports the `malloc` family over `mm_*`, calling `mm_init` before the first call of
//! every run. Both lab variants build unchanged: CS:APP's (`mm_init`, `mm_malloc`, ...) and CMU
//! 15-213's 64-bit one (functions named `malloc`, `free`, ..., renamed by `-DDRIVER`, which is
//! always passed). Where the code has `mm_checkheap`, the shim exports it and the runner calls it
//! after every op, as it runs tagalloc's heap walker. The object is built twice: as it is, and
//! with the region below 2 GiB, where code that keeps pointers in 4 bytes happens to work; a trace
//! that fails on the first and passes on the second is reported as that bug.
//!
//! [`measure`] ([`crate::space`]) times a trace's calls alone in a forked child and records the
//! peak live payload and the heap's size at that moment (`mem_heapsize`); [`Table`] prints, in the lab driver's
//! terms, valid, util, ops, secs and Kops per trace next to libc's, and the performance index.

pub mod driver;
pub mod traces;

use std::path::{Path, PathBuf};
use std::process::Command;

pub use crate::space::{measure, measure_libc, Measure};

const MEMLIB_C: &str = include_str!("c/memlib.c");
const MEMLIB_H: &str = include_str!("c/memlib.h");
const MM_H: &str = include_str!("c/mm.h");
const SHIM_C: &str = include_str!("c/shim.c");

/// Share of utilisation in the performance index (the lab driver's weight).
pub const UTIL_WEIGHT: f64 = 0.6;
pub use crate::keep_going::LOW_UTIL;

/// A lab allocator, built.
#[derive(Clone, Debug)]
pub struct Built {
    /// The shared object, region anywhere.
    pub so: String,
    /// The same code with the region below 2 GiB.
    pub so_low: String,
    /// Whether the code defines `mm_checkheap` (then called after every op).
    pub checker: bool,
    /// Whether it defines `calloc` (`mm_calloc`).
    pub calloc: bool,
}

fn run_gcc(args: &[&str]) -> Result<(), String> {
    let out = Command::new("gcc")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run gcc: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "gcc {} failed:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim_end()
    ))
}

fn defines(object: &Path, symbol: &str) -> Result<bool, String> {
    let out = Command::new("nm")
        .args(["-g", "--defined-only"])
        .arg(object)
        .output()
        .map_err(|e| format!("cannot run nm: {e}"))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.split_whitespace().last() == Some(symbol)))
}

/// The lab source in `path`: the file itself, or `mm.c` in the directory.
pub fn source(path: &Path) -> Result<PathBuf, String> {
    let src = if path.is_dir() {
        path.join("mm.c")
    } else {
        path.to_path_buf()
    };
    if !src.is_file() {
        return Err(format!("{}: no such lab source file", src.display()));
    }
    Ok(src)
}

/// Compiles `src` (a lab's `mm.c`) into `out` (made if missing).
pub fn build(src: &Path, out: &Path) -> Result<Built, String> {
    let io = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
    std::fs::create_dir_all(out).map_err(|e| io(out, e))?;
    for (name, text) in [
        ("memlib.c", MEMLIB_C),
        ("memlib.h", MEMLIB_H),
        ("mm.h", MM_H),
        ("shim.c", SHIM_C),
    ] {
        let p = out.join(name);
        std::fs::write(&p, text).map_err(|e| io(&p, e))?;
    }
    let s = |p: &Path| p.display().to_string();
    let inc = format!("-I{}", out.display());
    let obj = out.join("mm.o");
    let flags = [
        "-O2",
        "-g",
        "-fPIC",
        "-DDRIVER",
        "-Wno-deprecated-declarations",
    ];
    let mut args: Vec<&str> = flags.to_vec();
    let (src_s, obj_s) = (s(src), s(&obj));
    args.extend([inc.as_str(), "-c", &src_s, "-o", &obj_s]);
    run_gcc(&args)?;
    let calloc = defines(&obj, "mm_calloc")?;
    let checker = defines(&obj, "mm_checkheap")?;
    let text = std::fs::read_to_string(src).unwrap_or_default();
    let checks_bool = text.contains("bool mm_checkheap");
    let init_bool = text.contains("bool mm_init");
    let mut so = [out.join("mm.so"), out.join("mm-low.so")].map(|p| s(&p));
    for (i, target) in so.iter_mut().enumerate() {
        let mut a: Vec<&str> = vec!["-O2", "-g", "-fPIC", "-shared", "-Wl,-Bsymbolic"];
        if calloc {
            a.push("-DTAGALLOC_LAB_CALLOC");
        }
        if checks_bool {
            a.push("-DTAGALLOC_LAB_CHECK_BOOL");
        }
        if init_bool {
            a.push("-DTAGALLOC_LAB_INIT_BOOL");
        }
        if i == 1 {
            a.push("-DTAGALLOC_LAB_LOW");
        }
        let (memlib, shim) = (s(&out.join("memlib.c")), s(&out.join("shim.c")));
        a.extend([inc.as_str(), "-o", target.as_str(), &obj_s, &memlib, &shim]);
        run_gcc(&a)?;
    }
    let [so, so_low] = so;
    Ok(Built {
        so,
        so_low,
        checker,
        calloc,
    })
}

/// One line of the lab table.
#[derive(Clone, Debug)]
pub struct Row {
    /// The trace's name.
    pub name: String,
    /// `None`: valid; else why not.
    pub invalid: Option<String>,
    /// The allocator's figures (`None`: it crashed or hung while measured).
    pub mm: Option<Measure>,
    /// libc's.
    pub libc: Option<Measure>,
}

/// The lab table: rows, then the totals and the performance index.
pub struct Table(pub Vec<Row>);

impl Table {
    /// The performance index (0 to 100) the way the lab computes it: 60 % average utilisation,
    /// 40 % throughput relative to the reference's, capped at the reference; `None` unless every
    /// trace is valid.
    pub fn perf_index(&self) -> Option<(f64, f64)> {
        if self.0.is_empty() || self.0.iter().any(|r| r.invalid.is_some()) {
            return None;
        }
        let mm: Vec<Measure> = self.0.iter().filter_map(|r| r.mm).collect();
        let libc: Vec<Measure> = self.0.iter().filter_map(|r| r.libc).collect();
        let util: f64 =
            mm.iter().map(|m| m.util().unwrap_or(0.0)).sum::<f64>() / self.0.len() as f64;
        let thru = |v: &[Measure]| {
            v.iter().map(|m| m.ops).sum::<usize>() as f64
                / v.iter().map(|m| m.secs).sum::<f64>().max(1e-9)
        };
        let ratio = (thru(&mm) / thru(&libc).max(1e-9)).min(1.0);
        Some((
            100.0 * UTIL_WEIGHT * util,
            100.0 * (1.0 - UTIL_WEIGHT) * ratio,
        ))
    }
}

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{:<24} {:>5} {:>6} {:>8} {:>10} {:>9} {:>10} {:>9}",
            "trace", "valid", "util", "ops", "secs", "Kops", "libc secs", "libc Kops"
        )?;
        let cell = |m: Option<Measure>, g: fn(&Measure) -> String| m.as_ref().map_or("-".into(), g);
        for r in &self.0 {
            writeln!(
                f,
                "{:<24} {:>5} {:>6} {:>8} {:>10} {:>9} {:>10} {:>9}",
                r.name,
                if r.invalid.is_none() { "yes" } else { "no" },
                cell(r.mm, |m| m
                    .util()
                    .map_or("-".into(), |u| format!("{:.0}%", 100.0 * u))),
                cell(r.mm, |m| m.ops.to_string()),
                cell(r.mm, |m| format!("{:.6}", m.secs)),
                cell(r.mm, |m| format!("{:.0}", m.kops())),
                cell(r.libc, |m| format!("{:.6}", m.secs)),
                cell(r.libc, |m| format!("{:.0}", m.kops())),
            )?;
        }
        for r in &self.0 {
            if let Some(why) = &r.invalid {
                writeln!(f, "{}: not valid: {why}", r.name)?;
            } else if let Some(u) = r.mm.and_then(|m| m.util()).filter(|&u| u < LOW_UTIL) {
                writeln!(
                    f,
                    "{}: warning: low utilisation ({:.0}%): the heap grows where freed memory \
                     could be reused",
                    r.name,
                    100.0 * u
                )?;
            }
        }
        match self.perf_index() {
            Some((u, t)) => writeln!(
                f,
                "Perf index = {u:.0} (util) + {t:.0} (thru) = {:.0}/100",
                u + t
            ),
            None => writeln!(f, "Perf index: none (not every trace is valid)"),
        }
    }
}
