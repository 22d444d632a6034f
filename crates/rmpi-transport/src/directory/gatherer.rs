//! The node agent's side: gathers its host's ranks, reports the host to the launcher once, hands
//! every rank the job's placement, then answers other hosts' ranks that look up this host's
//! endpoints, for the life of the job.
//!
//! One thread, one poller: registrations, look-ups and the launcher's word (through
//! [`Handle::deliver`]) never wait on each other. Frames to and from the launcher are whole
//! [`Msg`] frames, carried by whatever link the agent has to it (rmpirun's control stream).

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};

use super::wire::{frame_len, Go, HostInfo, Msg, Placement, Report, MAX_FRAME, MAX_RANK_FRAME};
use crate::rendezvous::list;
use crate::token::JobToken;
use crate::wire::Endpoint;

/// How long a connection may take to send its first whole frame (while ranks may still
/// register: until the registration deadline, if that is later).
const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(60);

/// How often the gatherer looks at its deadline and retries unflushed output.
const TICK: Duration = Duration::from_millis(250);
const LISTENER: Token = Token(0);
const WAKE: Token = Token(1);

/// What a gatherer serves.
#[derive(Clone, Debug)]
pub struct GathererConfig {
    /// The job token.
    pub token: JobToken,
    /// World size.
    pub size: usize,
    /// This host's index in the placement.
    pub host: u16,
    /// The host's name, for messages.
    pub name: String,
    /// The world ranks that register here.
    pub ranks: Vec<u32>,
    /// When every rank must have registered.
    pub deadline: Instant,
}

/// How the launcher's side talks to a running gatherer.
#[derive(Clone, Debug)]
pub struct Handle {
    tx: mpsc::Sender<Control>,
    waker: Arc<Waker>,
}

enum Control {
    Deliver(Vec<u8>),
    Stop,
}

impl Handle {
    /// Hands the gatherer a frame from the launcher ([`Msg::Placement`] or [`Msg::Failed`]).
    pub fn deliver(&self, frame: Vec<u8>) {
        if self.tx.send(Control::Deliver(frame)).is_ok() {
            let _ = self.waker.wake();
        }
    }

    /// Ends the gatherer (its connections close).
    pub fn stop(&self) {
        if self.tx.send(Control::Stop).is_ok() {
            let _ = self.waker.wake();
        }
    }
}

/// A running gatherer.
pub struct Gatherer {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Its control handle.
    pub handle: Handle,
    /// Its thread, which ends after [`Handle::stop`] (or when every handle is dropped).
    pub thread: thread::JoinHandle<()>,
    passes: Arc<AtomicU64>,
}

impl Gatherer {
    /// How many times its poller has woken so far (an idle gatherer wakes a few times a
    /// second).
    pub fn wakeups(&self) -> u64 {
        self.passes.load(Ordering::Relaxed)
    }
}

/// Binds `bind` and starts the gatherer. `report` receives each frame for the launcher (one
/// [`Msg::Report`], or a [`Msg::Failed`] naming the ranks that never registered).
pub fn start(
    bind: SocketAddr,
    cfg: GathererConfig,
    report: Box<dyn FnMut(Vec<u8>) + Send>,
) -> io::Result<Gatherer> {
    let std_listener = std::net::TcpListener::bind(bind).map(crate::accept::deep_backlog)?;
    std_listener.set_nonblocking(true)?;
    let addr = std_listener.local_addr()?;
    let mut listener = TcpListener::from_std(std_listener);
    let poll = Poll::new()?;
    poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
    let (tx, rx) = mpsc::channel();
    let index: HashMap<u32, usize> = cfg.ranks.iter().enumerate().map(|(i, r)| (*r, i)).collect();
    let state = State {
        entries: vec![None; cfg.ranks.len()],
        registered: 0,
        index,
        port: addr.port(),
        cfg,
        conns: Vec::new(),
        free: Vec::new(),
        report,
        phase: PhaseOf::Gathering,
        entries_frame: None,
        waiting_lookups: Vec::new(),
    };
    let passes = Arc::new(AtomicU64::new(0));
    let counter = passes.clone();
    let thread = thread::Builder::new()
        .name("rmpi-gatherer".into())
        .spawn(move || state.run(poll, listener, rx, &counter))?;
    Ok(Gatherer { addr, handle: Handle { tx, waker }, thread, passes })
}

