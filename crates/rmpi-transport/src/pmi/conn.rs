//! The byte stream to the PMI server, with a deadline on every read.
//!
//! The server is an inherited socket (`PMI_FD`: a socketpair under Slurm and Hydra) or a TCP
//! address (`PMI_PORT`). Reads time out at the boot deadline: a PMI server never reports a dead
//! rank (a fence just waits), so the deadline is the only way out.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// Why talking to the server failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    /// The deadline passed while waiting for an answer.
    #[error("no answer within the boot deadline")]
    Timeout,
    /// The server closed the connection.
    #[error("the PMI server closed the connection")]
    Closed,
    /// A system call failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

/// A connection to a PMI server.
pub struct Conn {
    stream: Stream,
    /// Bytes received but not yet consumed.
    pending: Vec<u8>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.stream {
            Stream::Unix(_) => "Conn(PMI_FD)",
            Stream::Tcp(_) => "Conn(PMI_PORT)",
        })
    }
}

impl Conn {
    /// Takes over the inherited socket `fd`. Fails unless `fd` is an open socket.
    pub fn from_fd(fd: RawFd) -> Result<Conn, String> {
        let mut kind: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into `kind`, a live local c_int; an
        // invalid fd only makes it return -1.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_TYPE,
                (&mut kind as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        if fd < 0 || rc != 0 {
            return Err(format!("{fd} is not an open socket: {}", std::io::Error::last_os_error()));
        }
        // The fd must not leak into programs this rank starts.
        // SAFETY: fcntl on an fd we just checked is open; FD_CLOEXEC is a valid flag.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        // SAFETY: the launcher passed this fd for our exclusive use and nothing else in this
        // process owns it; from here on the UnixStream owns and closes it. Reads and writes on a
        // socket fd of another family behave the same through this type.
        let stream = unsafe { UnixStream::from_raw_fd(fd) };
        Ok(Conn { stream: Stream::Unix(stream), pending: Vec::new() })
    }

    /// Wraps an already connected Unix socket (tests, embedders).
    pub fn from_unix(stream: UnixStream) -> Conn {
        Conn { stream: Stream::Unix(stream), pending: Vec::new() }
    }

    /// Connects to `PMI_PORT` (`host:port`) before `deadline`.
    pub fn connect(hostport: &str, deadline: Instant) -> Result<Conn, String> {
        use std::net::ToSocketAddrs;
        let addrs: Vec<_> = hostport
            .to_socket_addrs()
            .map_err(|e| format!("{hostport:?} is not a reachable host:port: {e}"))?
            .collect();
        let mut last = format!("{hostport:?} resolves to no address");
        for a in addrs {
            let left = deadline.saturating_duration_since(Instant::now()).max(ms(1));
            match TcpStream::connect_timeout(&a, left) {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    return Ok(Conn { stream: Stream::Tcp(s), pending: Vec::new() });
                }
                Err(e) => last = format!("connecting to {a}: {e}"),
            }
        }
        Err(last)
    }

    /// Sends `bytes` in one write call (Slurm reads each request with one `read`).
    pub fn send(&mut self, bytes: &[u8]) -> Result<(), ConnError> {
        match &mut self.stream {
            Stream::Unix(s) => s.write_all(bytes)?,
            Stream::Tcp(s) => s.write_all(bytes)?,
        }
        Ok(())
    }

    /// Reads more bytes into the pending buffer, waiting until `deadline` at most.
    fn fill(&mut self, deadline: Instant) -> Result<(), ConnError> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ConnError::Timeout);
        }
        let mut buf = [0u8; 4096];
        let r = match &mut self.stream {
            Stream::Unix(s) => s.set_read_timeout(Some(left)).and_then(|_| s.read(&mut buf)),
            Stream::Tcp(s) => s.set_read_timeout(Some(left)).and_then(|_| s.read(&mut buf)),
        };
        match r {
            Ok(0) => Err(ConnError::Closed),
            Ok(n) => {
                self.pending.extend_from_slice(&buf[..n]);
                Ok(())
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                Err(ConnError::Timeout)
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => Ok(()),
            Err(e) => Err(ConnError::Io(e)),
        }
    }

    /// Reads one `\n`-terminated line (without the newline), of at most `max` bytes.
    pub fn read_line(&mut self, max: usize, deadline: Instant) -> Result<Vec<u8>, LineError> {
        loop {
            if let Some(i) = self.pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=i).take(i).collect();
                return Ok(line);
            }
            if self.pending.len() > max {
                return Err(LineError::TooLong(self.pending.len()));
            }
            self.fill(deadline).map_err(LineError::Conn)?;
        }
    }

    /// Reads exactly `n` bytes.
    pub fn read_exact(&mut self, n: usize, deadline: Instant) -> Result<Vec<u8>, ConnError> {
        while self.pending.len() < n {
            self.fill(deadline)?;
        }
        Ok(self.pending.drain(..n).collect())
    }
}

/// Why a line could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    /// The connection failed.
    #[error(transparent)]
    Conn(ConnError),
    /// No newline within the limit.
    #[error("a line of more than {0} bytes")]
    TooLong(usize),
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
