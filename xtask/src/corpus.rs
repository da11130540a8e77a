//! `cargo xtask corpus`: the fuzz seed corpora, generated from readable traces.
//!
//! Every `.trace` in `corpus/seeds/` and `corpus/regressions/` is parsed and encoded with the suite's
//! encoder into a fuzz input that decodes back to the same trace, and written as
//! `corpus/TARGET/seed-NAME` for each target whose dialect holds every op of the trace: a clean
//! trace seeds `ops`, `diff`, `misuse` and `faults`; a misuse trace seeds `misuse`; a faults trace
//! seeds `faults`. `trace_parse` gets the text itself, and alone gets a `trace_parse-*` regression
//! (text that once broke the parser, which need not parse). Running it twice writes the same files.

use std::fs;
use std::path::Path;
use std::process::ExitCode;
use tagalloc_diff::op::Dialect;
use tagalloc_diff::{bytes, text};

/// The targets a trace of `dialect` seeds (besides `trace_parse`).
fn targets_for(dialect: Dialect) -> &'static [&'static str] {
    match dialect {
        Dialect::Clean => &["ops", "diff", "misuse", "faults", "locked", "threads"],
        Dialect::Misuse => &["misuse"],
        Dialect::Faults => &["faults"],
        Dialect::Threads => &["threads"],
        Dialect::All => &[],
    }
}

pub fn run(args: &[String]) -> ExitCode {
    if let Some(a) = args.first() {
        eprintln!("cargo xtask corpus: unexpected argument `{a}`\nusage: cargo xtask corpus");
        return ExitCode::from(2);
    }
    let corpus = crate::root().join("corpus");
    let mut written = 0;
    for dir in ["seeds", "regressions"] {
        let mut traces: Vec<_> = match fs::read_dir(corpus.join(dir)) {
            Ok(entries) => entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "trace"))
                .collect(),
            Err(_) => continue,
        };
        traces.sort();
        for path in traces {
            match seed(&corpus, &path) {
                Ok(n) => written += n,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(2);
                }
            }
        }
    }
    println!("cargo xtask corpus: wrote {written} seed inputs under corpus/");
    ExitCode::SUCCESS
}

fn seed(corpus: &Path, path: &Path) -> Result<usize, String> {
    let shown = path
        .strip_prefix(corpus.parent().unwrap_or(corpus))
        .unwrap_or(path);
    let source = fs::read(path).map_err(|e| format!("{}: {e}", shown.display()))?;
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("trace");
    if stem.starts_with("trace_parse-") {
        // Text that once broke the parser: it seeds `trace_parse` only, as it is.
        let file = corpus.join("trace_parse").join(format!("seed-{stem}"));
        fs::write(&file, &source).map_err(|e| format!("{}: {e}", file.display()))?;
        return Ok(1);
    }
    let source =
        String::from_utf8(source).map_err(|_| format!("{}: not UTF-8 text", shown.display()))?;
    let trace = text::parse(&source).map_err(|e| e.in_file(&shown.display().to_string()))?;
    let encoded = bytes::encode(&trace);
    let mut n = 0;
    let mut write = |target: &str, data: &[u8]| -> Result<(), String> {
        let dir = corpus.join(target);
        fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let file = dir.join(format!("seed-{stem}"));
        fs::write(&file, data).map_err(|e| format!("{}: {e}", file.display()))?;
        n += 1;
        Ok(())
    };
    for target in targets_for(trace.dialect()) {
        write(target, &encoded)?;
    }
    write("trace_parse", source.as_bytes())?;
    Ok(n)
}
