#!/bin/bash -eu
# Builds the fuzz targets of fuzz/ for ClusterFuzzLite (or OSS-Fuzz) and puts in $OUT:
#   TARGET                      the libFuzzer binary of each target (not the selftest_* fixtures)
#   TARGET_seed_corpus.zip      corpus/TARGET/ as its seed corpus (when zip or python3 is there)
#   TARGET.dict                 fuzz/TARGET.dict, when there is one
#
# In the ClusterFuzzLite image $SRC and $SANITIZER are set and `cargo` is nightly; the Dockerfile
# copies the repository to $SRC/tagalloc (the WORKDIR) and this script alone to $SRC/build.sh, so
# the script cannot find the repository from its own location there. It looks, in order, at the
# directory above the script (a checkout's .clusterfuzzlite/), the current directory, and
# $SRC/tagalloc. `cargo xtask test clusterfuzzlite` runs it in that layout.
#
# It also runs on a developer's machine, outside Docker:
#   OUT=/tmp/out bash .clusterfuzzlite/build.sh
# where it uses nightly with AddressSanitizer when `rustup toolchain list` has a nightly, and the
# default toolchain with `--sanitizer none` otherwise (SANITIZER=address or none forces either).

: "${OUT:?set OUT to the directory that receives the fuzzers, e.g. OUT=/tmp/out bash $0}"
is_repo() { [ -f "$1/fuzz/Cargo.toml" ] && [ -d "$1/fuzz/fuzz_targets" ]; }
root=""
for dir in "$(dirname "${BASH_SOURCE[0]}")/.." "$PWD" ${SRC:+"$SRC/tagalloc"}; do
  if is_repo "$dir"; then
    root="$(cd "$dir" && pwd)"
    break
  fi
done
if [ -z "$root" ]; then
  echo "build.sh: cannot find the repository (a directory with fuzz/Cargo.toml): not above" \
    "$(dirname "${BASH_SOURCE[0]}"), not $PWD${SRC:+, not $SRC/tagalloc}" >&2
  exit 2
fi
echo "build.sh: repository $root"
cd "$root"
mkdir -p "$OUT"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "build.sh: cargo-fuzz is not installed; install it with: cargo install cargo-fuzz --locked" >&2
  exit 2
fi

# Which toolchain and sanitizer.
cargo=(cargo)
flags=(-O --debug-assertions)
case "${SANITIZER:-auto}" in
  auto)
    if command -v rustup >/dev/null && rustup toolchain list | grep -q '^nightly'; then
      cargo=(cargo +nightly)
      echo "build.sh: nightly with AddressSanitizer"
    else
      flags+=(--sanitizer none)
      echo "build.sh: no nightly toolchain, so no sanitizer (rustup toolchain install nightly adds ASan)"
    fi
    ;;
  none) flags+=(--sanitizer none) ;;
  # address, and coverage or introspector builds, whose flags the image's cargo wrapper adds.
  *) ;;
esac

echo "build.sh: ${cargo[*]} fuzz build ${flags[*]}"
"${cargo[@]}" fuzz build "${flags[@]}"

bin_dir="${CARGO_TARGET_DIR:-$root/fuzz/target}/x86_64-unknown-linux-gnu/release"
targets=()
for src in fuzz/fuzz_targets/*.rs; do
  name="$(basename "$src" .rs)"
  case "$name" in selftest_*) continue ;; esac  # test fixtures crash on purpose
  targets+=("$name")
done

zip_dir() { # zip_dir DIR ZIP: the files of DIR, flat, into ZIP
  if command -v zip >/dev/null; then
    (cd "$1" && zip -q -j "$2" ./*)
  elif command -v python3 >/dev/null; then
    python3 - "$1" "$2" <<'PY'
import os, sys, zipfile
src, dst = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as z:
    for name in sorted(os.listdir(src)):
        path = os.path.join(src, name)
        if os.path.isfile(path):
            z.write(path, name)
PY
  else
    echo "build.sh: neither zip nor python3 found; no seed corpus for $(basename "$1")" >&2
  fi
}

for name in "${targets[@]}"; do
  cp "$bin_dir/$name" "$OUT/$name"
  echo "build.sh: $OUT/$name"
  if [ -d "corpus/$name" ] && [ -n "$(ls -A "corpus/$name")" ]; then
    rm -f "$OUT/${name}_seed_corpus.zip"
    zip_dir "$root/corpus/$name" "$OUT/${name}_seed_corpus.zip"
    [ -f "$OUT/${name}_seed_corpus.zip" ] && echo "build.sh: $OUT/${name}_seed_corpus.zip"
  fi
  if [ -f "fuzz/$name.dict" ]; then
    cp "fuzz/$name.dict" "$OUT/$name.dict"
    echo "build.sh: $OUT/$name.dict"
  fi
done
