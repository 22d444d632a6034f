//! The progress engine: one per process, shared by every communicator.
//!
//! There is no progress thread. A thread that waits (a blocking call, `Request::wait`) makes
//! progress itself: it writes queued frames, reads whatever has arrived on every connection,
//! matches messages to posted receives, and re-checks its own condition. Before it sleeps it
//! polls for a short while (`spin`), which keeps the one-way latency close to the wire's. How it
//! polls follows the host's load (see [`Polling`]): busily while every running task has a core;
//! yielding the core after every look while this job's own ranks outnumber the cores (a peer
//! sharing the core then runs at once, with no wake-up to wait for); not at all when the ranks
//! fit but other load keeps the cores busy.
//!
//! Several threads may wait at once: one of them holds the poller and sleeps in `epoll_wait`;
//! the others sleep on a condition variable and are woken when the poller has made progress.
//!
//! Matching follows MPI: a receive matches the earliest arrived message with its context, source
//! and tag; an arriving message matches the earliest posted receive. Messages from one sender on
//! one context are never reordered (one TCP stream per pair).

use std::collections::{HashMap, VecDeque};
use std::io::{self, IoSlice, Read, Write};
use std::net::Shutdown;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};

use crate::buf::{AlignedBuf, RawBuf};
use crate::error::{Error, Result};
use crate::wire::{FrameHeader, FrameKind, HEADER_LEN};

pub(crate) type ReqId = u64;

/// The cause given for a peer that said goodbye.
pub(crate) const FINISHED: &str = "it has finalized";

/// Staging buffer per connection for small frames.
const STAGING: usize = 64 * 1024;
/// A payload remainder at least this large is read straight into its destination.
const DIRECT_READ_MIN: usize = 16 * 1024;
/// Bytes read from one connection per progress pass, so one busy peer cannot starve the others.
const READ_BUDGET: usize = 8 << 20;
/// At most this many buffers go into one `writev`.
const MAX_IOV: usize = 64;
/// Longest single sleep in `epoll_wait`; waits re-check their state at least this often.
const MAX_SLEEP: Duration = Duration::from_millis(200);

/// What a completed request yields.
#[derive(Debug, Default)]
pub(crate) struct Completion {
    /// For receives: where the message came from.
    pub(crate) info: Option<MsgInfo>,
    /// For receives into engine-owned memory: the payload.
    pub(crate) data: Option<AlignedBuf>,
}

/// Envelope of a received message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MsgInfo {
    pub(crate) src: usize,
    pub(crate) tag: u64,
    pub(crate) len: usize,
}

/// Which peers' loss fails a pending receive.
#[derive(Clone, Debug)]
pub(crate) enum Watch {
    /// Only the named source.
    One(usize),
    /// Any member of this group (world ranks): any-source receives and collectives.
    Group(Arc<[usize]>),
}

/// Where a posted receive puts its message.
#[derive(Debug)]
pub(crate) enum Sink {
    /// Caller memory.
    User(RawBuf),
    /// A fresh engine buffer handed over on completion.
    Alloc,
}

/// A receive waiting for its message.
#[derive(Debug)]
pub(crate) struct Posted {
    pub(crate) req: ReqId,
    pub(crate) ctx: u32,
    pub(crate) src: Option<usize>,
    pub(crate) tag: Option<u64>,
    pub(crate) sink: Sink,
    pub(crate) watch: Watch,
}

impl Posted {
    fn matches(&self, ctx: u32, src: usize, tag: u64) -> bool {
        self.ctx == ctx && self.src.is_none_or(|s| s == src) && self.tag.is_none_or(|t| t == tag)
    }
}

/// Data to send.
#[derive(Debug)]
pub(crate) enum Payload {
    /// Caller memory, valid until the request completes or is cancelled.
    Borrowed(RawBuf),
    /// Engine-owned bytes.
    Owned(bytes::Bytes),
}

impl Payload {
    fn bytes(&self) -> &[u8] {
        match self {
            // SAFETY: RawBuf contract: valid until the op leaves the queue.
            Payload::Borrowed(r) => unsafe { r.bytes() },
            Payload::Owned(b) => b,
        }
    }
}

#[derive(Debug)]
struct TxOp {
    hdr: [u8; HEADER_LEN],
    payload: Payload,
    /// Bytes of header + payload already written.
    done: usize,
    req: Option<ReqId>,
    /// Peers whose loss fails this send's request (collective traffic: any member).
    watch: Option<Watch>,
}

impl TxOp {
    fn own_payload(&mut self) {
        if let Payload::Borrowed(b) = self.payload {
            // SAFETY: called while the borrowing request is still live.
            self.payload = Payload::Owned(bytes::Bytes::copy_from_slice(unsafe { b.bytes() }));
        }
    }

    fn total(&self) -> usize {
        HEADER_LEN + self.payload.bytes().len()
    }
}

/// Where an arriving payload goes.
#[derive(Debug)]
enum Dest {
    /// Straight into a posted receive's memory.
    User { req: ReqId, buf: RawBuf },
    /// Into an engine buffer; `req` is set when a receive claimed the message mid-flight.
    Owned { req: Option<(ReqId, Sink)>, buf: AlignedBuf },
    /// Nowhere yet: a large message nobody has asked for. Its payload stays in the socket for
    /// the rest of progress pass `since`, so a receive posted right after (the usual case for a
    /// program receiving messages one by one) takes it straight into its own memory instead of
    /// through an engine buffer and a copy. The next pass buffers it, so nothing waits on it.
    Unclaimed { since: u64 },
}

impl Dest {
    /// Where the payload's bytes go, or `None` while it is unclaimed.
    fn bytes_mut(&mut self) -> Option<&mut [u8]> {
        match self {
            // SAFETY: the receive is live while it is the destination.
            Dest::User { buf, .. } => Some(unsafe { buf.bytes_mut() }),
            Dest::Owned { buf, .. } => Some(buf.as_mut_bytes()),
            Dest::Unclaimed { .. } => None,
        }
    }
}

