//! The engine's state behind its lock, and the operations communicators call on it: posting
//! sends and receives, probing, cancelling, and the progress pass that moves bytes.

use std::sync::Arc;

use super::connect::Connector;
use super::failure::FINISHED;
use super::flow::FlowConfig;
use super::framing::{Conn, Dest, Link, Payload, Rx};
use super::idhash::IdMap;
use super::matching::{Completion, Matching, MsgInfo, Posted, ReqId, Sink, Take, Watch};
use super::shm::Group;
use crate::buf::AlignedBuf;
use crate::error::{Error, Result};

/// Everything behind the state lock.
#[derive(Debug)]
pub(crate) struct State {
    pub(super) me: usize,
    pub(super) conns: Vec<Option<Conn>>,
    /// This rank's share of the host's shared memory (its streams are among `conns`).
    pub(super) shm: Option<Group>,
    pub(super) m: Matching,
    pub(super) max_message: u64,
    pub(super) hosts: Arc<[String]>,
    /// Set once finalize has closed the connections.
    pub(super) finalized: bool,
    /// Peers in the order they were lost (first lost first).
    pub(super) lost: Vec<usize>,
    /// Peers that failed because they lost another rank, by the rank they named (see
    /// `failure.rs`).
    pub(super) passed_on: IdMap<usize, usize>,
    /// Peers whose goodbye arrived during the current progress pass.
    pub(super) goodbyes: Vec<usize>,
    /// A peer was lost and dependent operations have not been failed yet (see `settle`).
    pub(super) unsettled: bool,
    /// Collective sends to a lost peer, failed in `settle` with their group's first loss.
    pub(super) deferred: Vec<(ReqId, Watch)>,
    /// Progress passes made so far (see `Dest::Unclaimed`).
    pub(super) pass: u64,
    /// Opens TCP connections on first traffic (`None`: the mesh was built whole at start).
    pub(super) connect: Option<Connector>,
    /// Eager limit and credit (see `flow.rs`).
    pub(super) flow: FlowConfig,
}

impl State {
    /// The state of rank `me` over its peer connections (`None` at `me`), each with the credit
    /// its peer granted.
    pub(super) fn new(
        me: usize,
        (conns, grants): (Vec<Option<Conn>>, Vec<Option<u64>>),
        shm: Option<Group>,
        hosts: Arc<[String]>,
        (max_message, flow): (u64, FlowConfig),
    ) -> State {
        let mut conns = conns;
        for (r, c) in conns.iter_mut().enumerate() {
            if let Some(c) = c {
                let local = shm.as_ref().is_some_and(|g| g.members().contains(&r));
                c.flow = flow.conn(local, grants.get(r).copied().flatten());
            }
        }
        State {
            me,
            conns,
            shm,
            m: Matching::default(),
            max_message,
            hosts,
            finalized: false,
            lost: Vec::new(),
            passed_on: IdMap::default(),
            goodbyes: Vec::new(),
            unsettled: false,
            deferred: Vec::new(),
            pass: 0,
            connect: None,
            flow,
        }
    }

    /// Whether a local peer's stream has something for the next progress pass (input, its end,
    /// or room for a queued send): then sleeping would miss it, since no event announces it.
    pub(super) fn shm_pending(&self) -> bool {
        let Some(g) = &self.shm else { return false };
        g.members().iter().filter_map(|r| self.conns.get(*r)?.as_ref()).any(|c| {
            !matches!(c.link, Link::Dead(_))
                && c.stream.ready().is_some_and(|(input, room)| input || (room && !c.tx.is_empty()))
        })
    }

    /// The local peer whose stream alone can complete request `id`: a receive posted for a
    /// message from that one source (its failure, like any other, is seen by the next pass).
    pub(super) fn shm_source(&self, id: ReqId) -> Option<usize> {
        let src = self.m.posted_source(id)?;
        self.shm.as_ref()?.members().contains(&src).then_some(src)
    }

    /// Whether sends to a local peer are queued (then room in its ring is news).
    pub(super) fn shm_sending(&self) -> bool {
        let Some(g) = &self.shm else { return false };
        g.members().iter().filter_map(|r| self.conns.get(*r)?.as_ref()).any(|c| !c.tx.is_empty())
    }

    /// A fresh request id with a pending slot.
    pub(crate) fn new_req(&mut self) -> ReqId {
        self.m.new_req()
    }

