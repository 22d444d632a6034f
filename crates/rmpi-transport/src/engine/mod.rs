//! The progress engine: one per process, shared by every communicator.
//!
//! There is no progress thread. A thread that waits (a blocking call, `Request::wait`) makes
//! progress itself: it writes queued frames, reads whatever has arrived on every connection,
//! matches messages to posted receives, and re-checks its own condition. Before it sleeps it
//! polls for a short while (`spin`), which keeps the one-way latency close to the wire's. How it
//! polls follows the host's load (see [`polling::Polling`]): busily while every running task has a core;
//! yielding the core after every look while this job's own ranks outnumber the cores (a peer
//! sharing the core then runs at once, with no wake-up to wait for); not at all when the ranks
//! fit but other load keeps the cores busy.
//!
//! Several threads may wait at once: one of them holds the poller and sleeps in `epoll_wait`;
//! the others sleep on a condition variable and are woken when the poller has made progress.
//!
//! Matching follows MPI: a receive matches the earliest arrived message with its context, source
//! and tag; an arriving message matches the earliest posted receive. Messages from one sender on
//! one context are never reordered (one ordered stream per pair).
//!
//! The pieces, one per file: [`matching`] (queues and requests, no I/O), [`framing`] (messages on
//! a byte stream), [`flow`] (eager limit, credit and rendezvous), [`failure`] (lost peers), [`state`] (the operations behind the lock),
//! [`wait`] (the wait loop), [`polling`] (the host-load policy), and the transports behind the
//! [`stream::Stream`] interface: [`tcp`] between hosts and [`shm`] between the ranks of one host.

mod connect;
mod express;
mod failure;
mod flow;
mod framing;
mod hosts;
mod idhash;
mod matching;
mod polling;
pub(crate) mod shm;
mod state;
mod stream;
mod tcp;
mod wait;

use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use mio::{Events, Poll};

use crate::error::{Error, Result};
use crate::wire::{FrameHeader, FrameKind};

pub(crate) use connect::Lazy;
pub(crate) use failure::{aborted, ABORTED, FINISHED};
pub(crate) use flow::grant_from_env;
pub(crate) use framing::Payload;
pub(crate) use idhash::IdMap;
pub(crate) use matching::{Completion, MsgInfo, Posted, ReqId, Sink, Watch};
pub(crate) use state::State;

use framing::{Conn, Link, TxOp};

/// How long a failing rank tries to get its failure notices out before it closes.
const NOTICE_WAIT: Duration = Duration::from_secs(1);

/// Longest single sleep in `epoll_wait`; waits re-check their state at least this often.
const MAX_SLEEP: Duration = Duration::from_millis(200);

struct Poller {
    poll: Poll,
    events: Events,
}

