//! The suite against tagalloc's deliberately broken variants (`tagalloc::broken`, feature
//! `broken`): with each defect switched on, the replay `cargo test` runs over `corpus/` must fail.
//! Prints a table of the variants, where each one first showed, and how.
//!
//! Run with `cargo test -p tagalloc-diff --features broken --test variants -- --nocapture`
//! (`cargo xtask test` does).

use std::path::Path;
use std::time::Instant;

use tagalloc::broken::{self, Variant};
use tagalloc_diff::corpus;

#[test]
fn every_broken_variant_is_caught_by_the_corpus_replay() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus");
    let base = root.parent().unwrap();
    let inputs = corpus::inputs(&root);
    // Panics of the broken allocator become reports; keep their messages out of the output.
    tagalloc_diff::runner::quiet_guarded_panics();
    let mut missed = Vec::new();
    println!("| variant | area | caught by | seconds |\n| --- | --- | --- | ---: |");
    for &v in Variant::ALL {
        broken::select(v);
        let start = Instant::now();
        let first = corpus::replay(&inputs, base, 1);
        let secs = start.elapsed().as_secs_f64();
        match first.first() {
            Some(report) => {
                let file = report.split(':').next().unwrap_or("");
                // The oracle's name ends the first line of the report that ends in `[...]`.
                let oracle = report
                    .lines()
                    .find_map(|l| l.strip_suffix(']')?.rsplit_once('[').map(|(_, k)| k))
                    .unwrap_or("?");
                println!(
                    "| {} | {} | {file} [{oracle}] | {secs:.1} |",
                    v.name(),
                    v.area()
                );
            }
            None => {
                println!("| {} | {} | MISSED | {secs:.1} |", v.name(), v.area());
                missed.push(v.name());
            }
        }
    }
    broken::select(Variant::Correct);
    assert!(
        missed.is_empty(),
        "variants the replay did not catch: {missed:?}"
    );
}
