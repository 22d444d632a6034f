//! The rendezvous: how the ranks of a job learn each other's addresses.
//!
//! A launcher runs one [`RendezvousServer`] per job; every rank connects to it once, says who it is
//! and where it listens, and receives the table of all endpoints. The server then exits. It never
//! sees application data. The protocol is in `docs/wire-protocol.md`.

use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::accept::Acceptor;
use crate::deadline::read_exact_by;
use crate::error::{Error, Result};
use crate::token::JobToken;
use crate::wire::{Endpoint, Hello, HelloKind, RendezvousReply, HELLO_LEN};

/// How long a connection to the server may take to say who it is.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// How much longer than its boot deadline a rank waits for the server's reply (the server
/// answers at its own deadline, which a launcher sets near the ranks').
const REPLY_MARGIN: Duration = Duration::from_secs(1);
/// Largest encoded endpoint a rank may send.
const MAX_ENDPOINT_LEN: u32 = crate::wire::MAX_ENDPOINT_LEN as u32;

/// A rendezvous server for one job.
///
/// ```no_run
/// use std::time::Duration;
/// use rmpi::{rendezvous::RendezvousServer, token::JobToken};
/// let token = JobToken::generate();
/// let server = RendezvousServer::bind("0.0.0.0:0".parse()?, 4, token, Duration::from_secs(60))?;
/// let port = server.local_addr().port();
/// // ... start 4 ranks with RMPI_RENDEZVOUS=<this host>:<port> and RMPI_TOKEN=token.to_hex() ...
/// server.run()?; // returns once all 4 have their peer table
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct RendezvousServer {
    listener: TcpListener,
    size: usize,
    token: JobToken,
    deadline: Duration,
}

struct Joined {
    rank: usize,
    endpoint: Endpoint,
    stream: TcpStream,
}

impl RendezvousServer {
    /// Binds the server. `deadline` bounds how long [`run`](Self::run) waits for all `size` ranks.
    pub fn bind(
        addr: SocketAddr,
        size: usize,
        token: JobToken,
        deadline: Duration,
    ) -> Result<Self> {
        if size == 0 || size > 65_535 {
            return Err(Error::Bootstrap { rank: 0, msg: format!("bad world size {size}") });
        }
        let listener = TcpListener::bind(addr)
            .map(crate::accept::deep_backlog)
            .map_err(|e| Error::io(format!("binding rendezvous {addr}"), e))?;
        Ok(RendezvousServer { listener, size, token, deadline })
    }

    /// The bound address (with the port the OS chose).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Runs the server in a background thread.
    pub fn spawn(self) -> thread::JoinHandle<Result<()>> {
        thread::spawn(move || self.run())
    }

    /// Waits for every rank, sends each the endpoint table, and returns. If the deadline passes
    /// first, tells every rank that did join which ranks are missing and returns an error naming
    /// them.
    pub fn run(self) -> Result<()> {
        let start = Instant::now();
        let (tx, rx) = mpsc::channel::<Joined>();
        let (token, size) = (self.token, self.size);
        let acceptor = Acceptor::spawn(
            &self.listener,
            "rendezvous".into(),
            move |stream, peer| match read_join(stream, token, size) {
                Ok(j) => {
                    let _ = tx.send(j);
                }
                Err((stream, why)) => {
                    tracing::warn!(%peer, "rendezvous: refused connection: {why}");
                    if let Some(s) = stream {
                        refuse(s, &why);
                    }
                }
            },
        )?;
        let mut joined: Vec<Option<Joined>> = (0..self.size).map(|_| None).collect();
        let mut count = 0;
        let outcome = loop {
            if count == self.size {
                break Ok(());
            }
            let left = self.deadline.saturating_sub(start.elapsed());
            match rx.recv_timeout(left) {
                Ok(j) => {
                    let r = j.rank;
                    if joined[r].is_some() {
                        tracing::warn!(rank = r, peer = ?j.stream.peer_addr().ok(),
                            "rendezvous: duplicate rank refused");
                        refuse(j.stream, &format!("rank {r} has already joined this job"));
                    } else {
                        joined[r] = Some(j);
                        count += 1;
                    }
                }
                Err(_) => {
                    let missing: Vec<usize> =
                        (0..self.size).filter(|r| joined[*r].is_none()).collect();
                    break Err(missing);
                }
            }
        };
        drop(acceptor);
        match outcome {
            Ok(()) => {
                let table: Vec<Endpoint> =
                    joined.iter().flatten().map(|j| j.endpoint.clone()).collect();
                let reply = RendezvousReply::Table(table).encode();
                for j in joined.into_iter().flatten() {
                    let mut s = j.stream;
                    if let Err(e) = s.write_all(&reply) {
                        tracing::warn!(rank = j.rank, "rendezvous: sending table: {e}");
                    }
                    let _ = s.shutdown(Shutdown::Write);
                }
                Ok(())
            }
            Err(missing) => {
                let msg = format!(
                    "{} of {} ranks never joined within {:?}: {}",
                    missing.len(),
                    self.size,
                    self.deadline,
                    list(&missing)
                );
                for j in joined.into_iter().flatten() {
                    refuse(j.stream, &msg);
                }
                Err(Error::Bootstrap { rank: usize::MAX, msg })
            }
        }
    }
}