/// The engine of one rank.
pub(crate) struct Engine {
    pub(crate) rank: usize,
    pub(crate) size: usize,
    pub(crate) hosts: Arc<[String]>,
    state: Mutex<State>,
    poller: Mutex<Poller>,
    cv: Condvar,
    /// Threads sleeping on `cv` (notifying costs a system call, so only when someone listens).
    sleepers: AtomicUsize,
    spin: Duration,
    /// Ranks of this job on this host.
    ranks_on_host: usize,
    /// Next free context id base (multiple of 4), for communicator creation.
    pub(crate) next_ctx: std::sync::atomic::AtomicU32,
    /// This rank's wake-me flag, when it shares memory with local peers.
    bell: Option<shm::Bell>,
    /// What a polling rank watches of its local peers (with `bell`).
    lookout: Option<shm::Lookout>,
    /// The polling policy asked for (`RMPI_POLLING`).
    polling: polling::Mode,
    /// World ranks reached through shared memory (this one included), in rank order.
    pub(crate) shm_members: Vec<usize>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Engine {
    /// Wraps established, handshaken connections, each with the eager credit its peer granted in
    /// its hello (`None` at our own rank, at the ranks reached through the shared memory of
    /// `shm`, and at those `lazy` connects on demand).
    pub(crate) fn new(
        rank: usize,
        (streams, lazy): (Vec<Option<(std::net::TcpStream, u64)>>, Option<Lazy>),
        mut shm: Option<shm::Group>,
        hosts: Vec<String>,
        (spin, ranks_on_host): (Duration, usize),
        max_message: u64,
    ) -> Result<Engine> {
        let size = streams.len();
        let poll = Poll::new().map_err(|e| Error::io("creating the poller", e))?;
        let mut conns = Vec::with_capacity(size);
        let mut grants: Vec<Option<u64>> = vec![None; size];
        for (r, s) in streams.into_iter().enumerate() {
            grants[r] = s.as_ref().map(|(_, g)| *g);
            conns.push(s.map(|(s, _)| tcp::conn(poll.registry(), r, s)).transpose()?);
        }
        if let Some(g) = &mut shm {
            g.register(poll.registry(), size)
                .map_err(|e| Error::io("registering the shared-memory wake-ups", e))?;
            for (r, s) in g.streams() {
                if let Some(slot) = conns.get_mut(r) {
                    *slot = Some(Conn::new(s));
                    grants[r] = Some(g.grant_of(r));
                }
            }
        }
        let bell = shm.as_ref().map(shm::Group::bell);
        let lookout = shm.as_ref().map(shm::Group::lookout);
        let polling = polling::Mode::from_env()?;
        let shm_members = shm.as_ref().map(|g| g.members().to_vec()).unwrap_or_default();
        let hosts: Arc<[String]> = hosts.into();
        let flow = flow::FlowConfig::from_env(size)?;
        let mut state = State::new(rank, (conns, grants), shm, hosts.clone(), (max_message, flow));
        if let Some(l) = lazy {
            let c = connect::Connector::new(poll.registry(), rank, l)
                .map_err(|e| Error::io(format!("rank {rank}: watching its listening socket"), e))?;
            state.connect = Some(c);
        }
        Ok(Engine {
            rank,
            size,
            hosts,
            state: Mutex::new(state),
            poller: Mutex::new(Poller { poll, events: Events::with_capacity(256) }),
            cv: Condvar::new(),
            sleepers: AtomicUsize::new(0),
            spin,
            ranks_on_host,
            next_ctx: std::sync::atomic::AtomicU32::new(4),
            bell,
            lookout,
            polling,
            shm_members,
        })
    }

    pub(crate) fn host(&self, rank: usize) -> &str {
        self.hosts.get(rank).map(String::as_str).unwrap_or("?")
    }

    /// Like [`with_state`](Self::with_state), but first asks the kernel, without blocking, which
    /// sockets have something (a call that only looks, like `iprobe` or `is_complete`, must see
    /// what arrived since the last wait).
    pub(crate) fn with_fresh_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        if let Ok(mut p) = self.poller.try_lock() {
            let p = &mut *p;
            if p.poll.poll(&mut p.events, Some(Duration::ZERO)).is_ok() && !p.events.is_empty() {
                let mut st = lock(&self.state);
                st.mark(&p.events);
            }
        }
        self.with_state(f)
    }

