//! Flow control: eager messages within a credit, rendezvous for the rest.
//!
//! A message of at most the eager limit goes out at once (a data frame) while the sender has
//! credit for it at the receiver: each peer may have at most `credit` bytes (payload plus
//! header) of eager messages that no receive has taken yet. Receives that take them give the
//! credit back (credit frames, in batches of a quarter). Any other message is announced with a
//! ready-to-send frame (RTS) carrying its context, tag and length, and waits at the sender. When a
//! receive matches the announcement (on arrival, or posted later, any-source and any-tag
//! included; probe reports its length), the receiver answers clear-to-send (CTS) and the payload
//! follows as a bulk frame, straight into the receive's memory. So the bytes a receiver buffers
//! for messages nobody asked for stay below the credit per peer, the senders of more block in
//! their sends (a blocking send of an announced message returns once its payload is written;
//! `isend` returns at once and its request completes then), and the receiver never stops
//! reading a connection: a receive for a message behind a flood always gets it.
//!
//! The credit is the receiver's grant: each rank tells each peer, when their connection is set
//! up (the TCP hello, the shared-memory offer), how many eager bytes it lets that peer have
//! unreceived, and the sender charges against that figure. So ranks whose unexpected or eager
//! limits differ work together, and each receiver's own bound holds. A connection opened on
//! demand learns the grant with the peer's answer; messages queued before it are all queued as
//! data frames, and sorted into eager and announced when the grant is known (nothing is written
//! before then).
//!
//! Rendezvous numbers are implicit: both ends count the RTS frames on a connection, so the n-th
//! is number n; CTS and bulk frames name it in their tag. Announced messages are never sent
//! unasked: at finalize the sender says goodbye (after which the receiver fails receives that can
//! no longer match, as before) and goes on answering CTSs until each of its announcements to a
//! peer is cleared and written, or that peer has said goodbye itself (it will post no receive),
//! or is lost (see `Engine::finalize`). So a program that sends and exits loses nothing a
//! receive asks for, and a receiver never buffers a payload nobody asked for beyond the credit.
//!
//! Clearing ahead: a program that receives large messages one at a time (a loop of blocking
//! receives) posts each receive only once the previous one is complete, so a CTS per receive
//! would leave the connection idle for a round trip per message. Once a receive has matched an
//! announced message of a peer, the receiver also clears the next announced messages of that
//! peer with the same context and tag (a few, see [`AHEAD_DEPTH`], within the credit it granted),
//! before any receive asks for them, with a CTS marked [`AHEAD`]. The sender charges such a
//! payload to its credit like an eager message (and marks the bulk frame so, which the receiver
//! charges and checks like a data frame), or, without the credit, leaves it waiting for a plain
//! CTS, which the receiver sends when a receive matches it. A payload cleared ahead arrives
//! into its announcement's place in the queue: straight into a receive posted by the end of the
//! progress pass that read its header, else buffered there. So the bytes buffered for receives
//! not posted stay within the credit.
//!
//! Only the payload's delivery (a bulk frame on the same stream) is transport-specific in
//! principle; everything else sits here, above [`super::stream::Stream`], for TCP and shared
//! memory alike. Messages to oneself are always buffered.

use std::collections::HashMap;

use super::framing::{buffer, queue_ahead_of_bulk, Dest, Link, Payload, Rx, TxOp};
use super::matching::{Cleared, MsgInfo, Posted, ReqId, Sink, Watch};
use super::state::State;
use crate::buf::AlignedBuf;
use crate::error::{Error, Result};
use crate::wire::{FrameHeader, FrameKind, HEADER_LEN};

/// Default largest eager message over TCP, in bytes (`RMPI_EAGER_LIMIT`).
pub(crate) const DEFAULT_EAGER_LIMIT: usize = 512 * 1024;
/// Default largest eager message over shared memory, in bytes (`RMPI_SHM_EAGER_LIMIT`).
pub(crate) const DEFAULT_SHM_EAGER_LIMIT: usize = 1024 * 1024;
/// Default bound on the eager bytes a rank buffers for receives not yet posted, over all its
/// peers (`RMPI_UNEXPECTED_LIMIT`).
pub(crate) const DEFAULT_UNEXPECTED_LIMIT: u64 = 64 << 20;
/// The eager bytes every peer may have unreceived whatever the job's size (its share of the
/// unexpected limit, when larger, is granted instead).
const MIN_CREDIT: u64 = 64 * 1024 + HEADER_LEN as u64;
/// The largest grant: it travels in 32 bits in the shared-memory offer.
const MAX_GRANT: u64 = u32::MAX as u64;

