//! The traces the replay driver replays: synthetic traces written here from a fixed seed, so that
//! the replay path is measured even before any trace is recorded, and recorded traces of real
//! programs from `corpus/recorded/` (`*.trace`, and `*.trace.gz` decompressed with `gzip -dc`);
//! the copies the driver reads go to `target/bench/traces/`.
//!
//! The synthetic traces are deterministic: the same program writes the same bytes.
//! - `synthetic-mixed` (the suite's grammar) models a program's life: phases that build many small
//!   objects and drop most of them, strings grown by `realloc`, `calloc`ed arrays, aligned blocks
//!   and a few mmap-sized buffers, with `usable_size` and `check` lines among them.
//! - `synthetic-lab` (CS:APP malloc-lab format, with its four header lines) alternates small and
//!   large blocks, frees the large ones and asks for larger still, the pattern of the lab's
//!   `binary` traces that punishes allocators that cannot reuse fragmented space; then grows
//!   blocks by `r`, as its `realloc` traces do.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where a trace comes from.
#[derive(Clone, Debug)]
pub enum Source {
    /// A plain-text trace file.
    File(PathBuf),
    /// A gzip-compressed trace file.
    Gzip(PathBuf),
    /// Written by `write`; `about` says what it models.
    Synthetic {
        /// Writes the trace.
        write: fn() -> String,
        /// What the trace models, in a few words.
        about: &'static str,
    },
}

/// A trace for the replay driver.
#[derive(Clone, Debug)]
pub struct TraceFile {
    /// Short name: the file name without `.trace` / `.trace.gz`.
    pub name: String,
    /// Where it comes from.
    pub source: Source,
}

impl TraceFile {
    /// Where it comes from, in words, for the report.
    pub fn origin(&self) -> String {
        match &self.source {
            Source::File(p) | Source::Gzip(p) => format!(
                "the recorded trace {}",
                p.file_name().unwrap_or_default().to_string_lossy()
            ),
            Source::Synthetic { about, .. } => format!("a synthetic trace: {about}"),
        }
    }

    /// The plain-text file to replay: the file itself, or a copy written into `out` (a `.gz`
    /// decompressed with `gzip -dc` unless the copy is newer; a synthetic trace written unless
    /// the copy has the same text).
    pub fn materialize(&self, out: &Path) -> Result<PathBuf, String> {
        let copy = out.join(format!("{}.trace", self.name));
        match &self.source {
            Source::File(p) => return Ok(p.clone()),
            Source::Gzip(p) => {
                if !is_newer(&copy, p) {
                    gunzip(p, &copy)?;
                }
            }
            Source::Synthetic { write, .. } => {
                let text = write();
                if std::fs::read_to_string(&copy).ok().as_deref() != Some(text.as_str()) {
                    std::fs::write(&copy, &text)
                        .map_err(|e| format!("cannot write {}: {e}", copy.display()))?;
                }
            }
        }
        Ok(copy)
    }
}

/// Every trace: the synthetic ones, then those recorded under `dir` (`corpus/recorded`), in
/// name order.
pub fn all(dir: &Path) -> Vec<TraceFile> {
    let mut traces = vec![
        TraceFile {
            name: "synthetic-mixed".into(),
            source: Source::Synthetic {
                write: || mixed_trace(60_000),
                about: "phases of small objects, strings grown by realloc, calloc, aligned and \
                        large blocks",
            },
        },
        TraceFile {
            name: "synthetic-lab".into(),
            source: Source::Synthetic {
                write: || lab_trace(40_000),
                about: "malloc-lab format, small/large pairs, large freed, larger allocated, \
                        realloc growth",
            },
        },
    ];
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries.filter_map(|e| e.ok()).map(|e| e.path()).collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    for file in files {
        let Some(name) = file.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if let Some(stem) = name.strip_suffix(".trace") {
            traces.push(TraceFile {
                name: stem.to_string(),
                source: Source::File(file.clone()),
            });
        } else if let Some(stem) = name.strip_suffix(".trace.gz") {
            traces.push(TraceFile {
                name: stem.to_string(),
                source: Source::Gzip(file.clone()),
            });
        }
    }
    traces
}

fn is_newer(a: &Path, b: &Path) -> bool {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    matches!((modified(a), modified(b)), (Some(x), Some(y)) if x >= y)
}

fn gunzip(from: &Path, to: &Path) -> Result<(), String> {
    let partial = to.with_extension("partial");
    let file = std::fs::File::create(&partial)
        .map_err(|e| format!("cannot write {}: {e}", partial.display()))?;
    let status = Command::new("gzip")
        .arg("-dc")
        .arg(from)
        .stdout(file)
        .stderr(Stdio::inherit())
        .status()
        .map_err(|e| format!("cannot run gzip: {e}"))?;
    if !status.success() {
        return Err(format!("gzip -dc {} failed ({status})", from.display()));
    }
    std::fs::rename(&partial, to).map_err(|e| format!("cannot write {}: {e}", to.display()))
}

