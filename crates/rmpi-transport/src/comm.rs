//! Communicators: groups of ranks with private traffic, and their point-to-point operations.

use std::cell::RefCell;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytemuck::Pod;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::buf::{AlignedBuf, RawBuf};
use crate::engine::{Completion, Engine, IdMap, MsgInfo, Payload, Posted, ReqId, Sink, Watch};
use crate::env::BootConfig;
use crate::error::{Error, Result};
use crate::request::{finish_status, finish_unit, Request, Scope, ScopeGuard};
use crate::select::{Any, Source, TagMatch};

/// A message tag: every `u64` is a user tag (no value is reserved). Traffic of other
/// communicators, and collective traffic, has its own matching context and never matches user
/// messages whatever the tag.
pub type Tag = u64;

/// The envelope of a received (or probed) message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    /// Sender's rank in the communicator.
    pub source: usize,
    /// The message's tag.
    pub tag: Tag,
    /// Payload length in bytes.
    pub len: usize,
}

impl Status {
    /// Number of `T` elements in the message, if the length is a whole number of them.
    pub fn count<T: Pod>(&self) -> Option<usize> {
        let sz = std::mem::size_of::<T>();
        (sz > 0 && self.len % sz == 0).then(|| self.len / sz)
    }
}

/// The traffic planes of a communicator: each is its own matching context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Plane {
    /// User point-to-point.
    User = 0,
    /// Collective operations (rmpi-collectives).
    Collective = 1,
    /// Communicator management (dup, split).
    Internal = 2,
}

/// The process-wide engine plus finalization state.
pub(crate) struct Shared {
    pub(crate) engine: Engine,
    finalized: AtomicBool,
}

impl Shared {
    /// The one rule after [`Communicator::finalize`]: every operation, point-to-point or
    /// collective, fails with [`Error::Finalized`] (before touching the engine, so a world of one
    /// rank behaves like a launched job).
    fn live(&self) -> Result<()> {
        if self.finalized.load(Ordering::SeqCst) {
            return Err(Error::Finalized { rank: self.engine.rank });
        }
        Ok(())
    }

    fn finalize(&self) -> Result<()> {
        if self.finalized.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        self.engine.finalize()
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // A rank unwinding from a panic has failed: saying goodbye would tell its peers it
        // finished. It tells them it failed instead, and closes.
        if std::thread::panicking() {
            crate::agent_note::failed("panicked");
            self.engine.fail("panicked");
            return;
        }
        // A rank that ends after losing a peer to a failure passes that loss on, so peers that
        // had not seen it yet name the rank that failed, not this one.
        if let Some((lost, cause)) = self.engine.first_failure() {
            if !self.finalized.swap(true, Ordering::SeqCst) {
                let host = self.engine.hosts.get(lost).map_or("?", |h| h.as_str());
                let why = format!("rank {lost} on {host} was lost: {cause}");
                self.engine.fail_because(&why, Some(lost));
                return;
            }
        }
        if let Err(e) = self.finalize() {
            tracing::warn!("finalize at drop: {e}");
        }
    }
}

/// Communicator ranks by world rank.
enum RankIndex {
    /// Communicator rank and world rank are the same (the world and its duplicates).
    Identity,
    /// Any other group.
    Map(IdMap<usize, usize>),
}

impl RankIndex {
    /// The index of the group whose members' world ranks are `group`, in communicator order.
    fn of(group: &[usize]) -> RankIndex {
        if group.iter().enumerate().all(|(i, w)| i == *w) {
            return RankIndex::Identity;
        }
        RankIndex::Map(group.iter().enumerate().map(|(i, w)| (*w, i)).collect())
    }

    /// The communicator rank of world rank `w`, if it is a member.
    fn get(&self, w: usize) -> Option<usize> {
        match self {
            RankIndex::Identity => Some(w),
            RankIndex::Map(m) => m.get(&w).copied(),
        }
    }
}

pub(crate) struct CommInner {
    shared: Arc<Shared>,
    /// Context base: user traffic at `ctx`, collectives at `ctx + 1`, internal at `ctx + 2`.
    ctx: u32,
    /// World rank of each member, by communicator rank.
    group: Arc<[usize]>,
    /// Communicator rank of each member, by world rank.
    index: RankIndex,
    rank: usize,
    coll_seq: AtomicU64,
    /// State the collectives build once for this communicator (see
    /// [`Communicator::collective_state`]).
    coll_state: CollState,
}

/// The slot behind [`Communicator::collective_state`].
type CollState = std::sync::OnceLock<Arc<dyn std::any::Any + Send + Sync>>;

/// How long an aborting rank tries to get its notices out before it exits (under the
/// launcher's grace between SIGTERM and SIGKILL).
const ABORT_NOTICE_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// How long a collective that lost a finished member keeps looking for a member that failed.
const REFINE_WINDOW: std::time::Duration = std::time::Duration::from_millis(250);

impl CommInner {
    pub(crate) fn engine(&self) -> &Engine {
        &self.shared.engine
    }

    /// [`Error::Finalized`] once this process has finalized.
    pub(crate) fn live(&self) -> Result<()> {
        self.shared.live()
    }

    /// For collective traffic: an error saying a member finished is replaced by the loss of a
    /// member that failed, if there is one. When a rank crashes, the survivors that notice first
    /// leave; the others must still name the crash. Its end can reach us after their goodbyes: a
    /// crashed rank's socket still holds the data it had queued for us, and the kernel delivers
    /// its end only after that. So this reads everything that has arrived, again and again, for
    /// up to [`REFINE_WINDOW`] (only on this error path) before settling for "finished".
    pub(crate) fn refine(&self, e: Error) -> Error {
        let finished = |e: &Error| matches!(e, Error::PeerLost { cause, .. } if cause == crate::engine::FINISHED);
        if !finished(&e) {
            return e;
        }
        let watch = Watch::Group(self.group.clone());
        let start = std::time::Instant::now();
        loop {
            match self.engine().with_drained_state(|st| st.watch_error(&watch)) {
                Some(f) if !finished(&f) => return f,
                _ if start.elapsed() >= REFINE_WINDOW => return e,
                _ => std::thread::sleep(std::time::Duration::from_millis(1)),
            }
        }
    }

