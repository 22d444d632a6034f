//! What a rank tells its node agent through its note pipe (see `rmpi_transport::agent_note`):
//! the peers it lost, and whether it is failing by itself.
//!
//! The agent reads each pipe as notes arrive, and once more, without waiting, right before it
//! decides how to end its ranks: a rank that wrote "failed" a moment ago must count as failing
//! (and get no SIGTERM, which would hide how it ended) even when the task that follows its pipe
//! has not run since. Both readers take the same lock, so lines are never split between them.

use std::io::ErrorKind;
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex};

use tokio::net::unix::pipe::Receiver;

/// Most bytes read from one rank (a line per lost peer).
const MAX_NOTES: u64 = 1 << 20;

/// Longest reason kept from a `failed` note.
const MAX_REASON: usize = 200;

/// What a rank said.
#[derive(Debug, Default)]
pub(crate) struct Notes {
    /// Peers it lost, first first.
    pub(crate) lost: Vec<u32>,
    /// It said it is failing by itself: how, and when the agent heard it.
    pub(crate) failed: Option<(String, u64)>,
}

impl Notes {
    fn apply(&mut self, line: &[u8]) {
        let line = String::from_utf8_lossy(line);
        let line = line.trim_end_matches(['\n', '\r']);
        if let Some(peer) = line.strip_prefix("lost ").and_then(|p| p.trim().parse::<u32>().ok()) {
            if !self.lost.contains(&peer) {
                self.lost.push(peer);
            }
        } else if let Some(how) = line.strip_prefix("failed ") {
            if self.failed.is_none() {
                let how: String =
                    how.chars().filter(|c| !c.is_control()).take(MAX_REASON).collect();
                self.failed = Some((how, crate::blame::now_ms()));
            }
        }
    }
}

#[derive(Default)]
struct Book {
    notes: Notes,
    /// The start of a line whose end has not arrived yet.
    partial: Vec<u8>,
    /// Bytes read so far.
    read: u64,
    /// Whether the pipe may still hold more.
    open: bool,
}

impl Book {
    fn take(&mut self, bytes: &[u8]) {
        self.read += bytes.len() as u64;
        let mut rest = bytes;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            self.partial.extend_from_slice(&rest[..end]);
            let line = std::mem::take(&mut self.partial);
            self.notes.apply(&line);
            rest = &rest[end + 1..];
        }
        // A line longer than any note is cut, not kept growing.
        let room = (MAX_REASON * 4).saturating_sub(self.partial.len());
        self.partial.extend_from_slice(&rest[..rest.len().min(room)]);
    }

    fn close(&mut self) {
        self.open = false;
        let line = std::mem::take(&mut self.partial);
        if !line.is_empty() {
            self.notes.apply(&line);
        }
    }
}

/// One rank's note pipe and what has been read from it.
pub(crate) struct NotePipe {
    pipe: Option<Receiver>,
    book: Mutex<Book>,
}

impl NotePipe {
    /// Takes over the read end of a rank's pipe (`None`: the rank has none, it says nothing).
    pub(crate) fn new(pipe: Option<Receiver>) -> Arc<NotePipe> {
        let open = pipe.is_some();
        Arc::new(NotePipe { pipe, book: Mutex::new(Book { open, ..Book::default() }) })
    }

    /// Reads what the pipe holds now, without waiting; `false` once it can hold nothing more
    /// (every writer is gone, or the rank said too much).
    pub(crate) fn drain(&self) -> bool {
        !matches!(self.read_all(), Ok(false))
    }

    /// Reads until the pipe is empty: `Err(WouldBlock)` then (so that the reactor clears its
    /// readiness), `Ok(false)` once it can hold nothing more. It reads with read(2) itself
    /// rather than through the reactor, which reads only what it has seen readiness for.
    fn read_all(&self) -> std::io::Result<bool> {
        let Some(pipe) = &self.pipe else { return Ok(false) };
        let Ok(mut book) = self.book.lock() else { return Ok(false) };
        let mut buf = [0u8; 4096];
        while book.open {
            match crate::procs::read_now(pipe.as_fd(), &mut buf) {
                Ok(0) => book.close(),
                Ok(n) => {
                    book.take(&buf[..n]);
                    if book.read >= MAX_NOTES {
                        book.close();
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Err(e),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => book.close(),
            }
        }
        Ok(false)
    }

    /// Follows the pipe until it can hold nothing more.
    pub(crate) async fn follow(self: Arc<Self>) {
        let Some(pipe) = &self.pipe else { return };
        while pipe.readable().await.is_ok() {
            match pipe.try_io(|| self.read_all()) {
                Ok(false) => return,
                Ok(true) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
    }

    /// Runs `f` on what the rank has said so far (reading what the pipe holds first).
    pub(crate) fn with<R>(&self, f: impl FnOnce(&Notes) -> R) -> Option<R> {
        self.drain();
        self.book.lock().ok().map(|b| f(&b.notes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[tokio::test]
    async fn notes_written_just_now_are_read_without_waiting_for_the_follower() {
        let (tx, rx) = tokio::net::unix::pipe::pipe().unwrap();
        let mut tx = std::fs::File::from(tx.into_blocking_fd().unwrap());
        let pipe = NotePipe::new(Some(rx));
        tx.write_all(b"lost 3\nlost 5\nlost 3\nfail").unwrap();
        assert_eq!(pipe.with(|n| (n.lost.clone(), n.failed.is_some())), Some((vec![3, 5], false)));
        tx.write_all(b"ed panicked\x07 at x\n").unwrap();
        let how = pipe.with(|n| n.failed.as_ref().map(|f| f.0.clone())).flatten();
        assert_eq!(how.as_deref(), Some("panicked at x"));
        // The follower ends once the writer is gone, and later reads see the same notes.
        drop(tx);
        let follower = tokio::spawn(pipe.clone().follow());
        tokio::time::timeout(std::time::Duration::from_secs(10), follower)
            .await
            .expect("follower ends with the pipe")
            .unwrap();
        assert!(!pipe.drain());
        assert_eq!(pipe.with(|n| n.lost.len()), Some(2));
    }

    #[test]
    fn a_rank_without_a_pipe_says_nothing() {
        let pipe = NotePipe::new(None);
        assert!(!pipe.drain());
        assert_eq!(pipe.with(|n| n.lost.is_empty() && n.failed.is_none()), Some(true));
    }
}