#[derive(Debug)]
enum Rx {
    Header,
    Payload { hdr: FrameHeader, dest: Dest, filled: usize },
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Link {
    Open,
    /// The peer said goodbye; it sends nothing more.
    Closed,
    /// The connection failed; the text is the cause.
    Dead(String),
}

#[derive(Debug)]
struct Conn {
    stream: mio::net::TcpStream,
    readable: bool,
    writable: bool,
    staging: Box<[u8]>,
    lo: usize,
    hi: usize,
    rx: Rx,
    tx: VecDeque<TxOp>,
    link: Link,
}

impl Conn {
    fn is_unclaimed(&self) -> bool {
        matches!(self.rx, Rx::Payload { dest: Dest::Unclaimed { .. }, .. })
    }

    /// The header of the message arriving on this connection, if no receive has claimed it yet
    /// (its payload still in the socket, or partly in an engine buffer).
    fn arriving_unclaimed(&self) -> Option<&FrameHeader> {
        match &self.rx {
            Rx::Payload {
                hdr,
                dest: Dest::Unclaimed { .. } | Dest::Owned { req: None, .. },
                ..
            } => Some(hdr),
            _ => None,
        }
    }

    /// Input this connection has that the next progress pass takes, with no new event.
    fn has_backlog(&self) -> bool {
        self.link == Link::Open && (self.readable || self.is_unclaimed())
    }
}

#[derive(Debug)]
enum Slot {
    Pending,
    Done(Result<Completion>),
}

/// An arrived message nobody has asked for yet.
#[derive(Debug)]
struct Unexpected {
    ctx: u32,
    src: usize,
    tag: u64,
    buf: AlignedBuf,
}

/// Everything behind the state lock.
#[derive(Debug)]
pub(crate) struct State {
    me: usize,
    conns: Vec<Option<Conn>>,
    m: Matching,
    max_message: u64,
    hosts: Arc<[String]>,
    /// Set once finalize has closed the connections.
    finalized: bool,
    /// Peers in the order they were lost (first lost first).
    lost: Vec<usize>,
    /// Peers whose goodbye arrived during the current progress pass.
    goodbyes: Vec<usize>,
    /// A peer was lost and dependent operations have not been failed yet (see `settle`).
    unsettled: bool,
    /// Collective sends to a lost peer, failed in `settle` with their group's first loss.
    deferred: Vec<(ReqId, Watch)>,
    /// Progress passes made so far (see [`Dest::Unclaimed`]).
    pass: u64,
}

/// The matching queues and request table.
#[derive(Debug, Default)]
struct Matching {
    posted: VecDeque<Posted>,
    unexpected: VecDeque<Unexpected>,
    slots: HashMap<ReqId, Slot>,
    next_req: ReqId,
}

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
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Engine {
    /// Wraps established, handshaken connections (`None` at our own rank).
    pub(crate) fn new(
        rank: usize,
        streams: Vec<Option<std::net::TcpStream>>,
        hosts: Vec<String>,
        (spin, ranks_on_host): (Duration, usize),
        max_message: u64,
    ) -> Result<Engine> {
        let size = streams.len();
        let poll = Poll::new().map_err(|e| Error::io("creating the poller", e))?;
        let mut conns = Vec::with_capacity(size);
        for (r, s) in streams.into_iter().enumerate() {
            let Some(s) = s else {
                conns.push(None);
                continue;
            };
            s.set_nonblocking(true).map_err(|e| Error::io("non-blocking socket", e))?;
            let _ = s.set_nodelay(true);
            let mut stream = mio::net::TcpStream::from_std(s);
            poll.registry()
                .register(&mut stream, Token(r), Interest::READABLE | Interest::WRITABLE)
                .map_err(|e| Error::io(format!("registering the connection to rank {r}"), e))?;
            conns.push(Some(Conn {
                stream,
                readable: true,
                writable: true,
                staging: vec![0u8; STAGING].into_boxed_slice(),
                lo: 0,
                hi: 0,
                rx: Rx::Header,
                tx: VecDeque::new(),
                link: Link::Open,
            }));
        }
        let hosts: Arc<[String]> = hosts.into();
        Ok(Engine {
            rank,
            size,
            hosts: hosts.clone(),
            state: Mutex::new(State {
                me: rank,
                conns,
                m: Matching::default(),
                max_message,
                hosts,
                finalized: false,
                lost: Vec::new(),
                goodbyes: Vec::new(),
                unsettled: false,
                deferred: Vec::new(),
                pass: 0,
            }),
            poller: Mutex::new(Poller { poll, events: Events::with_capacity(256) }),
            cv: Condvar::new(),
            sleepers: AtomicUsize::new(0),
            spin,
            ranks_on_host,
            next_ctx: std::sync::atomic::AtomicU32::new(4),
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

    /// Makes progress until `check` yields a value or `deadline` passes.
    pub(crate) fn wait<R>(
        &self,
        deadline: Option<Instant>,
        what: impl Fn() -> String,
        check: impl FnMut(&mut State) -> Option<Result<R>>,
    ) -> Result<R> {
        self.wait_with(deadline, MAX_SLEEP, what, check)
    }

    /// [`wait`](Self::wait), re-checking at least every `max_sleep` even without events (for
    /// conditions that no socket event announces).
    pub(crate) fn wait_with<R>(
        &self,
        deadline: Option<Instant>,
        max_sleep: Duration,
        what: impl Fn() -> String,
        mut check: impl FnMut(&mut State) -> Option<Result<R>>,
    ) -> Result<R> {
        let start = Instant::now();
        let polling =
            if self.spin.is_zero() { Polling::None } else { Polling::for_host(self.ranks_on_host) };
        // Busy polling still yields now and then; yielding polling after every look.
        let (spin, yield_every) = match polling {
            Polling::Busy => (self.spin, 64),
            Polling::Yielding => (self.spin, 1),
            Polling::None => (Duration::ZERO, 1),
        };
        let spin_end = start + spin;
        let mut polls = 0u32;
        // Whether the poller just made a pass (then the condition is checked before another one,
        // so an unclaimed message is offered to this caller first).
        let mut fresh = false;
        loop {
            let backlog = {
                let mut st = lock(&self.state);
                if !std::mem::take(&mut fresh) {
                    st.progress();
                }
                if let Some(r) = check(&mut st) {
                    return r;
                }
                st.conns.iter().flatten().any(Conn::has_backlog)
            };
            let now = Instant::now();
            // Input left behind by the last pass (a read budget used up, a payload held back
            // for a receive) raises no new event: look again without sleeping.
            let mut sleep = if backlog { Duration::ZERO } else { max_sleep };
            if let Some(d) = deadline {
                if now >= d {
                    return Err(Error::Timeout { after: now - start, what: what() });
                }
                sleep = sleep.min(d - now);
            }
            let spinning = now < spin_end;
            if spinning {
                sleep = Duration::ZERO;
            }
            match self.poller.try_lock() {
                Ok(mut p) => {
                    let p = &mut *p;
                    match p.poll.poll(&mut p.events, Some(sleep)) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(Error::io("epoll_wait", e)),
                    }
                    if !p.events.is_empty() {
                        let mut st = lock(&self.state);
                        st.mark(&p.events);
                        st.progress();
                        fresh = true;
                        drop(st);
                        if self.sleepers.load(Ordering::SeqCst) > 0 {
                            self.cv.notify_all();
                        }
                    } else if spinning {
                        polls += 1;
                        if polls % yield_every == 0 {
                            std::thread::yield_now();
                        }
                    }
                }
                Err(_) => {
                    // Another thread holds the poller; it wakes us when it has made progress.
                    let st = lock(&self.state);
                    let nap = sleep.max(Duration::from_micros(100)).min(Duration::from_millis(10));
                    self.sleepers.fetch_add(1, Ordering::SeqCst);
                    let _ = self.cv.wait_timeout(st, nap);
                    self.sleepers.fetch_sub(1, Ordering::SeqCst);
                }
            }
        }
    }

    /// Waits for request `id` and takes its completion.
    pub(crate) fn wait_req(&self, id: ReqId, what: impl Fn() -> String) -> Result<Completion> {
        self.wait(None, what, |st| st.take_done(id))
    }

    /// Ends this rank's part: writes everything queued, sends a goodbye to every peer, and waits
    /// until each peer has either acknowledged every byte at the TCP level (so nothing is lost when
    /// the socket closes), said goodbye itself, or gone. It does not wait for peers to finalize:
    /// a rank leaving early (after an error, say) is never held hostage by the others; they see its
    /// goodbye, and whatever they still expect from it fails with an error naming it.
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
                    c.tx.push_back(TxOp {
                        hdr: bye.encode(),
                        payload: Payload::Owned(bytes::Bytes::new()),
                        done: 0,
                        req: None,
                        watch: None,
                    });
                }
            }
        }
        self.wait_with(
            None,
            Duration::from_millis(1),
            || "sending goodbyes".into(),
            |st| st.all_flushed().then_some(Ok(())),
        )?;
        {
            let st = lock(&self.state);
            for c in st.conns.iter().flatten() {
                let _ = c.stream.shutdown(Shutdown::Write);
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
                    .all(|c| c.link != Link::Open || unacked_bytes(&c.stream) == 0)
                    .then_some(Ok(()))
            },
        )?;
        let mut st = lock(&self.state);
        st.finalized = true;
        for c in st.conns.iter().flatten() {
            let _ = c.stream.shutdown(Shutdown::Both);
        }
        Ok(())
    }
}

