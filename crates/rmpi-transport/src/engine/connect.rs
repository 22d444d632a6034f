//! Connections on demand: a TCP connection to a peer opens on the first send to it, or the first
//! receive that names it as the source, so a rank holds sockets only for the peers it talks to.
//!
//! The listener stays in the poller for the life of the engine. Opening ("dialing") is
//! nonblocking: the connection gets a [`Conn`] at once, whose stream is a placeholder that takes
//! nothing, so sends queue behind it; when the peer has answered the hello, the real socket
//! replaces the placeholder and the queue flows.
//!
//! Both ranks of a pair may dial each other at once. The rule, the same on both sides: **the
//! connection dialed by the lower rank wins.** A rank that gets a hello from a lower rank takes
//! that connection (dropping its own dial, on which it had sent nothing but its hello); one that
//! gets a hello from a higher rank while its own dial to it is open closes the new one without an
//! answer. The higher rank, seeing its dial end unanswered, waits for the lower rank's connection,
//! which is already on its way. Nothing but the hellos ever travels on a losing connection, so the
//! one stream per pair keeps every sender's order.
//!
//! Under the directory bootstrap a rank does not know other hosts' addresses at start: the first
//! dial to one of their ranks asks that host's directory on a thread of its own
//! (`engine/hosts.rs`), and the dial follows the answer, which rings the poller; the answer holds
//! the whole host and is kept. While the look-up runs, the rank counts as being dialed, so the
//! lower-rank rule above holds.
//!
//! Both hellos carry the eager credit their sender grants (see `flow.rs`): sends queued on a
//! connection still opening are sorted into eager and announced once the answer tells it.
//!
//! Failure: a dial refused (nobody listens: the peer exited or finished), or closed unanswered by a
//! higher rank, fails the peer like a lost connection. Receives naming a source dial it, so a
//! receive from a peer that dies before ever sending fails. An any-source receive dials nobody:
//! the peers it could hear from are those already connected plus whoever connects; a peer that
//! dies before contacting this rank is noticed by the launcher (rmpirun's node agent ends the job
//! when a rank dies), not by that receive.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};

use super::framing::Conn;
use super::hosts::{Hosts, Reach};
use super::state::State;
use super::stream::Stream;
use crate::token::JobToken;
use crate::wire::{Hello, HelloKind, HELLO_LEN};

/// How long an accepted connection may take to send its hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// What the bootstrap hands the engine for connecting on demand.
#[derive(Debug)]
pub(crate) struct Lazy {
    /// This rank's listening socket (its address is in its endpoint).
    pub(crate) listener: std::net::TcpListener,
    pub(crate) token: JobToken,
    /// Every rank's address; `None` for ranks not reached over TCP (this one, shared memory).
    pub(crate) addrs: Vec<Option<SocketAddr>>,
    /// Keep-alive timeout armed on every connection (`RMPI_PEER_TIMEOUT`).
    pub(crate) peer_timeout: Option<Duration>,
    /// How long a higher rank waits for the lower rank's connection after its own lost (and
    /// how long a directory look-up may take).
    pub(crate) cross_timeout: Duration,
    /// Under the directory bootstrap: the hosts whose ranks' addresses are looked up at first
    /// dial (their `addrs` are `None` until then).
    pub(crate) remote: Option<crate::directory::Remote>,
    /// The eager credit this rank grants each peer (announced in its hellos).
    pub(crate) grant: u64,
}

/// The stream of a connection that is still opening: it takes and gives nothing.
#[derive(Debug)]
struct Opening;

impl Stream for Opening {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(io::ErrorKind::WouldBlock.into())
    }
    fn write_vectored(&mut self, _: &[io::IoSlice<'_>]) -> io::Result<usize> {
        Err(io::ErrorKind::WouldBlock.into())
    }
    fn close_write(&mut self) {}
    fn close(&mut self) {}
    fn unacked(&self) -> usize {
        0
    }
}

/// A hello being read or written, `HELLO_LEN` bytes.
#[derive(Debug)]
struct Half {
    buf: [u8; HELLO_LEN],
    done: usize,
}