    pub(crate) fn status(&self, info: Option<MsgInfo>) -> Status {
        let info = info.unwrap_or(MsgInfo { src: usize::MAX, tag: 0, len: 0 });
        Status {
            source: self.index.get(info.src).unwrap_or(info.src),
            tag: info.tag,
            len: info.len,
        }
    }
}

/// A group of ranks that talk among themselves: the world, or one made by
/// [`dup`](Communicator::dup) or [`split`](Communicator::split).
///
/// Cloning is cheap and gives a handle to the same communicator. A communicator is `Send + Sync`:
/// several threads may send and receive on it at once (a waiting thread makes progress for all of
/// them). Collective operations, like MPI's, must be called in the same order by every member,
/// so only one thread at a time should call them on one communicator.
///
/// Point-to-point on the in-process test harness:
/// ```
/// use rmpi::local;
/// let out = local::run(2, |world| {
///     if world.rank() == 0 {
///         world.send(&[1.5f64, 2.5], 1, 7)?;
///         Ok(0.0)
///     } else {
///         let (v, status) = world.recv::<f64>(0, 7)?;
///         assert_eq!((status.source, status.tag, status.len), (0, 7, 16));
///         Ok(v.iter().sum())
///     }
/// })?;
/// assert_eq!(out, vec![0.0, 4.0]);
/// # Ok::<(), rmpi::Error>(())
/// ```
#[derive(Clone)]
pub struct Communicator {
    inner: Arc<CommInner>,
}

impl std::fmt::Debug for Communicator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Communicator")
            .field("rank", &self.rank())
            .field("size", &self.size())
            .field("context", &self.inner.ctx)
            .finish()
    }
}

/// Removes a request's hold on caller memory when a blocking call leaves early.
struct Hold<'a> {
    engine: &'a Engine,
    id: ReqId,
}

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        let id = self.id;
        self.engine.with_state(|st| st.cancel(id));
    }
}

impl Communicator {
    /// Joins a job as described by the environment, through whichever launcher started this
    /// process (see [`launch`](crate::launch) and `docs/launch-contract.md`), or returns a world
    /// of size 1 when the process was not started by a launcher.
    ///
    /// A process joins once: a second call, under a launcher or not, returns
    /// [`Error::AlreadyInitialized`] at once (clone the communicator instead). A call that failed
    /// does not count. ([`join`](Self::join) and [`local::run`](crate::local::run), which build
    /// worlds explicitly, are not limited.)
    pub fn init() -> Result<Communicator> {
        // The rank of this process's successful init, if any. Held while joining, so a call
        // from another thread at the same time waits for the first to succeed or fail.
        static INITIALIZED: std::sync::Mutex<Option<usize>> = std::sync::Mutex::new(None);
        let mut done = INITIALIZED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(rank) = *done {
            return Err(Error::AlreadyInitialized { rank });
        }
        let world = Self::init_once()?;
        *done = Some(world.rank());
        Ok(world)
    }

    fn init_once() -> Result<Communicator> {
        crate::log::install_default();
        crate::agent_note::adopt_from_env();
        match BootConfig::from_env()? {
            Some(cfg) => Self::join(&cfg),
            None => Ok(Self::singleton()),
        }
    }

    /// Joins the job described by `cfg`: endpoint exchange (rendezvous or PMI store), then a
    /// connection to every peer.
    pub fn join(cfg: &BootConfig) -> Result<Communicator> {
        // Connections on demand are counted when they open (a failure names the limit).
        let at_start = match cfg.connect {
            crate::env::Connect::Eager => cfg.size.saturating_sub(1),
            crate::env::Connect::Lazy => 0,
        };
        crate::limits::ensure_descriptors(at_start)
            .map_err(|msg| Error::Bootstrap { rank: cfg.rank, msg })?;
        let mesh = crate::mesh::build(cfg)?;
        let hosts = mesh.endpoints.iter().map(|e| e.host.clone()).collect();
        let engine = Engine::new(
            cfg.rank,
            (mesh.streams, mesh.lazy),
            mesh.shm,
            hosts,
            (cfg.spin, cfg.ranks_on_host),
            cfg.max_message,
        )?;
        Ok(Self::world(engine))
    }

    /// A world of one rank (no sockets).
    pub fn singleton() -> Communicator {
        let host = crate::mesh::hostname();
        let engine =
            Engine::new(0, (vec![None], None), None, vec![host], (std::time::Duration::ZERO, 1), 0);
        match engine {
            Ok(e) => Self::world(e),
            // Creating an epoll instance can only fail when the process is out of file
            // descriptors; a singleton without one still works for self-sends.
            Err(_) => unreachable_singleton(),
        }
    }

    fn world(engine: Engine) -> Communicator {
        let size = engine.size;
        let rank = engine.rank;
        let shared = Arc::new(Shared { engine, finalized: AtomicBool::new(false) });
        let group: Arc<[usize]> = (0..size).collect::<Vec<_>>().into();
        let index = RankIndex::Identity;
        Communicator {
            inner: Arc::new(CommInner {
                shared,
                ctx: 0,
                group,
                index,
                rank,
                coll_seq: AtomicU64::new(0),
                coll_state: CollState::new(),
            }),
        }
    }

    /// This process's rank in the communicator.
    pub fn rank(&self) -> usize {
        self.inner.rank
    }

    /// Number of ranks in the communicator.
    pub fn size(&self) -> usize {
        self.inner.group.len()
    }