/// Formats a rank list compactly: `0, 3, 5-9`.
pub(crate) fn list(ranks: &[usize]) -> String {
    let mut out = Vec::new();
    let mut i = 0;
    while i < ranks.len() {
        let mut j = i;
        while j + 1 < ranks.len() && ranks[j + 1] == ranks[j] + 1 {
            j += 1;
        }
        out.push(if j > i { format!("{}-{}", ranks[i], ranks[j]) } else { ranks[i].to_string() });
        i = j + 1;
    }
    out.join(", ")
}

fn refuse(mut s: TcpStream, msg: &str) {
    let _ = s.write_all(&RendezvousReply::Failed(msg.to_owned()).encode());
    let _ = s.shutdown(Shutdown::Both);
}

type Refusal = (Option<TcpStream>, String);

fn read_join(s: TcpStream, token: JobToken, size: usize) -> Result<Joined, Refusal> {
    let by = Instant::now() + HELLO_TIMEOUT;
    let _ = s.set_nodelay(true);
    let mut h = [0u8; HELLO_LEN];
    if let Err(e) = read_exact_by(&s, &mut h, by) {
        return Err((None, format!("no hello: {e}")));
    }
    let hello = match Hello::decode(&h) {
        Ok(h) => h,
        Err(e) => return Err((None, e.to_string())),
    };
    if hello.kind != HelloKind::Rendezvous {
        return Err((Some(s), "not a rendezvous hello".into()));
    }
    if !token.matches(&hello.token) {
        return Err((Some(s), "wrong job token".into()));
    }
    if hello.size as usize != size {
        return Err((
            Some(s),
            format!("world size {} does not match the job's {size}", hello.size),
        ));
    }
    if hello.rank as usize >= size {
        return Err((Some(s), format!("rank {} out of range for size {size}", hello.rank)));
    }
    let mut l = [0u8; 4];
    if let Err(e) = read_exact_by(&s, &mut l, by) {
        return Err((None, format!("rank {}: no endpoint: {e}", hello.rank)));
    }
    let len = u32::from_le_bytes(l);
    if len > MAX_ENDPOINT_LEN {
        return Err((Some(s), format!("endpoint record of {len} bytes is too long")));
    }
    let mut b = vec![0u8; len as usize];
    if let Err(e) = read_exact_by(&s, &mut b, by) {
        return Err((None, format!("rank {}: truncated endpoint: {e}", hello.rank)));
    }
    match Endpoint::decode(&b) {
        Ok((endpoint, _)) => {
            let _ = s.set_read_timeout(None);
            Ok(Joined { rank: hello.rank as usize, endpoint, stream: s })
        }
        Err(e) => Err((Some(s), format!("rank {}: bad endpoint: {e}", hello.rank))),
    }
}