impl Half {
    fn new(buf: [u8; HELLO_LEN]) -> Half {
        Half { buf, done: 0 }
    }
}

/// Where one of our dials stands.
#[derive(Debug)]
enum Phase {
    /// TCP connecting, or our hello partly written.
    Hello(TcpStream, Half),
    /// Our hello is out; the peer's answer is coming in.
    Answer(TcpStream, Half),
    /// The peer (a lower rank) closed our dial unanswered: its own connection is coming.
    Crossed,
}

#[derive(Debug)]
struct Dial {
    rank: usize,
    phase: Phase,
    since: Instant,
}

/// An accepted connection whose hello has not all arrived.
#[derive(Debug)]
struct Greeting {
    sock: TcpStream,
    peer: SocketAddr,
    hello: Half,
    since: Instant,
}

/// Dials, accepts and the handshakes in between.
#[derive(Debug)]
pub(super) struct Connector {
    registry: Registry,
    listener: TcpListener,
    me: usize,
    size: usize,
    job_token: JobToken,
    /// The eager credit this rank grants each peer.
    grant: u64,
    addrs: Vec<Option<SocketAddr>>,
    peer_timeout: Option<Duration>,
    cross_timeout: Duration,
    /// The poller reported something on the listener or a handshaking socket.
    poked: bool,
    dials: Vec<Dial>,
    greetings: Vec<Greeting>,
    /// Directory look-ups (the directory bootstrap only).
    hosts: Option<Hosts>,
}

/// What the handshakes produced in one pass, for the state to apply.
enum Outcome {
    /// Rank `r` is connected through this socket, and grants this rank that much credit.
    Open(usize, TcpStream, u64),
    /// Connecting to rank `r` failed.
    Failed(usize, String),
}

impl Connector {
    /// The poller token of the listener and every handshaking socket (after the peers' sockets
    /// and the local peers' exit watches, `0..2 * size`).
    pub(super) fn token(size: usize) -> Token {
        Token(2 * size)
    }

    pub(super) fn new(registry: &Registry, me: usize, lazy: Lazy) -> io::Result<Connector> {
        let size = lazy.addrs.len();
        lazy.listener.set_nonblocking(true)?;
        let mut listener = TcpListener::from_std(lazy.listener);
        let registry = registry.try_clone()?;
        registry.register(&mut listener, Self::token(size), Interest::READABLE)?;
        let hosts = match lazy.remote {
            Some(remote) => {
                let t = Self::token(size);
                Some(Hosts::new(&registry, t, lazy.token, me, remote, lazy.cross_timeout)?)
            }
            None => None,
        };
        Ok(Connector {
            registry,
            listener,
            me,
            size,
            job_token: lazy.token,
            grant: lazy.grant,
            addrs: lazy.addrs,
            peer_timeout: lazy.peer_timeout,
            cross_timeout: lazy.cross_timeout,
            // Peers may have connected before the poller watched the listener.
            poked: true,
            dials: Vec::new(),
            greetings: Vec::new(),
            hosts,
        })
    }

    /// Whether a handshake is under way or the poller reported something.
    fn busy(&self) -> bool {
        self.poked || !self.dials.is_empty() || !self.greetings.is_empty()
    }

    /// Records a poller event with [`token`](Self::token).
    pub(super) fn poke(&mut self) {
        self.poked = true;
    }

    /// How a connection to `r` is made: by dialing an address, after asking its host's
    /// directory, or not at all.
    fn reach(&mut self, r: usize) -> Reach {
        if let Some(a) = self.addrs.get(r).copied().flatten() {
            return Reach::At(a);
        }
        match &mut self.hosts {
            Some(h) if r != self.me && h.is_remote(r) => h.ask(r),
            _ => Reach::No,
        }
    }

    fn hello(&self) -> [u8; HELLO_LEN] {
        Hello {
            kind: HelloKind::Peer,
            token: *self.job_token.as_bytes(),
            size: self.size as u32,
            rank: self.me as u32,
            grant: self.grant,
        }
        .encode()
    }