/// The eager bytes this rank grants each peer in a job of `size` ranks (read from the
/// environment like [`FlowConfig::from_env`]), for the connection set-up to announce.
pub(crate) fn grant_from_env(size: usize) -> Result<u64> {
    Ok(FlowConfig::from_env(size)?.grant)
}

/// The context of a CTS that clears a message ahead of its receive, and of the bulk frame that
/// answers it charged to the sender's credit (0 otherwise).
const AHEAD: u32 = 1;

/// A receiver clears announced messages of a peer ahead of their receives (whose payloads have
/// not begun to arrive) up to this many, or more up to [`AHEAD_BYTES`]: enough for the sender
/// to keep the stream full while the receiver waits for a core. It clears more only once
/// those left come to less than half of [`AHEAD_BYTES`], so that one CTS frame seldom goes
/// alone.
const AHEAD_DEPTH: usize = 2;
/// See [`AHEAD_DEPTH`].
const AHEAD_BYTES: u64 = 16 << 20;

/// The flow-control settings of one engine.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FlowConfig {
    /// Messages up to this many bytes may go eagerly to a peer reached over TCP...
    pub(crate) eager_limit: usize,
    /// ... and to one reached through shared memory.
    pub(crate) shm_eager_limit: usize,
    /// Eager bytes (payload plus header) this rank grants each peer: what it may have
    /// unreceived here. Announced to the peer at connection set-up; this rank counts it and
    /// fails a peer that sends beyond it.
    pub(crate) grant: u64,
}

impl FlowConfig {
    /// The settings for a job of `size` ranks: `RMPI_EAGER_LIMIT`, `RMPI_SHM_EAGER_LIMIT` and
    /// `RMPI_UNEXPECTED_LIMIT` from the environment, or the defaults. The unexpected limit is
    /// shared among the peers, each getting at least [`MIN_CREDIT`] and at most [`MAX_GRANT`].
    pub(crate) fn from_env(size: usize) -> Result<FlowConfig> {
        let get = |var: &'static str| std::env::var(var).ok().filter(|s| !s.trim().is_empty());
        let eager_limit = match get(crate::env::EAGER_LIMIT) {
            Some(s) => crate::env::parse(crate::env::EAGER_LIMIT, s.trim())?,
            None => DEFAULT_EAGER_LIMIT,
        };
        let shm_eager_limit = match get(crate::env::SHM_EAGER_LIMIT) {
            Some(s) => crate::env::parse(crate::env::SHM_EAGER_LIMIT, s.trim())?,
            None => DEFAULT_SHM_EAGER_LIMIT,
        };
        let unexpected: u64 = match get(crate::env::UNEXPECTED_LIMIT) {
            Some(s) => crate::env::parse(crate::env::UNEXPECTED_LIMIT, s.trim())?,
            None => DEFAULT_UNEXPECTED_LIMIT,
        };
        Ok(FlowConfig::new((eager_limit, shm_eager_limit), unexpected, size))
    }

    fn new(
        (eager_limit, shm_eager_limit): (usize, usize),
        unexpected: u64,
        size: usize,
    ) -> FlowConfig {
        let peers = size.saturating_sub(1).max(1) as u64;
        let grant = (unexpected / peers).clamp(MIN_CREDIT, MAX_GRANT);
        FlowConfig { eager_limit, shm_eager_limit, grant }
    }

    /// The flow state a new connection to a peer starts with (`shm`: reached through shared
    /// memory; `grant`: what the peer grants this rank, `None` until its hello is in).
    pub(super) fn conn(&self, shm: bool, grant: Option<u64>) -> ConnFlow {
        let eager_limit = if shm { self.shm_eager_limit } else { self.eager_limit };
        ConnFlow { credit: grant.unwrap_or(0), grant, eager_limit, ..ConnFlow::default() }
    }