    /// The name of the host this rank runs on, as the host itself gives it (`gethostname`, like
    /// `MPI_Get_processor_name`): the same on every rank of one machine, whatever the launcher
    /// called it. The launcher's name for a host (a hostfile's spelling, perhaps an IP address)
    /// is [`host_of`](Self::host_of), which error messages use.
    ///
    /// ```
    /// let names = rmpi::local::run(2, |w| Ok((w.processor_name(), w.host_of(w.rank())?)))?;
    /// // Threads of one process: one host name; the test harness labels its ranks local0, local1.
    /// assert_eq!(names[0].0, names[1].0);
    /// assert_eq!(names[1].1, "local1");
    /// # Ok::<(), rmpi::Error>(())
    /// ```
    pub fn processor_name(&self) -> String {
        crate::mesh::hostname()
    }

    /// The world rank of communicator rank `r`.
    pub fn world_rank(&self, r: usize) -> Result<usize> {
        self.inner.group.get(r).copied().ok_or(Error::InvalidRank { rank: r, size: self.size() })
    }

    /// The host of communicator rank `r` as the launcher named it (the hostfile's spelling,
    /// `RMPI_HOST`; else the host's own name): the name error messages give, so it matches what
    /// the user wrote. The host's own name is [`processor_name`](Self::processor_name).
    pub fn host_of(&self, r: usize) -> Result<String> {
        Ok(self.inner.engine().host(self.world_rank(r)?).to_owned())
    }

    /// Whether messages to and from communicator rank `r` go through this host's shared memory
    /// (rather than TCP). Ranks share memory when they run on one kernel in one network
    /// namespace and `RMPI_SHM` is not `0`; a rank does not count itself.
    ///
    /// ```
    /// let shared = rmpi::local::run(2, |w| w.shares_memory_with(1 - w.rank()))?;
    /// // Threads of one process are on one host: shared memory, unless RMPI_SHM=0.
    /// assert_eq!(shared, vec![shared[0]; 2]);
    /// # Ok::<(), rmpi::Error>(())
    /// ```
    pub fn shares_memory_with(&self, r: usize) -> Result<bool> {
        let w = self.world_rank(r)?;
        Ok(self.inner.engine().shm_members.contains(&w) && w != self.inner.engine().rank)
    }

    fn ctx(&self, plane: Plane) -> u32 {
        self.inner.ctx + plane as u32
    }

    fn watch(&self, plane: Plane, src_world: Option<usize>) -> Watch {
        match (plane, src_world) {
            (Plane::User, Some(s)) => Watch::One(s),
            _ => Watch::Group(self.inner.group.clone()),
        }
    }

    fn src_world(&self, src: Option<usize>) -> Result<Option<usize>> {
        src.map(|s| self.world_rank(s)).transpose()
    }

    fn engine(&self) -> &Engine {
        self.inner.engine()
    }

    // ---------------------------------------------------------------- byte-level primitives

    fn post_send(&self, plane: Plane, payload: Payload, dest: usize, tag: Tag) -> Result<ReqId> {
        let (dw, ctx, watch) = self.send_target(plane, dest)?;
        self.engine().locked(|st| st.send_request(dw, ctx, tag, payload, watch))
    }

    /// Where a send to `dest` on `plane` goes: its world rank, context and the members whose
    /// loss fails it.
    fn send_target(&self, plane: Plane, dest: usize) -> Result<(usize, u32, Option<Watch>)> {
        self.inner.live()?;
        let dw = self.world_rank(dest)?;
        let watch = (plane != Plane::User).then(|| Watch::Group(self.inner.group.clone()));
        Ok((dw, self.ctx(plane), watch))
    }

    fn post_recv(
        &self,
        plane: Plane,
        sink: Sink,
        src: Option<usize>,
        tag: Option<Tag>,
    ) -> Result<ReqId> {
        self.inner.live()?;
        let sw = self.src_world(src)?;
        let ctx = self.ctx(plane);
        let watch = self.watch(plane, sw);
        Ok(self.engine().locked(|st| {
            let id = st.new_req();
            st.post_recv(Posted { req: id, ctx, src: sw, tag, sink, watch });
            id
        }))
    }

    fn send_bytes_raw(&self, plane: Plane, data: &[u8], dest: usize, tag: Tag) -> Result<()> {
        let payload = Payload::Borrowed(RawBuf::from_slice(data));
        let (dw, ctx, watch) = self.send_target(plane, dest)?;
        // A send written when it was posted is complete, with no request and nothing to wait
        // for.
        let Some(id) =
            self.engine().locked(|st| st.send_blocking((dw, ctx, tag), payload, watch))?
        else {
            return Ok(());
        };
        let hold = Hold { engine: self.engine(), id };
        self.engine().wait_req(id, || format!("send to rank {dest} (tag {tag})"))?;
        std::mem::forget(hold);
        Ok(())
    }

    /// Posts a receive into `sink`, waits for it, and names a failed member for collective
    /// traffic. Caller memory in `sink` is let go of on every path out.
    fn receive(
        &self,
        plane: Plane,
        sink: Sink,
        src: Option<usize>,
        tag: Option<Tag>,
    ) -> Result<Completion> {
        let id = self.post_recv(plane, sink, src, tag)?;
        let hold = Hold { engine: self.engine(), id };
        let done = self.engine().wait_req(id, || describe_recv(src, tag));
        if done.is_ok() {
            // Completed: the engine holds nothing of ours any more.
            std::mem::forget(hold);
        }
        done.map_err(|e| self.refine_on(plane, e))
    }

    pub(crate) fn send_bytes(
        &self,
        plane: Plane,
        data: &[u8],
        dest: usize,
        tag: Tag,
    ) -> Result<()> {
        self.send_bytes_raw(plane, data, dest, tag).map_err(|e| self.refine_on(plane, e))
    }

    pub(crate) fn recv_bytes_into(
        &self,
        plane: Plane,
        buf: &mut [u8],
        src: Option<usize>,
        tag: Option<Tag>,
    ) -> Result<Status> {
        let c = self.receive(plane, Sink::User(RawBuf::from_mut(buf)), src, tag)?;
        Ok(self.inner.status(c.info))
    }