    /// Checks a peer's hello; `Ok((rank, grant))` when it is one of ours.
    fn check(&self, b: &[u8]) -> Result<(usize, u64), String> {
        let h = Hello::decode(b).map_err(|e| e.to_string())?;
        if h.kind != HelloKind::Peer {
            return Err("not a peer hello".into());
        }
        if !self.job_token.matches(&h.token) {
            return Err("wrong job token (a rank of another job?)".into());
        }
        if h.size as usize != self.size {
            return Err(format!("world size {} differs from ours ({})", h.size, self.size));
        }
        let r = h.rank as usize;
        let known = self.addrs.get(r).copied().flatten().is_some();
        let remote = self.hosts.as_ref().is_some_and(|h| h.is_remote(r));
        if r >= self.size || r == self.me || !(known || remote) {
            return Err(format!("rank {r} is not a TCP peer of rank {}", self.me));
        }
        Ok((r, h.grant))
    }

    /// Starts dialing `r`.
    fn dial(&mut self, r: usize, addr: SocketAddr) -> Result<(), String> {
        let mut sock = TcpStream::connect(addr).map_err(|e| connect_error(&e))?;
        self.registry
            .register(&mut sock, Self::token(self.size), Interest::READABLE | Interest::WRITABLE)
            .map_err(|e| format!("watching the connection: {e}"))?;
        let _ = sock.set_nodelay(true);
        let phase = Phase::Hello(sock, Half::new(self.hello()));
        self.dials.push(Dial { rank: r, phase, since: Instant::now() });
        self.poked = true;
        Ok(())
    }

    fn dialing(&self, r: usize) -> bool {
        self.dials.iter().any(|d| d.rank == r) || self.hosts.as_ref().is_some_and(|h| h.waiting(r))
    }

    /// Drops our dial to `r` (the peer's own connection won).
    fn drop_dial(&mut self, r: usize) {
        for d in self.dials.iter_mut().filter(|d| d.rank == r) {
            if let Phase::Hello(s, _) | Phase::Answer(s, _) = &mut d.phase {
                let _ = self.registry.deregister(s);
            }
        }
        self.dials.retain(|d| d.rank != r);
        if let Some(h) = &mut self.hosts {
            h.forget(r);
        }
    }

    /// Moves every handshake forward; `open` says whether we hold a connection to a rank (one
    /// being dialed included).
    fn step(&mut self, open: &dyn Fn(usize) -> bool) -> Vec<Outcome> {
        let mut out = Vec::new();
        let now = Instant::now();
        if std::mem::take(&mut self.poked) {
            self.learn(&mut out);
            self.accept_all(now);
            self.step_greetings(open, &mut out);
            self.step_dials(&mut out);
        }
        // Deadlines, which no event announces.
        let me = self.me;
        self.greetings.retain(|g| {
            let late = now.duration_since(g.since) > HELLO_TIMEOUT;
            if late {
                tracing::warn!(peer = %g.peer, "rank {me}: refused a connection: no hello within {HELLO_TIMEOUT:?}");
            }
            !late
        });
        let cross = self.cross_timeout;
        let mut late = Vec::new();
        for d in &self.dials {
            if matches!(d.phase, Phase::Crossed) && now.duration_since(d.since) > cross {
                late.push(d.rank);
            }
        }
        for r in late {
            self.drop_dial(r);
            out.push(Outcome::Failed(
                r,
                format!(
                    "it closed our connection unanswered and made none of its own within {cross:?}"
                ),
            ));
        }
        out
    }

    /// Takes in the directory's answers: records the addresses, dials the ranks that waited.
    fn learn(&mut self, out: &mut Vec<Outcome>) {
        let Some(h) = &mut self.hosts else { return };
        let (learned, ready) = h.answers();
        let labels: Vec<(usize, String)> =
            ready.iter().map(|(r, _)| (*r, h.label(*r).to_string())).collect();
        for (r, a) in learned {
            if let Some(slot) = self.addrs.get_mut(r) {
                if r != self.me {
                    *slot = Some(a);
                }
            }
        }
        for ((r, reach), (_, label)) in ready.into_iter().zip(labels) {
            match reach {
                Reach::At(a) => {
                    if let Err(why) = self.dial(r, a) {
                        out.push(Outcome::Failed(r, format!("dialing rank {r} on {label}: {why}")));
                    }
                }
                Reach::Failed(why) => out.push(Outcome::Failed(r, format!("rank {r} {why}"))),
                Reach::No | Reach::Asked => {}
            }
        }
    }

