//! Waking a local rank that sleeps in its poller: a one-byte datagram to its abstract unix
//! socket, which sits in the same epoll set as its TCP connections (so one wait covers both
//! transports). Abstract socket names live in the network namespace, like the ranks they wake,
//! and leave nothing in the file system.

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

use crate::token::JobToken;

/// The abstract socket name of world rank `rank` of the job with `token`.
fn name(token: JobToken, rank: usize) -> String {
    format!("rmpi-{}-{rank}", token.to_hex())
}

/// Sends wake-ups to the ranks of one host's group.
#[derive(Debug)]
pub(crate) struct Waker {
    sock: UnixDatagram,
    /// By group index.
    peers: Vec<SocketAddr>,
}

impl Waker {
    /// A waker for the group whose members are `members` (world ranks, by group index).
    pub(crate) fn new(token: JobToken, members: &[usize]) -> io::Result<Waker> {
        let sock = UnixDatagram::unbound()?;
        sock.set_nonblocking(true)?;
        let peers = members
            .iter()
            .map(|r| SocketAddr::from_abstract_name(name(token, *r)))
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Waker { sock, peers })
    }

    /// Wakes the member with group index `i`. A full queue means a wake-up is pending already; a
    /// member that is gone needs none: both are fine to ignore.
    pub(crate) fn wake(&self, i: usize) {
        if let Some(a) = self.peers.get(i) {
            let _ = self.sock.send_to_addr(&[1], a);
        }
    }
}

/// The socket world rank `rank` is woken through, non-blocking.
pub(crate) fn inbox(token: JobToken, rank: usize) -> io::Result<mio::net::UnixDatagram> {
    let sock = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name(token, rank))?)?;
    sock.set_nonblocking(true)?;
    Ok(mio::net::UnixDatagram::from_std(sock))
}

/// Takes every pending wake-up from `inbox`.
pub(crate) fn drain(inbox: &mio::net::UnixDatagram) {
    let mut b = [0u8; 64];
    while inbox.recv(&mut b).is_ok() {}
}