    /// Freed credit is returned once it reaches this much.
    fn return_at(&self) -> u64 {
        (self.grant / 4).max(1)
    }
}

/// A message whose payload is awaited here after this side cleared it.
#[derive(Debug)]
pub(super) struct Expected {
    ctx: u32,
    tag: u64,
    len: usize,
    /// The receive it goes to; `None` once that receive was let go of (the payload, when it
    /// comes, waits for a later receive).
    claim: Option<(ReqId, Sink)>,
}

/// The flow-control state of one connection.
#[derive(Debug, Default)]
pub(super) struct ConnFlow {
    /// Eager bytes this side may still send to the peer.
    credit: u64,
    /// What the peer grants this side in all; `None` while the connection is opening (messages
    /// queued meanwhile are data frames, sorted out by [`State::learn_grant`]).
    grant: Option<u64>,
    /// Messages up to this many bytes go eagerly (when the credit allows).
    eager_limit: usize,
    /// Eager bytes received from the peer whose credit has not been given back yet: never more
    /// than this rank's grant to it.
    owed: u64,
    /// RTS frames this side has queued.
    announced: u64,
    /// This side's announced messages not cleared yet, by number: the bulk frame to send.
    waiting: HashMap<u64, TxOp>,
    /// RTS frames received.
    heard: u64,
    /// Messages this side cleared and whose payload is coming, by number.
    expected: HashMap<u64, Expected>,
    /// Messages this side cleared ahead of any receive, whose payload has not begun to arrive,
    /// by number: the credit it is charged if it comes so.
    ahead: HashMap<u64, u64>,
    /// Context and tag of the last announced message of the peer a receive matched: the next
    /// ones like it are cleared ahead.
    streaming: Option<(u32, u64)>,
}

impl ConnFlow {
    /// Whether a message of `cost` bytes (payload plus header) goes eagerly now.
    pub(super) fn sends_eagerly(&self, cost: u64) -> bool {
        cost.saturating_sub(HEADER_LEN as u64) <= self.eager_limit as u64 && self.credit >= cost
    }

    /// The sends held here (announced, not cleared yet).
    pub(super) fn held_mut(&mut self) -> impl Iterator<Item = &mut TxOp> {
        self.waiting.values_mut()
    }

    /// Whether this side holds announced messages the peer has not cleared.
    pub(super) fn holds(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// Queues an announcement on `tx` and holds its payload for the CTS.
    fn announce(
        &mut self,
        tx: &mut std::collections::VecDeque<TxOp>,
        (ctx, tag): (u32, u64),
        payload: Payload,
        req: Option<ReqId>,
        watch: Option<Watch>,
    ) {
        let len = payload.bytes().len() as u64;
        self.announced += 1;
        let n = self.announced;
        let rts = FrameHeader { kind: FrameKind::Rts, context: ctx, tag, len };
        queue_ahead_of_bulk(tx, TxOp::new(rts, Payload::Owned(bytes::Bytes::new()), None, None));
        let bulk = FrameHeader { kind: FrameKind::Bulk, context: 0, tag: n, len };
        self.waiting.insert(n, TxOp::new(bulk, payload, req, watch));
    }

    /// Whether a message of `len` bytes may go eagerly now; if so, its cost is charged.
    fn take_eager(&mut self, len: usize) -> bool {
        let cost = (len + HEADER_LEN) as u64;
        // Above the credit held, a message goes rendezvous even under the eager limit: the
        // receiver's bound on unexpected bytes holds whatever the limits.
        if len <= self.eager_limit && self.credit >= cost {
            self.credit -= cost;
            return true;
        }
        false
    }
}

/// What a lost peer's flow state leaves: requests to fail now, and collective sends to settle.
pub(super) type Dropped = (Vec<(ReqId, Error)>, Vec<(ReqId, Watch)>);

fn control(kind: FrameKind, tag: u64) -> TxOp {
    control_in(kind, 0, tag)
}

/// The header of the bulk frame of message `n` of `len` bytes sent on a CTS ahead, charged to
/// the credit.
fn charged(n: u64, len: usize) -> [u8; HEADER_LEN] {
    FrameHeader { kind: FrameKind::Bulk, context: AHEAD, tag: n, len: len as u64 }.encode()
}

fn control_in(kind: FrameKind, context: u32, tag: u64) -> TxOp {
    let hdr = FrameHeader { kind, context, tag, len: 0 };
    TxOp::new(hdr, Payload::Owned(bytes::Bytes::new()), None, None)
}

impl State {
    /// Queues a message to peer `dest` on `c`: eagerly within the limit and the credit, else
    /// announced.
    pub(super) fn queue_message(
        &mut self,
        dest: usize,
        (ctx, tag): (u32, u64),
        payload: Payload,
        req: Option<ReqId>,
        watch: Option<Watch>,
    ) {
        let Some(Some(c)) = self.conns.get_mut(dest) else { return };
        let len = payload.bytes().len();
        // Opening: the grant is not known yet; sorted out when it is (nothing is written
        // before then).
        if c.flow.grant.is_none() || c.flow.take_eager(len) {
            let hdr = FrameHeader { kind: FrameKind::Data, context: ctx, tag, len: len as u64 };
            c.tx.push_back(TxOp::new(hdr, payload, req, watch));
            return;
        }
        c.flow.announce(&mut c.tx, (ctx, tag), payload, req, watch);
    }