    /// Whether a message to peer `dest` is written as soon as it is posted: an eager one (within
    /// the limit and the credit) to a stream that is open, writable and has nothing queued.
    fn goes_at_once(&self, dest: usize, payload: &Payload) -> bool {
        let cost = (payload.bytes().len() + crate::wire::HEADER_LEN) as u64;
        matches!(self.conns.get(dest), Some(Some(c)) if c.link == Link::Open
            && c.writable && c.tx.is_empty() && c.flow.sends_eagerly(cost))
    }

    /// Queues a send under a new request; on failure the request is let go of again. A progress
    /// pass comes first only when the message cannot go out at once: an eager message to a peer
    /// whose stream is open, writable, has nothing queued and credit for it is written now, and
    /// a pass first would only delay it (what else has arrived is taken by the wait that
    /// follows).
    pub(crate) fn send_request(
        &mut self,
        dest: usize,
        ctx: u32,
        tag: u64,
        payload: Payload,
        watch: Option<Watch>,
    ) -> Result<ReqId> {
        if dest != self.me && !self.goes_at_once(dest, &payload) {
            self.progress();
        }
        let id = self.new_req();
        match self.post_send(dest, ctx, tag, payload, Some(id), watch) {
            Ok(()) => Ok(id),
            Err(e) => {
                self.cancel(id);
                Err(e)
            }
        }
    }

    /// A blocking send: writes the message now when it can go out at once, and then needs no
    /// request at all (`Ok(None)`: sent); otherwise, or when only part of it fit, the request
    /// to wait for (`Ok(Some(id))`), as [`send_request`](Self::send_request) gives.
    pub(crate) fn send_blocking(
        &mut self,
        (dest, ctx, tag): (usize, u32, u64),
        payload: Payload,
        watch: Option<Watch>,
    ) -> Result<Option<ReqId>> {
        if dest == self.me || !self.goes_at_once(dest, &payload) {
            return self.send_request(dest, ctx, tag, payload, watch).map(Some);
        }
        self.post_send(dest, ctx, tag, payload, None, watch)?;
        // Written whole, unless writing it failed the connection.
        if let Some(e) = self.peer_error(dest) {
            return Err(e);
        }
        let Some(Some(c)) = self.conns.get_mut(dest) else { return Ok(None) };
        // Only part of it fit: the caller waits for the rest under a request. The queue was
        // empty and posting queued nothing else, so what is left at its front is this message.
        match c.tx.front_mut() {
            Some(op) => {
                let id = self.m.new_req();
                op.req = Some(id);
                Ok(Some(id))
            }
            None => Ok(None),
        }
    }

    /// Takes the result of a finished request, leaving pending ones alone.
    pub(crate) fn take_done(&mut self, id: ReqId) -> Option<Result<Completion>> {
        self.m.take_done(id)
    }

    /// Whether `id` is a request not let go of whose result was not taken yet.
    pub(crate) fn is_open(&self, id: ReqId) -> bool {
        self.m.is_open(id)
    }

    pub(crate) fn is_done(&self, id: ReqId) -> bool {
        self.m.is_done(id)
    }

    /// Whether an announced message waits for a peer that may still clear it (one whose
    /// connection is open: a peer that said goodbye or is lost has had them dropped).
    pub(super) fn holds_announced(&self) -> bool {
        self.conns.iter().flatten().any(|c| c.link == Link::Open && c.flow.holds())
    }

    pub(super) fn all_flushed(&self) -> bool {
        self.conns.iter().flatten().all(|c| c.tx.is_empty() || matches!(c.link, Link::Dead(_)))
    }

    /// Queues a message. Completes `req` (if any) once the last byte is written (for a message
    /// above the eager limit: once the receiver asked for it and its payload is written).
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
        self.open_on_demand(dest);
        if let Some(e) = self.peer_error(dest) {
            return Err(e);
        }
        if let Some(e) = watch.as_ref().and_then(|w| self.watch_error_on(w, Some(dest))) {
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
        let (was_idle, writable) = (c.tx.is_empty(), c.writable);
        self.queue_message(dest, (ctx, tag), payload, req, watch);
        if was_idle && writable {
            self.flush(dest);
            self.settle();
        }
        Ok(())
    }

    fn deliver_local(&mut self, ctx: u32, tag: u64, buf: AlignedBuf) {
        self.m.arrived(ctx, self.me, tag, buf, 0);
    }

    /// Posts a receive, matching it against what has already arrived first.
    pub(crate) fn post_recv(&mut self, p: Posted) {
        // A receive from a peer never talked to opens the connection, so its loss is noticed.
        if let Some(s) = p.src {
            self.open_on_demand(s);
        }
        self.match_recv(p);
        // Frames the matching queued (clear-to-send, credit) go out now.
        self.return_credit();
        for r in 0..self.conns.len() {
            if matches!(&self.conns[r], Some(c) if c.writable && !c.tx.is_empty()) {
                self.flush(r);
            }
        }
        self.settle();
    }