    pub(crate) fn recv_bytes(
        &self,
        plane: Plane,
        src: Option<usize>,
        tag: Option<Tag>,
    ) -> Result<(AlignedBuf, Status)> {
        let c = self.receive(plane, Sink::Alloc, src, tag)?;
        let status = self.inner.status(c.info);
        Ok((c.data.unwrap_or_default(), status))
    }

    /// Collective and internal traffic name the member that failed first (see
    /// [`CommInner::refine`]).
    fn refine_on(&self, plane: Plane, e: Error) -> Error {
        if plane == Plane::User {
            e
        } else {
            self.inner.refine(e)
        }
    }

    // ---------------------------------------------------------------- numeric slices

    /// Sends a slice of plain numbers (any [`Pod`] type) to `dest`, without copying or encoding
    /// it. Returns when the data has been handed to the network (the buffer may be reused).
    pub fn send<T: Pod>(&self, buf: &[T], dest: usize, tag: Tag) -> Result<()> {
        self.send_bytes(Plane::User, bytemuck::cast_slice(buf), dest, tag)
    }

    /// Receives a message of `T`s into a new vector, with its [`Status`]. `src` is a rank or
    /// [`Any`](crate::Any), `tag` a [`Tag`] or [`Any`](crate::Any).
    ///
    /// A message whose length is not a whole number of `T`s is an [`Error::ElementSize`]; as in
    /// MPI, such a failed receive has still consumed the message.
    pub fn recv<T: Pod>(
        &self,
        src: impl Into<Source>,
        tag: impl Into<TagMatch>,
    ) -> Result<(Vec<T>, Status)> {
        let (src, tag) = (src.into().rank(), tag.into().tag());
        let (buf, status) = self.recv_bytes(Plane::User, src, tag)?;
        Ok((into_vec(buf, &status)?, status))
    }

    /// Receives the next message of `T`s from any source with any tag.
    #[deprecated(note = "use `recv(Any, Any)`")]
    pub fn recv_any<T: Pod>(&self) -> Result<(Vec<T>, Status)> {
        self.recv(Any, Any)
    }

    /// Receives a message of `T`s; `None` matches any source or any tag.
    #[deprecated(note = "use `recv`, which takes a rank or `Any` (and an `Option`)")]
    pub fn recv_from<T: Pod>(
        &self,
        src: Option<usize>,
        tag: Option<Tag>,
    ) -> Result<(Vec<T>, Status)> {
        self.recv(src, tag)
    }

    /// Receives a message into `buf` and returns its [`Status`] (the message may be shorter than
    /// the buffer: `status.len` says how much arrived). `src` is a rank or [`Any`](crate::Any),
    /// `tag` a [`Tag`] or [`Any`](crate::Any).
    ///
    /// A message longer than `buf` is an [`Error::Truncated`]; as in MPI, such a failed receive
    /// has still consumed the message (its bytes are gone). Bytes go straight from the socket
    /// into `buf` when the receive is posted before the message arrives, or before its payload
    /// has been buffered (a large unexpected message waits in the socket for one progress pass).
    pub fn recv_into<T: Pod>(
        &self,
        buf: &mut [T],
        src: impl Into<Source>,
        tag: impl Into<TagMatch>,
    ) -> Result<Status> {
        let (src, tag) = (src.into().rank(), tag.into().tag());
        self.recv_bytes_into(Plane::User, bytemuck::cast_slice_mut(buf), src, tag)
    }

    /// [`recv_into`](Self::recv_into) with `None` for any source or any tag.
    #[deprecated(note = "use `recv_into`, which takes a rank or `Any` (and an `Option`)")]
    pub fn recv_into_from<T: Pod>(
        &self,
        buf: &mut [T],
        src: Option<usize>,
        tag: Option<Tag>,
    ) -> Result<Status> {
        self.recv_into(buf, src, tag)
    }

    /// Sends `send` to `dest` and receives from `src` at the same time (no deadlock when two
    /// ranks exchange with each other).
    pub fn sendrecv<S: Pod, R: Pod>(
        &self,
        send: &[S],
        dest: usize,
        send_tag: Tag,
        src: impl Into<Source>,
        recv_tag: impl Into<TagMatch>,
    ) -> Result<(Vec<R>, Status)> {
        let r = self.irecv::<R>(src, recv_tag)?;
        self.send(send, dest, send_tag)?;
        r.wait()
    }

    /// Like [`sendrecv`](Self::sendrecv), receiving into `recv`.
    pub fn sendrecv_into<S: Pod, R: Pod>(
        &self,
        send: &[S],
        dest: usize,
        send_tag: Tag,
        recv: &mut [R],
        src: impl Into<Source>,
        recv_tag: impl Into<TagMatch>,
    ) -> Result<Status> {
        self.scope(|s| {
            let r = s.irecv_into(recv, src, recv_tag)?;
            self.send(send, dest, send_tag)?;
            r.wait()
        })
    }

