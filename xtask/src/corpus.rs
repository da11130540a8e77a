//! `cargo xtask corpus`: the fuzz seed inputs, generated from the readable traces.
//!
//! Every `.trace` (or gzip-compressed `.trace.gz`) in `corpus/seeds/` and `corpus/regressions/` is
//! parsed and encoded with the suite's
//! encoder, and written as `target/fuzz-seeds/TARGET/seed-NAME` for each byte-input target that
//! decodes the encoding back to the same trace (a clean trace seeds every such target; a misuse
//! trace seeds `misuse`; a faults trace seeds `faults`). `trace_parse` gets the text itself, and
//! alone gets a `trace_parse-*` regression (text that once broke the parser, which need not parse).
//!
//! The seeds are generated files, so they live under `target/`, never in the committed corpus:
//! `cargo xtask fuzz` regenerates them before it fuzzes and hands them to libFuzzer as a second,
//! read-only corpus directory. Running this twice writes the same files; a trace removed since
//! the last run loses its seeds.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tagalloc_diff::targets::Target;
use tagalloc_diff::{bytes, text};

const USAGE: &str = "\
usage: cargo xtask corpus

Regenerates the fuzz seed inputs from the readable traces in corpus/seeds/ and corpus/regressions/
into target/fuzz-seeds/TARGET/ (generated files: nothing under corpus/ is written). `cargo xtask
fuzz` does this itself before fuzzing and reads them beside corpus/TARGET/.

options:
  -h, --help  this text

exit status: 0 done, 2 a trace does not parse (FILE:LINE: what is wrong) or a usage error
";

/// `cargo xtask corpus ARGS`.
pub fn run(args: &[String]) -> ExitCode {
    match args.first().map(String::as_str) {
        None => {}
        Some("-h" | "--help") => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some(a) => {
            eprintln!("cargo xtask corpus: unexpected argument `{a}`\n\n{USAGE}");
            return ExitCode::from(2);
        }
    }
    let root = crate::root();
    match generate(&root) {
        Ok((n, dir)) => {
            let shown = dir.strip_prefix(&root).unwrap_or(&dir);
            println!(
                "cargo xtask corpus: wrote {n} seed inputs under {}",
                shown.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cargo xtask corpus: {e}");
            ExitCode::from(2)
        }
    }
}

/// Where the seeds of the repository at `root` go.
pub fn seeds_dir(root: &Path) -> PathBuf {
    root.join("target").join("fuzz-seeds")
}

/// Regenerates every seed of the repository at `root`; returns how many were written and where.
pub fn generate(root: &Path) -> Result<(usize, PathBuf), String> {
    let out = seeds_dir(root);
    if out.exists() {
        fs::remove_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    }
    let corpus = root.join("corpus");
    let mut written = 0;
    for dir in ["seeds", "regressions"] {
        let mut traces: Vec<_> = match fs::read_dir(corpus.join(dir)) {
            Ok(entries) => entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| stem(p).is_some())
                .collect(),
            Err(_) => continue,
        };
        traces.sort();
        for path in traces {
            written += seed(root, &out, &path)?;
        }
    }
    Ok((written, out))
}

fn write(out: &Path, target: &str, stem: &str, data: &[u8]) -> Result<(), String> {
    let dir = out.join(target);
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let file = dir.join(format!("seed-{stem}"));
    fs::write(&file, data).map_err(|e| format!("{}: {e}", file.display()))
}

/// The name of a trace file without `.trace` or `.trace.gz`; `None` for any other file.
fn stem(path: &Path) -> Option<&str> {
    let name = path.file_name()?.to_str()?;
    name.strip_suffix(".trace")
        .or_else(|| name.strip_suffix(".trace.gz"))
}

/// Writes the seeds of the trace at `path`; returns how many.
fn seed(root: &Path, out: &Path, path: &Path) -> Result<usize, String> {
    let shown = path
        .strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string();
    let source = fs::read(path).map_err(|e| format!("{shown}: {e}"))?;
    let source = tagalloc_diff::trace_file::decompress(source, &shown)?;
    let stem = stem(path).unwrap_or("trace");
    if stem.starts_with("trace_parse-") {
        // Text that once broke the parser: it seeds `trace_parse` only, as it is.
        write(out, Target::TraceParse.name(), stem, &source)?;
        return Ok(1);
    }
    let trace = text::parse_bytes(&source).map_err(|e| e.in_file(&shown))?;
    let encoded = bytes::encode(&trace);
    let mut n = 0;
    for target in Target::ALL {
        // Text targets get the text; byte targets the encoding, where it decodes to this trace.
        let data = match target.dialect() {
            None => &source,
            Some(_) if target.decode(&encoded) == trace => &encoded,
            Some(_) => continue,
        };
        write(out, target.name(), stem, data)?;
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn seeds_go_under_target_and_decode_to_their_trace() {
        let root = std::env::temp_dir().join(format!("xtask-seeds-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let seeds = root.join("corpus").join("seeds");
        fs::create_dir_all(&seeds).unwrap();
        fs::write(seeds.join("clean.trace"), "malloc 0 24\nfree 0\n").unwrap();
        fs::write(seeds.join("bad.trace-not"), "not a trace").unwrap();
        fs::write(seeds.join("packed.trace"), "malloc 0 40\n").unwrap();
        let gz = Command::new("gzip")
            .arg(seeds.join("packed.trace"))
            .status();
        assert!(gz.unwrap().success());
        fs::write(
            seeds.join("misuse.trace"),
            "malloc 0 8\nfree 0\nmisuse free freed 0\n",
        )
        .unwrap();
        let (n, out) = generate(&root).unwrap();
        assert_eq!(out, root.join("target").join("fuzz-seeds"));
        let ops = fs::read(out.join("ops").join("seed-clean")).unwrap();
        let clean = text::parse("malloc 0 24\nfree 0\n").unwrap();
        assert_eq!(Target::Ops.decode(&ops), clean);
        assert!(out.join("misuse").join("seed-misuse").is_file());
        assert_eq!(
            fs::read_to_string(out.join("trace_parse").join("seed-packed")).unwrap(),
            "malloc 0 40\n"
        );
        assert!(!out.join("ops").join("seed-misuse").exists());
        assert_eq!(
            fs::read_to_string(out.join("trace_parse").join("seed-misuse")).unwrap(),
            "malloc 0 8\nfree 0\nmisuse free freed 0\n"
        );
        // Nothing written beside the traces, and a second run writes the same.
        assert_eq!(fs::read_dir(&seeds).unwrap().count(), 4);
        assert_eq!(generate(&root).unwrap().0, n);

        fs::write(seeds.join("broken.trace"), "malloc 0\n").unwrap();
        let e = generate(&root).unwrap_err();
        assert!(e.starts_with("corpus/seeds/broken.trace:1: "), "{e}");
        fs::remove_dir_all(&root).unwrap();
    }
}
