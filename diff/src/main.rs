//! `tagalloc-diff`: run traces on an allocator and judge every result.
//!
//! Exit status: 0 when every trace ran clean, 1 when an oracle fired (the report, with a minimal
//! trace, goes to stdout), 2 on bad input (usage, or `FILE:LINE: what is wrong`, on stderr).

use std::io::{IsTerminal, Read, Write};
use std::process::ExitCode;
use std::time::Instant;

use tagalloc_diff::backend::libc::LibcBackend;
use tagalloc_diff::backend::tagalloc::TagallocBackend;
use tagalloc_diff::backend::Spec;
use tagalloc_diff::op::{Dialect, Op, Trace, SIZES};
use tagalloc_diff::shadow::rules::Contract;
use tagalloc_diff::targets::Target;
use tagalloc_diff::{bytes, differ, harness_bench, runner, space, text, trace_file, Report};

#[path = "cli/check.rs"]
mod check;
#[path = "cli/sancov.rs"]
mod sancov;
use check::{fuzz, lab, run, shrink_cmd};

const USAGE: &str = "\
usage:
  tagalloc-diff run    [--backend B] [CHECK] TRACE...     check traces on one backend
  tagalloc-diff diff   [--backend B] [--against B2] [CHECK] TRACE... differential (default
                                                          tagalloc vs libc)
  tagalloc-diff shrink [--backend B] [--against B2] [CHECK] TRACE  print the minimal failing trace
  tagalloc-diff lab    [CHECK] [--time S] MM.C|DIR [TRACE...]  a malloc-lab allocator: built with
                                                          our memlib, checked under malloc-lab
                                                          on lab-style traces (and TRACEs),
                                                          timed, then fuzzed for S seconds
  tagalloc-diff fuzz   [--backend B] [--against B2] [CHECK] [--time S] [--seed N] [--first]
                       [--corpus DIR] [--blind]           traces for S seconds (default 10),
                                                          mutated from a corpus (random draws,
                                                          DIR's traces) kept by feedback (each
                                                          call's outcome; edge coverage of an
                                                          object built with clang
                                                          -fsanitize=fuzzer-no-link); each new
                                                          failure shrunk and saved under --save
                                                          (--first: stop after the first;
                                                          --blind: random draws, no feedback;
                                                          --against: a differential, with B's
                                                          feedback)
  tagalloc-diff decode [--target T] FILE                  print fuzz bytes as a text trace
  tagalloc-diff encode [-o OUT] TRACE                     write a text trace as fuzz bytes
  tagalloc-diff bench  [--ops N] [--runs R] [--backend B] operations per second, full oracle stack;
                                                          with B, also B's calls/s and space
                                                          (peak live, footprint) beside libc's
                                                          and tagalloc's
  tagalloc-diff bench  --harness                          exec/s per fuzz target on its corpus, replay ops/s
  tagalloc-diff stress [--threads N] [--time S] [--config 'NAME=V ...']  the locked heap, N threads at once
B is tagalloc, locked (the locked heap with thread caches), libc, or the path of a shared object
exporting malloc, free, realloc (calloc and the aligned calls if it has them).
CHECK options:
  --contract C      the rules: glibc (default), posix (what POSIX and C17 require), malloc-lab
  --hang-limit S    seconds an op may take before it is a hang (default 2; plus 16 a GiB asked)
  --save DIR        where run, diff and lab save minimal traces (default: target/tagalloc-diff/
                    minimal where ./target is, else in the temporary directory)