    /// Like [`with_fresh_state`](Self::with_fresh_state), but takes in everything that has
    /// arrived first, buffering messages nobody has claimed (at most 64 passes), so that what
    /// lies behind them in a stream, such as a peer's end, is seen. For judging failures, not
    /// for the data path.
    pub(crate) fn with_drained_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        self.with_fresh_state(|st| {
            for _ in 0..64 {
                if !st.conns.iter().flatten().any(Conn::has_backlog) {
                    break;
                }
                st.progress();
            }
            f(st)
        })
    }

    /// Runs `f` on the state as it is, without a progress pass first (posting a receive this
    /// way lets it claim a message whose payload is still in the socket).
    pub(crate) fn locked<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut lock(&self.state))
    }

    /// Runs `f` on the state after making progress.
    pub(crate) fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut st = lock(&self.state);
        st.progress();
        f(&mut st)
    }

    /// Waits for request `id` and takes its completion.
    pub(crate) fn wait_req(&self, id: ReqId, what: impl Fn() -> String) -> Result<Completion> {
        self.wait_focused(None, MAX_SLEEP, Some(id), what, |st| st.take_done(id))
    }

    /// [`wait_req`](Self::wait_req) until `deadline` at the latest: the outer result is the
    /// wait's ([`Error::Timeout`] when the deadline passed), the inner one the request's.
    pub(crate) fn wait_req_until(
        &self,
        id: ReqId,
        deadline: std::time::Instant,
        what: impl Fn() -> String,
    ) -> Result<Result<Completion>> {
        self.wait_focused(Some(deadline), MAX_SLEEP, Some(id), what, |st| st.take_done(id).map(Ok))
    }

    /// Ends this rank's part: writes everything queued, sends a goodbye to every peer, answers
    /// the clear-to-sends of its announced messages until, for each peer, every one is cleared
    /// and written or the peer has said goodbye (it posts no receive any more) or is gone, and
    /// then waits until each peer has either acknowledged every byte at the TCP level (so nothing
    /// is lost when the socket closes), said goodbye itself, or gone. A rank with no announced
    /// message left does not wait for peers to finalize: a rank leaving early (after an error,
    /// say) is held only by what it announced and nobody took yet; its peers see its goodbye, and
    /// whatever else they still expect from it fails with an error naming it.
    pub(crate) fn finalize(&self) -> Result<()> {
        self.wait_with(
            None,
            Duration::from_millis(1),
            || "flushing sends at finalize".into(),
            |st| st.all_flushed().then_some(Ok(())),
        )?;
        {
            let mut st = lock(&self.state);
            let bye = FrameHeader { kind: FrameKind::Goodbye, context: 0, tag: 0, len: 0 };
            for c in st.conns.iter_mut().flatten() {
                if !matches!(c.link, Link::Dead(_)) {
                    c.tx.push_back(TxOp::new(bye, Payload::Owned(bytes::Bytes::new()), None, None));
                }
            }
        }
        self.wait_with(
            None,
            Duration::from_millis(1),
            || "sending goodbyes".into(),
            |st| st.all_flushed().then_some(Ok(())),
        )?;
        // Announced messages are never pushed unasked (the receiver would buffer them beyond
        // any credit): each waits for its receive, its receiver's goodbye or its loss.
        self.wait_with(
            None,
            Duration::from_millis(1),
            || "receives for the messages this rank announced".into(),
            |st| (st.all_flushed() && !st.holds_announced()).then_some(Ok(())),
        )?;
        {
            let mut st = lock(&self.state);
            for c in st.conns.iter_mut().flatten() {
                c.stream.close_write();
            }
        }
        self.wait_with(
            None,
            Duration::from_millis(1),
            || "peers to take our last bytes".into(),
            |st| {
                st.conns
                    .iter()
                    .flatten()
                    .all(|c| c.link != Link::Open || c.stream.unacked() == 0)
                    .then_some(Ok(()))
            },
        )?;
        let mut st = lock(&self.state);
        st.finalized = true;
        // Nothing more is accepted: a late dial to this rank is refused.
        st.connect = None;
        for c in st.conns.iter_mut().flatten() {
            c.stream.close();
        }
        Ok(())
    }

    /// Ends this rank's part because it is failing (`why`, such as "panicked"): instead of a
    /// goodbye, every peer is sent a failure notice behind what was already queued for it, so
    /// that their errors name the cause. Waits at most [`NOTICE_WAIT`] for the notices to leave,
    /// then closes every connection.
    pub(crate) fn fail(&self, why: &str) {
        self.fail_because(why, None)
    }

    /// The first peer this rank lost to a failure (not to a goodbye), and the cause: what a rank
    /// that ends after that loss passes on (see [`Engine::fail_because`]).
    pub(crate) fn first_failure(&self) -> Option<(usize, String)> {
        lock(&self.state).first_failure()
    }

    /// Like [`Engine::fail`], naming the peer whose loss this rank ends because of (`blame`): a
    /// peer that receives the notice learns of that loss first, so that every survivor names
    /// the rank that failed, not the one that passed its failure on.
    pub(crate) fn fail_because(&self, why: &str, blame: Option<usize>) {
        self.fail_within(why, blame, NOTICE_WAIT)
    }

    /// [`Engine::fail_because`], waiting at most `wait` for the notices to leave.
    pub(crate) fn fail_within(&self, why: &str, blame: Option<usize>, wait: Duration) {
        {
            let mut st = lock(&self.state);
            let text = &why.as_bytes()[..why.len().min(crate::wire::MAX_NOTICE as usize)];
            let tag = blame.map_or(0, |b| b as u64 + 1);
            let hdr =
                FrameHeader { kind: FrameKind::Failed, context: 0, tag, len: text.len() as u64 };
            for c in st.conns.iter_mut().flatten() {
                if c.link == Link::Open {
                    let payload = Payload::Owned(bytes::Bytes::copy_from_slice(text));
                    c.tx.push_back(TxOp::new(hdr, payload, None, None));
                }
            }
        }
        let deadline = std::time::Instant::now() + wait;
        let _ = self.wait_with(
            Some(deadline),
            Duration::from_millis(1),
            || "sending failure notices".into(),
            |st| st.all_flushed().then_some(Ok(())),
        );
        let mut st = lock(&self.state);
        st.finalized = true;
        for c in st.conns.iter_mut().flatten() {
            c.stream.close();
        }
    }
}
