//! Commands as people read them: every step prints the command it runs, in a form that can be
//! pasted into a shell from the repository root.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The command line of `cmd`, arguments quoted where a shell needs it.
pub fn line(cmd: &Command) -> String {
    let mut words = vec![quote(&cmd.get_program().to_string_lossy())];
    words.extend(cmd.get_args().map(|a| quote(&a.to_string_lossy())));
    words.join(" ")
}

fn quote(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./=+:,@%".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// `path` relative to `root` when it lies inside it (as commands run from the root see it),
/// otherwise as it is.
pub fn shown(path: &Path, root: &Path) -> PathBuf {
    path.strip_prefix(root)
        .map_or(path.to_path_buf(), Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        let mut c = Command::new("cargo");
        c.args(["fuzz", "run", "diff", "-max_total_time=30", "a b", "it's"]);
        assert_eq!(
            line(&c),
            r"cargo fuzz run diff -max_total_time=30 'a b' 'it'\''s'"
        );
    }

    #[test]
    fn paths_inside_the_root_are_relative() {
        let root = Path::new("/repo");
        assert_eq!(
            shown(Path::new("/repo/corpus/ops"), root),
            Path::new("corpus/ops")
        );
        assert_eq!(shown(Path::new("/tmp/x"), root), Path::new("/tmp/x"));
    }
}
