//! Exports from the `tagalloc-diff` binary the callbacks an object built with clang's
//! `-fsanitize=fuzzer-no-link` needs (`src/cli/sancov.rs`), so that such an object loads and its
//! coverage counters reach the fuzzer. Only the binary: the library and the fuzz targets are not
//! touched.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        for symbol in ["__sanitizer_cov_*", "__sancov_lowest_stack"] {
            println!("cargo:rustc-link-arg-bins=-Wl,--export-dynamic-symbol={symbol}");
        }
    }
}
