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
//! [`measure`] times a trace's calls alone (no shadow model) in a forked child and records the
//! peak live payload and the heap's size at that moment; [`Table`] prints, in the lab driver's
//! terms, valid, util, ops, secs and Kops per trace next to libc's, and the performance index.

pub mod driver;
pub mod traces;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::backend::dylib::DylibBackend;
use crate::backend::libc::LibcBackend;
use crate::backend::{Backend, Reply, Request};
use crate::isolate::measure::in_fork;
use crate::op::{Op, Trace};

const MEMLIB_C: &str = include_str!("c/memlib.c");
const MEMLIB_H: &str = include_str!("c/memlib.h");
const MM_H: &str = include_str!("c/mm.h");
const SHIM_C: &str = include_str!("c/shim.c");

/// Share of utilisation in the performance index (the lab driver's weight).
pub const UTIL_WEIGHT: f64 = 0.6;
/// Utilisation below which a trace gets a warning.
pub const LOW_UTIL: f64 = 0.3;

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

/// One trace's figures.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Measure {
    /// Seconds in the allocator's calls.
    pub secs: f64,
    /// Calls made.
    pub ops: usize,
    /// Most payload live at once.
    pub peak_payload: usize,
    /// The heap's size when the payload peaked (0: the backend does not say).
    pub heap_at_peak: usize,
    /// The heap's size at the end.
    pub heap_end: usize,
    /// Whether an allocation returned NULL.
    pub out_of_memory: bool,
}

impl Measure {
    /// Peak payload over the heap at that moment (`None`: the heap's size is not known).
    pub fn util(&self) -> Option<f64> {
        (self.heap_at_peak > 0).then(|| self.peak_payload as f64 / self.heap_at_peak as f64)
    }

    /// Thousands of calls a second.
    pub fn kops(&self) -> f64 {
        self.ops as f64 / self.secs.max(1e-9) / 1000.0
    }
}

/// Replays `trace`'s calls on `b`, timing only the calls; `heap` reads the heap's size.
pub fn replay<B: Backend>(b: &mut B, trace: &Trace, heap: &dyn Fn(&B) -> usize) -> Measure {
    let mut live: Vec<Option<(*mut u8, usize)>> = Vec::new();
    let mut m = Measure::default();
    let mut payload = 0usize;
    let mut spent = Duration::ZERO;
    for op in &trace.ops {
        let slot = match op.slot() {
            Some(s) => s,
            None => continue,
        };
        if live.len() <= slot {
            live.resize(slot + 1, None);
        }
        let old = live[slot];
        let req = match *op {
            Op::Malloc { size, .. } => Request::Malloc { size },
            Op::Calloc { count, size, .. } => Request::Calloc { count, size },
            Op::Realloc { size, .. } => Request::Realloc {
                ptr: old.map_or(std::ptr::null_mut(), |o| o.0),
                size,
            },
            Op::Free { .. } => match old {
                Some((ptr, _)) => Request::Free { ptr },
                None => continue,
            },
            _ => continue,
        };
        let t0 = Instant::now();
        // SAFETY: every pointer passed is one `b` returned and that is still live (tracked per
        // slot; a block replaced in its slot is leaked, never passed again).
        let r = unsafe { b.call(req) };
        spent += t0.elapsed();
        m.ops += 1;
        let freed = matches!(req, Request::Free { .. } | Request::Realloc { .. });
        match r {
            Reply::Ptr(p) => {
                if freed {
                    payload -= old.map_or(0, |o| o.1);
                }
                let size = op.requested();
                live[slot] = Some((p.as_ptr(), size));
                payload += size;
            }
            Reply::Done | Reply::Freed => {
                payload -= old.map_or(0, |o| o.1);
                live[slot] = None;
            }
            Reply::Null { .. } => m.out_of_memory |= op.requested() > 0,
            _ => {}
        }
        if payload > m.peak_payload {
            m.peak_payload = payload;
            m.heap_at_peak = heap(b);
        }
    }
    m.heap_end = heap(b);
    m.secs = spent.as_secs_f64();
    m
}

/// [`replay`] of `trace` on the object at `so` (its heap size from the lab shim), in a forked
/// child; `None` if it crashed or hung.
pub fn measure(so: &str, trace: &Trace, limit: Duration) -> Option<Measure> {
    let mut b = DylibBackend::open(so).ok()?;
    in_fork(limit, move || {
        replay(&mut b, trace, &|b: &DylibBackend| {
            b.heap_size().unwrap_or(0)
        })
    })
}

/// [`replay`] on libc, in a forked child, for the reference columns.
pub fn measure_libc(trace: &Trace, limit: Duration) -> Option<Measure> {
    in_fork(limit, || replay(&mut LibcBackend::new(), trace, &|_| 0))
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