/// The rank side: connects to the server, advertises `endpoint` (whose IP is chosen by `pick_ip`
/// from the local address of this very connection) and returns the full table.
pub(crate) fn join(
    rendezvous: SocketAddr,
    token: JobToken,
    rank: usize,
    size: usize,
    deadline: Instant,
    make_endpoint: impl FnOnce(std::net::IpAddr) -> Result<Endpoint>,
) -> Result<(Endpoint, Vec<Endpoint>)> {
    let fail = |msg: String| Error::Bootstrap { rank, msg };
    let mut s = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(fail(format!("could not reach the rendezvous at {rendezvous} in time")));
        }
        match TcpStream::connect_timeout(&rendezvous, left.min(Duration::from_secs(5))) {
            Ok(s) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                thread::sleep(Duration::from_millis(50));
            }
            Err(e) => {
                return Err(fail(format!("connecting to the rendezvous at {rendezvous}: {e}")))
            }
        }
    };
    let _ = s.set_nodelay(true);
    let local = s.local_addr().map_err(|e| Error::io("rendezvous socket", e))?;
    let me = make_endpoint(local.ip())?;
    let mut msg = Hello {
        kind: HelloKind::Rendezvous,
        token: *token.as_bytes(),
        size: size as u32,
        rank: rank as u32,
        grant: 0,
    }
    .encode()
    .to_vec();
    let mut ep = Vec::new();
    me.encode_into(&mut ep);
    msg.extend_from_slice(&(ep.len() as u32).to_le_bytes());
    msg.extend_from_slice(&ep);
    s.write_all(&msg)
        .map_err(|e| fail(format!("sending to the rendezvous at {rendezvous}: {e}")))?;
    // The server answers when everyone has joined or its deadline has passed: allow a margin.
    // The margin is the only slack: the whole reply must arrive by then, however it trickles.
    let reply_by = deadline + REPLY_MARGIN;
    let waited = reply_by.saturating_duration_since(Instant::now());
    let mut l = [0u8; 4];
    read_exact_by(&s, &mut l, reply_by).map_err(|e| {
        fail(format!("no answer from the rendezvous at {rendezvous} (waited {waited:?}): {e}"))
    })?;
    let len = u32::from_le_bytes(l) as usize;
    // MAX_ENDPOINT_LEN bytes per endpoint at most, plus the header.
    if len > 5 + size * MAX_ENDPOINT_LEN as usize {
        return Err(fail(format!("rendezvous reply of {len} bytes is too long")));
    }
    let mut body = vec![0u8; len];
    read_exact_by(&s, &mut body, reply_by)
        .map_err(|e| fail(format!("truncated reply from the rendezvous at {rendezvous}: {e}")))?;
    match RendezvousReply::decode(&body, size as u32) {
        Ok(RendezvousReply::Table(t)) => Ok((me, t)),
        Ok(RendezvousReply::Failed(why)) => Err(fail(format!("the rendezvous refused: {why}"))),
        Err(e) => Err(fail(format!("bad reply from the rendezvous: {e}"))),
    }
}

/// A server for `size` ranks on a loopback port, running in a thread (for tests).
#[cfg(test)]
pub(crate) fn serve_on_loopback(
    size: usize,
    token: JobToken,
    deadline: Duration,
) -> (SocketAddr, thread::JoinHandle<Result<()>>) {
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let server = RendezvousServer::bind(any, size, token, deadline).expect("a loopback port");
    (server.local_addr(), server.spawn())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_lists_are_compact() {
        assert_eq!(list(&[0, 3, 5, 6, 7, 9]), "0, 3, 5-7, 9");
        assert_eq!(list(&[]), "");
    }

    /// A simulated bootstrap: the real server and `SIM_RANKS` (default 1024) clients, each
    /// a thread that joins like a rank and opens no peer socket. Reports the time taken.
    #[test]
    #[ignore = "a benchmark: cargo test --release -p rmpi-transport --lib simulated -- --ignored --nocapture"]
    fn simulated_bootstrap() {
        let n: usize = std::env::var("SIM_RANKS").ok().and_then(|s| s.parse().ok()).unwrap_or(1024);
        let token = JobToken::generate();
        let start = Instant::now();
        let (rv, server) = serve_on_loopback(n, token, Duration::from_secs(60));
        let deadline = Instant::now() + Duration::from_secs(60);
        let clients: Vec<_> = (0..n)
            .map(|r| {
                thread::Builder::new()
                    .stack_size(64 << 10)
                    .spawn(move || {
                        let ep = |ip| {
                            Ok(Endpoint {
                                addr: SocketAddr::new(ip, 1000 + (r % 60000) as u16),
                                host: format!("host{}", r / 16),
                                shm: None,
                            })
                        };
                        join(rv, token, r, n, deadline, ep).map(|(_, t)| t.len())
                    })
                    .unwrap()
            })
            .collect();
        for c in clients {
            assert_eq!(c.join().unwrap().unwrap(), n);
        }
        server.join().unwrap().unwrap();
        eprintln!("simulated bootstrap of {n} ranks: {:?}", start.elapsed());
    }
}
