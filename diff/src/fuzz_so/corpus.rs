//! The fuzzer's corpus: the traces kept because each showed a feature ([`super::features`]) that no
//! trace before it showed, and the features seen so far. The loop mutates entries picked from it.
//!
//! It starts from the decodes of a few random draws and, with `--corpus DIR`, the user's trace
//! files ([`read_dir`]); it lives for one run and is not written back (the failures are, as
//! readable traces).

use std::collections::HashSet;
use std::path::Path;

use super::features::COVERAGE_BIT;
use crate::mutate::Rng;
use crate::op::{Dialect, Trace};
use crate::{text, trace_file};

/// The traces kept and the features seen.
#[derive(Debug, Default)]
pub struct Corpus {
    traces: Vec<Trace>,
    seen: HashSet<u64>,
    coverage: usize,
}

impl Corpus {
    /// Notes `features` of `trace`; keeps the trace if one of them is new. True if kept.
    pub fn offer(&mut self, trace: &Trace, features: &[u64]) -> bool {
        let mut new = false;
        for &f in features {
            if self.seen.insert(f) {
                new = true;
                self.coverage += usize::from(f & COVERAGE_BIT != 0);
            }
        }
        if new {
            self.traces.push(trace.clone());
        }
        new
    }

    /// An entry, uniformly; `None` while the corpus is empty.
    pub fn pick(&self, rng: &mut Rng) -> Option<&Trace> {
        (!self.traces.is_empty()).then(|| &self.traces[rng.below(self.traces.len())])
    }

    /// Traces kept.
    pub fn len(&self) -> usize {
        self.traces.len()
    }

    /// Whether no trace is kept.
    pub fn is_empty(&self) -> bool {
        self.traces.is_empty()
    }

    /// Features seen, and how many of them are coverage counters'.
    pub fn features(&self) -> (usize, usize) {
        (self.seen.len(), self.coverage)
    }
}

/// The clean traces of the `*.trace` and `*.trace.gz` files in `dir` (not its subdirectories),
/// by name, and the names of those left out (traces with misuse, fault or thread ops, which a
/// shared object does not run). `Err`: the directory or a file cannot be read, a trace does not
/// parse (`FILE:LINE: what is wrong`), or there is no trace file at all (a mistyped directory
/// would otherwise start the run from random draws alone, silently).
pub fn read_dir(dir: &Path) -> Result<(Vec<Trace>, Vec<String>), String> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.to_string_lossy();
            p.is_file() && (name.ends_with(".trace") || name.ends_with(".trace.gz"))
        })
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(format!(
            "{}: no *.trace or *.trace.gz file in it for the corpus",
            dir.display()
        ));
    }
    let (mut traces, mut left_out) = (Vec::new(), Vec::new());
    for p in paths {
        let data = trace_file::read(&p)?;
        let name = p.display().to_string();
        let trace = text::parse_bytes(&data).map_err(|e| e.in_file(&name))?;
        if trace.dialect() == Dialect::Clean {
            traces.push(trace);
        } else {
            left_out.push(name);
        }
    }
    Ok((traces, left_out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::Op;

    #[test]
    fn only_a_new_feature_keeps_a_trace() {
        let t = Trace::new(vec![Op::Malloc { slot: 0, size: 8 }]);
        let mut c = Corpus::default();
        assert!(c.offer(&t, &[1, 2]));
        assert!(!c.offer(&t, &[2, 1]));
        assert!(c.offer(&t, &[3 | COVERAGE_BIT]));
        assert_eq!((c.len(), c.features()), (2, (3, 1)));
        assert!(c.pick(&mut Rng::new(1)).is_some());
        assert!(Corpus::default().pick(&mut Rng::new(1)).is_none());
    }

    #[test]
    fn read_dir_takes_the_clean_seeds_and_names_the_rest() {
        let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus/seeds");
        let (traces, left_out) = read_dir(&seeds).unwrap();
        assert!(!traces.is_empty());
        assert!(traces.iter().all(|t| t.dialect() == Dialect::Clean));
        assert!(
            left_out.iter().any(|n| n.contains("faults")),
            "{left_out:?}"
        );
    }
}
