//! TCP as a [`Stream`]: a nonblocking socket the poller watches (edge-triggered; `wait.rs`
//! records its events).

use std::io::{self, IoSlice, Read, Write};
use std::net::Shutdown;
use std::os::fd::AsRawFd;

use mio::{Interest, Registry, Token};

use super::framing::Conn;
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
