//! The rank's side: register with this host's gatherer and wait for the go; later, look up a
//! remote host's endpoints at its directory, off the engine thread.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::wire::{frame_len, Go, Msg, MAX_FRAME};
use crate::deadline::read_exact_by;
use crate::token::JobToken;
use crate::wire::Endpoint;

/// How much longer than its boot deadline a rank waits for its go (the gatherer fails the
/// registration at the same deadline and says so).
const GO_MARGIN: Duration = Duration::from_secs(2);

fn connect(to: SocketAddr, deadline: Instant) -> Result<TcpStream, String> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("could not connect in time".into());
        }
        match TcpStream::connect_timeout(&to, left.min(Duration::from_secs(5))) {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                return Err(format!("connection refused (is its agent running?): {e}"))
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => return Err(format!("connecting: {e}")),
        }
    }
}

fn read_msg(s: &TcpStream, by: Instant) -> Result<Msg, String> {
    let mut l = [0u8; 4];
    read_exact_by(s, &mut l, by).map_err(|e| format!("no answer: {e}"))?;
    let len = match frame_len(&l, MAX_FRAME) {
        Err(e) => return Err(format!("malformed directory frame: {e}")),
        Ok(_) => u32::from_le_bytes(l) as usize,
    };
    let mut body = vec![0u8; len];
    read_exact_by(s, &mut body, by).map_err(|e| format!("truncated answer: {e}"))?;
    Msg::decode(&body).map_err(|e| format!("malformed directory frame: {e}"))
}

/// Registers `me` as `rank` with the gatherer at `gatherer` and waits for the go (checked
/// against the job: placement covering `size` ranks, this rank on its host, entries for exactly
/// the ranks placed there).
pub fn register(
    gatherer: SocketAddr,
    token: JobToken,
    rank: usize,
    size: usize,
    me: &Endpoint,
    deadline: Instant,
) -> Result<Go, String> {
    let mut s = connect(gatherer, deadline)?;
    let msg = Msg::Register {
        token: *token.as_bytes(),
        size: size as u32,
        rank: rank as u32,
        endpoint: me.clone(),
    };
    s.write_all(&msg.encode()).map_err(|e| format!("sending the registration: {e}"))?;
    let go = match read_msg(&s, deadline + GO_MARGIN)? {
        Msg::Go(g) => g,
        Msg::Failed(why) => return Err(format!("the agent refused: {why}")),
        other => return Err(format!("unexpected directory frame {}", kind(&other))),
    };
    go.placement.check(size).map_err(|e| format!("bad placement: {e}"))?;
    let host_of = go.placement.host_of();
    if host_of.get(rank) != Some(&go.host) {
        return Err(format!("the placement puts rank {rank} on another host than its agent's"));
    }
    check_entries(&go.local, &host_of, go.host, size)?;
    if !go.local.iter().any(|(r, e)| *r as usize == rank && e == me) {
        return Err("the go does not hold this rank's own endpoint".into());
    }
    Ok(go)
}

fn kind(m: &Msg) -> &'static str {
    match m {
        Msg::Register { .. } => "register",
        Msg::Lookup { .. } => "look-up",
        Msg::Entries(_) => "entries",
        Msg::Go(_) => "go",
        Msg::Failed(_) => "failed",
        Msg::Report(_) => "report",
        Msg::Placement(_) => "placement",
    }
}

/// Checks that `entries` name exactly the ranks `host_of` puts on `host`, each once.
fn check_entries(
    entries: &[(u32, Endpoint)],
    host_of: &[u16],
    host: u16,
    size: usize,
) -> Result<(), String> {
    let mut seen = vec![false; size];
    for (r, _) in entries {
        let r = *r as usize;
        if r >= size || host_of[r] != host || seen[r] {
            return Err(format!("entry for rank {r}, which is not (once) on that host"));
        }
        seen[r] = true;
    }
    let want = host_of.iter().filter(|h| **h == host).count();
    if entries.len() != want {
        return Err(format!("{} entries for the {want} ranks of that host", entries.len()));
    }
    Ok(())
}

/// Asks the directory at `at` for its host's entries (blocking, by `deadline`), checked against
/// the placement.
pub fn lookup(
    at: SocketAddr,
    token: JobToken,
    me: usize,
    host: u16,
    host_of: &[u16],
    deadline: Instant,
) -> Result<Vec<(u32, Endpoint)>, String> {
    let mut s = connect(at, deadline)?;
    let msg = Msg::Lookup { token: *token.as_bytes(), from: me as u32 };
    s.write_all(&msg.encode()).map_err(|e| format!("sending the look-up: {e}"))?;
    match read_msg(&s, deadline)? {
        Msg::Entries(e) => {
            check_entries(&e, host_of, host, host_of.len())?;
            Ok(e)
        }
        Msg::Failed(why) => Err(format!("the directory refused: {why}")),
        other => Err(format!("unexpected directory frame {}", kind(&other))),
    }
}

/// One finished look-up: the host, and its entries or why not.
pub(crate) type Answer = (u16, Result<Vec<(u32, Endpoint)>, String>);

/// Look-ups run on their own threads; each answer is queued and announced by a byte on a
/// socket the engine's poller watches.
#[derive(Debug)]
pub(crate) struct Resolver {
    token: JobToken,
    me: usize,
    timeout: Duration,
    host_of: Arc<[u16]>,
    tx: mpsc::Sender<Answer>,
    rx: mpsc::Receiver<Answer>,
    bell: Arc<UnixStream>,
    /// The end the poller watches, until taken.
    ear: Option<UnixStream>,
}

impl Resolver {
    pub(crate) fn new(
        token: JobToken,
        me: usize,
        host_of: Arc<[u16]>,
        timeout: Duration,
    ) -> std::io::Result<Resolver> {
        let (bell, ear) = UnixStream::pair()?;
        bell.set_nonblocking(true)?;
        ear.set_nonblocking(true)?;
        let (tx, rx) = mpsc::channel();
        Ok(Resolver { token, me, timeout, host_of, tx, rx, bell: Arc::new(bell), ear: Some(ear) })
    }

    /// Starts looking up `host` at `at`.
    pub(crate) fn ask(&self, host: u16, at: SocketAddr) {
        let (token, me, host_of) = (self.token, self.me, self.host_of.clone());
        let (tx, bell) = (self.tx.clone(), self.bell.clone());
        let deadline = Instant::now() + self.timeout;
        let job = move || {
            let got = lookup(at, token, me, host, &host_of, deadline)
                .map_err(|e| format!("looking up its endpoint at the directory {at}: {e}"));
            let _ = tx.send((host, got));
            let _ = (&*bell).write(&[1]);
        };
        let spawned = thread::Builder::new().name("rmpi-lookup".into()).stack_size(128 << 10);
        if let Err(e) = spawned.spawn(job) {
            let _ = self.tx.send((host, Err(format!("starting a look-up thread: {e}"))));
            let _ = (&*self.bell).write(&[1]);
        }
    }

    /// The end of the socket that rings when an answer is queued (for the caller's poller,
    /// which must drain it before [`answers`](Self::answers)).
    pub(crate) fn take_ear(&mut self) -> std::io::Result<UnixStream> {
        self.ear.take().ok_or_else(|| std::io::Error::other("the ear was taken already"))
    }

    /// The answers that have arrived.
    pub(crate) fn answers(&mut self) -> Vec<Answer> {
        self.rx.try_iter().collect()
    }
}
