//! Where rank output goes: rmpirun's own stdout/stderr (each line written with one `write`, so
//! lines of different ranks never mix), optionally prefixed with `[rank] `, or one file pair per
//! rank (`--output-filename DIR`: `DIR/rank.N/stdout`, `DIR/rank.N/stderr`).

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::PathBuf;

use crate::protocol::Stream;

/// Output destination error.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// A per-rank output file could not be created.
    #[error("cannot create output file {path}: {source}")]
    Create { path: PathBuf, source: std::io::Error },
}

/// Forwards rank output lines.
pub struct OutputSink {
    tag: bool,
    dir: Option<PathBuf>,
    files: HashMap<(u32, Stream), File>,
}

impl OutputSink {
    /// A sink that prefixes lines with `[rank] ` when `tag`, and writes to per-rank files under
    /// `dir` when given.
    pub fn new(tag: bool, dir: Option<PathBuf>) -> Self {
        OutputSink { tag, dir, files: HashMap::new() }
    }

    /// Writes one line (or line piece) of `rank`'s `stream`.
    pub fn line(&mut self, rank: u32, stream: Stream, data: &[u8]) -> Result<(), OutputError> {
        let mut buf = Vec::with_capacity(data.len() + 12);
        if self.tag {
            buf.extend_from_slice(format!("[{rank}] ").as_bytes());
        }
        buf.extend_from_slice(data);
        match &self.dir {
            None => {
                write_fd(stream_fd(stream), &buf);
                Ok(())
            }
            Some(dir) => {
                let file = match self.files.entry((rank, stream)) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(v) => {
                        let rank_dir = dir.join(format!("rank.{rank}"));
                        let path = rank_dir.join(match stream {
                            Stream::Stdout => "stdout",
                            Stream::Stderr => "stderr",
                        });
                        let file = std::fs::create_dir_all(&rank_dir)
                            .and_then(|_| File::create(&path))
                            .map_err(|source| OutputError::Create { path, source })?;
                        v.insert(file)
                    }
                };
                // A full disk must not stop the job; the rank's line is lost.
                let _ = file.write_all(&buf);
                Ok(())
            }
        }
    }
}

fn stream_fd(stream: Stream) -> i32 {
    match stream {
        Stream::Stdout => std::io::stdout().as_raw_fd(),
        Stream::Stderr => std::io::stderr().as_raw_fd(),
    }
}

/// Writes `buf` to `fd` with as few `write` calls as the kernel allows (one for any line that
/// fits the pipe), bypassing std's buffering. Errors (a closed stdout) are ignored.
pub fn write_fd(fd: i32, buf: &[u8]) {
    // SAFETY: `fd` is this process's stdout or stderr, open for its whole life; ManuallyDrop
    // keeps the File from closing it.
    let mut f = std::mem::ManuallyDrop::new(unsafe { File::from_raw_fd(fd) });
    let _ = f.write_all(buf);
}

/// Prints one `rmpirun: ...` message line on stderr with a single write.
pub fn message(text: &str) {
    let mut line = String::with_capacity(text.len() + 10);
    line.push_str("rmpirun: ");
    line.push_str(text);
    line.push('\n');
    write_fd(std::io::stderr().as_raw_fd(), line.as_bytes());
}

/// When rmpirun started, for the time stamps of `-v` messages.
static STARTED: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

/// Marks the start of rmpirun (the zero of `-v` time stamps).
pub fn mark_start() {
    STARTED.get_or_init(std::time::Instant::now);
}

/// Prints a `-v` progress message with the time since [`mark_start`].
pub fn progress(text: &str) {
    let t = STARTED.get_or_init(std::time::Instant::now).elapsed();
    message(&format!("[{:7.3} s] {text}", t.as_secs_f64()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_rank_files_with_tags() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = OutputSink::new(true, Some(dir.path().to_path_buf()));
        sink.line(3, Stream::Stdout, b"one\n").unwrap();
        sink.line(3, Stream::Stdout, b"two\n").unwrap();
        sink.line(0, Stream::Stderr, b"err\n").unwrap();
        let out = std::fs::read_to_string(dir.path().join("rank.3/stdout")).unwrap();
        assert_eq!(out, "[3] one\n[3] two\n");
        let err = std::fs::read_to_string(dir.path().join("rank.0/stderr")).unwrap();
        assert_eq!(err, "[0] err\n");
        assert!(!dir.path().join("rank.0/stdout").exists());

        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        let mut bad = OutputSink::new(false, Some(file.join("sub")));
        assert!(matches!(bad.line(0, Stream::Stdout, b"x\n"), Err(OutputError::Create { .. })));
    }
}