#[derive(Debug, PartialEq, Eq)]
enum PhaseOf {
    Gathering,
    Reported,
    Went,
    Failed,
}

#[derive(Debug, PartialEq, Eq)]
enum Role {
    /// Nothing whole heard yet.
    New,
    /// A registered rank waiting for its go.
    Rank(u32),
    /// A look-up client.
    Asker,
}

struct Conn {
    sock: TcpStream,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    out_at: usize,
    role: Role,
    since: Instant,
    /// Shut our side once `out` is flushed.
    finish: bool,
    /// Our side is shut. Shutting it again would wake this poller (a shutdown always signals a
    /// state change), which would read, flush and shut again: a busy loop until the peer closes.
    shut: bool,
    dead: bool,
}

struct State {
    cfg: GathererConfig,
    entries: Vec<Option<Endpoint>>,
    registered: usize,
    index: HashMap<u32, usize>,
    port: u16,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    report: Box<dyn FnMut(Vec<u8>) + Send>,
    phase: PhaseOf,
    entries_frame: Option<Vec<u8>>,
    waiting_lookups: Vec<usize>,
}

impl State {
    fn run(
        mut self,
        mut poll: Poll,
        listener: TcpListener,
        rx: mpsc::Receiver<Control>,
        passes: &AtomicU64,
    ) {
        let mut events = Events::with_capacity(1024);
        let host = self.cfg.name.clone();
        loop {
            passes.fetch_add(1, Ordering::Relaxed);
            let now = Instant::now();
            let until = if self.phase == PhaseOf::Gathering {
                self.cfg.deadline.saturating_duration_since(now).min(TICK)
            } else {
                TICK
            };
            if let Err(e) = poll.poll(&mut events, Some(until)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    tracing::warn!(%host, "directory: poll failed: {e}");
                    return;
                }
            }
            let mut touched = Vec::new();
            for ev in events.iter() {
                match ev.token() {
                    LISTENER | WAKE => {}
                    Token(t) => touched.push(t - 2),
                }
            }
            // Every pass, not only on the listener's event: an accept that failed (out of
            // descriptors) leaves connections queued that raise no new event.
            self.accept(&listener, &poll);
            loop {
                match rx.try_recv() {
                    Ok(Control::Deliver(frame)) => self.on_launcher_frame(&frame),
                    Ok(Control::Stop) | Err(mpsc::TryRecvError::Disconnected) => return,
                    Err(mpsc::TryRecvError::Empty) => break,
                }
            }
            for i in touched {
                self.read(i);
            }
            self.sweep(Instant::now(), &poll);
        }
    }

    fn accept(&mut self, listener: &TcpListener, poll: &Poll) {
        loop {
            match listener.accept() {
                Ok((mut sock, _)) => {
                    let _ = sock.set_nodelay(true);
                    let i = self.free.pop().unwrap_or(self.conns.len());
                    let t = Token(i + 2);
                    let interest = Interest::READABLE | Interest::WRITABLE;
                    if let Err(e) = poll.registry().register(&mut sock, t, interest) {
                        tracing::warn!(host = %self.cfg.name, "directory: cannot watch a connection: {e}");
                        continue;
                    }
                    let c = Conn {
                        sock,
                        inbuf: Vec::new(),
                        out: Vec::new(),
                        out_at: 0,
                        role: Role::New,
                        since: Instant::now(),
                        finish: false,
                        shut: false,
                        dead: false,
                    };
                    if i == self.conns.len() {
                        self.conns.push(Some(c));
                    } else {
                        self.conns[i] = Some(c);
                    }
                    // Data may already be waiting: edge-triggered, so look now.
                    self.read(i);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::warn!(host = %self.cfg.name, "directory: accept failed: {e}");
                    return;
                }
            }
        }
    }

    /// Reads what connection `i` has, handles its whole frames and flushes its output.
    fn read(&mut self, i: usize) {
        let mut frames = Vec::new();
        {
            let Some(Some(c)) = self.conns.get_mut(i) else { return };
            let mut buf = [0u8; 4096];
            loop {
                match c.sock.read(&mut buf) {
                    Ok(0) => {
                        c.dead = true;
                        break;
                    }
                    Ok(n) => {
                        c.inbuf.extend_from_slice(&buf[..n]);
                        if c.inbuf.len() > 4 * MAX_RANK_FRAME {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        c.dead = true;
                        break;
                    }
                }
            }
            loop {
                match frame_len(&c.inbuf, MAX_RANK_FRAME) {
                    Ok(Some(n)) => {
                        frames.push(Msg::decode(&c.inbuf[4..n]).map_err(|e| e.to_string()));
                        c.inbuf.drain(..n);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        frames.push(Err(e.to_string()));
                        c.inbuf.clear();
                        break;
                    }
                }
            }
        }
        for f in frames {
            self.handle(i, f);
        }
        self.flush(i);
    }

    fn send(&mut self, i: usize, frame: &[u8]) {
        if let Some(Some(c)) = self.conns.get_mut(i) {
            c.out.extend_from_slice(frame);
        }
    }

    fn refuse(&mut self, i: usize, why: String) {
        tracing::warn!(host = %self.cfg.name, "directory: refused a connection: {why}");
        self.send(i, &Msg::Failed(why).encode());
        if let Some(Some(c)) = self.conns.get_mut(i) {
            c.finish = true;
        }
    }

    fn handle(&mut self, i: usize, msg: Result<Msg, String>) {
        let msg = match msg {
            Ok(m) => m,
            Err(why) => return self.refuse(i, format!("malformed directory frame: {why}")),
        };
        let role_new = matches!(self.conns.get(i), Some(Some(c)) if c.role == Role::New);
        match msg {
            Msg::Register { token, size, rank, endpoint } if role_new => {
                if !self.cfg.token.matches(&token) {
                    return self.refuse(i, "wrong job token".into());
                }
                if size as usize != self.cfg.size {
                    return self.refuse(
                        i,
                        format!("world size {size} does not match the job's {}", self.cfg.size),
                    );
                }
                let Some(&slot) = self.index.get(&rank) else {
                    return self
                        .refuse(i, format!("rank {rank} does not run on {}", self.cfg.name));
                };
                if self.entries[slot].is_some() {
                    return self.refuse(i, format!("rank {rank} has already registered"));
                }
                if self.phase != PhaseOf::Gathering {
                    return self.refuse(i, "registration is closed".into());
                }
                self.entries[slot] = Some(endpoint);
                self.registered += 1;
                if let Some(Some(c)) = self.conns.get_mut(i) {
                    c.role = Role::Rank(rank);
                }
                if self.registered == self.entries.len() {
                    self.complete();
                }
            }
            Msg::Lookup { token, from } if role_new || self.is_asker(i) => {
                if !self.cfg.token.matches(&token) {
                    return self.refuse(i, "wrong job token".into());
                }
                tracing::trace!(host = %self.cfg.name, "directory: rank {from} looks up this host");
                if let Some(Some(c)) = self.conns.get_mut(i) {
                    c.role = Role::Asker;
                }
                match &self.entries_frame {
                    Some(f) => {
                        let f = f.clone();
                        self.send(i, &f);
                    }
                    None => self.waiting_lookups.push(i),
                }
            }
            other => {
                let what = match other {
                    Msg::Register { .. } => "a second register",
                    Msg::Lookup { .. } => "a look-up from a registered rank",
                    _ => "a frame no rank sends",
                };
                self.refuse(i, format!("unexpected directory frame: {what}"));
            }
        }
    }

    fn is_asker(&self, i: usize) -> bool {
        matches!(self.conns.get(i), Some(Some(c)) if c.role == Role::Asker)
    }

    /// Every rank is in: report to the launcher and answer the look-ups that waited.
    fn complete(&mut self) {
        let local: Vec<(u32, Endpoint)> = self
            .cfg
            .ranks
            .iter()
            .zip(&self.entries)
            .filter_map(|(r, e)| Some((*r, e.clone()?)))
            .collect();
        let Some((_, first)) = local.first() else { return };
        let info = HostInfo {
            label: first.host.clone(),
            directory: SocketAddr::new(first.addr.ip(), self.port),
        };
        let frame = Msg::Entries(local).encode();
        for i in std::mem::take(&mut self.waiting_lookups) {
            self.send(i, &frame);
            self.flush(i);
        }
        self.entries_frame = Some(frame);
        self.phase = PhaseOf::Reported;
        let report = Report { host: self.cfg.host, ranks: self.entries.len() as u32, info };
        (self.report)(Msg::Report(report).encode());
    }

    fn on_launcher_frame(&mut self, frame: &[u8]) {
        let msg = match frame_len(frame, MAX_FRAME) {
            Ok(Some(n)) if n == frame.len() => Msg::decode(&frame[4..]),
            Ok(_) => Err(crate::wire::WireError::Truncated { need: 4, have: frame.len() }),
            Err(e) => Err(e),
        };
        match msg {
            Ok(Msg::Placement(p)) if self.phase == PhaseOf::Reported => self.go(p),
            Ok(Msg::Failed(why)) => self.fail(why),
            Ok(other) => {
                tracing::warn!(host = %self.cfg.name, "directory: unexpected frame from the launcher: {other:?}");
            }
            Err(e) => self.fail(format!("malformed directory frame from the launcher: {e}")),
        }
    }

    fn go(&mut self, placement: Placement) {
        let local = self
            .cfg
            .ranks
            .iter()
            .zip(&self.entries)
            .filter_map(|(r, e)| Some((*r, e.clone()?)))
            .collect();
        let frame = Msg::Go(Go { host: self.cfg.host, placement, local }).encode();
        self.phase = PhaseOf::Went;
        self.tell_ranks(&frame);
    }

    fn fail(&mut self, why: String) {
        self.phase = PhaseOf::Failed;
        self.tell_ranks(&Msg::Failed(why).encode());
    }

    /// Sends `frame` to every registered rank and closes their connections after it.
    fn tell_ranks(&mut self, frame: &[u8]) {
        for i in 0..self.conns.len() {
            let is_rank = matches!(&self.conns[i], Some(c) if matches!(c.role, Role::Rank(_)));
            if is_rank {
                self.send(i, frame);
                if let Some(Some(c)) = self.conns.get_mut(i) {
                    c.finish = true;
                }
                self.flush(i);
            }
        }
    }

    fn flush(&mut self, i: usize) {
        let Some(Some(c)) = self.conns.get_mut(i) else { return };
        while c.out_at < c.out.len() {
            match c.sock.write(&c.out[c.out_at..]) {
                Ok(0) => {
                    c.dead = true;
                    break;
                }
                Ok(n) => c.out_at += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    c.dead = true;
                    break;
                }
            }
        }
        if c.out_at == c.out.len() {
            c.out.clear();
            c.out_at = 0;
            if c.finish && !c.shut {
                let _ = c.sock.shutdown(std::net::Shutdown::Write);
                c.shut = true;
            }
        }
    }

    /// Drops closed and silent connections; at the deadline, fails the gathering.
    fn sweep(&mut self, now: Instant, poll: &Poll) {
        for i in 0..self.conns.len() {
            let Some(c) = &mut self.conns[i] else { continue };
            if c.out_at < c.out.len() {
                // Writable events are edge-triggered: try again each pass.
                self.flush(i);
            }
            let Some(c) = &mut self.conns[i] else { continue };
            let patience = match self.phase {
                PhaseOf::Gathering => {
                    FIRST_FRAME_TIMEOUT.max(self.cfg.deadline - c.since.min(self.cfg.deadline))
                }
                _ => FIRST_FRAME_TIMEOUT,
            };
            let silent = c.role == Role::New && now.duration_since(c.since) > patience;
            if c.dead || silent {
                if let Role::Rank(r) = c.role {
                    if self.phase == PhaseOf::Gathering || self.phase == PhaseOf::Reported {
                        tracing::warn!(host = %self.cfg.name, "directory: rank {r} closed its connection before its go");
                    }
                }
                if let Some(mut c) = self.conns[i].take() {
                    let _ = poll.registry().deregister(&mut c.sock);
                }
                self.free.push(i);
                self.waiting_lookups.retain(|w| *w != i);
            }
        }
        if self.phase == PhaseOf::Gathering && now >= self.cfg.deadline {
            let missing: Vec<usize> = self
                .cfg
                .ranks
                .iter()
                .zip(&self.entries)
                .filter(|(_, e)| e.is_none())
                .map(|(r, _)| *r as usize)
                .collect();
            let why = format!(
                "{} of {} ranks on {} never registered with its agent: {}",
                missing.len(),
                self.entries.len(),
                self.cfg.name,
                list(&missing)
            );
            tracing::warn!("directory: {why}");
            (self.report)(Msg::Failed(why.clone()).encode());
            self.fail(why);
        }
    }
}
