//! `.clusterfuzzlite/build.sh` in the layout of ClusterFuzzLite's image, without Docker.
//!
//! The Dockerfile copies the repository to `$SRC/tagalloc` (its WORKDIR) and the script alone to
//! `$SRC/build.sh`, and the image runs it with `$SRC`, `$OUT` and `$SANITIZER` set and a nightly
//! `cargo`. Here `$SRC` is a fresh temporary directory holding a copy of the script and, as
//! `tagalloc`, a symbolic link to this checkout (so the build shares `fuzz/target` instead of
//! starting cold; cargo sees the real path either way). The script runs from `$SRC` itself, so
//! only `$SRC/tagalloc` can lead it to the repository; without that link it must fail saying so.
//! With it, every real target (not the `selftest_*` fixtures) must land in `$OUT` with its seed
//! corpus and dictionary, and a built fuzzer must run.
//!
//! Slow (a fuzz build with AddressSanitizer and debug assertions), so it is `#[ignore]`d; the
//! `clusterfuzzlite` step of `cargo xtask test` runs it (`TAGALLOC_FUZZ_TESTS=1`, always in CI).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `bash -eu $SRC/build.sh` from `$SRC`, as the image runs it (its `cargo` is nightly).
fn build(src: &Path, out: &Path) -> Output {
    Command::new("bash")
        .arg("-eu")
        .arg(src.join("build.sh"))
        .current_dir(src)
        .env("SRC", src)
        .env("OUT", out)
        .env("SANITIZER", "address")
        .env("RUSTUP_TOOLCHAIN", "nightly")
        .output()
        .unwrap()
}

/// The real fuzz targets, as build.sh finds them.
fn real_targets() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(root().join("fuzz").join("fuzz_targets"))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".rs").map(str::to_string)
        })
        .filter(|n| !n.starts_with("selftest_"))
        .collect();
    names.sort();
    names
}

#[test]
#[ignore = "a full fuzz build: the clusterfuzzlite step of `cargo xtask test` runs it"]
fn build_sh_works_in_the_image_layout() {
    let nightly = Command::new("rustup")
        .args(["run", "nightly", "cargo", "fuzz", "--version"])
        .output();
    assert!(
        nightly.is_ok_and(|o| o.status.success()),
        "the image's cargo is nightly with cargo-fuzz: `rustup toolchain install nightly` and \
         `cargo install cargo-fuzz --locked` are needed to simulate it"
    );
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cflite-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    let src = tmp.join("src");
    let out = tmp.join("out");
    fs::create_dir_all(&src).unwrap();
    fs::copy(
        root().join(".clusterfuzzlite").join("build.sh"),
        src.join("build.sh"),
    )
    .unwrap();

    // No repository at $SRC/tagalloc: a clear failure, before any build.
    let o = build(&src, &out);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("cannot find the repository") && text(&o).contains("/src/tagalloc"),
        "{}",
        text(&o)
    );

    // The Dockerfile's layout: the repository at $SRC/tagalloc.
    let dockerfile =
        fs::read_to_string(root().join(".clusterfuzzlite").join("Dockerfile")).unwrap();
    for line in [
        "COPY . $SRC/tagalloc",
        "WORKDIR $SRC/tagalloc",
        "COPY .clusterfuzzlite/build.sh $SRC/",
    ] {
        assert!(
            dockerfile.lines().any(|l| l.trim() == line),
            "the Dockerfile no longer says `{line}`: update this test's layout with it"
        );
    }
    std::os::unix::fs::symlink(root(), src.join("tagalloc")).unwrap();
    let o = build(&src, &out);
    let log = text(&o);
    eprintln!("{log}");
    assert!(o.status.success(), "build.sh failed in the image layout");
    assert!(log.contains("build.sh: repository "), "{log}");

    for target in real_targets() {
        let bin = out.join(&target);
        let meta = fs::metadata(&bin).unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
        use std::os::unix::fs::PermissionsExt;
        assert!(
            meta.permissions().mode() & 0o111 != 0,
            "{target} is not executable"
        );
        if root().join("corpus").join(&target).is_dir() {
            let zip = out.join(format!("{target}_seed_corpus.zip"));
            assert!(zip.is_file(), "no seed corpus {}", zip.display());
        }
        if root().join("fuzz").join(format!("{target}.dict")).is_file() {
            assert!(out.join(format!("{target}.dict")).is_file());
        }
    }
    let fixtures: Vec<_> = fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("selftest_"))
        .collect();
    assert!(fixtures.is_empty(), "fixtures in $OUT: {fixtures:?}");

    // A built fuzzer runs: a few hundred inputs of the first target, from nothing.
    let first = &real_targets()[0];
    let o = Command::new(out.join(first))
        .args(["-runs=300", "-seed=1"])
        .current_dir(&tmp)
        .output()
        .unwrap();
    assert!(o.status.success(), "{first}: {}", text(&o));
    assert!(text(&o).contains("Done 300 runs"), "{}", text(&o));
    fs::remove_dir_all(&tmp).unwrap();
}