    /// The peer `r` of an opening connection grants this rank `grant` bytes (its hello is in):
    /// the messages queued so far go eagerly while that covers them and the eager limit allows,
    /// the rest are announced instead, in their order (rendezvous numbers follow the wire).
    pub(super) fn learn_grant(&mut self, r: usize, grant: u64) {
        let Some(Some(c)) = self.conns.get_mut(r) else { return };
        if c.flow.grant.is_some() {
            return;
        }
        c.flow.grant = Some(grant);
        c.flow.credit = grant;
        let queued = std::mem::take(&mut c.tx);
        for mut op in queued {
            let hdr = FrameHeader::decode(&op.hdr, u64::MAX).ok();
            match hdr {
                // Nothing of it is written yet (the stream took nothing while opening).
                Some(h) if h.kind == FrameKind::Data && op.done == 0 => {
                    if c.flow.take_eager(h.len as usize) {
                        c.tx.push_back(op);
                    } else {
                        let payload =
                            std::mem::replace(&mut op.payload, Payload::Owned(bytes::Bytes::new()));
                        let (req, watch) = (op.req.take(), op.watch.take());
                        c.flow.announce(&mut c.tx, (h.context, h.tag), payload, req, watch);
                    }
                }
                _ => c.tx.push_back(op),
            }
        }
    }

    /// A data frame of `cost` bytes (payload plus header) from `r` is arriving: it is charged
    /// to this rank's grant to `r`, or, beyond it, fails `r` before any of it is taken. A peer
    /// that follows the protocol never gets there: it charges the same grant, which this rank
    /// announced at connection set-up.
    pub(super) fn charge(&mut self, r: usize, cost: u64) -> std::result::Result<(), String> {
        let granted = self.flow.grant;
        let Some(Some(c)) = self.conns.get_mut(r) else { return Ok(()) };
        match c.flow.owed.checked_add(cost).filter(|&owed| owed <= granted) {
            Some(owed) => {
                c.flow.owed = owed;
                Ok(())
            }
            None => Err(format!(
                "flow control violated: it sent {cost} eager bytes with {} of the {granted} \
                 bytes of credit granted to it left (it does not follow the protocol)",
                granted.saturating_sub(c.flow.owed),
            )),
        }
    }