    /// Starts a send and returns at once. The data that could not be written immediately is
    /// copied, so `buf` is free when this returns; use [`scope`](Self::scope) to send large
    /// buffers without that copy.
    pub fn isend<T: Pod>(&self, buf: &[T], dest: usize, tag: Tag) -> Result<Request<'static, ()>> {
        let bytes: &[u8] = bytemuck::cast_slice(buf);
        let id =
            self.post_send(Plane::User, Payload::Borrowed(RawBuf::from_slice(bytes)), dest, tag)?;
        // Whatever is still queued now stops borrowing `buf`.
        self.engine().locked(|st| st.detach_send(id));
        Ok(Request::new(self.inner.clone(), id, finish_unit))
    }

    /// Starts a receive into a new vector and returns at once; [`Request::wait`] gives the
    /// vector and its [`Status`].
    ///
    /// This is the receive to use outside a [`scope`](Self::scope): the request owns the memory
    /// the message lands in. A receive into a buffer of the caller's (`irecv_into`) exists only
    /// inside a scope, because a request can be leaked (`std::mem::forget`) while still posted:
    /// the engine would then write into memory the caller has freed. The scope lets go of every
    /// request it made when it ends, so the borrow it holds is safe.
    pub fn irecv<T: Pod>(
        &self,
        src: impl Into<Source>,
        tag: impl Into<TagMatch>,
    ) -> Result<Request<'static, (Vec<T>, Status)>> {
        let (src, tag) = (src.into().rank(), tag.into().tag());
        let id = self.post_recv(Plane::User, Sink::Alloc, src, tag)?;
        Ok(Request::new(self.inner.clone(), id, finish_vec::<T>))
    }

    /// [`irecv`](Self::irecv) with `None` for any source or any tag.
    #[deprecated(note = "use `irecv`, which takes a rank or `Any` (and an `Option`)")]
    pub fn irecv_from<T: Pod>(
        &self,
        src: Option<usize>,
        tag: Option<Tag>,
    ) -> Result<Request<'static, (Vec<T>, Status)>> {
        self.irecv(src, tag)
    }

    /// Runs `f` with a [`Scope`] whose nonblocking operations borrow buffers without copying
    /// ([`Scope::isend`], [`Scope::irecv_into`]). Every request still in flight when `f` returns
    /// is let go of.
    ///
    /// ```
    /// rmpi::local::run(2, |world| {
    ///     let peer = 1 - world.rank();
    ///     let out = vec![world.rank() as f64; 1 << 16];
    ///     let mut inb = vec![0.0f64; 1 << 16];
    ///     world.scope(|s| {
    ///         let r = s.irecv_into(&mut inb, peer, 0)?;
    ///         let w = s.isend(&out, peer, 0)?;
    ///         w.wait()?;
    ///         r.wait()
    ///     })?;
    ///     assert!(inb.iter().all(|x| *x == peer as f64));
    ///     Ok(())
    /// })?;
    /// # Ok::<(), rmpi::Error>(())
    /// ```
    pub fn scope<'env, R>(&'env self, f: impl for<'s> FnOnce(&'s Scope<'s, 'env>) -> R) -> R {
        self.scope_on(Plane::User, f)
    }

    pub(crate) fn scope_on<'env, R>(
        &'env self,
        plane: Plane,
        f: impl for<'s> FnOnce(&'s Scope<'s, 'env>) -> R,
    ) -> R {
        let ids = Rc::new(RefCell::new(Vec::new()));
        let _guard = ScopeGuard { comm: self.inner.clone(), ids: ids.clone() };
        let s = Scope {
            comm: self.inner.clone(),
            ctx: self.ctx(plane),
            ids,
            _scope: PhantomData,
            _env: PhantomData,
        };
        f(&s)
    }

    /// Waits until a message matching `src` and `tag` (a rank / tag, or [`Any`](crate::Any)) has
    /// arrived and returns its envelope without receiving it.
    pub fn probe(&self, src: impl Into<Source>, tag: impl Into<TagMatch>) -> Result<Status> {
        let (src, tag) = (src.into().rank(), tag.into().tag());
        self.inner.live()?;
        let sw = self.src_world(src)?;
        let ctx = self.ctx(Plane::User);
        let watch = self.watch(Plane::User, sw);
        let info = self.engine().wait(
            None,
            || describe_recv(src, tag),
            |st| {
                if let Some(i) = st.probe(ctx, sw, tag) {
                    return Some(Ok(i));
                }
                st.watch_error(&watch).map(Err)
            },
        )?;
        Ok(self.inner.status(Some(info)))
    }

    /// Like [`probe`](Self::probe) but returns at once: `None` when nothing matching has arrived.
    pub fn iprobe(
        &self,
        src: impl Into<Source>,
        tag: impl Into<TagMatch>,
    ) -> Result<Option<Status>> {
        self.iprobe_on(Plane::User, src.into().rank(), tag.into().tag())
    }

    fn iprobe_on(
        &self,
        plane: Plane,
        src: Option<usize>,
        tag: Option<Tag>,
    ) -> Result<Option<Status>> {
        self.inner.live()?;
        let sw = self.src_world(src)?;
        let ctx = self.ctx(plane);
        let info = self.engine().with_fresh_state(|st| st.probe(ctx, sw, tag));
        Ok(info.map(|i| self.inner.status(Some(i))))
    }

    // ---------------------------------------------------------------- serde values

    /// Sends any `serde` value (encoded with bincode, behind an 8-byte fingerprint of its type:
    /// see [`recv_obj`](Self::recv_obj)).
    pub fn send_obj<T: Serialize + ?Sized>(&self, value: &T, dest: usize, tag: Tag) -> Result<()> {
        self.send_obj_on(Plane::User, value, dest, tag)
    }

    /// Starts sending a `serde` value and returns at once (the value is encoded before this
    /// returns, so it is free at once).
    pub fn isend_obj<T: Serialize + ?Sized>(
        &self,
        value: &T,
        dest: usize,
        tag: Tag,
    ) -> Result<Request<'static, ()>> {
        let bytes = crate::typed::encode(value)?;
        let id = self.post_send(Plane::User, Payload::Owned(bytes.into()), dest, tag)?;
        Ok(Request::new(self.inner.clone(), id, finish_unit))
    }

    /// Receives a `serde` value and its [`Status`]. `src` is a rank or [`Any`](crate::Any),
    /// `tag` a [`Tag`] or [`Any`](crate::Any).
    ///
    /// Every object message carries an 8-byte fingerprint of the sent type's name, so receiving
    /// it as another type is an [`Error::Decode`] naming both (when this process knows the
    /// sender's type; otherwise its fingerprint) instead of a wrong value. The check compares
    /// names as `std::any::type_name` gives them, with references dropped, `str` read as `String`
    /// and `[T]` as `Vec<T>`: a `String` received as a `Vec<u64>` is caught; two different
    /// structs with the same fields, or a `[u64; 3]` sent and a `(u64, u64, u64)` received, are
    /// refused although bincode would read them. The names come from the compiler and are not
    /// guaranteed to be the same across compiler versions: ranks of one job run the same binary,
    /// or binaries built by the same compiler. A failed receive has consumed the message.
    ///
    /// ```
    /// let got = rmpi::local::run(2, |world| {
    ///     if world.rank() == 0 {
    ///         world.send_obj("hello", 1, 0)?;
    ///         world.send_obj("again", 1, 1)?;
    ///         Ok(String::new())
    ///     } else {
    ///         let e = world.recv_obj::<Vec<u64>>(0, 0).unwrap_err();
    ///         assert!(matches!(e, rmpi::Error::Decode { source_rank: 0, .. }), "{e}");
    ///         let (s, status) = world.recv_obj::<String>(0, rmpi::Any)?;
    ///         assert_eq!(status.tag, 1);
    ///         Ok(s)
    ///     }
    /// })?;
    /// assert_eq!(got[1], "again");
    /// # Ok::<(), rmpi::Error>(())
    /// ```
    pub fn recv_obj<T: DeserializeOwned>(
        &self,
        src: impl Into<Source>,
        tag: impl Into<TagMatch>,
    ) -> Result<(T, Status)> {
        self.recv_obj_on(Plane::User, src.into().rank(), tag.into().tag())
    }

    /// Starts receiving a `serde` value; [`Request::wait`] gives it and its [`Status`] (checked
    /// as by [`recv_obj`](Self::recv_obj)).
    pub fn irecv_obj<T: DeserializeOwned>(
        &self,
        src: impl Into<Source>,
        tag: impl Into<TagMatch>,
    ) -> Result<Request<'static, (T, Status)>> {
        let (src, tag) = (src.into().rank(), tag.into().tag());
        let id = self.post_recv(Plane::User, Sink::Alloc, src, tag)?;
        Ok(Request::new(self.inner.clone(), id, finish_obj::<T>))
    }

    /// Receives a `serde` value from any source with any tag.
    #[deprecated(note = "use `recv_obj(Any, Any)`")]
    pub fn recv_obj_any<T: DeserializeOwned>(&self) -> Result<(T, Status)> {
        self.recv_obj(Any, Any)
    }

    /// Receives a `serde` value; `None` matches any source or any tag.
    #[deprecated(note = "use `recv_obj`, which takes a rank or `Any` (and an `Option`)")]
    pub fn recv_obj_from<T: DeserializeOwned>(
        &self,
        src: Option<usize>,
        tag: Option<Tag>,
    ) -> Result<(T, Status)> {
        self.recv_obj(src, tag)
    }

    pub(crate) fn send_obj_on<T: Serialize + ?Sized>(
        &self,
        plane: Plane,
        value: &T,
        dest: usize,
        tag: Tag,
    ) -> Result<()> {
        let bytes = crate::typed::encode(value)?;
        self.send_bytes(plane, &bytes, dest, tag)
    }

    pub(crate) fn recv_obj_on<T: DeserializeOwned>(
        &self,
        plane: Plane,
        src: Option<usize>,
        tag: Option<Tag>,
    ) -> Result<(T, Status)> {
        let (buf, status) = self.recv_bytes(plane, src, tag)?;
        Ok((crate::typed::decode(buf.as_bytes(), status.source)?, status))
    }

    // ---------------------------------------------------------------- communicators

    /// A new communicator with the same members and a private context: its traffic never mixes
    /// with this one's. Collective: every member must call it.
    pub fn dup(&self) -> Result<Communicator> {
        let me = self.rank();
        Ok(self.split(Some(0), me as i64)?.unwrap_or_else(|| self.clone()))
    }

    /// Splits the communicator: members passing the same `color` form a new communicator, ordered
    /// by `key` (ties by old rank). `None` as the color (MPI_UNDEFINED) joins none and returns
    /// `None`. Collective: every member must call it.
    ///
    /// ```
    /// let evens = rmpi::local::run(4, |world| {
    ///     let c = world.split(Some((world.rank() % 2) as u32), 0)?.unwrap();
    ///     Ok((c.rank(), c.size()))
    /// })?;
    /// assert_eq!(evens, vec![(0, 2), (0, 2), (1, 2), (1, 2)]);
    /// # Ok::<(), rmpi::Error>(())
    /// ```
    pub fn split(&self, color: Option<u32>, key: i64) -> Result<Option<Communicator>> {
        const TAG: Tag = 1;
        self.inner.live()?;
        let engine = self.engine();
        let proposal = (color, key, engine.next_ctx.load(Ordering::SeqCst));
        // Gather (color, key, next free context) at rank 0, which forms the groups.
        let answer: Option<(u32, Vec<usize>)> = if self.rank() == 0 {
            let mut all = vec![proposal];
            for r in 1..self.size() {
                let (p, _): ((Option<u32>, i64, u32), _) =
                    self.recv_obj_on(Plane::Internal, Some(r), Some(TAG))?;
                all.push(p);
            }
            let base = all.iter().map(|p| p.2).max().unwrap_or(4);
            let mut groups: HashMap<u32, Vec<(i64, usize)>> = HashMap::new();
            for (r, (c, k, _)) in all.iter().enumerate() {
                if let Some(c) = c {
                    groups.entry(*c).or_default().push((*k, r));
                }
            }
            let mut mine = None;
            let mut replies: Vec<Option<(u32, Vec<usize>)>> = vec![None; self.size()];
            for (_, mut members) in groups {
                members.sort();
                let ranks: Vec<usize> = members.iter().map(|m| m.1).collect();
                for r in &ranks {
                    replies[*r] = Some((base, ranks.clone()));
                }
            }
            for (r, reply) in replies.into_iter().enumerate() {
                if r == 0 {
                    mine = reply.clone();
                }
                // Every rank learns the new base, even those that join nothing.
                let msg = (base, reply.map(|x| x.1));
                if r != 0 {
                    self.send_obj_on(Plane::Internal, &msg, r, TAG)?;
                }
            }
            engine.next_ctx.fetch_max(base + 4, Ordering::SeqCst);
            mine
        } else {
            self.send_obj_on(Plane::Internal, &proposal, 0, TAG)?;
            let ((base, members), _): ((u32, Option<Vec<usize>>), _) =
                self.recv_obj_on(Plane::Internal, Some(0), Some(TAG))?;
            engine.next_ctx.fetch_max(base + 4, Ordering::SeqCst);
            members.map(|m| (base, m))
        };
        let Some((base, members)) = answer else { return Ok(None) };
        let group: Vec<usize> = members.iter().map(|r| self.inner.group[*r]).collect();
        let index = RankIndex::of(&group);
        let me_world = self.inner.group[self.rank()];
        let rank = index.get(me_world).ok_or(Error::Mismatch {
            rank: self.rank(),
            msg: "split: this rank is missing from its own group".into(),
        })?;
        Ok(Some(Communicator {
            inner: Arc::new(CommInner {
                shared: self.inner.shared.clone(),
                ctx: base,
                group: group.into(),
                index,
                rank,
                coll_seq: AtomicU64::new(0),
                coll_state: CollState::new(),
            }),
        }))
    }

    /// Ends this process's part in the job: delivers every message already sent, says goodbye to
    /// every peer and waits for theirs. Every communicator of this process is unusable afterwards.
    /// Dropping the last handle of every communicator does the same (without reporting errors).
    pub fn finalize(self) -> Result<()> {
        self.inner.shared.finalize()
    }

    /// Ends the whole job at once: this process exits with `code`, and the launcher ends the
    /// other ranks. Before it exits, every peer it is connected to is told (a failure notice
    /// behind what was already queued for it, waited for at most a second), so their pending
    /// and later operations fail with "rank R on HOST aborted (code C)"; under rmpirun the
    /// job's exit status is `code`.
    pub fn abort(&self, code: i32) -> ! {
        tracing::error!(rank = self.rank(), "abort({code})");
        // The launcher ends the job once it hears of this (or of a peer failing on the notice)
        // with SIGTERM: ignored from here on, so that this process still ends with `code`. It
        // ends within ABORT_NOTICE_WAIT, well before the launcher's SIGKILL would come.
        // SAFETY: installs the predefined "ignore" disposition; no handler code runs.
        unsafe { libc::signal(libc::SIGTERM, libc::SIG_IGN) };
        // The launcher hears first, so that it takes this rank for the cause and the peers
        // that fail on the notice for its effects.
        crate::agent_note::failed(&format!("abort({code})"));
        self.inner.shared.finalized.store(true, Ordering::SeqCst);
        let why = crate::engine::aborted(code);
        self.inner.shared.engine.fail_within(&why, None, ABORT_NOTICE_WAIT);
        std::process::exit(code)
    }

    // ---------------------------------------------------------------- for collectives

    /// Plumbing for `rmpi-collectives`, not part of the user API: a point-to-point channel on
    /// this communicator's collective context. Its traffic never
    /// matches user messages, and any of its waits fails as soon as any member of the communicator
    /// is lost. Meant for collective algorithms (the `rmpi-collectives` crate).
    #[doc(hidden)]
    pub fn collective_channel(&self) -> Channel<'_> {
        Channel { comm: self, plane: Plane::Collective }
    }

    /// Plumbing for `rmpi-collectives`, not part of the user API: a point-to-point channel on
    /// this communicator's internal context, for out-of-band control
    /// messages of collective implementations (for example, asking a stalled peer which call it
    /// is in). Like the collective channel it never matches user traffic; tags below 16 are
    /// reserved for the transport's own use (communicator creation).
    #[doc(hidden)]
    pub fn control_channel(&self) -> Channel<'_> {
        Channel { comm: self, plane: Plane::Internal }
    }

    /// Plumbing for `rmpi-collectives`, not part of the user API: the next sequence number of a
    /// collective call on this communicator (0, 1, 2, ...). Every
    /// member calls collectives in the same order, so the numbers agree across ranks.
    #[doc(hidden)]
    pub fn next_collective_seq(&self) -> u64 {
        self.inner.coll_seq.fetch_add(1, Ordering::Relaxed)
    }

    /// Plumbing for `rmpi-collectives`, not part of the user API: state a collective implementation keeps for this communicator's life (the
    /// `rmpi-collectives` crate keeps its host layout here): built by `init` on the first call,
    /// the same value afterwards. `init` must not communicate: it runs on whichever call comes
    /// first on each rank. `None` when the slot already holds a value of another type.
    #[doc(hidden)]
    pub fn collective_state<T: std::any::Any + Send + Sync>(
        &self,
        init: impl FnOnce() -> T,
    ) -> Option<Arc<T>> {
        let any = self.inner.coll_state.get_or_init(|| Arc::new(init()));
        any.clone().downcast::<T>().ok()
    }

    /// Plumbing for `rmpi-collectives`, not part of the user API: the start of a collective
    /// call. Fails with [`Error::Finalized`] after [`finalize`](Self::finalize) (even on a world
    /// of one, where the collective would not send anything), else gives the call's sequence
    /// number (see [`next_collective_seq`](Self::next_collective_seq)).
    #[doc(hidden)]
    pub fn begin_collective(&self) -> Result<u64> {
        self.inner.live()?;
        Ok(self.next_collective_seq())
    }
}

