//! The commands that check allocators: `run`, `diff` and `shrink` on trace files, `fuzz` on
//! generated traces, and `lab` on a malloc-lab `mm.c`; and what they share (the judge, the
//! isolation, where they keep what they make).

use std::process::ExitCode;

use tagalloc_diff::backend::dylib;
use tagalloc_diff::isolate::Isolation;
use tagalloc_diff::shrink::Budget;
use tagalloc_diff::verdict::{Judge, Verdict};
use tagalloc_diff::{fuzz_so, keep_going, text, trace_file};

use super::{bad, read_file, usage, Args, Bad, Outcome};

/// The judge the command line asks for; the backends loaded once (a shared object that needs
/// more static TLS than glibc reserved makes this process run again with more).
fn judge(a: &Args) -> Result<Judge, Bad> {
    let judge = Judge {
        backend: a.backend.clone(),
        against: a.against.clone(),
        contract: a.contract,
        iso: isolation(a),
        budget: Budget::default(),
    };
    judge
        .preflight()
        .map_err(|e| bad(dylib::reexec_for_static_tls(e)))?;
    Ok(judge)
}

/// How runs are watched: `--hang-limit` as the base limit.
fn isolation(a: &Args) -> Isolation {
    Isolation {
        stall: a.hang_limit.unwrap_or(Isolation::default().stall),
        ..Isolation::default()
    }
}

/// A trace file, with the line of each op.
fn read_input(path: &str) -> Result<keep_going::Input, Bad> {
    let data = trace_file::decompress(read_file(path)?, path).map_err(bad)?;
    let text = std::str::from_utf8(&data).map_err(|_| {
        let parsed = text::parse_bytes(&data).err();
        bad(parsed.map_or_else(|| format!("{path}: not UTF-8"), |e| e.in_file(path)))
    })?;
    let (trace, lines) = text::parse_located(text).map_err(|e| bad(e.in_file(path)))?;
    Ok(keep_going::Input {
        path: path.to_string(),
        trace,
        lines,
    })
}

pub(super) fn run(a: &Args) -> Outcome {
    if a.words.is_empty() {
        return Err(usage("no trace given"));
    }
    let inputs = a
        .words
        .iter()
        .map(|p| read_input(p))
        .collect::<Result<Vec<_>, _>>()?;
    let judge = judge(a)?;
    let save = a
        .save
        .as_ref()
        .map_or_else(|| work_dir().join("minimal"), std::path::PathBuf::from);
    let mut out = std::io::stdout();
    let summary = keep_going::run(&judge, &inputs, &save, true, &mut out).map_err(bad)?;
    println!(
        "\nsummary (contract {}):\n{}",
        judge.contract,
        summary.table()
    );
    Ok(ExitCode::from(u8::from(summary.failed())))
}

/// Where the tool keeps what it makes (minimal traces, built lab objects): `target/tagalloc-diff/`
/// when run where a `target/` directory is (a cargo workspace), else under the temporary directory.
fn work_dir() -> std::path::PathBuf {
    let target = std::path::Path::new("target");
    if target.is_dir() {
        target.join("tagalloc-diff")
    } else {
        std::env::temp_dir().join("tagalloc-diff")
    }
}

pub(super) fn shrink_cmd(a: &Args) -> Outcome {
    let [path] = a.words.as_slice() else {
        return Err(usage("shrink takes one trace"));
    };
    let input = read_input(path)?;
    let judge = judge(a)?;
    match judge.verdict(&input.trace).map_err(bad)? {
        Verdict::Pass => {
            eprintln!("{path}: the trace does not fail; nothing to shrink");
            Ok(ExitCode::SUCCESS)
        }
        Verdict::Skipped(why) => {
            eprintln!("{path}: skipped: {why}");
            Ok(ExitCode::SUCCESS)
        }
        Verdict::Failed(first) => {
            let r = judge.shrink(&first);
            eprintln!(
                "{}: {} [{}]; {} ops shrunk to {}",
                input.place(input.lines.get(first.index).map(|_| first.index)),
                r.failure,
                r.failure.kind(),
                input.trace.len(),
                r.trace.len()
            );
            print!("{}", r.regression());
            Ok(ExitCode::from(1))
        }
    }
}