/// How a waiting call polls before it sleeps, chosen from the host's load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Polling {
    /// Every running task has a core: poll without giving the core up.
    Busy,
    /// The job's own ranks outnumber the cores (or one task beyond them passes by): poll, and
    /// yield the core after every look. The rank being waited for may share this core; yielding
    /// runs it at once, where sleeping would cost a wake-up (an inter-processor interrupt, which
    /// in a VM means a VM exit). Measured here, 4 ranks on 2 cores, 64 B, three runs each:
    /// bcast 8-11 µs against 17-19 sleeping at once, allreduce 24-27 against 35-39.
    Yielding,
    /// Other load on the host: do not poll. A polling rank burns the scheduler credit its peer
    /// needs, and a round trip then waits for a time slice instead of a wake-up (measured: 8 B
    /// latency 4.7 µs without polling, 20 µs with a 50 µs busy poll, at load 7 on 2 cores).
    None,
}

impl Polling {
    /// The policy for a job with `ranks_on_host` ranks here, from the kernel's count of running
    /// tasks (see [`host_running_tasks`]).
    fn for_host(ranks_on_host: usize) -> Polling {
        let cores = host_cores();
        match host_running_tasks() {
            None => Polling::Busy,
            Some(running) => Polling::choose(running, cores, ranks_on_host),
        }
    }

    fn choose(running: usize, cores: usize, ranks_on_host: usize) -> Polling {
        if ranks_on_host > cores {
            // The job crowds the cores by itself; whatever else runs, yielding hands the core
            // to it at once. (The running count swings by one or two with the launcher's
            // threads, so it cannot tell our own ranks from others reliably here.)
            Polling::Yielding
        } else if running <= cores {
            Polling::Busy
        } else if !host_loaded(running, cores) {
            // One passing task (a launcher thread forwarding output).
            Polling::Yielding
        } else {
            Polling::None
        }
    }
}

/// Whether other load keeps the cores busy: more running tasks than the cores and one passer-by.
fn host_loaded(running: usize, cores: usize) -> bool {
    running > cores + 1
}