/// splitmix64, the same generator as the C drivers.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut x = self.0;
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^ (x >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    fn chance(&mut self, one_in: u64) -> bool {
        self.next() % one_in == 0
    }
}

/// Live slots of a trace being written: which are free to reuse.
struct Slots {
    free: Vec<u32>,
    next: u32,
}

impl Slots {
    fn new() -> Self {
        Slots {
            free: Vec::new(),
            next: 0,
        }
    }

    fn take(&mut self) -> u32 {
        self.free.pop().unwrap_or_else(|| {
            self.next += 1;
            self.next - 1
        })
    }

    fn give(&mut self, slot: u32) {
        self.free.push(slot);
    }
}

/// The `synthetic-mixed` trace: `objects` small objects per phase over eight phases, with the
/// strings, arrays, aligned blocks and large buffers around them.
pub fn mixed_trace(objects: usize) -> String {
    let mut rng = Rng(0x5EED);
    let mut slots = Slots::new();
    let mut t = String::new();
    t.push_str("# synthetic-mixed: written by `cargo xtask bench` (xtask/src/bench/traces.rs)\n");
    let mut long_lived: Vec<u32> = Vec::new();
    for phase in 0..8 {
        let _ = writeln!(t, "# phase {phase}: build objects, grow strings, drop most");
        let mut objects_live: Vec<u32> = Vec::new();
        let mut strings: Vec<(u32, u64)> = Vec::new();
        for i in 0..objects {
            let slot = slots.take();
            let size = match rng.next() % 16 {
                0..=9 => rng.range(8, 64),
                10..=13 => rng.range(65, 512),
                14 => rng.range(513, 4096),
                _ => rng.range(4097, 32 << 10),
            };
            if rng.chance(10) {
                let _ = writeln!(t, "calloc {slot} {} 8", size.div_ceil(8));
            } else if rng.chance(200) {
                let align = 1u64 << rng.range(5, 12);
                let op = ["posix_memalign", "aligned_alloc", "memalign"][(rng.next() % 3) as usize];
                let _ = writeln!(t, "{op} {slot} {align} {}", size.div_ceil(align) * align);
            } else {
                let _ = writeln!(t, "malloc {slot} {size}");
            }
            objects_live.push(slot);
            if rng.chance(8) {
                let s = slots.take();
                let len = rng.range(1, 32);
                let _ = writeln!(t, "malloc {s} {len}");
                strings.push((s, len));
            }
            if !strings.is_empty() && rng.chance(2) {
                let k = (rng.next() % strings.len() as u64) as usize;
                let (s, len) = &mut strings[k];
                *len += rng.range(1, 100);
                let _ = writeln!(t, "realloc {s} {len}");
            }
            if i % 1000 == 999 {
                let big = slots.take();
                let _ = writeln!(t, "malloc {big} {}", rng.range(100 << 10, 400 << 10));
                let _ = writeln!(t, "usable_size {big}");
                let _ = writeln!(t, "free {big}");
                slots.give(big);
            }
            // Short-lived: free a recent object now and then.
            if objects_live.len() > 16 && rng.chance(3) {
                let k = objects_live.len() - 1 - (rng.next() % 16) as usize;
                let s = objects_live.swap_remove(k);
                let _ = writeln!(t, "free {s}");
                slots.give(s);
            }
        }
        t.push_str("check\n");
        // End of phase: keep one object in ten (and every string in four), free the rest in
        // an order that is neither LIFO nor FIFO.
        for (n, s) in objects_live.into_iter().enumerate() {
            if n % 10 == 0 {
                long_lived.push(s);
            } else {
                let _ = writeln!(t, "free {s}");
                slots.give(s);
            }
        }
        for (n, (s, _)) in strings.into_iter().enumerate() {
            if n % 4 == 0 {
                long_lived.push(s);
            } else {
                let _ = writeln!(t, "free {s}");
                slots.give(s);
            }
        }
        if phase % 3 == 2 {
            // Drop half of what lived longest.
            let keep = long_lived.split_off(long_lived.len() / 2);
            for s in std::mem::replace(&mut long_lived, keep) {
                let _ = writeln!(t, "free {s}");
                slots.give(s);
            }
        }
    }
    for s in long_lived {
        let _ = writeln!(t, "free {s}");
    }
    t
}