/// `lab`: a malloc-lab `mm.c` built with our memlib and tested under the lab's contract.
pub(super) fn lab(a: &Args) -> Outcome {
    use tagalloc_diff::lab::{self, driver};
    let Some((path, rest)) = a.words.split_first() else {
        return Err(usage("lab takes the path of an mm.c (or of its directory)"));
    };
    let src = lab::source(std::path::Path::new(path)).map_err(bad)?;
    let key = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        std::fs::canonicalize(&src)
            .unwrap_or(src.clone())
            .hash(&mut h);
        h.finish()
    };
    let dir = match &a.save {
        Some(save) => std::path::Path::new(save).join("build"),
        None => work_dir().join(format!("lab/{key:016x}")),
    };
    let built = lab::build(&src, &dir).map_err(|e| bad(format!("{}: {e}", src.display())))?;
    println!(
        "{}: built {} (mm_checkheap: {}; calloc: {})",
        src.display(),
        built.so,
        if built.checker {
            "called after every op"
        } else {
            "none"
        },
        if built.calloc {
            "tested"
        } else {
            "none, not called"
        }
    );
    let mut inputs = driver::generated(&dir).map_err(bad)?;
    for p in rest {
        inputs.push(read_input(p)?);
    }
    let save = match &a.save {
        Some(save) => std::path::Path::new(save).join("minimal"),
        None => dir.join("minimal"),
    };
    let iso = isolation(a);
    let (summary, table) =
        driver::run(&built, &inputs, &save, iso, &mut std::io::stdout()).map_err(bad)?;
    println!("\nsummary (contract malloc-lab):\n{}", summary.table());
    println!("{table}");
    let valid = table.0.iter().all(|r| r.invalid.is_none());
    println!(
        "fuzzing for {} s under malloc-lab (--time; seed {}):",
        a.time,
        a.seed.unwrap_or(1)
    );
    let plan = fuzz_so::Plan::new(std::time::Duration::from_secs(a.time), a.seed.unwrap_or(1));
    let found = fuzz_so::run(
        &driver::judge(&built, iso),
        &plan,
        &save,
        &mut std::io::stdout(),
    )
    .map_err(bad)?;
    println!(
        "fuzzing: {} traces in {:.1} s, {} distinct failures",
        found.runs,
        found.secs,
        found.signatures.len()
    );
    Ok(ExitCode::from(u8::from(
        !valid || !found.signatures.is_empty(),
    )))
}

/// `fuzz`: random traces on one backend for `--time` seconds, every new failure shrunk and saved.
pub(super) fn fuzz(a: &Args) -> Outcome {
    if !a.words.is_empty() {
        return Err(usage("fuzz takes no trace (it makes its own)"));
    }
    let judge = judge(a)?;
    let save = a
        .save
        .as_ref()
        .map_or_else(|| work_dir().join("fuzz"), std::path::PathBuf::from);
    let seed = a.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let mut plan = fuzz_so::Plan::new(std::time::Duration::from_secs(a.time), seed);
    plan.first = a.first;
    plan.blind = a.blind;
    if let Some(dir) = &a.corpus {
        let (traces, left_out) =
            fuzz_so::corpus::read_dir(std::path::Path::new(dir)).map_err(bad)?;
        for name in left_out {
            println!("{name}: left out of the corpus (misuse, fault or thread ops)");
        }
        plan.seeds = traces;
    }
    let (counters, modules) = fuzz_so::coverage::of(&judge.backend).map_err(bad)?.len();
    let feedback = if plan.blind {
        "none (blind)".to_string()
    } else if counters > 0 {
        let s = if modules == 1 { "" } else { "s" };
        format!("outcomes and coverage ({counters} counters in {modules} instrumented module{s})")
    } else {
        "outcomes (no -fsanitize=fuzzer-no-link coverage)".to_string()
    };
    // A differential's feedback is the backend under test's (see `fuzz_so`'s docs).
    let what = match &judge.against {
        Some(reference) => format!("{} against {reference}", judge.backend),
        None => judge.backend.to_string(),
    };
    println!(
        "fuzzing {what} under contract {} for {} s (seed {seed}; {} corpus traces given; \
         feedback: {feedback}); minimal traces go to {}",
        judge.contract,
        a.time,
        plan.seeds.len(),
        save.display()
    );
    let found = fuzz_so::run(&judge, &plan, &save, &mut std::io::stdout()).map_err(bad)?;
    println!(
        "\n{} traces in {:.1} s ({:.0} a second; {:.0} a second outside the {:.1} s of \
         shrinking; {:.0} ops a trace); corpus {} traces, {} features ({} of coverage); {} \
         distinct failures",
        found.runs,
        found.secs,
        found.runs as f64 / found.secs.max(1e-9),
        found.runs as f64 / (found.secs - found.shrink_secs).max(1e-9),
        found.shrink_secs,
        found.ops as f64 / found.runs.max(1) as f64,
        found.kept,
        found.features.0,
        found.features.1,
        found.signatures.len()
    );
    for (sig, (path, hits, at)) in &found.signatures {
        println!(
            "  {sig}: {hits} traces, first at {at:.1} s: {}",
            path.display()
        );
    }
    Ok(ExitCode::from(u8::from(!found.signatures.is_empty())))
}