/// The host's CPUs, like the running count: not this process's affinity mask, which is one CPU
/// for a rank that rmpirun bound to a core. Read once per process.
fn host_cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(host_cpus)
}

/// The number of CPUs online on this host (at least 1).
fn host_cpus() -> usize {
    // SAFETY: sysconf reads a system value; no memory is passed.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(n)
        .ok()
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The number of running tasks on this host, re-read from `/proc/loadavg` at most every 10 ms,
/// or every 1 ms while it says the host is loaded (a read costs a few microseconds; a count from
/// a passing burst, such as the job starting up, would otherwise stop polling for the whole
/// interval, which is all of a short benchmark: 2-rank barrier 10-12 µs instead of 6).
fn host_running_tasks() -> Option<usize> {
    use std::sync::atomic::AtomicU64;
    use std::sync::OnceLock;
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    static CHECKED_MS: AtomicU64 = AtomicU64::new(0);
    // 0: unknown (no /proc); otherwise the count plus one.
    static RUNNING: AtomicUsize = AtomicUsize::new(0);
    let epoch = *EPOCH.get_or_init(Instant::now);
    let now_ms = epoch.elapsed().as_millis() as u64 + 1;
    let last = CHECKED_MS.load(Ordering::Relaxed);
    let loaded = RUNNING
        .load(Ordering::Relaxed)
        .checked_sub(1)
        .is_some_and(|n| host_loaded(n, host_cores()));
    let every = if loaded { 1 } else { 10 };
    if last == 0 || now_ms.saturating_sub(last) >= every {
        CHECKED_MS.store(now_ms, Ordering::Relaxed);
        let running = std::fs::read_to_string("/proc/loadavg").ok().and_then(|s| running_tasks(&s));
        RUNNING.store(running.map_or(0, |n| n + 1), Ordering::Relaxed);
    }
    RUNNING.load(Ordering::Relaxed).checked_sub(1)
}

/// The running-task count of a `/proc/loadavg` line (`0.50 0.40 0.30 3/512 12345` gives 3).
fn running_tasks(loadavg: &str) -> Option<usize> {
    loadavg.split_whitespace().nth(3)?.split('/').next()?.parse().ok()
}

/// Bytes written to `s` that the peer's kernel has not acknowledged yet (`SIOCOUTQ`).
fn unacked_bytes(s: &mio::net::TcpStream) -> usize {
    use std::os::fd::AsRawFd;
    let mut n: libc::c_int = 0;
    // SAFETY: TIOCOUTQ (= SIOCOUTQ for TCP) writes one int through the pointer.
    let rc = unsafe { libc::ioctl(s.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
    if rc != 0 {
        return 0;
    }
    usize::try_from(n).unwrap_or(0)
}

impl State {
    /// Records what the poller reported.
    fn mark(&mut self, events: &Events) {
        for ev in events.iter() {
            if let Some(Some(c)) = self.conns.get_mut(ev.token().0) {
                if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                    c.readable = true;
                }
                if ev.is_writable() || ev.is_write_closed() || ev.is_error() {
                    c.writable = true;
                }
            }
        }
    }

    /// A fresh request id with a pending slot.
    pub(crate) fn new_req(&mut self) -> ReqId {
        self.m.next_req += 1;
        let id = self.m.next_req;
        self.m.slots.insert(id, Slot::Pending);
        id
    }

    /// Queues a send under a new request; on failure the request is let go of again.
    pub(crate) fn send_request(
        &mut self,
        dest: usize,
        ctx: u32,
        tag: u64,
        payload: Payload,
        watch: Option<Watch>,
    ) -> Result<ReqId> {
        let id = self.new_req();
        match self.post_send(dest, ctx, tag, payload, Some(id), watch) {
            Ok(()) => Ok(id),
            Err(e) => {
                self.cancel(id);
                Err(e)
            }
        }
    }

    /// Takes the result of a finished request, leaving pending ones alone.
    pub(crate) fn take_done(&mut self, id: ReqId) -> Option<Result<Completion>> {
        match self.m.slots.get(&id) {
            Some(Slot::Done(_)) => match self.m.slots.remove(&id) {
                Some(Slot::Done(r)) => Some(r),
                _ => None,
            },
            Some(Slot::Pending) => None,
            None => Some(Err(Error::io(
                "request",
                io::Error::new(io::ErrorKind::NotFound, "request already completed"),
            ))),
        }
    }

    pub(crate) fn is_done(&self, id: ReqId) -> bool {
        matches!(self.m.slots.get(&id), Some(Slot::Done(_)))
    }

    fn peer_error(&self, r: usize) -> Option<Error> {
        match self.conns.get(r).and_then(|c| c.as_ref()).map(|c| &c.link) {
            Some(Link::Dead(cause)) => Some(self.lost(r, cause)),
            _ => None,
        }
    }

    fn after_finalize(&self) -> Error {
        Error::Finalized { rank: self.me }
    }

    fn lost(&self, r: usize, cause: &str) -> Error {
        Error::PeerLost {
            rank: r,
            host: self.hosts.get(r).cloned().unwrap_or_else(|| "?".into()),
            cause: cause.to_owned(),
        }
    }

    /// The first dead peer among `watch`, as an error.
    pub(crate) fn watch_error(&self, watch: &Watch) -> Option<Error> {
        match watch {
            Watch::One(r) => self.peer_error(*r),
            // The member lost first, and one that failed before one that merely finalized: that
            // is the rank every survivor should name.
            Watch::Group(g) => {
                let in_group = |r: &&usize| g.contains(r);
                let failed = |r: &&usize| !self.finished_normally(**r);
                self.lost
                    .iter()
                    .filter(in_group)
                    .find(failed)
                    .or_else(|| self.lost.iter().find(in_group))
                    .and_then(|r| self.peer_error(*r))
            }
        }
    }

    fn finished_normally(&self, r: usize) -> bool {
        matches!(self.conns.get(r), Some(Some(c)) if c.link == Link::Dead(FINISHED.into()))
    }

    fn all_flushed(&self) -> bool {
        self.conns.iter().flatten().all(|c| c.tx.is_empty() || matches!(c.link, Link::Dead(_)))
    }

    /// Queues a message. Completes `req` (if any) once the last byte is written.
    pub(crate) fn post_send(
        &mut self,
        dest: usize,
        ctx: u32,
        tag: u64,
        payload: Payload,
        req: Option<ReqId>,
        watch: Option<Watch>,
    ) -> Result<()> {
        if self.finalized {
            return Err(self.after_finalize());
        }
        if dest == self.me {
            let buf = AlignedBuf::from_bytes(payload.bytes());
            self.deliver_local(ctx, tag, buf);
            if let Some(id) = req {
                self.m.complete(id, Ok(Completion::default()));
            }
            return Ok(());
        }
        if let Some(e) = self.peer_error(dest) {
            return Err(e);
        }
        if let Some(e) = watch.as_ref().and_then(|w| self.watch_error(w)) {
            return Err(e);
        }
        let Some(Some(c)) = self.conns.get_mut(dest) else {
            return Err(Error::InvalidRank { rank: dest, size: self.conns.len() });
        };
        if c.link == Link::Closed {
            // The peer finalized; it reads nothing more.
            let host = self.hosts.get(dest).cloned().unwrap_or_default();
            return Err(Error::PeerLost { rank: dest, host, cause: FINISHED.into() });
        }
        let len = payload.bytes().len() as u64;
        let hdr = FrameHeader { kind: FrameKind::Data, context: ctx, tag, len }.encode();
        let was_idle = c.tx.is_empty();
        c.tx.push_back(TxOp { hdr, payload, done: 0, req, watch });
        if was_idle && c.writable {
            self.flush(dest);
            self.settle();
        }
        Ok(())
    }

    fn deliver_local(&mut self, ctx: u32, tag: u64, buf: AlignedBuf) {
        let me = self.me;
        let len = buf.len();
        match self.m.take_posted(ctx, me, tag) {
            Some(p) => {
                let info = MsgInfo { src: me, tag, len };
                let r = fill_sink(p.sink, buf, info);
                self.m.complete(p.req, r);
            }
            None => self.m.unexpected.push_back(Unexpected { ctx, src: me, tag, buf }),
        }
    }

    /// Posts a receive, matching it against what has already arrived first.
    pub(crate) fn post_recv(&mut self, p: Posted) {
        // 1. A complete message that already arrived.
        if let Some(i) = self.m.unexpected.iter().position(|u| p.matches(u.ctx, u.src, u.tag)) {
            if let Some(u) = self.m.unexpected.remove(i) {
                let info = MsgInfo { src: u.src, tag: u.tag, len: u.buf.len() };
                let r = fill_sink(p.sink, u.buf, info);
                self.m.complete(p.req, r);
                return;
            }
        }
        // 2. A message whose payload is arriving right now and that nobody has claimed: the rest
        //    of it goes straight into the receive's memory when it fits there.
        let arriving = self.conns.iter().enumerate().position(|(r, c)| {
            let hdr = c.as_ref().and_then(Conn::arriving_unclaimed);
            hdr.is_some_and(|h| p.matches(h.context, r, h.tag))
        });
        if let Some(r) = arriving {
            if let Some(Some(Conn { rx: Rx::Payload { hdr, dest, filled }, .. })) =
                self.conns.get_mut(r)
            {
                let len = hdr.len as usize;
                let old = std::mem::replace(dest, Dest::Unclaimed { since: 0 });
                *dest = match (p.sink, old) {
                    (Sink::User(ub), Dest::Owned { buf, .. }) if len <= ub.len => {
                        // SAFETY: the receive being posted is live.
                        let into = unsafe { ub.bytes_mut() };
                        into[..*filled].copy_from_slice(&buf.as_bytes()[..*filled]);
                        Dest::User { req: p.req, buf: ub }
                    }
                    (Sink::User(ub), Dest::Unclaimed { .. }) if len <= ub.len => {
                        Dest::User { req: p.req, buf: ub }
                    }
                    (sink, Dest::Owned { buf, .. }) => {
                        Dest::Owned { req: Some((p.req, sink)), buf }
                    }
                    (sink, _) => {
                        Dest::Owned { req: Some((p.req, sink)), buf: AlignedBuf::zeroed(len) }
                    }
                };
            }
            // Part of the payload (or all of it) may be staged already, and no socket event
            // will come for it: take it now.
            if let Err(cause) = self.parse(r) {
                self.kill(r, cause);
            }
            return;
        }
        // 3. Nothing yet: fail now if a peer it depends on is gone, else wait.
        let finished_source =
            p.src.filter(|s| matches!(self.conns.get(*s), Some(Some(c)) if c.link == Link::Closed));
        let err = if self.finalized {
            Some(self.after_finalize())
        } else {
            self.watch_error(&p.watch).or_else(|| finished_source.map(|s| self.lost(s, FINISHED)))
        };
        if let Some(e) = err {
            self.m.complete(p.req, Err(e));
            return;
        }
        self.m.posted.push_back(p);
    }

    /// The envelope of the first arrived message matching, without receiving it: a complete one,
    /// or else one whose header is in and whose payload nobody has claimed yet (a receive posted
    /// next takes that one, so probing first costs a large message no extra copy).
    pub(crate) fn probe(&self, ctx: u32, src: Option<usize>, tag: Option<u64>) -> Option<MsgInfo> {
        let wanted = |c: u32, s: usize, t: u64| {
            c == ctx && src.is_none_or(|w| w == s) && tag.is_none_or(|w| w == t)
        };
        let complete = self.m.unexpected.iter().find(|u| wanted(u.ctx, u.src, u.tag));
        if let Some(u) = complete {
            return Some(MsgInfo { src: u.src, tag: u.tag, len: u.buf.len() });
        }
        self.conns.iter().enumerate().find_map(|(r, c)| {
            let hdr = c.as_ref().and_then(Conn::arriving_unclaimed)?;
            wanted(hdr.context, r, hdr.tag).then_some(MsgInfo {
                src: r,
                tag: hdr.tag,
                len: hdr.len as usize,
            })
        })
    }

    /// Lets go of a request: a receive that has not matched is withdrawn (its message, when it
    /// comes, is kept for a later receive); one that is arriving into caller memory is redirected
    /// into an engine buffer; a send still reading caller memory copies what is left. After this
    /// the engine holds no pointer into caller memory for `id`.
    pub(crate) fn cancel(&mut self, id: ReqId) {
        if let Some(i) = self.m.posted.iter().position(|p| p.req == id) {
            self.m.posted.remove(i);
            self.m.slots.remove(&id);
            return;
        }
        for c in self.conns.iter_mut().flatten() {
            if let Rx::Payload { dest, filled, hdr } = &mut c.rx {
                let redirect = match dest {
                    Dest::User { req, buf } if *req == id => {
                        let mut own = AlignedBuf::zeroed(hdr.len as usize);
                        // SAFETY: the request is still live, so its memory is.
                        own.as_mut_bytes()[..*filled]
                            .copy_from_slice(unsafe { &buf.bytes()[..*filled] });
                        Some(own)
                    }
                    Dest::Owned { req: claim, .. } if claim.as_ref().is_some_and(|c| c.0 == id) => {
                        *claim = None;
                        None
                    }
                    _ => None,
                };
                if let Some(own) = redirect {
                    *dest = Dest::Owned { req: None, buf: own };
                }
            }
            for op in c.tx.iter_mut() {
                if op.req == Some(id) {
                    op.own_payload();
                    op.req = None;
                }
            }
        }
        self.m.slots.remove(&id);
    }

    /// Makes a queued send stop borrowing caller memory (copies what it still holds).
    pub(crate) fn detach_send(&mut self, id: ReqId) {
        for c in self.conns.iter_mut().flatten() {
            for op in c.tx.iter_mut().filter(|op| op.req == Some(id)) {
                op.own_payload();
            }
        }
    }

    /// Does all the I/O that can be done without blocking.
    fn progress(&mut self) {
        self.pass += 1;
        for r in 0..self.conns.len() {
            let (flush, read) = match &self.conns[r] {
                Some(c) if !matches!(c.link, Link::Dead(_)) => {
                    (c.writable && !c.tx.is_empty(), c.readable || c.is_unclaimed())
                }
                _ => continue,
            };
            if flush {
                self.flush(r);
            }
            if read {
                self.read(r);
            }
        }
        self.settle();
        for r in std::mem::take(&mut self.goodbyes) {
            self.fail_posted_from(r);
        }
    }

    fn flush(&mut self, r: usize) {
        let Some(Some(c)) = self.conns.get_mut(r) else { return };
        let mut failed = None;
        while !c.tx.is_empty() {
            let mut iov: [IoSlice<'_>; MAX_IOV] = [IoSlice::new(&[]); MAX_IOV];
            let mut n = 0;
            for op in c.tx.iter() {
                if n + 2 > MAX_IOV {
                    break;
                }
                let d = op.done;
                if d < HEADER_LEN {
                    iov[n] = IoSlice::new(&op.hdr[d..]);
                    n += 1;
                }
                let p = op.payload.bytes();
                let pd = d.saturating_sub(HEADER_LEN);
                if pd < p.len() {
                    iov[n] = IoSlice::new(&p[pd..]);
                    n += 1;
                }
            }
            match c.stream.write_vectored(&iov[..n]) {
                Ok(0) => {
                    failed = Some("the connection accepts no more data".to_string());
                    break;
                }
                Ok(mut w) => {
                    while w > 0 {
                        let Some(op) = c.tx.front_mut() else { break };
                        let left = op.total() - op.done;
                        if w >= left {
                            w -= left;
                            if let Some(op) = c.tx.pop_front() {
                                if let Some(id) = op.req {
                                    self.m.complete(id, Ok(Completion::default()));
                                }
                            }
                        } else {
                            op.done += w;
                            w = 0;
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    c.writable = false;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    failed = Some(format!("sending failed: {e}"));
                    break;
                }
            }
        }
        if let Some(cause) = failed {
            // The peer may have said goodbye and closed: read what it sent before judging it.
            self.read(r);
            self.kill(r, cause);
        }
    }

    fn read(&mut self, r: usize) {
        let mut budget = READ_BUDGET;
        loop {
            if let Err(cause) = self.parse(r) {
                self.kill(r, cause);
                return;
            }
            let Some(Some(c)) = self.conns.get_mut(r) else { return };
            if budget == 0 || c.link != Link::Open || c.is_unclaimed() {
                return;
            }
            // Choose where the next bytes go.
            let direct = match &mut c.rx {
                Rx::Payload { dest, filled, hdr } if c.lo == c.hi => {
                    let rem = hdr.len as usize - *filled;
                    match dest.bytes_mut() {
                        Some(slice) if rem >= DIRECT_READ_MIN => {
                            Some((slice.as_mut_ptr(), *filled, rem))
                        }
                        _ => None,
                    }
                }
                _ => None,
            };
            let (res, asked) = match direct {
                Some((ptr, at, rem)) => {
                    // SAFETY: ptr/at/rem describe the unfilled tail of the destination above.
                    let tail = unsafe { std::slice::from_raw_parts_mut(ptr.add(at), rem) };
                    (c.stream.read(tail).map(|n| (n, true)), rem)
                }
                None => {
                    if c.lo > 0 {
                        c.staging.copy_within(c.lo..c.hi, 0);
                        c.hi -= c.lo;
                        c.lo = 0;
                    }
                    let hi = c.hi;
                    (c.stream.read(&mut c.staging[hi..]).map(|n| (n, false)), STAGING - hi)
                }
            };
            // A short read drained the socket: with edge-triggered polling, new data raises a
            // new event, so there is no need to read again just to see EAGAIN.
            if matches!(res, Ok((n, _)) if n > 0 && n < asked) {
                c.readable = false;
            }
            match res {
                Ok((0, _)) => {
                    self.eof(r);
                    return;
                }
                Ok((n, direct)) => {
                    budget = budget.saturating_sub(n);
                    if direct {
                        if let Rx::Payload { filled, .. } = &mut c.rx {
                            *filled += n;
                        }
                    } else {
                        c.hi += n;
                    }
                    if !c.readable {
                        if let Err(cause) = self.parse(r) {
                            self.kill(r, cause);
                        }
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    c.readable = false;
                    // Complete a payload that the direct read just finished.
                    if let Err(cause) = self.parse(r) {
                        self.kill(r, cause);
                    }
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.kill(r, format!("receiving failed: {e}"));
                    return;
                }
            }
        }
    }

    /// Consumes staged bytes: headers, payload pieces, completed messages.
    fn parse(&mut self, r: usize) -> std::result::Result<(), String> {
        loop {
            let max = self.max_message;
            let Some(Some(c)) = self.conns.get_mut(r) else { return Ok(()) };
            match &mut c.rx {
                Rx::Header => {
                    if c.hi - c.lo < HEADER_LEN {
                        return Ok(());
                    }
                    let hdr = FrameHeader::decode(&c.staging[c.lo..c.hi], max)
                        .map_err(|e| format!("protocol error: {e}"))?;
                    c.lo += HEADER_LEN;
                    if hdr.kind == FrameKind::Goodbye {
                        c.link = Link::Closed;
                        // Failed at the end of this pass, after every connection has been read:
                        // if another peer died too, its loss is reported first.
                        self.goodbyes.push(r);
                        return Ok(());
                    }
                    let len = usize::try_from(hdr.len).map_err(|_| "frame too long".to_string())?;
                    let dest = match self.m.take_posted(hdr.context, r, hdr.tag) {
                        Some(Posted { req, sink: Sink::User(buf), .. }) if len <= buf.len => {
                            Dest::User { req, buf }
                        }
                        Some(p) => {
                            Dest::Owned { req: Some((p.req, p.sink)), buf: AlignedBuf::zeroed(len) }
                        }
                        None if len >= DIRECT_READ_MIN => Dest::Unclaimed { since: self.pass },
                        None => Dest::Owned { req: None, buf: AlignedBuf::zeroed(len) },
                    };
                    let Some(Some(c)) = self.conns.get_mut(r) else { return Ok(()) };
                    c.rx = Rx::Payload { hdr, dest, filled: 0 };
                }
                Rx::Payload { hdr, dest, filled } => {
                    let len = hdr.len as usize;
                    if let Dest::Unclaimed { since } = *dest {
                        if since == self.pass {
                            return Ok(());
                        }
                        // Nobody asked for it within a pass: buffer it, so the messages behind
                        // it (which someone may be waiting for) keep flowing.
                        *dest = Dest::Owned { req: None, buf: AlignedBuf::zeroed(len) };
                    }
                    let take = (len - *filled).min(c.hi - c.lo);
                    if take > 0 {
                        let Some(into) = dest.bytes_mut() else { return Ok(()) };
                        into[*filled..*filled + take]
                            .copy_from_slice(&c.staging[c.lo..c.lo + take]);
                        *filled += take;
                        c.lo += take;
                    }
                    if *filled < len {
                        return Ok(());
                    }
                    let Rx::Payload { hdr, dest, .. } = std::mem::replace(&mut c.rx, Rx::Header)
                    else {
                        return Ok(());
                    };
                    let info = MsgInfo { src: r, tag: hdr.tag, len };
                    match dest {
                        Dest::User { req, .. } => {
                            self.m.complete(req, Ok(Completion { info: Some(info), data: None }))
                        }
                        Dest::Owned { req: Some((req, sink)), buf } => {
                            let res = fill_sink(sink, buf, info);
                            self.m.complete(req, res);
                        }
                        Dest::Owned { req: None, buf } => self.m.unexpected.push_back(Unexpected {
                            ctx: hdr.context,
                            src: r,
                            tag: hdr.tag,
                            buf,
                        }),
                        // Not reached: an unclaimed payload is given a home before any of it
                        // is taken.
                        Dest::Unclaimed { .. } => {}
                    }
                }
            }
        }
    }

    fn eof(&mut self, r: usize) {
        let Some(Some(c)) = self.conns.get_mut(r) else { return };
        if c.link == Link::Closed {
            c.readable = false;
            return;
        }
        self.kill(r, "connection closed without a goodbye (the process exited or crashed)".into());
    }

    /// Marks a peer dead and fails everything that depends on it.
    fn kill(&mut self, r: usize, cause: String) {
        let Some(Some(c)) = self.conns.get_mut(r) else { return };
        if matches!(c.link, Link::Dead(_)) {
            return;
        }
        let cause = if c.link == Link::Closed {
            // It said goodbye; a reset afterwards is its socket closing, not a failure.
            tracing::debug!(rank = r, "connection closed after goodbye: {cause}");
            FINISHED.to_string()
        } else {
            tracing::warn!(rank = r, "peer lost: {cause}");
            crate::agent_note::peer_lost(r);
            cause
        };
        c.link = Link::Dead(cause.clone());
        self.lost.push(r);
        let Some(Some(c)) = self.conns.get_mut(r) else { return };
        c.readable = false;
        c.writable = false;
        let _ = c.stream.shutdown(Shutdown::Both);
        let tx: Vec<TxOp> = c.tx.drain(..).collect();
        let rx = std::mem::replace(&mut c.rx, Rx::Header);
        let host = self.hosts.get(r).cloned().unwrap_or_else(|| "?".into());
        let err = || Error::PeerLost { rank: r, host: host.clone(), cause: cause.clone() };
        let mut failed: Vec<(ReqId, Error)> = Vec::new();
        for op in tx {
            match (op.req, op.watch) {
                // Collective sends name the member their group lost first: settled below.
                (Some(id), Some(w)) => self.deferred.push((id, w)),
                (Some(id), None) => failed.push((id, err())),
                (None, _) => {}
            }
        }
        if let Rx::Payload { dest, .. } = rx {
            match dest {
                Dest::User { req, .. } | Dest::Owned { req: Some((req, _)), .. } => {
                    failed.push((req, err()))
                }
                Dest::Owned { req: None, .. } | Dest::Unclaimed { .. } => {}
            }
        }
        for (id, e) in failed {
            self.m.complete(id, Err(e));
        }
        // Everything else that depends on `r` (receives watching it, collective sends to other
        // members) fails in `settle`, at the end of this progress pass: by then every connection
        // has been read, so if several members were lost the error names the one that failed
        // first rather than one that merely finished.
        self.unsettled = true;
    }

    /// Fails every pending operation that depends on a lost peer, naming for each the member of
    /// its group that failed first.
    fn settle(&mut self) {
        if !std::mem::take(&mut self.unsettled) {
            return;
        }
        let mut failed: Vec<(ReqId, Error)> = Vec::new();
        for (id, w) in std::mem::take(&mut self.deferred) {
            if let Some(e) = self.watch_error(&w) {
                failed.push((id, e));
            }
        }
        let posted = std::mem::take(&mut self.m.posted);
        for p in posted {
            match self.watch_error(&p.watch) {
                Some(e) => failed.push((p.req, e)),
                None => self.m.posted.push_back(p),
            }
        }
        // A frame already on its way cannot be taken back without corrupting that stream, so a
        // failed collective send is finished from a copy; the caller's buffer is released.
        let mut sends: Vec<(usize, usize, Watch)> = Vec::new();
        for (q, c) in self.conns.iter().enumerate() {
            let Some(c) = c else { continue };
            for (i, op) in c.tx.iter().enumerate() {
                if let (Some(_), Some(w)) = (op.req, &op.watch) {
                    sends.push((q, i, w.clone()));
                }
            }
        }
        for (q, i, w) in sends {
            let Some(e) = self.watch_error(&w) else { continue };
            if let Some(Some(c)) = self.conns.get_mut(q) {
                if let Some(op) = c.tx.get_mut(i) {
                    if let Some(id) = op.req.take() {
                        op.own_payload();
                        failed.push((id, e));
                    }
                }
            }
        }
        for (id, e) in failed {
            self.m.complete(id, Err(e));
        }
    }

    /// Fails receives that name `r` as their source: `r` will send nothing more. A receive that
    /// also depends on a member that failed reports that failure instead.
    fn fail_posted_from(&mut self, r: usize) {
        let posted = std::mem::take(&mut self.m.posted);
        for p in posted {
            if p.src == Some(r) {
                let e = self.watch_error(&p.watch).unwrap_or_else(|| self.lost(r, FINISHED));
                self.m.complete(p.req, Err(e));
            } else {
                self.m.posted.push_back(p);
            }
        }
    }
}

impl Matching {
    fn take_posted(&mut self, ctx: u32, src: usize, tag: u64) -> Option<Posted> {
        let i = self.posted.iter().position(|p| p.matches(ctx, src, tag))?;
        self.posted.remove(i)
    }

    fn complete(&mut self, id: ReqId, r: Result<Completion>) {
        // A request that was let go of has no slot: its result is dropped.
        if let Some(slot) = self.slots.get_mut(&id) {
            *slot = Slot::Done(r);
        }
    }
}

/// Puts a complete engine buffer where its receive wants it.
fn fill_sink(sink: Sink, buf: AlignedBuf, info: MsgInfo) -> Result<Completion> {
    match sink {
        Sink::Alloc => Ok(Completion { info: Some(info), data: Some(buf) }),
        Sink::User(dst) => {
            if buf.len() > dst.len {
                return Err(Error::Truncated {
                    source_rank: info.src,
                    tag: info.tag,
                    len: buf.len(),
                    capacity: dst.len,
                });
            }
            // SAFETY: the receive is live until completed, which happens right after this.
            unsafe { dst.bytes_mut()[..buf.len()].copy_from_slice(buf.as_bytes()) };
            Ok(Completion { info: Some(info), data: None })
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn loadavg_running_count() {
        assert_eq!(super::running_tasks("0.50 0.40 0.30 3/512 12345\n"), Some(3));
        assert_eq!(super::running_tasks("garbage"), None);
        // Whatever the host's state, the check answers without panicking.
        let _ = super::Polling::for_host(4);
        // The host's CPUs, never fewer than this process may use.
        let usable = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert!(super::host_cpus() >= usable);
    }

    #[test]
    fn polling_follows_the_load() {
        use super::Polling;
        // 2 ranks on 2 cores: busy while everyone has a core, yielding with one passing task,
        // not at all under other load.
        assert_eq!(Polling::choose(2, 2, 2), Polling::Busy);
        assert_eq!(Polling::choose(3, 2, 2), Polling::Yielding);
        assert_eq!(Polling::choose(4, 2, 2), Polling::None);
        assert_eq!(Polling::choose(3, 2, 1), Polling::Yielding);
        // 4 ranks on 2 cores crowd the cores by themselves: always yielding.
        assert_eq!(Polling::choose(4, 2, 4), Polling::Yielding);
        assert_eq!(Polling::choose(9, 2, 4), Polling::Yielding);
    }
}
