//! The fuzz targets: found in `fuzz/fuzz_targets/` (one file each), and what their inputs are, so
//! a crash can be turned into a readable trace.

use std::path::Path;

/// The order the real targets run in (the order of `tagalloc_diff::targets::Target::ALL`).
const ORDER: [&str; 7] = [
    "ops",
    "diff",
    "misuse",
    "faults",
    "trace_parse",
    "locked",
    "threads",
];

/// Test fixtures: built with the others, run only when named (`fuzz/fuzz_targets/selftest_*.rs`).
const FIXTURE_PREFIX: &str = "selftest_";

/// How a tagalloc-diff trace is checked again outside the fuzz build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// `tagalloc-diff run` / `shrink`: on tagalloc, shadow model and heap walker.
    Run,
    /// `tagalloc-diff run --backend locked` / `shrink --backend locked`: the same on the locked
    /// heap with its thread caches.
    RunLocked,
    /// `tagalloc-diff diff` / `shrink --against libc`: differential against libc.
    Diff,
    /// Nothing outside the fuzz build reproduces it (a test fixture).
    None,
}

/// What a target's input is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// Fuzz bytes: `tagalloc-diff decode --target DECODE_AS` prints them as a trace.
    Bytes {
        /// The `--target` of `tagalloc-diff decode` (`None`: keep every op).
        decode_as: Option<&'static str>,
        /// How the decoded trace is shrunk and replayed.
        check: Check,
    },
    /// Text already (`trace_parse`).
    Text,
}

/// What the input of target `name` is.
pub fn input(name: &str) -> Input {
    let bytes = |decode_as, check| Input::Bytes { decode_as, check };
    match name {
        "trace_parse" => Input::Text,
        "diff" => bytes(Some("diff"), Check::Diff),
        "ops" => bytes(Some("ops"), Check::Run),
        "misuse" => bytes(Some("misuse"), Check::Run),
        "faults" => bytes(Some("faults"), Check::Run),
        "locked" => bytes(Some("locked"), Check::RunLocked),
        "threads" => bytes(Some("threads"), Check::RunLocked),
        // The fixture decodes its bytes as `ops` does.
        "selftest_crash" => bytes(Some("ops"), Check::None),
        _ => bytes(None, Check::None),
    }
}

/// Whether `name` is a test fixture rather than a real target.
pub fn is_fixture(name: &str) -> bool {
    name.starts_with(FIXTURE_PREFIX)
}

/// Every target in `fuzz/fuzz_targets/`, real targets first in [`ORDER`], then others by name.
pub fn discover(fuzz_dir: &Path) -> Result<Vec<String>, String> {
    let dir = fuzz_dir.join("fuzz_targets");
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut names: Vec<String> = entries
        .filter_map(|e| {
            let path = e.ok()?.path();
            let stem = path.file_stem()?.to_str()?.to_string();
            (path.extension()? == "rs").then_some(stem)
        })
        .collect();
    let rank = |n: &String| ORDER.iter().position(|o| o == n).unwrap_or(ORDER.len());
    names.sort_by(|a, b| rank(a).cmp(&rank(b)).then(a.cmp(b)));
    if names.is_empty() {
        return Err(format!("{}: no fuzz targets", dir.display()));
    }
    Ok(names)
}

/// The targets to fuzz: those `named` (each must exist), or every real target.
pub fn select(all: &[String], named: &[String]) -> Result<Vec<String>, String> {
    if named.is_empty() {
        return Ok(all.iter().filter(|n| !is_fixture(n)).cloned().collect());
    }
    for n in named {
        if !all.contains(n) {
            return Err(format!(
                "unknown target `{n}` (targets: {})",
                all.iter()
                    .filter(|n| !is_fixture(n))
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    Ok(named.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repository_targets_in_order() {
        let all = discover(&crate::root().join("fuzz")).unwrap();
        // The real targets in ORDER, then the fixtures (the list grows; only its shape is fixed).
        assert_eq!(all[..ORDER.len()], ORDER);
        assert!(all[ORDER.len()..].iter().all(|n| is_fixture(n)), "{all:?}");
        assert!(all.iter().any(|n| n == "selftest_crash"), "{all:?}");
        let default = select(&all, &[]).unwrap();
        assert_eq!(default, ORDER);
        let named = select(&all, &["selftest_crash".into()]).unwrap();
        assert_eq!(named, ["selftest_crash"]);
        let err = select(&all, &["nope".into()]).unwrap_err();
        assert!(err.contains("unknown target `nope`") && !err.contains("selftest"));
    }

    #[test]
    fn inputs() {
        assert_eq!(input("trace_parse"), Input::Text);
        assert_eq!(
            input("diff"),
            Input::Bytes {
                decode_as: Some("diff"),
                check: Check::Diff
            }
        );
        assert!(is_fixture("selftest_crash") && !is_fixture("ops"));
    }
}