    fn accept_all(&mut self, now: Instant) {
        loop {
            match self.listener.accept() {
                Ok((mut sock, peer)) => {
                    let t = Self::token(self.size);
                    if let Err(e) = self.registry.register(&mut sock, t, Interest::READABLE) {
                        tracing::warn!(%peer, "rank {}: cannot watch a connection: {e}", self.me);
                        continue;
                    }
                    let _ = sock.set_nodelay(true);
                    let hello = Half::new([0; HELLO_LEN]);
                    self.greetings.push(Greeting { sock, peer, hello, since: now });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // Out of descriptors, say: the peer sees its connection reset and retries
                    // nothing; tell the user why.
                    tracing::warn!(
                        "rank {}: accepting a connection failed: {}",
                        self.me,
                        connect_error(&e)
                    );
                    return;
                }
            }
        }
    }

    fn step_greetings(&mut self, open: &dyn Fn(usize) -> bool, out: &mut Vec<Outcome>) {
        let mut i = 0;
        while i < self.greetings.len() {
            let g = &mut self.greetings[i];
            match fill(&mut g.sock, &mut g.hello) {
                Ok(false) => {
                    // What does not speak this protocol is refused without waiting for more.
                    if let Err(why) = Hello::check_start(&g.hello.buf[..g.hello.done]) {
                        tracing::warn!(peer = %g.peer, "rank {}: refused a connection: {why}", self.me);
                        let mut g = self.greetings.swap_remove(i);
                        let _ = self.registry.deregister(&mut g.sock);
                        continue;
                    }
                    i += 1;
                    continue;
                }
                Ok(true) => {}
                Err(why) => {
                    tracing::debug!(peer = %g.peer, "rank {}: a connection ended before its hello: {why:?}", self.me);
                    self.greetings.swap_remove(i);
                    continue;
                }
            }
            let mut g = self.greetings.swap_remove(i);
            let (r, grant) = match self.check(&g.hello.buf) {
                Ok(rg) => rg,
                Err(why) => {
                    tracing::warn!(peer = %g.peer, "rank {}: refused a connection: {why}", self.me);
                    continue;
                }
            };
            let dialing = self.dialing(r);
            if open(r) && !dialing {
                tracing::warn!(peer = %g.peer, "rank {}: refused a second connection claiming to be rank {r}", self.me);
                let _ = self.registry.deregister(&mut g.sock);
                continue;
            }
            if dialing && r > self.me {
                // A higher rank's hello crossing our dial to it: ours wins; close theirs
                // unanswered.
                let _ = self.registry.deregister(&mut g.sock);
                continue;
            }
            let answer = self.hello();
            if let Err(e) = write_all_now(&mut g.sock, &answer) {
                tracing::debug!(peer = %g.peer, "rank {}: answering rank {r}: {e}", self.me);
                continue;
            }
            self.drop_dial(r);
            let _ = self.registry.deregister(&mut g.sock);
            out.push(Outcome::Open(r, g.sock, grant));
        }
    }

    fn step_dials(&mut self, out: &mut Vec<Outcome>) {
        let me = self.me;
        let mut i = 0;
        while i < self.dials.len() {
            let d = &mut self.dials[i];
            let r = d.rank;
            match advance(&mut d.phase) {
                Ok(None) => i += 1,
                Ok(Some((mut sock, answer))) => {
                    self.dials.swap_remove(i);
                    let _ = self.registry.deregister(&mut sock);
                    match self.check(&answer) {
                        Ok((got, grant)) if got == r => out.push(Outcome::Open(r, sock, grant)),
                        Ok((got, _)) => out.push(Outcome::Failed(
                            r,
                            format!("the peer answered as rank {got}, not {r}"),
                        )),
                        Err(why) => out.push(Outcome::Failed(r, format!("bad answer: {why}"))),
                    }
                }
                Err(Closed::Unanswered) if r < me => {
                    // It is dialing us too, and its connection wins: wait for it.
                    d.phase = Phase::Crossed;
                    d.since = Instant::now();
                    i += 1;
                }
                Err(Closed::Unanswered) => {
                    self.dials.swap_remove(i);
                    out.push(Outcome::Failed(
                        r,
                        "it closed the connection before answering (it has exited?)".into(),
                    ));
                }
                Err(Closed::Error(why)) => {
                    self.dials.swap_remove(i);
                    out.push(Outcome::Failed(r, why));
                }
            }
        }
    }