#[cold]
fn unreachable_singleton() -> Communicator {
    // Without an epoll instance there is nothing sensible to return; exit with a clear message
    // rather than panic.
    eprintln!("rmpi: cannot create an epoll instance (out of file descriptors?)");
    std::process::exit(70)
}

/// Point-to-point operations on one plane of a communicator, for collective algorithms
/// (`rmpi-collectives`); not part of the user API.
#[doc(hidden)]
#[derive(Clone, Copy)]
pub struct Channel<'c> {
    comm: &'c Communicator,
    plane: Plane,
}

impl std::fmt::Debug for Channel<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel").field("plane", &self.plane).finish()
    }
}

impl<'c> Channel<'c> {
    /// The communicator this channel belongs to.
    pub fn comm(&self) -> &'c Communicator {
        self.comm
    }

    /// Blocking send of a slice.
    pub fn send<T: Pod>(&self, buf: &[T], dest: usize, tag: Tag) -> Result<()> {
        self.comm.send_bytes(self.plane, bytemuck::cast_slice(buf), dest, tag)
    }

    /// Blocking receive into `buf` from `src`; `tag: None` accepts any tag (the status says which).
    pub fn recv_into<T: Pod>(&self, buf: &mut [T], src: usize, tag: Option<Tag>) -> Result<Status> {
        self.comm.recv_bytes_into(self.plane, bytemuck::cast_slice_mut(buf), Some(src), tag)
    }

    /// Blocking receive of a new vector from `src`.
    pub fn recv<T: Pod>(&self, src: usize, tag: Option<Tag>) -> Result<(Vec<T>, Status)> {
        let (buf, status) = self.comm.recv_bytes(self.plane, Some(src), tag)?;
        Ok((into_vec(buf, &status)?, status))
    }

    /// Blocking send of a serde value.
    pub fn send_obj<T: Serialize + ?Sized>(&self, value: &T, dest: usize, tag: Tag) -> Result<()> {
        self.comm.send_obj_on(self.plane, value, dest, tag)
    }

    /// Blocking receive of a serde value from `src`.
    pub fn recv_obj<T: DeserializeOwned>(
        &self,
        src: usize,
        tag: Option<Tag>,
    ) -> Result<(T, Status)> {
        self.comm.recv_obj_on(self.plane, Some(src), tag)
    }

    /// The envelope of the first arrived message on this channel matching `src` and `tag`
    /// (`None`: any), without receiving it; `None` when there is none.
    pub fn iprobe(&self, src: Option<usize>, tag: Option<Tag>) -> Result<Option<Status>> {
        self.comm.iprobe_on(self.plane, src, tag)
    }

    /// Runs `f` with a scope whose nonblocking operations are on this channel.
    pub fn scope<R>(&self, f: impl for<'s> FnOnce(&'s Scope<'s, 'c>) -> R) -> R {
        self.comm.scope_on(self.plane, f)
    }
}

