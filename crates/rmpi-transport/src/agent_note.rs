//! Telling the launcher why this rank is failing: "I lost peer N" notes to the node agent.
//!
//! When a rank dies, its peers notice and usually fail too, often before the launcher has heard
//! of the first death. So that the launcher can tell the cause from its effects, a rank that
//! loses a peer (its connection closed without a goodbye, or broke) writes one line to the
//! pipe its node agent passed it in `RMPI_AGENT_FD`, before any error reaches the program:
//!
//! ```text
//! lost 3
//! ```
//!
//! (one line per lost peer, world rank in decimal). A rank that fails by itself says so as it
//! starts to go, before its connections close, with what happened:
//!
//! ```text
//! failed panicked
//! failed abort(7)
//! ```
//!
//! Without `RMPI_AGENT_FD` nothing is written.
//! The pipe is marked close-on-exec when adopted, so the rank's own children never inherit it.

use std::io::Write;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::sync::Mutex;

/// The variable naming the note pipe's file descriptor.
pub const AGENT_FD: &str = "RMPI_AGENT_FD";

static PIPE: Mutex<Option<std::fs::File>> = Mutex::new(None);

/// Takes the pipe named by `RMPI_AGENT_FD`, if it names the write end of a pipe. Called once by
/// `init`; later calls do nothing.
pub(crate) fn adopt_from_env() {
    let Ok(mut slot) = PIPE.lock() else { return };
    if slot.is_some() {
        return;
    }
    let Some(fd) = std::env::var(AGENT_FD).ok().and_then(|s| s.trim().parse::<i32>().ok()) else {
        return;
    };
    if fd < 3 {
        return;
    }
    // SAFETY: the launcher passed this descriptor for this purpose. If it turns out not to be a
    // pipe's write end it is released again below without being closed, so whatever the
    // number refers to in this process is left untouched.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    if !is_pipe_write_end(&owned) {
        tracing::debug!("{AGENT_FD}={fd} is not a pipe to write to; no notes to the agent");
        let _ = owned.into_raw_fd();
        return;
    }
    let _ = rustix::io::fcntl_setfd(&owned, rustix::io::FdFlags::CLOEXEC);
    *slot = Some(std::fs::File::from(owned));
}

fn is_pipe_write_end(fd: &OwnedFd) -> bool {
    use rustix::fs::{FileType, OFlags};
    let fifo =
        rustix::fs::fstat(fd).is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Fifo);
    let writable = rustix::fs::fcntl_getfl(fd).is_ok_and(|fl| fl.contains(OFlags::WRONLY));
    fifo && writable
}

/// Notes that world rank `peer` was lost (not finalized).
pub(crate) fn peer_lost(peer: usize) {
    note(&format!("lost {peer}\n"));
}

/// Notes that this rank is failing by itself (`panicked`, `abort(7)`): sent before its peers
/// can see it go.
pub(crate) fn failed(reason: &str) {
    note(&format!("failed {reason}\n"));
}

/// Writes one note line, if there is a pipe. One write of a short line is atomic on a pipe; a
/// launcher that is gone is no error.
fn note(line: &str) {
    let Ok(mut slot) = PIPE.lock() else { return };
    if let Some(pipe) = slot.as_mut() {
        let _ = pipe.write_all(line.as_bytes());
    }
}