    /// Arms the keep-alive of a connection to `r` and has the poller report it under `r`.
    fn adopt(&self, r: usize, mut sock: TcpStream) -> io::Result<TcpStream> {
        if let Some(t) = self.peer_timeout {
            if let Err(e) = crate::liveness::watch(&sock, t) {
                tracing::warn!(rank = self.me, peer = r, "cannot arm keep-alive: {e}");
            }
        }
        self.registry.register(&mut sock, Token(r), Interest::READABLE | Interest::WRITABLE)?;
        Ok(sock)
    }
}

/// A connector goes when its rank finalizes or fails, and it will answer no greeting after that.
/// Closing an accepted connection quietly would look, to a higher rank that dialed us, like
/// the lower rank's side of crossing dials (closed unanswered because its own dial wins), and
/// it would wait for a dial that never comes. So each pending greeting is reset instead, which
/// its dialer takes as "it has exited or finalized", as it does for a dial still in the queue
/// of a closed listener.
impl Drop for Connector {
    fn drop(&mut self) {
        for g in &self.greetings {
            if let Err(e) = socket2::SockRef::from(&g.sock).set_linger(Some(Duration::ZERO)) {
                tracing::debug!(peer = %g.peer, "rank {}: cannot reset a greeting: {e}", self.me);
            }
        }
    }
}

/// How a dial ended without an answer.
enum Closed {
    /// The peer closed it.
    Unanswered,
    /// Connecting or the handshake failed.
    Error(String),
}

/// Moves one dial on; once the whole answer is in, the socket and the answer (the phase is then
/// left as `Crossed`, to be dropped).
fn advance(phase: &mut Phase) -> Result<Option<(TcpStream, [u8; HELLO_LEN])>, Closed> {
    loop {
        match phase {
            Phase::Crossed => return Ok(None),
            Phase::Hello(s, h) => {
                if let Ok(Some(e)) | Err(e) = s.take_error() {
                    return Err(Closed::Error(connect_error(&e)));
                }
                match s.peer_addr() {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(None),
                    Err(e) => return Err(Closed::Error(connect_error(&e))),
                }
                match Write::write(s, &h.buf[h.done..]) {
                    Ok(n) => h.done += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(Closed::Error(format!("sending the hello: {e}"))),
                }
                if h.done == HELLO_LEN {
                    if let Phase::Hello(s, _) = std::mem::replace(phase, Phase::Crossed) {
                        *phase = Phase::Answer(s, Half::new([0; HELLO_LEN]));
                    }
                }
            }
            Phase::Answer(s, h) => {
                return match fill(s, h) {
                    Ok(false) => Ok(None),
                    Ok(true) => {
                        let answer = h.buf;
                        match std::mem::replace(phase, Phase::Crossed) {
                            Phase::Answer(s, _) => Ok(Some((s, answer))),
                            _ => Ok(None),
                        }
                    }
                    Err(Some(e)) if e.kind() == io::ErrorKind::ConnectionReset => {
                        Err(Closed::Error(
                            "the connection was reset before it was answered (it has exited or \
                         finalized)"
                                .into(),
                        ))
                    }
                    Err(Some(e)) => Err(Closed::Error(format!("waiting for the answer: {e}"))),
                    Err(None) => Err(Closed::Unanswered),
                };
            }
        }
    }
}

/// Reads into `h` what is there: `Ok(true)` once it is full, `Ok(false)` for more to come,
/// `Err(None)` at the end of the stream (a reset is an error: a listener that closes with our
/// dial in its queue resets it, while a crossing dial is closed cleanly).
fn fill(s: &mut TcpStream, h: &mut Half) -> Result<bool, Option<io::Error>> {
    while h.done < HELLO_LEN {
        match Read::read(s, &mut h.buf[h.done..]) {
            Ok(0) => return Err(None),
            Ok(n) => h.done += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Some(e)),
        }
    }
    Ok(true)
}

