//! A two-party connection the point-to-point tests run over: rmpi between two ranks, or a raw
//! TCP socket (the baseline). Both implement [`Link`], so the timing loops in
//! [`p2p`](crate::p2p) are the same code for both.

use std::io::{Read, Write};
use std::net::TcpStream;

use rmpi::{Communicator, Request, Tag};

use crate::error::{BenchError, Result};

/// Tag of ping-pong messages.
const TAG_PINGPONG: Tag = 1;
/// Tag of windowed bandwidth messages.
const TAG_WINDOW: Tag = 2;
/// Tag of the bandwidth test's acknowledgement.
const TAG_ACK: Tag = 3;
/// Tag of the synchronisation between sizes.
const TAG_SYNC: Tag = 4;

/// Blocking message exchange with one peer.
pub trait Link {
    /// Sends one message of `buf`'s bytes.
    fn send(&mut self, buf: &[u8]) -> Result<()>;
    /// Receives one message of exactly `buf.len()` bytes into `buf`.
    fn recv(&mut self, buf: &mut [u8]) -> Result<()>;
    /// Sends `window` messages of `buf` back to back (nonblocking where the link has it), then
    /// waits for the receiver's 4-byte acknowledgement.
    fn send_window(&mut self, buf: &[u8], window: usize) -> Result<()>;
    /// Receives `window` messages of exactly `buf.len()` bytes, one after another into `buf`
    /// (as OSU's `osu_bw` receiver does: its window of receives all name one buffer), then sends
    /// the 4-byte acknowledgement.
    fn recv_window(&mut self, buf: &mut [u8], window: usize) -> Result<()>;
    /// Returns once the peer has called `sync` too.
    fn sync(&mut self) -> Result<()>;
}

/// rmpi point-to-point between this rank and `peer` of a communicator.
#[derive(Debug)]
pub struct RmpiLink {
    comm: Communicator,
    peer: usize,
}

impl RmpiLink {
    /// A link from this rank of `comm` to `peer`.
    pub fn new(comm: Communicator, peer: usize) -> RmpiLink {
        RmpiLink { comm, peer }
    }

    /// The communicator.
    pub fn comm(&self) -> &Communicator {
        &self.comm
    }

    fn check_len(&self, got: usize, want: usize, tag: Tag) -> Result<()> {
        if got == want {
            Ok(())
        } else {
            Err(BenchError::Protocol(format!(
                "rank {} sent {got} bytes with tag {tag}, expected {want}",
                self.peer
            )))
        }
    }
}

impl Link for RmpiLink {
    fn send(&mut self, buf: &[u8]) -> Result<()> {
        Ok(self.comm.send(buf, self.peer, TAG_PINGPONG)?)
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<()> {
        let want = buf.len();
        let st = self.comm.recv_into(buf, self.peer, TAG_PINGPONG)?;
        self.check_len(st.len, want, TAG_PINGPONG)
    }

    fn send_window(&mut self, buf: &[u8], window: usize) -> Result<()> {
        let peer = self.peer;
        self.comm.scope(|s| {
            let reqs = (0..window)
                .map(|_| s.isend(buf, peer, TAG_WINDOW))
                .collect::<rmpi::Result<Vec<_>>>()?;
            Request::wait_all(reqs)?;
            Ok::<_, BenchError>(())
        })?;
        let mut ack = [0u8; 4];
        let st = self.comm.recv_into(&mut ack, peer, TAG_ACK)?;
        self.check_len(st.len, ack.len(), TAG_ACK)
    }

    fn recv_window(&mut self, buf: &mut [u8], window: usize) -> Result<()> {
        // Blocking receives: each one is posted as the previous completes, and claims its
        // message while the payload is still in the socket, so bytes go straight into `buf`.
        let want = buf.len();
        for _ in 0..window {
            let st = self.comm.recv_into(buf, self.peer, TAG_WINDOW)?;
            self.check_len(st.len, want, TAG_WINDOW)?;
        }
        Ok(self.comm.send(&[0u8; 4], self.peer, TAG_ACK)?)
    }

    fn sync(&mut self) -> Result<()> {
        let (out, mut inb) = ([0u8; 0], [0u8; 0]);
        let st =
            self.comm.sendrecv_into(&out, self.peer, TAG_SYNC, &mut inb, self.peer, TAG_SYNC)?;
        self.check_len(st.len, 0, TAG_SYNC)
    }
}

/// A plain blocking TCP socket (Nagle off): the raw-TCP baseline.
#[derive(Debug)]
pub struct TcpLink {
    stream: TcpStream,
}

impl TcpLink {
    /// Wraps a connected stream and turns Nagle's algorithm off.
    pub fn new(stream: TcpStream) -> Result<TcpLink> {
        stream.set_nodelay(true).map_err(|e| BenchError::io("setting TCP_NODELAY", e))?;
        Ok(TcpLink { stream })
    }

    fn write(&mut self, buf: &[u8], what: &str) -> Result<()> {
        self.stream.write_all(buf).map_err(|e| BenchError::io(what, e))
    }

    fn read(&mut self, buf: &mut [u8], what: &str) -> Result<()> {
        self.stream.read_exact(buf).map_err(|e| BenchError::io(what, e))
    }
}

impl Link for TcpLink {
    fn send(&mut self, buf: &[u8]) -> Result<()> {
        self.write(buf, "sending a ping-pong message")
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<()> {
        self.read(buf, "receiving a ping-pong message")
    }

    fn send_window(&mut self, buf: &[u8], window: usize) -> Result<()> {
        for _ in 0..window {
            self.write(buf, "streaming a window")?;
        }
        let mut ack = [0u8; 4];
        self.read(&mut ack, "receiving the window's acknowledgement")
    }

    fn recv_window(&mut self, buf: &mut [u8], window: usize) -> Result<()> {
        for _ in 0..window {
            self.read(buf, "receiving a window")?;
        }
        self.write(&[0u8; 4], "acknowledging a window")
    }

    fn sync(&mut self) -> Result<()> {
        self.write(&[0u8], "synchronising")?;
        self.read(&mut [0u8], "synchronising")
    }
}
