//! The one interface a transport offers the engine: an ordered, nonblocking byte stream to each
//! peer. TCP ([`super::tcp`]) and shared memory are two implementations; framing, matching and
//! failure handling sit above it and know neither.

use std::fmt;
use std::io::{self, IoSlice};

/// A nonblocking byte stream to one peer.
pub(crate) trait Stream: Send + fmt::Debug {
    /// Reads what is there; `Ok(0)` is the end of the stream, `WouldBlock` means nothing yet.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    /// Writes what fits; `WouldBlock` means no room now.
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize>;
    /// Sends nothing more: the peer reads the end of the stream after the last byte.
    fn close_write(&mut self);
    /// Closes both directions.
    fn close(&mut self);
    /// Bytes written that the peer has not taken yet.
    fn unacked(&self) -> usize;
    /// For a stream whose readiness no poller event announces: whether it has input (or its
    /// end) and whether it has room, right now. `None` for streams the poller watches.
    fn ready(&self) -> Option<(bool, bool)> {
        None
    }
    /// Copies the first bytes available into `buf` without taking them, and returns how many
    /// are available in all (0 for a stream that cannot look ahead).
    fn peek(&self, _buf: &mut [u8]) -> usize {
        0
    }
    /// Takes `skip` bytes and then `buf.len()` bytes into `buf`, all of them or (returning
    /// `false`) none.
    fn take_after(&mut self, _skip: usize, _buf: &mut [u8]) -> bool {
        false
    }
    /// The peer's process is gone: once what it wrote is read, the stream ends.
    fn peer_exited(&mut self) {}
    /// The payload of the frame being written is about to move (it is copied out of caller
    /// memory that is released next): a stream that lets the peer read it in place stops that
    /// now; the next write presents it where it is then.
    fn payload_moving(&mut self) {}
}