    /// A control frame (RTS, CTS, credit) from `r`, whole: acts on it.
    pub(super) fn on_control(
        &mut self,
        r: usize,
        hdr: FrameHeader,
    ) -> std::result::Result<(), String> {
        let Some(Some(c)) = self.conns.get_mut(r) else { return Ok(()) };
        match hdr.kind {
            FrameKind::Rts => {
                c.flow.heard += 1;
                let n = c.flow.heard;
                let len = usize::try_from(hdr.len).map_err(|_| "message too long".to_string())?;
                match self.m.take_posted(hdr.context, r, hdr.tag) {
                    Some(posted) => {
                        let info = MsgInfo { src: r, tag: hdr.tag, len };
                        self.clear(Cleared { info, ctx: hdr.context, n, posted });
                    }
                    None => {
                        self.m.announced(hdr.context, r, hdr.tag, n, len);
                        self.clear_ahead(r);
                    }
                }
            }
            FrameKind::Cts => {
                let n = hdr.tag;
                if n > c.flow.announced {
                    return Err(format!("protocol error: clear to send {n} never announced"));
                }
                // Not waiting any more: dropped at the peer's goodbye (a receive the peer posted
                // before its goodbye may still clear one after it), or it went on a CTS ahead
                // and this is the plain one its receive sent.
                let Some(mut op) = c.flow.waiting.remove(&n) else { return Ok(()) };
                if hdr.context == AHEAD {
                    let len = op.payload.bytes().len();
                    let cost = (len + HEADER_LEN) as u64;
                    if c.flow.credit < cost {
                        // Waits for the plain CTS of its receive.
                        c.flow.waiting.insert(n, op);
                        return Ok(());
                    }
                    c.flow.credit -= cost;
                    op.hdr = charged(n, len);
                }
                c.tx.push_back(op);
            }
            FrameKind::Credit => {
                let grant = c.flow.grant.unwrap_or(0);
                c.flow.credit = c.flow.credit.saturating_add(hdr.tag).min(grant);
            }
            _ => {}
        }
        Ok(())
    }

    /// A receive matched an announced message: the sender is cleared to send it (or, when it
    /// is arriving cleared ahead right now, the receive takes it as it comes). The next
    /// messages like it are cleared ahead. A sender that said goodbye still answers: it waits at
    /// finalize until its announcements are cleared.
    pub(super) fn clear(&mut self, m: Cleared) {
        let r = m.info.src;
        let Cleared { info, ctx, n, posted } = m;
        let Posted { req, sink, .. } = posted;
        if let Some(e) = self.peer_error(r) {
            self.m.complete(req, Err(e));
            return;
        }
        let Some(Some(c)) = self.conns.get_mut(r) else { return };
        c.flow.streaming = Some((ctx, info.tag));
        let arriving = match &c.rx {
            Rx::Payload { dest: Dest::AheadBuffered { n: m, .. }, .. } if *m == n => Some(false),
            Rx::Payload { dest: Dest::Ahead { n: m, .. }, .. } if *m == n => Some(true),
            _ => None,
        };
        match arriving {
            Some(unread) => {
                // None of an unread payload is taken yet; an engine buffer only for a receive
                // it does not fit (which then fails, truncated, once it is in).
                let own = match &sink {
                    Sink::User(ub) if info.len <= ub.len => None,
                    _ if unread => match buffer(info.len) {
                        Ok(buf) => Some(buf),
                        Err(cause) => {
                            let e = self.lost(r, &cause);
                            self.m.complete(req, Err(e));
                            self.kill(r, cause);
                            return;
                        }
                    },
                    _ => None,
                };
                let Some(Some(c)) = self.conns.get_mut(r) else { return };
                let Rx::Payload { dest, filled, cost, .. } = &mut c.rx else { return };
                let old = std::mem::replace(dest, Dest::Unclaimed { since: 0 });
                *dest = match (old, sink, own) {
                    (Dest::AheadBuffered { buf, .. }, sink, _) => {
                        Dest::claim(req, sink, buf, *filled, info.len)
                    }
                    (_, sink, Some(buf)) => Dest::Owned { req: Some((req, sink)), buf },
                    (_, Sink::User(buf), None) => Dest::User { req, buf },
                    // Not reached: a receive without memory of its own was given a buffer.
                    (_, sink, None) => {
                        Dest::Owned { req: Some((req, sink)), buf: AlignedBuf::zeroed(info.len) }
                    }
                };
                // A receive takes it: the credit it was charged is free.
                let cost = std::mem::take(cost);
                // Bytes of it may be staged already, and no socket event comes for them.
                c.readable = true;
                self.m.free(r, cost);
            }
            None => {
                c.flow.ahead.remove(&n);
                let claim = Some((req, sink));
                c.flow.expected.insert(n, Expected { ctx, tag: info.tag, len: info.len, claim });
                // Written by the caller's next flush (never from inside a parse). Also after a
                // CTS ahead: its sender may have lacked the credit (a CTS for a payload already
                // sent is ignored).
                queue_ahead_of_bulk(&mut c.tx, control(FrameKind::Cts, n));
            }
        }
        self.clear_ahead(r);
    }