impl<'scope> Scope<'scope, '_> {
    /// Starts a send that borrows `buf` until it completes (or the scope ends).
    pub fn isend<T: Pod>(
        &'scope self,
        buf: &'scope [T],
        dest: usize,
        tag: Tag,
    ) -> Result<Request<'scope, ()>> {
        self.comm.live()?;
        let dw = self.world(dest)?;
        let bytes: &[u8] = bytemuck::cast_slice(buf);
        let ctx = self.ctx;
        let watch = (ctx % 4 != Plane::User as u32).then(|| Watch::Group(self.group()));
        let payload = Payload::Borrowed(RawBuf::from_slice(bytes));
        let id = self.comm.engine().locked(|st| st.send_request(dw, ctx, tag, payload, watch))?;
        self.track(id);
        let group = ctx % 4 != Plane::User as u32;
        Ok(Request::new(self.comm.clone(), id, finish_unit).on_group(group))
    }

    /// Starts a receive straight into `buf`; `src` is a rank or [`Any`](crate::Any), `tag` a
    /// [`Tag`] or [`Any`](crate::Any). [`Request::wait`] gives the [`Status`]. As with
    /// [`Communicator::recv_into`], a message longer than `buf` is an [`Error::Truncated`] that
    /// has consumed the message.
    pub fn irecv_into<T: Pod>(
        &'scope self,
        buf: &'scope mut [T],
        src: impl Into<Source>,
        tag: impl Into<TagMatch>,
    ) -> Result<Request<'scope, Status>> {
        self.comm.live()?;
        let src = src.into().rank();
        let sw = src.map(|s| self.world(s)).transpose()?;
        let watch = if self.ctx % 4 == Plane::User as u32 {
            match sw {
                Some(s) => Watch::One(s),
                None => Watch::Group(self.group()),
            }
        } else {
            Watch::Group(self.group())
        };
        let sink = Sink::User(RawBuf::from_mut(bytemuck::cast_slice_mut(buf)));
        let (ctx, tag) = (self.ctx, tag.into().tag());
        let id = self.comm.engine().locked(|st| {
            let id = st.new_req();
            st.post_recv(Posted { req: id, ctx, src: sw, tag, sink, watch });
            id
        });
        self.track(id);
        let group = ctx % 4 != Plane::User as u32;
        Ok(Request::new(self.comm.clone(), id, finish_status).on_group(group))
    }

    fn world(&self, r: usize) -> Result<usize> {
        self.comm
            .group
            .get(r)
            .copied()
            .ok_or(Error::InvalidRank { rank: r, size: self.comm.group.len() })
    }

    fn group(&self) -> Arc<[usize]> {
        self.comm.group.clone()
    }
}

fn describe_recv(src: Option<usize>, tag: Option<Tag>) -> String {
    let s = src.map_or("any source".to_string(), |s| format!("rank {s}"));
    let t = tag.map_or("any tag".to_string(), |t| format!("tag {t}"));
    format!("receive from {s} with {t}")
}

fn into_vec<T: Pod>(buf: AlignedBuf, status: &Status) -> Result<Vec<T>> {
    let sz = std::mem::size_of::<T>();
    if sz == 0 || buf.len() % sz != 0 {
        return Err(Error::ElementSize {
            source_rank: status.source,
            len: buf.len(),
            elem_size: sz,
        });
    }
    Ok(buf.into_vec())
}

fn finish_vec<T: Pod>(c: &CommInner, done: Completion) -> Result<(Vec<T>, Status)> {
    let status = c.status(done.info);
    Ok((into_vec(done.data.unwrap_or_default(), &status)?, status))
}

fn finish_obj<T: DeserializeOwned>(c: &CommInner, done: Completion) -> Result<(T, Status)> {
    let status = c.status(done.info);
    let data = done.data.unwrap_or_default();
    Ok((crate::typed::decode(data.as_bytes(), status.source)?, status))
}
