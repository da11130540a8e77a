//! Tells the crate whether it is being built with AddressSanitizer.
//!
//! `-Zsanitizer=address` (what `cargo +nightly fuzz build` and ClusterFuzzLite's image put in
//! `RUSTFLAGS`) makes rustc report `sanitize="address"` among the target's cfg values, which cargo
//! hands to build scripts as `CARGO_CFG_SANITIZE`. The cfg itself cannot be tested in the crate on
//! stable (`cfg(sanitize)` is unstable), so this script turns it into `tagalloc_asan`, which
//! `src/track.rs` tests: the poisoning of blocks is on exactly in ASan builds, with no feature for
//! a build to forget, and compiles to nothing in every other build. x86-64 only (the internal
//! accesses that ASan must not see are inline assembly there); elsewhere an ASan build runs
//! without the poisoning and says so.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(tagalloc_asan)");
    println!("cargo::rerun-if-changed=build.rs");
    let sanitizers = std::env::var("CARGO_CFG_SANITIZE").unwrap_or_default();
    if sanitizers.split(',').any(|s| s == "address") {
        if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("x86_64") {
            println!("cargo::rustc-cfg=tagalloc_asan");
        } else {
            println!(
                "cargo::warning=tagalloc: AddressSanitizer build on a target other than x86-64: \
                 blocks are not poisoned"
            );
        }
    }
}
