//! Endpoints of other nodes' ranks read from the key-value store at first dial.
//!
//! After the exchange the PMI session stays open; one thread owns it and answers the engine's
//! requests in order, one `get` at a time (PMI-1 is strictly one request, one reply; one
//! connection serves both protocols), each within its own deadline. Each answer is queued and
//! announced by a byte on a socket the engine's poller watches, as the directory's look-ups are
//! (`engine/hosts.rs`). When the engine lets go (at finalize), the thread finalizes the session:
//! Hydra ends a job whose rank exits without doing so.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use super::{decode_endpoint, endpoint_key, Kvs, Session};
use crate::wire::Endpoint;

/// How long finalizing the session may hold up the end of the engine.
const FINALIZE_WAIT: Duration = Duration::from_secs(5);

/// One finished look-up: the rank, and its endpoint or why not.
pub(crate) type Answer = (usize, Result<Endpoint, String>);

/// The engine's side of the look-up thread.
#[derive(Debug)]
pub(crate) struct Lookups {
    ask: Option<mpsc::Sender<usize>>,
    answers: mpsc::Receiver<Answer>,
    /// The end the poller watches, until taken.
    ear: Option<UnixStream>,
    /// Closed by the thread once it has finalized the session.
    finished: mpsc::Receiver<()>,
}

impl Lookups {
    /// Starts the thread on `session`'s store; each look-up may take `timeout`.
    pub(crate) fn start(session: Session, timeout: Duration) -> std::io::Result<Lookups> {
        let kvs = session
            .take()
            .ok_or_else(|| std::io::Error::other("the PMI session was already taken"))?;
        let (bell, ear) = UnixStream::pair()?;
        bell.set_nonblocking(true)?;
        ear.set_nonblocking(true)?;
        let (ask, asked) = mpsc::channel::<usize>();
        let (tell, answers) = mpsc::channel::<Answer>();
        let (done, finished) = mpsc::channel::<()>();
        let origin = session.origin.clone();
        let bell = Arc::new(bell);
        thread::Builder::new()
            .name("rmpi-pmi".into())
            .stack_size(128 << 10)
            .spawn(move || serve(kvs, &origin, timeout, asked, tell, &bell, done))?;
        Ok(Lookups { ask: Some(ask), answers, ear: Some(ear), finished })
    }

    /// Asks for `rank`'s endpoint.
    pub(crate) fn ask(&self, rank: usize) {
        if let Some(a) = &self.ask {
            let _ = a.send(rank);
        }
    }

    /// The end of the socket that rings when an answer is queued.
    pub(crate) fn take_ear(&mut self) -> std::io::Result<UnixStream> {
        self.ear.take().ok_or_else(|| std::io::Error::other("the ear was taken already"))
    }

    /// The answers that have arrived.
    pub(crate) fn answers(&self) -> Vec<Answer> {
        self.answers.try_iter().collect()
    }
}

impl Drop for Lookups {
    fn drop(&mut self) {
        // Closing the request channel tells the thread to finalize; wait for that (a bounded
        // time: a silent server must not hold the rank's exit).
        self.ask = None;
        let _ = self.finished.recv_timeout(FINALIZE_WAIT);
    }
}

fn serve(
    mut kvs: Box<dyn Kvs>,
    origin: &str,
    timeout: Duration,
    asked: mpsc::Receiver<usize>,
    tell: mpsc::Sender<Answer>,
    bell: &UnixStream,
    done: mpsc::Sender<()>,
) {
    let proto = kvs.protocol();
    while let Ok(r) = asked.recv() {
        let key = endpoint_key(r);
        let got = match kvs.get(&key, Instant::now() + timeout) {
            Ok(Some(v)) => decode_endpoint(&v).map_err(|e| {
                format!("its endpoint {key} from the PMI server ({proto} via {origin}) is bad: {e}")
            }),
            Ok(None) => Err(format!(
                "has no endpoint {key} in the PMI server's store ({proto} via {origin})"
            )),
            Err(e) => Err(format!(
                "its endpoint {key} could not be read from the PMI server ({proto} via {origin}): \
                 {e}"
            )),
        };
        let _ = tell.send((r, got));
        let _ = (&*bell).write(&[1]);
    }
    if let Err(e) = kvs.finalize(Instant::now() + FINALIZE_WAIT) {
        tracing::warn!("finalizing the PMI session ({proto} via {origin}): {e}");
    }
    drop(done);
}