    /// Clears announced messages of peer `r` ahead of their receives: the earliest ones like
    /// the last one a receive matched (same context and tag) that are not cleared or arriving
    /// yet, as [`AHEAD_DEPTH`] says, while what they would be charged fits in what `r` has left
    /// of the credit granted to it.
    fn clear_ahead(&mut self, r: usize) {
        let granted = self.flow.grant;
        let Some(Some(c)) = self.conns.get_mut(r) else { return };
        let Some(key) = c.flow.streaming else { return };
        if c.link != Link::Open {
            return;
        }
        let arriving = match &c.rx {
            Rx::Payload { dest: Dest::Ahead { n, .. } | Dest::AheadBuffered { n, .. }, .. } => {
                Some(*n)
            }
            _ => None,
        };
        let held = |a: &HashMap<u64, u64>| a.values().fold(0u64, |s, b| s.saturating_add(*b));
        if !c.flow.ahead.is_empty() && held(&c.flow.ahead) >= AHEAD_BYTES / 2 {
            return;
        }
        loop {
            let ahead = held(&c.flow.ahead);
            if c.flow.ahead.len() >= AHEAD_DEPTH && ahead >= AHEAD_BYTES {
                return;
            }
            let cleared = &c.flow.ahead;
            let skip = |n| cleared.contains_key(&n) || arriving == Some(n);
            let Some((n, len)) = self.m.next_announced(r, key, skip) else { return };
            let cost = (len as u64).saturating_add(HEADER_LEN as u64);
            if c.flow.owed.saturating_add(ahead).saturating_add(cost) > granted {
                return;
            }
            c.flow.ahead.insert(n, cost);
            queue_ahead_of_bulk(&mut c.tx, control_in(FrameKind::Cts, AHEAD, n));
        }
    }

    /// The header of a bulk frame from `r`: the envelope of the message it belongs to, where
    /// its payload goes, and the credit its taking frees (a payload cleared ahead is charged to
    /// the credit granted to `r`, like a data frame).
    pub(super) fn bulk_dest(
        &mut self,
        r: usize,
        hdr: &FrameHeader,
    ) -> std::result::Result<(FrameHeader, Dest, u64), String> {
        let n = hdr.tag;
        let len = usize::try_from(hdr.len).map_err(|_| "message too long".to_string())?;
        let cost = match hdr.context {
            AHEAD => {
                let cost = (len as u64).saturating_add(HEADER_LEN as u64);
                self.charge(r, cost)?;
                cost
            }
            _ => 0,
        };
        let pass = self.pass;
        let Some(Some(c)) = self.conns.get_mut(r) else { return Err("no connection".into()) };
        let was_ahead = c.flow.ahead.remove(&n).is_some();
        let envelope =
            |ctx, tag| FrameHeader { kind: FrameKind::Data, context: ctx, tag, len: hdr.len };
        if let Some(e) = c.flow.expected.remove(&n) {
            if e.len != len {
                return Err(format!(
                    "protocol error: rendezvous {n} announced {} bytes, sends {len}",
                    e.len
                ));
            }
            let hdr = envelope(e.ctx, e.tag);
            let claimed = e.claim.is_some();
            let dest = match e.claim {
                Some((req, Sink::User(ub))) if len <= ub.len => Dest::User { req, buf: ub },
                claim => match buffer(len) {
                    Ok(buf) => Dest::Owned { req: claim, buf },
                    Err(cause) => {
                        // Kept, so that the loss of this peer fails its receive too.
                        c.flow.expected.insert(n, Expected { claim, ..e });
                        return Err(cause);
                    }
                },
            };
            if !claimed {
                return Ok((hdr, dest, cost));
            }
            // Its receive takes it now: the credit is free at once.
            self.m.free(r, cost);
            return Ok((hdr, dest, 0));
        }
        // Cleared ahead: it goes where its announcement waits, straight into a receive posted
        // within this pass, else buffered (charged to the credit above). Nothing else is taken
        // unasked: a payload nobody cleared would be a buffer no credit covers.
        match self.m.announcement(r, n) {
            Some((ctx, tag, announced))
                if hdr.context == AHEAD && was_ahead && announced == len =>
            {
                Ok((envelope(ctx, tag), Dest::Ahead { n, since: pass }, cost))
            }
            _ => Err(format!(
                "protocol error: payload of rendezvous {n}, which was never announced or not \
                 cleared"
            )),
        }
    }