run and diff run every trace to its end, report every failure at its FILE:LINE, shrink one trace
per signature (failure kind x op kind x size class) and end with a summary table.
A trace the backend cannot run (misuse or faults ops off tagalloc) is skipped, saying why.
T is ops, diff, misuse, faults, trace_parse, locked, threads, or all (keep every op): the target
whose input FILE is, as it decodes it. Without --target, decode takes it from the directory FILE
is in (fuzz/artifacts/T/..., corpus/T/...) and refuses to guess otherwise.
A TRACE is a text trace, gzip-compressed or not (corpus/recorded/*.trace.gz); - is standard input.
encode writes binary, so without -o it refuses to write to a terminal.

options:
  --check L      how much run, diff and shrink check between checkpoints: touched (the default,
                 as the fuzz targets and cargo test: what each op touched, the whole heap every
                 max(64, live blocks) ops), every (the whole heap after every op), or end (only
                 at `check` ops); the whole heap is always walked at the end of a trace
  --progress     show ops done, ops/s and live blocks on stderr once a second (unasked: for
                 traces of 100,000 ops or more when stderr is a terminal)
  -h, --help     this text (also after a command: `tagalloc-diff run --help`)
  -V, --version  the version
  --             every argument after it is a file, even one starting with -

Exit status: 0 clean, 1 an oracle fired, 2 bad input or usage.";

/// Bad input: exit 2 with this message (and the usage too, for a malformed command line).
struct Bad {
    message: String,
    usage: bool,
}

fn bad(message: String) -> Bad {
    Bad {
        message,
        usage: false,
    }
}

fn usage(message: impl Into<String>) -> Bad {
    Bad {
        message: message.into(),
        usage: true,
    }
}

type Outcome = Result<ExitCode, Bad>;

/// How `decode` reads its bytes: as one target does, or keeping every op.
#[derive(Clone, Copy)]
enum DecodeAs {
    Target(Target),
    All,
}

/// What the command line asks for besides a command.
enum Parsed {
    Args(Box<Args>),
    Help,
}

struct Args {
    words: Vec<String>,
    backend: Spec,
    against: Option<Spec>,
    target: Option<DecodeAs>,
    out: Option<String>,
    ops: usize,
    runs: usize,
    threads: usize,
    time: u64,
    config: Option<String>,
    harness: bool,
    contract: Contract,
    hang_limit: Option<std::time::Duration>,
    save: Option<String>,
    seed: Option<u64>,
    first: bool,
    blind: bool,
    corpus: Option<String>,
}

fn parse_args(argv: &[String]) -> Result<Parsed, Bad> {
    let mut a = Args {
        words: Vec::new(),
        backend: Spec::Tagalloc,
        against: None,
        target: None,
        out: None,
        ops: 0,
        runs: 5,
        threads: 4,
        time: 10,
        config: None,
        harness: false,
        contract: Contract::Glibc,
        hang_limit: None,
        save: None,
        seed: None,
        first: false,
        blind: false,
        corpus: None,
    };
    let mut it = argv.iter();
    while let Some(w) = it.next() {
        if w == "--" {
            a.words.extend(it.cloned());
            break;
        }
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| usage(format!("{name} needs a value")))
        };
        match w.as_str() {
            "--backend" => a.backend = Spec::parse(&value("--backend")?),
            "--against" => a.against = Some(Spec::parse(&value("--against")?)),
            "-h" | "--help" => return Ok(Parsed::Help),
            "--target" => {
                let t = value("--target")?;
                a.target = Some(match t.as_str() {
                    "all" => DecodeAs::All,
                    _ => DecodeAs::Target(
                        Target::from_name(&t)
                            .ok_or_else(|| usage(format!("unknown target `{t}`")))?,
                    ),
                });
            }
            "-o" => a.out = Some(value("-o")?),
            "--save" => a.save = Some(value("--save")?),
            "--first" => a.first = true,
            "--blind" => a.blind = true,
            "--corpus" => a.corpus = Some(value("--corpus")?),
            "--seed" => {
                let v = value("--seed")?;
                let n = v
                    .parse()
                    .map_err(|_| usage(format!("--seed: not a number: `{v}`")))?;
                a.seed = Some(n);
            }
            "--contract" => {
                let c = value("--contract")?;
                a.contract = Contract::from_name(&c).ok_or_else(|| {
                    usage(format!("unknown contract `{c}` (glibc, posix, malloc-lab)"))
                })?;
            }
            "--hang-limit" => {
                let v = value("--hang-limit")?;
                let secs: f64 = v
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s > 0.0 && *s < 1e6)
                    .ok_or_else(|| {
                        usage(format!("--hang-limit: not a number of seconds: `{v}`"))
                    })?;
                a.hang_limit = Some(std::time::Duration::from_secs_f64(secs));
            }
            "--config" => a.config = Some(value("--config")?),
            "--progress" => runner::progress::request(),
            "--harness" => a.harness = true,
            "--check" => {
                let c = value("--check")?;
                let level = runner::Check::from_name(&c)
                    .ok_or_else(|| usage(format!("--check {c}: not every, touched or end")))?;
                runner::set_level(level);
            }
            "--ops" | "--runs" | "--threads" | "--time" => {
                let v = value(w)?;
                let n = v
                    .parse()
                    .map_err(|_| usage(format!("{w}: not a number: `{v}`")))?;
                match w.as_str() {
                    "--ops" => a.ops = n,
                    "--runs" => a.runs = n.max(1),
                    "--threads" => a.threads = n.clamp(1, 64),
                    _ => a.time = n as u64,
                }
            }
            s if s.starts_with('-') && s != "-" => {
                return Err(usage(format!("unknown option `{s}`")))
            }
            _ => a.words.push(w.clone()),
        }
    }
    Ok(Parsed::Args(Box::new(a)))
}

fn read_file(path: &str) -> Result<Vec<u8>, Bad> {
    if path == "-" {
        let mut v = Vec::new();
        std::io::stdin()
            .read_to_end(&mut v)
            .map_err(|e| bad(format!("-: {e}")))?;
        return Ok(v);
    }
    std::fs::read(path).map_err(|e| bad(format!("{path}: {e}")))
}

/// A text trace, gzip-compressed or not.
fn read_trace(path: &str) -> Result<Trace, Bad> {
    let data = trace_file::decompress(read_file(path)?, path).map_err(bad)?;
    text::parse_bytes(&data).map_err(|e| bad(e.in_file(path)))
}

/// The target whose input `path` is, from the directory it is in: libFuzzer writes
/// `fuzz/artifacts/TARGET/crash-...` and the corpora are `corpus/TARGET/`.
fn target_of(path: &str) -> Option<Target> {
    let dir = std::path::Path::new(path).parent()?.file_name()?;
    Target::from_name(dir.to_str()?)
}

fn decode(a: &Args) -> Outcome {
    let [path] = a.words.as_slice() else {
        return Err(usage("decode takes one file"));
    };
    let data = read_file(path)?;
    let target = a.target.or_else(|| target_of(path).map(DecodeAs::Target));
    let trace = match target {
        Some(DecodeAs::Target(t)) => t.decode(&data),
        Some(DecodeAs::All) => bytes::decode(&data, Dialect::All),
        None => {
            return Err(usage(format!(
                "{path}: which target's input is it? Its directory is not named after a target \
                 (as fuzz/artifacts/TARGET/ and corpus/TARGET/ are), and each target decodes \
                 bytes its own way: pass --target T (or --target all to keep every op)"
            )))
        }
    };
    print!("{trace}");
    Ok(ExitCode::SUCCESS)
}

fn encode(a: &Args) -> Outcome {
    let [path] = a.words.as_slice() else {
        return Err(usage("encode takes one trace"));
    };
    let data = bytes::encode(&read_trace(path)?);
    match &a.out {
        Some(out) => std::fs::write(out, &data).map_err(|e| bad(format!("{out}: {e}")))?,
        None if std::io::stdout().is_terminal() => {
            return Err(usage(
                "encode writes binary fuzz bytes: not to a terminal; give -o FILE or redirect \
                 standard output",
            ))
        }
        None => std::io::stdout()
            .write_all(&data)
            .map_err(|e| bad(format!("stdout: {e}")))?,
    }
    Ok(ExitCode::SUCCESS)
}

/// A realistic trace for measuring: 256 slots, mostly small sizes, about as many frees as
/// allocations.
fn bench_trace(n: usize, mut seed: u64) -> Trace {
    let mut next = move || {
        seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) as usize
    };
    let small: Vec<usize> = SIZES.iter().copied().filter(|&s| s <= 4096).collect();
    let ops = (0..n)
        .map(|_| {
            let slot = next() % 256;
            let size = if next() % 16 == 0 {
                SIZES[next() % 60]
            } else {
                small[next() % small.len()]
            };
            match next() % 20 {
                0..=8 => Op::Malloc { slot, size },
                9..=16 => Op::Free { slot },
                17..=18 => Op::Realloc { slot, size },
                _ => Op::Calloc {
                    slot,
                    count: 1 + next() % 8,
                    size: size / 8,
                },
            }
        })
        .collect();
    Trace::new(ops)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn bench(a: &Args) -> Outcome {
    if a.harness {
        let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus");
        harness_bench::print(&corpus, std::time::Duration::from_secs(3)).map_err(bad)?;
        return Ok(ExitCode::SUCCESS);
    }
    let sizes = if a.ops > 0 {
        vec![a.ops]
    } else {
        vec![100, 10_000]
    };
    println!("{:>8} {:>24} {:>14} {:>6}", "ops", "run", "ops/s", "runs");
    for &n in &sizes {
        // Short traces are repeated so each measurement lasts long enough to time.
        let reps = (20_000 / n).max(1);
        let traces: Vec<Trace> = (0..reps as u64).map(|s| bench_trace(n, s)).collect();
        let measure = |name: &str, f: &dyn Fn(&Trace) -> Result<(), Report>| -> Result<(), Bad> {
            let mut rates = Vec::new();
            for _ in 0..a.runs {
                let t0 = Instant::now();
                for t in &traces {
                    f(t).map_err(|r| bad(format!("benchmark trace failed:\n{r}")))?;
                }
                rates.push((n * reps) as f64 / t0.elapsed().as_secs_f64());
            }
            println!("{n:>8} {name:>24} {:>14.0} {:>6}", median(rates), a.runs);
            Ok(())
        };
        let tagalloc = || {
            Spec::Tagalloc
                .open(&Trace::default())
                .expect("tagalloc backend")
        };
        measure("tagalloc", &|t| runner::run(tagalloc(), t))?;
        measure("tagalloc, walker off", &|t| {
            let mut b = TagallocBackend::reserved();
            b.set_walker(false);
            runner::run(b, t)
        })?;
        measure("libc", &|t| runner::run(LibcBackend::new(), t))?;
        measure("tagalloc vs libc", &|t| {
            differ::diff(tagalloc(), LibcBackend::new(), t)
        })?;
        if a.backend != Spec::Tagalloc {
            bench_space(&a.backend, n, &traces)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `bench --backend B`: B's calls a second and space beside libc's and tagalloc's, on the same
/// traces: the calls alone, no shadow, each trace in a forked child ([`space::measure_any`]).
/// Peak live is the most payload live at once; footprint, how far the child's resident memory
/// had grown at that moment; both the median over the traces, as is their ratio. Memory a heap
/// already held in this process (libc's, tagalloc's kept private break) and reuses does not
/// grow the child, so for those two the footprint is a lower bound; a shared object starts from
/// its pristine state, so its footprint is all its own.
fn bench_space(backend: &Spec, n: usize, traces: &[Trace]) -> Result<(), Bad> {
    let mut specs = vec![backend.clone(), Spec::Libc, Spec::Tagalloc];
    specs.dedup();
    println!(
        "{:>8} {:>24} {:>14} {:>12} {:>12} {:>6}   (calls alone, no shadow; >: at least)",
        "ops", "backend", "calls/s", "peak live", "footprint", "util"
    );
    for spec in specs {
        let limit = std::time::Duration::from_secs(60);
        let (mut secs, mut calls) = (0.0, 0);
        let (mut peaks, mut prints, mut utils) = (Vec::new(), Vec::new(), Vec::new());
        for t in traces {
            let m = space::measure_any(&|| spec.open(t).ok(), t, limit)
                .ok_or_else(|| bad(format!("{spec} crashed or hung on a benchmark trace")))?;
            (secs, calls) = (secs + m.secs, calls + m.ops);
            peaks.push(m.peak_payload as f64);
            prints.push(m.heap_at_peak as f64);
            utils.push(m.util().unwrap_or(0.0));
        }
        let name = spec.to_string();
        let name = &name[name.len().saturating_sub(24)..];
        let bound = if spec == *backend { " " } else { ">" };
        println!(
            "{n:>8} {name:>24} {:>14.0} {:>12.0} {bound}{:>11.0} {:>5.0}%",
            calls as f64 / secs.max(1e-9),
            median(peaks),
            median(prints),
            100.0 * median(utils)
        );
    }
    Ok(())
}

/// `stress`: the locked heap under real parallelism for a bounded time (see `stress.rs`).
fn stress(a: &Args) -> Result<ExitCode, Bad> {
    let time = std::time::Duration::from_secs(a.time);
    // The tunables, as a trace's `config` line gives them.
    let config = match &a.config {
        None => tagalloc::Config::DEFAULT,
        Some(words) => text::parse(&format!("config {words}"))
            .map_err(|e| usage(format!("--config: {}", e.message)))?
            .config
            .config(),
    };
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    match tagalloc_diff::stress::run(config, a.threads, time, seed) {
        Ok(s) => {
            println!(
                "stress: ok ({} threads, {} s, {} calls, {} frees of another thread's blocks)",
                a.threads, a.time, s.calls, s.remote_frees
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(m) => {
            println!("stress: FAILED ({} threads, seed {seed}): {m}", a.threads);
            Ok(ExitCode::from(1))
        }
    }
}

/// The commands, as `main` dispatches them.
const COMMANDS: [&str; 9] = [
    "run", "diff", "shrink", "decode", "encode", "bench", "stress", "lab", "fuzz",
];

/// Runs command `cmd` with its arguments.
fn command(cmd: &str, a: Args) -> Outcome {
    match cmd {
        "run" => run(&a),
        "diff" => {
            let a = Args {
                against: Some(a.against.clone().unwrap_or(Spec::Libc)),
                ..a
            };
            run(&a)
        }
        "shrink" => shrink_cmd(&a),
        "decode" => decode(&a),
        "encode" => encode(&a),
        "bench" => bench(&a),
        "stress" => stress(&a),
        "lab" => lab(&a),
        "fuzz" => fuzz(&a),
        other => Err(usage(format!("unknown command `{other}`"))),
    }
}

fn main() -> ExitCode {
    #[cfg(feature = "broken")]
    tagalloc_diff::targets::select_broken_from_env();
    runner::progress::init();
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = argv.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    match cmd.as_str() {
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        "-V" | "--version" => {
            println!("tagalloc-diff {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        c if !COMMANDS.contains(&c) => {
            let what = if c.starts_with('-') {
                "option"
            } else {
                "command"
            };
            eprintln!("tagalloc-diff: unknown {what} `{c}`\n{USAGE}");
            return ExitCode::from(2);
        }
        _ => {}
    }
    let result = parse_args(rest).and_then(|parsed| match parsed {
        Parsed::Help => {
            println!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        Parsed::Args(a) => command(cmd, *a),
    });
    match result {
        Ok(code) => code,
        Err(Bad {
            message,
            usage: show_usage,
        }) => {
            eprintln!("tagalloc-diff: {message}");
            if show_usage {
                eprintln!("{USAGE}");
            }
            ExitCode::from(2)
        }
    }
}