    fn match_recv(&mut self, p: Posted) {
        // 1. A complete message that already arrived, or an announced one.
        let p = match self.m.take_unexpected(p) {
            Take::Done => return,
            Take::Announced(cleared) => return self.clear(cleared),
            Take::Nothing(p) => p,
        };
        // 2. A message whose payload is arriving right now and that nobody has claimed: the rest
        //    of it goes straight into the receive's memory when it fits there.
        let arriving = self.conns.iter().enumerate().position(|(r, c)| {
            let hdr = c.as_ref().and_then(Conn::arriving_unclaimed);
            hdr.is_some_and(|h| p.matches(h.context, r, h.tag))
        });
        if let Some(r) = arriving {
            if let Some(Some(Conn { rx: Rx::Payload { hdr, dest, filled, cost }, .. })) =
                self.conns.get_mut(r)
            {
                let len = hdr.len as usize;
                let old = std::mem::replace(dest, Dest::Unclaimed { since: 0 });
                *dest = match (p.sink, old) {
                    (sink, Dest::Owned { buf, .. }) => Dest::claim(p.req, sink, buf, *filled, len),
                    (Sink::User(ub), _) if len <= ub.len => Dest::User { req: p.req, buf: ub },
                    (sink, _) => {
                        Dest::Owned { req: Some((p.req, sink)), buf: AlignedBuf::zeroed(len) }
                    }
                };
                self.m.free(r, std::mem::take(cost));
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
            self.watch_error_on(&p.watch, p.src)
                .or_else(|| finished_source.map(|s| self.lost(s, FINISHED)))
        };
        if let Some(e) = err {
            self.m.complete(p.req, Err(e));
            return;
        }
        self.m.post(p);
    }

    /// The envelope of the first arrived message matching, without receiving it: a complete one,
    /// or else one whose header is in and whose payload nobody has claimed yet (a receive posted
    /// next takes that one, so probing first costs a large message no extra copy).
    pub(crate) fn probe(&self, ctx: u32, src: Option<usize>, tag: Option<u64>) -> Option<MsgInfo> {
        let wanted = |c: u32, s: usize, t: u64| {
            c == ctx && src.is_none_or(|w| w == s) && tag.is_none_or(|w| w == t)
        };
        if let Some(info) = self.m.probe(ctx, src, tag) {
            return Some(info);
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
        if self.m.is_posted(id) {
            self.m.forget(id);
            return;
        }
        self.unclaim_expected(id);
        for c in self.conns.iter_mut().flatten() {
            if let Rx::Payload { dest, filled, hdr, .. } = &mut c.rx {
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
            if c.tx.front().is_some_and(|op| op.req == Some(id)) {
                c.stream.payload_moving();
            }
            for op in c.tx.iter_mut().chain(c.flow.held_mut()) {
                if op.req == Some(id) {
                    op.own_payload();
                    op.req = None;
                }
            }
        }
        self.m.forget(id);
    }

    /// Makes a queued send stop borrowing caller memory (copies what it still holds).
    pub(crate) fn detach_send(&mut self, id: ReqId) {
        for c in self.conns.iter_mut().flatten() {
            if c.tx.front().is_some_and(|op| op.req == Some(id)) {
                c.stream.payload_moving();
            }
            for op in c.tx.iter_mut().chain(c.flow.held_mut()).filter(|op| op.req == Some(id)) {
                op.own_payload();
            }
        }
    }

    /// Does all the I/O that can be done without blocking.
    pub(super) fn progress(&mut self) {
        self.pass += 1;
        self.connect_pass();
        for r in 0..self.conns.len() {
            let (flush, read) = match &mut self.conns[r] {
                Some(c) if !matches!(c.link, Link::Dead(_)) => {
                    c.refresh();
                    (c.writable && !c.tx.is_empty(), c.readable || c.is_unclaimed())
                }
                _ => continue,
            };
            if flush {
                self.flush(r);
            }
            if read {
                self.read(r);
                // What the peer's frames asked for (a payload it cleared, credit) goes out now.
                if matches!(&self.conns[r], Some(c) if c.writable && !c.tx.is_empty()) {
                    self.flush(r);
                }
            }
        }
        self.settle();
        for r in std::mem::take(&mut self.goodbyes) {
            self.fail_posted_from(r);
        }
        self.return_credit();
    }
}
