//! TCP as a [`Stream`]: a nonblocking socket the poller watches (edge-triggered).

use std::io::{self, IoSlice, Read, Write};
use std::net::Shutdown;
use std::os::fd::AsRawFd;

use mio::{Events, Interest, Registry, Token};

use super::framing::Conn;
use super::shm;
use super::state::State;
use super::stream::Stream;
use crate::error::{Error, Result};

impl Stream for mio::net::TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Read::read(self, buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        Write::write_vectored(self, bufs)
    }

    fn close_write(&mut self) {
        let _ = self.shutdown(Shutdown::Write);
    }

    fn close(&mut self) {
        let _ = self.shutdown(Shutdown::Both);
    }

    /// Bytes the peer's kernel has not acknowledged yet (`SIOCOUTQ`).
    fn unacked(&self) -> usize {
        let mut n: libc::c_int = 0;
        // SAFETY: TIOCOUTQ (= SIOCOUTQ for TCP) writes one int through the pointer.
        let rc = unsafe { libc::ioctl(self.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
        if rc != 0 {
            return 0;
        }
        usize::try_from(n).unwrap_or(0)
    }
}

/// A connection over an established, handshaken socket to rank `r`, registered with the poller
/// under token `r`.
pub(super) fn conn(registry: &Registry, r: usize, s: std::net::TcpStream) -> Result<Conn> {
    s.set_nonblocking(true).map_err(|e| Error::io("non-blocking socket", e))?;
    let _ = s.set_nodelay(true);
    let mut stream = mio::net::TcpStream::from_std(s);
    registry
        .register(&mut stream, Token(r), Interest::READABLE | Interest::WRITABLE)
        .map_err(|e| Error::io(format!("registering the connection to rank {r}"), e))?;
    Ok(Conn::new(Box::new(stream)))
}

impl State {
    /// Records what the poller reported.
    pub(super) fn mark(&mut self, events: &Events) {
        let size = self.conns.len();
        for ev in events.iter() {
            let t = ev.token().0;
            if ev.token() == shm::WAKE {
                if let Some(g) = &self.shm {
                    g.drain_wakes();
                }
                continue;
            }
            if t >= size {
                // A local peer's process exited: its stream ends after what it wrote.
                if let Some(Some(c)) = self.conns.get_mut(t - size) {
                    c.stream.peer_exited();
                    c.readable = true;
                    c.writable = true;
                }
                continue;
            }
            if let Some(Some(c)) = self.conns.get_mut(t) {
                if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                    c.readable = true;
                }
                if ev.is_read_closed() || ev.is_error() {
                    c.ended = true;
                }
                if ev.is_writable() || ev.is_write_closed() || ev.is_error() {
                    c.writable = true;
                }
            }
        }
    }
}