/// Writes a hello into a fresh socket (its buffer is empty, so all of it fits at once).
fn write_all_now(s: &mut TcpStream, b: &[u8]) -> io::Result<()> {
    let n = Write::write(s, b)?;
    if n < b.len() {
        return Err(io::Error::other("short write of the hello"));
    }
    Ok(())
}

/// A connect or accept error, with what to do about the usual ones.
fn connect_error(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ECONNREFUSED) => {
            "connection refused (it has exited or finalized, or never listened)".into()
        }
        Some(libc::EMFILE) | Some(libc::ENFILE) => {
            let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
            let limit = limit.map_or("unlimited".to_string(), |l| l.to_string());
            format!(
                "out of file descriptors ({e}; the limit is {limit}): raise it (ulimit -n, or \
                 nofile in /etc/security/limits.conf)"
            )
        }
        _ => format!("connecting: {e}"),
    }
}

impl State {
    /// A connection opened after start, with the eager credit its peer granted (`None` while it
    /// is still opening).
    fn lazy_conn(
        flow: &super::flow::FlowConfig,
        stream: Box<dyn Stream>,
        grant: Option<u64>,
    ) -> Conn {
        let mut conn = Conn::new(stream);
        // On demand means over TCP.
        conn.flow = flow.conn(false, grant);
        conn
    }

    /// Opens the connection to `r` if there is none and `r` is reached over TCP.
    pub(super) fn open_on_demand(&mut self, r: usize) {
        if !matches!(self.conns.get(r), Some(None)) {
            return;
        }
        let Some(c) = &mut self.connect else { return };
        let reach = c.reach(r);
        if matches!(reach, Reach::No) {
            return;
        }
        let mut conn = State::lazy_conn(&self.flow, Box::new(Opening), None);
        conn.readable = false;
        conn.writable = false;
        self.conns[r] = Some(conn);
        match reach {
            Reach::At(addr) => {
                if let Err(cause) = c.dial(r, addr) {
                    self.kill(r, cause);
                }
            }
            // The dial follows the directory's answer (see `learn`).
            Reach::Asked | Reach::No => {}
            Reach::Failed(why) => self.kill(r, format!("rank {r} {why}")),
        }
    }

    /// Marks `r`, never connected to, lost (`cause`): a peer reported its loss. Later sends to it
    /// and receives from it fail at once instead of dialing.
    pub(super) fn lost_unconnected(&mut self, r: usize, cause: String) {
        if !matches!(self.conns.get(r), Some(None)) {
            return;
        }
        let mut conn = State::lazy_conn(&self.flow, Box::new(Opening), None);
        conn.readable = false;
        conn.writable = false;
        self.conns[r] = Some(conn);
        self.kill(r, cause);
    }

    /// Moves the handshakes on and puts the connections they open in place.
    pub(super) fn connect_pass(&mut self) {
        let Some(c) = &mut self.connect else { return };
        if !c.busy() {
            return;
        }
        let conns = &self.conns;
        let outcomes = c.step(&|r| matches!(conns.get(r), Some(Some(_))));
        for o in outcomes {
            match o {
                Outcome::Open(r, sock, grant) => {
                    let Some(c) = &self.connect else { return };
                    let sock = match c.adopt(r, sock) {
                        Ok(s) => s,
                        Err(e) => {
                            self.kill(r, format!("watching the connection: {e}"));
                            continue;
                        }
                    };
                    let flow = self.flow;
                    match &mut self.conns[r] {
                        Some(conn) => {
                            conn.stream = Box::new(sock);
                            conn.readable = true;
                            conn.writable = true;
                            self.learn_grant(r, grant);
                        }
                        slot => *slot = Some(State::lazy_conn(&flow, Box::new(sock), Some(grant))),
                    }
                }
                Outcome::Failed(r, cause) => self.kill(r, cause),
            }
        }
    }
}