    /// A payload no receive took while it arrived is in: its message is buffered where its
    /// announcement waited (taking it frees `cost` bytes of the sender's credit).
    pub(super) fn ahead_buffered(&mut self, r: usize, n: u64, buf: AlignedBuf, cost: u64) {
        self.m.fill_announced(r, n, buf, cost);
    }

    /// A receive let go of: a payload it was cleared for will wait for a later receive.
    pub(super) fn unclaim_expected(&mut self, id: ReqId) {
        for c in self.conns.iter_mut().flatten() {
            for e in c.flow.expected.values_mut() {
                if e.claim.as_ref().is_some_and(|(req, _)| *req == id) {
                    e.claim = None;
                }
            }
        }
    }

    /// Tells senders of the credit receives have freed (batched).
    pub(super) fn return_credit(&mut self) {
        for (src, bytes) in self.m.take_freed(self.flow.return_at()) {
            let Some(Some(c)) = self.conns.get_mut(src) else { continue };
            if c.link != Link::Open {
                continue;
            }
            c.flow.owed = c.flow.owed.saturating_sub(bytes);
            c.tx.push_back(control(FrameKind::Credit, bytes));
            if c.writable && c.tx.len() == 1 {
                self.flush(src);
            }
        }
    }

    /// Peer `r` said goodbye: it posts no receive any more, so the sends waiting for it to
    /// clear them never will be; they fail (collective sends are returned, to be settled with
    /// their group's first loss). Its own announcements and the payloads this side cleared stay:
    /// it answers CTSs until its announcements are cleared.
    pub(super) fn drop_held(&mut self, r: usize, err: &dyn Fn() -> Error) -> Dropped {
        let mut failed = Vec::new();
        let mut deferred = Vec::new();
        let Some(Some(c)) = self.conns.get_mut(r) else { return (failed, deferred) };
        for (_, op) in c.flow.waiting.drain() {
            match (op.req, op.watch) {
                (Some(id), Some(w)) => deferred.push((id, w)),
                (Some(id), None) => failed.push((id, err())),
                (None, _) => {}
            }
        }
        (failed, deferred)
    }

    /// Peer `r` is gone (`err` says how): sends waiting to be cleared by it and receives cleared
    /// for its payloads fail; its announcements are forgotten. Collective sends are returned to
    /// be settled with their group's first loss.
    pub(super) fn drop_flow(&mut self, r: usize, err: &dyn Fn() -> Error) -> Dropped {
        self.m.drop_announced_from(r);
        let (mut failed, deferred) = self.drop_held(r, err);
        let Some(Some(c)) = self.conns.get_mut(r) else { return (failed, deferred) };
        for (_, e) in c.flow.expected.drain() {
            if let Some((id, _)) = e.claim {
                failed.push((id, err()));
            }
        }
        c.flow.ahead.clear();
        (failed, deferred)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unexpected_limit_is_shared_among_peers_with_room_for_one_message_each() {
        let limits = (DEFAULT_EAGER_LIMIT, DEFAULT_SHM_EAGER_LIMIT);
        let f = FlowConfig::new(limits, 64 << 20, 65);
        assert_eq!(f.grant, 1 << 20);
        // The guaranteed credit does not grow with the eager limits: a message above the
        // credit held goes rendezvous, so the unexpected limit still bounds memory.
        let f = FlowConfig::new(limits, 64 << 20, 100_000);
        assert_eq!(f.grant, MIN_CREDIT);
        assert_eq!(f.conn(false, Some(7)).eager_limit, 512 << 10);
        assert_eq!(f.conn(true, Some(7)).eager_limit, 1 << 20);
        // A sender's credit is the peer's grant, not this rank's.
        assert_eq!(f.conn(false, Some(7)).credit, 7);
        let f = FlowConfig::new((0, 0), 0, 1);
        assert_eq!(f.grant, MIN_CREDIT);
        // The grant fits the 32 bits of the shared-memory offer.
        assert_eq!(FlowConfig::new(limits, 1 << 40, 2).grant, MAX_GRANT);
    }
}
