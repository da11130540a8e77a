//! Trace files as they are kept: plain text, or gzip-compressed (`corpus/recorded/*.trace.gz`).
//!
//! The two are told apart by the gzip magic number, not by the name, so a compressed trace read
//! from standard input works too (text never starts with byte `0x1f`). Decompression runs
//! `gzip -dc` in a child process: no inflate code and no dependency here. Only text traces go
//! through this; fuzz bytes are read as they are.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

/// The first two bytes of every gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Whether `data` is gzip-compressed.
pub fn is_gzip(data: &[u8]) -> bool {
    data.starts_with(&GZIP_MAGIC)
}

/// The text of the trace file at `path`, decompressed if it is gzip. `Err` is `PATH: why`.
pub fn read(path: &Path) -> Result<Vec<u8>, String> {
    let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    decompress(data, &path.display().to_string())
}

/// `data` itself, or its decompression when it is gzip; `name` says where it came from in errors.
pub fn decompress(data: Vec<u8>, name: &str) -> Result<Vec<u8>, String> {
    if !is_gzip(&data) {
        return Ok(data);
    }
    let mut child = Command::new("gzip")
        .arg("-dc")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{name}: gzip-compressed, and `gzip -dc` could not run: {e}"))?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    // A thread feeds gzip while this one drains it, so neither pipe fills up and blocks.
    let feeder = std::thread::spawn(move || stdin.write_all(&data));
    let mut text = Vec::new();
    let read = child
        .stdout
        .take()
        .expect("stdout is piped")
        .read_to_end(&mut text);
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let status = child.wait().map_err(|e| format!("{name}: gzip -dc: {e}"))?;
    let fed = feeder.join().unwrap_or(Ok(()));
    match (status.success(), read, fed) {
        (true, Ok(_), Ok(())) => Ok(text),
        (true, Err(e), _) | (true, _, Err(e)) => Err(format!("{name}: gzip -dc: {e}")),
        (false, _, _) => Err(format!(
            "{name}: gzip-compressed, but `gzip -dc` failed ({status}): {}",
            err.trim()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut child = Command::new("gzip")
            .arg("-c")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(data).unwrap();
        child.wait_with_output().unwrap().stdout
    }

    #[test]
    fn text_passes_and_gzip_is_decompressed() {
        let text = b"malloc 0 24\nfree 0\n".repeat(20_000);
        assert_eq!(decompress(text.clone(), "t").unwrap(), text);
        let packed = gzip(&text);
        assert!(is_gzip(&packed) && packed.len() < text.len() / 10);
        assert_eq!(decompress(packed, "t.gz").unwrap(), text);
    }

    #[test]
    fn a_broken_gzip_stream_is_an_error_naming_the_file() {
        let mut packed = gzip(b"malloc 0 24\n");
        packed.truncate(packed.len() / 2);
        let e = decompress(packed, "cut.trace.gz").unwrap_err();
        assert!(
            e.starts_with("cut.trace.gz: gzip-compressed, but `gzip -dc` failed"),
            "{e}"
        );
        let e = read(Path::new("/nonexistent/x.trace.gz")).unwrap_err();
        assert!(e.starts_with("/nonexistent/x.trace.gz: "), "{e}");
    }
}
