//! The raw-TCP baseline: the same point-to-point tests over one plain blocking socket on
//! loopback, between this process and a copy of itself, with no rmpi in between.
//!
//! The program re-executes itself as the peer (same arguments, plus [`PEER_ENV`] naming the
//! listening address), so two processes talk as under `rmpirun -n 2`. The peer introduces
//! itself with its process id, so a stray connection to the port is not mistaken for it.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{BenchError, Result};
use crate::link::TcpLink;
use crate::p2p::Role;

/// Set in the peer process's environment: the `host:port` to connect to.
pub const PEER_ENV: &str = "RMPI_BENCH_TCP_PEER";

/// How long the initiator waits for its peer to connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Accepts the connection of `child` (recognised by its process id), giving up when the child
/// exits or after [`CONNECT_TIMEOUT`].
fn accept_child(listener: &TcpListener, child: &mut Child) -> Result<TcpStream> {
    let want = child.id();
    listener
        .set_nonblocking(true)
        .map_err(|e| BenchError::io("making the listener nonblocking", e))?;
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    loop {
        match listener.accept() {
            Ok((mut s, from)) => {
                s.set_nonblocking(false)
                    .map_err(|e| BenchError::io("making the connection blocking", e))?;
                s.set_read_timeout(Some(Duration::from_secs(5)))
                    .map_err(|e| BenchError::io("setting a read timeout", e))?;
                let mut pid = [0u8; 4];
                if s.read_exact(&mut pid).is_ok() && u32::from_le_bytes(pid) == want {
                    s.set_read_timeout(None)
                        .map_err(|e| BenchError::io("clearing the read timeout", e))?;
                    return Ok(s);
                }
                eprintln!("ignoring a connection from {from} that is not the peer process");
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(BenchError::io("accepting the peer", e)),
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(BenchError::Protocol(format!("the peer process exited early ({status})")));
        }
        if Instant::now() > deadline {
            return Err(BenchError::Protocol(format!(
                "the peer process did not connect within {CONNECT_TIMEOUT:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// One end of the baseline connection, and the peer process when this is the initiator.
#[derive(Debug)]
pub struct Endpoint {
    /// The connection.
    pub link: TcpLink,
    /// Which side this process is.
    pub role: Role,
    child: Option<Child>,
}

impl Endpoint {
    /// The initiator (started by the user) spawns the peer and accepts its connection; the peer
    /// (started with [`PEER_ENV`]) connects.
    pub fn establish() -> Result<Endpoint> {
        match std::env::var_os(PEER_ENV) {
            Some(addr) => Self::connect(&addr),
            None => Self::spawn_peer(),
        }
    }

    fn connect(addr: &OsString) -> Result<Endpoint> {
        let text = addr.to_string_lossy();
        let addr: SocketAddr = text.parse().map_err(|_| {
            BenchError::Usage(format!("{PEER_ENV}='{text}' is not an address:port"))
        })?;
        let mut stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
            .map_err(|e| BenchError::io(format!("connecting to {addr}"), e))?;
        stream
            .write_all(&std::process::id().to_le_bytes())
            .map_err(|e| BenchError::io(format!("introducing itself to {addr}"), e))?;
        Ok(Endpoint { link: TcpLink::new(stream)?, role: Role::Responder, child: None })
    }

    fn spawn_peer() -> Result<Endpoint> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| BenchError::io("binding a loopback port", e))?;
        let addr = listener.local_addr().map_err(|e| BenchError::io("reading the port", e))?;
        let exe = std::env::current_exe()
            .map_err(|e| BenchError::io("finding this program's path", e))?;
        let mut child = Command::new(&exe)
            .args(std::env::args_os().skip(1))
            .env(PEER_ENV, addr.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| BenchError::io(format!("starting the peer {}", exe.display()), e))?;
        match accept_child(&listener, &mut child).and_then(TcpLink::new) {
            Ok(link) => Ok(Endpoint { link, role: Role::Initiator, child: Some(child) }),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(e)
            }
        }
    }

    /// Waits for the peer process (initiator only) and reports how it ended.
    pub fn finish(mut self) -> Result<()> {
        let child = self.child.take();
        drop(self);
        let Some(mut child) = child else { return Ok(()) };
        let status = child.wait().map_err(|e| BenchError::io("waiting for the peer", e))?;
        if status.success() {
            Ok(())
        } else {
            Err(BenchError::Protocol(format!("the peer process failed ({status})")))
        }
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        // Only reached with a child on an error path: do not leave the peer behind.
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