/// The `synthetic-lab` trace, malloc-lab format: `pairs` small/large pairs, then the large ones
/// freed and larger ones allocated in their place, then blocks grown by `r`, then all freed.
pub fn lab_trace(pairs: usize) -> String {
    let mut rng = Rng(0x1AB);
    let mut ops = Vec::new();
    let mut next_id = 0usize;
    let mut id = || {
        next_id += 1;
        next_id - 1
    };
    let mut small = Vec::new();
    let mut large = Vec::new();
    for _ in 0..pairs {
        let s = id();
        ops.push(format!("a {s} {}", rng.range(16, 96)));
        small.push(s);
        let l = id();
        ops.push(format!("a {l} {}", rng.range(300, 500)));
        large.push(l);
    }
    for &l in &large {
        ops.push(format!("f {l}"));
    }
    let mut larger = Vec::new();
    for _ in 0..pairs / 2 {
        let l = id();
        ops.push(format!("a {l} {}", rng.range(520, 800)));
        larger.push(l);
    }
    let mut grown = Vec::new();
    for _ in 0..64 {
        let g = id();
        ops.push(format!("a {g} {}", rng.range(8, 64)));
        grown.push((g, 64u64));
    }
    for step in 0..pairs * 4 {
        let (g, size) = &mut grown[step % 64];
        *size += rng.range(16, 256);
        ops.push(format!("r {g} {size}"));
    }
    for s in small.into_iter().chain(larger) {
        ops.push(format!("f {s}"));
    }
    for (g, _) in grown {
        ops.push(format!("f {g}"));
    }
    // Header: suggested heap size (unused), number of ids, number of ops, weight.
    let mut t = format!("{}\n{next_id}\n{}\n1\n", 20 << 20, ops.len());
    for op in ops {
        t.push_str(&op);
        t.push('\n');
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Checks a trace as the replay driver sees it: every free/realloc names a live slot (the
    /// generators never rely on NULL semantics), every allocation an empty one. Returns the ops
    /// and the peak of live requested bytes.
    fn check(trace: &str, header: usize) -> (usize, u64) {
        let mut live: HashMap<u64, u64> = HashMap::new();
        let (mut ops, mut bytes, mut peak) = (0, 0u64, 0u64);
        let lines: Vec<&str> = trace.lines().collect();
        for line in &lines[header..] {
            let words: Vec<&str> = line.split('#').next().unwrap().split_whitespace().collect();
            if words.is_empty() || words == ["check"] {
                continue;
            }
            let n: Vec<u64> = words[1..].iter().map(|w| w.parse().unwrap()).collect();
            ops += 1;
            let size = match words[0] {
                "malloc" | "a" => Some(n[1]),
                "calloc" => Some(n[1] * n[2]),
                "posix_memalign" | "aligned_alloc" | "memalign" => {
                    assert!(n[1].is_power_of_two() && n[2] % n[1] == 0, "{line}");
                    Some(n[2])
                }
                "realloc" | "r" => {
                    bytes -= live
                        .remove(&n[0])
                        .unwrap_or_else(|| panic!("{line}: not live"));
                    Some(n[1])
                }
                "free" | "f" => {
                    bytes -= live
                        .remove(&n[0])
                        .unwrap_or_else(|| panic!("{line}: not live"));
                    None
                }
                "usable_size" => {
                    assert!(live.contains_key(&n[0]), "{line}");
                    None
                }
                other => panic!("unexpected op {other}"),
            };
            if let Some(size) = size {
                assert!(
                    live.insert(n[0], size).is_none(),
                    "{line}: slot already live"
                );
                bytes += size;
                peak = peak.max(bytes);
            }
        }
        assert!(live.is_empty(), "every block is freed at the end");
        (ops, peak)
    }

    #[test]
    fn mixed_trace_is_well_formed_and_deterministic() {
        let t = mixed_trace(2000);
        assert_eq!(t, mixed_trace(2000));
        let (ops, peak) = check(&t, 0);
        assert!(ops > 16_000 && peak > 0, "{ops} ops, peak {peak}");
    }

    #[test]
    fn recorded_traces_are_found_and_gzip_ones_decompressed() {
        let dir = std::env::temp_dir().join(format!("xtask-traces-{}", std::process::id()));
        let (recorded, out) = (dir.join("recorded"), dir.join("out"));
        std::fs::create_dir_all(&recorded).unwrap();
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(recorded.join("b.trace"), "malloc 0 1\n").unwrap();
        std::fs::write(recorded.join("a.trace"), "free 0\n").unwrap();
        std::fs::write(recorded.join("notes.txt"), "not a trace").unwrap();
        let gz = Command::new("gzip").arg(recorded.join("a.trace")).status();
        assert!(gz.unwrap().success());

        let traces = all(&recorded);
        let names: Vec<&str> = traces.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["synthetic-mixed", "synthetic-lab", "a", "b"]);
        let a = traces[2].materialize(&out).unwrap();
        assert_eq!(a, out.join("a.trace"));
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "free 0\n");
        let b = traces[3].materialize(&out).unwrap();
        assert_eq!(b, recorded.join("b.trace"));
        assert_eq!(traces[2].origin(), "the recorded trace a.trace.gz");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn lab_trace_header_matches_its_ops() {
        let t = lab_trace(500);
        let header: Vec<u64> = t.lines().take(4).map(|l| l.parse().unwrap()).collect();
        let (ops, _) = check(&t, 4);
        assert_eq!(header[2], ops as u64);
        let ids = t.lines().skip(4).filter(|l| l.starts_with("a ")).count();
        assert_eq!(header[1], ids as u64);
    }
}
