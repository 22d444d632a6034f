//! Framing: messages as header + payload on a peer's byte stream, read and written without
//! blocking. Receives claim arriving messages as early as their header, so large payloads go
//! straight into caller memory.

use std::collections::VecDeque;
use std::io::{self, IoSlice};

use super::flow::ConnFlow;
use super::matching::{fill_sink, Completion, MsgInfo, Posted, ReqId, Sink, Watch};
use super::state::State;
use super::stream::Stream;
use crate::buf::{AlignedBuf, RawBuf};
use crate::wire::{FrameHeader, FrameKind, HEADER_LEN};

/// Staging buffer per connection for small frames.
const STAGING: usize = 64 * 1024;
/// A payload remainder at least this large is read straight into its destination.
const DIRECT_READ_MIN: usize = 16 * 1024;
/// Bytes read from one connection per progress pass, so one busy peer cannot starve the others.
const READ_BUDGET: usize = 8 << 20;

/// Messages from this size on are checked to fit in memory when their header arrives (one
/// allocation and release of untouched pages: nothing next to moving the message).
const ALLOC_CHECK_MIN: usize = 64 << 20;

/// An engine buffer for a `len`-byte payload. A header may claim any length below the limit,
/// true or not: memory that cannot be had is the sending peer's failure, never an abort of
/// this process.
pub(super) fn buffer(len: usize) -> std::result::Result<AlignedBuf, String> {
    AlignedBuf::try_zeroed(len).ok_or_else(|| {
        format!("its message of {len} bytes cannot be buffered here (out of memory)")
    })
}
/// At most this many buffers go into one `writev`.
const MAX_IOV: usize = 64;
/// Queues of up to this many frames are gathered into a small buffer array.
const SMALL_QUEUE: usize = 2;

/// Fills `iov` with the unwritten parts of the frames queued in `tx`, in order, as far as it
/// holds whole frames' parts; returns how many slices it filled.
fn gather<'a>(tx: &'a VecDeque<TxOp>, iov: &mut [IoSlice<'a>]) -> usize {
    let mut n = 0;
    for op in tx {
        if n + 2 > iov.len() {
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
    n
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
    pub(super) fn bytes(&self) -> &[u8] {
        match self {
            // SAFETY: RawBuf contract: valid until the op leaves the queue.
            Payload::Borrowed(r) => unsafe { r.bytes() },
            Payload::Owned(b) => b,
        }
    }
}

#[derive(Debug)]
pub(super) struct TxOp {
    pub(super) hdr: [u8; HEADER_LEN],
    pub(super) payload: Payload,
    /// Bytes of header + payload already written.
    pub(super) done: usize,
    pub(super) req: Option<ReqId>,
    /// Peers whose loss fails this send's request (collective traffic: any member).
    pub(super) watch: Option<Watch>,
}

impl TxOp {
    /// A frame to write: `hdr`, then `payload`.
    pub(super) fn new(
        hdr: FrameHeader,
        payload: Payload,
        req: Option<ReqId>,
        watch: Option<Watch>,
    ) -> TxOp {
        TxOp { hdr: hdr.encode(), payload, done: 0, req, watch }
    }

    pub(super) fn own_payload(&mut self) {
        if let Payload::Borrowed(b) = self.payload {
            // SAFETY: called while the borrowing request is still live.
            self.payload = Payload::Owned(bytes::Bytes::copy_from_slice(unsafe { b.bytes() }));
        }
    }

    fn total(&self) -> usize {
        HEADER_LEN + self.payload.bytes().len()
    }

    /// Whether this is a bulk frame none of which is written yet.
    fn unstarted_bulk(&self) -> bool {
        self.done == 0 && self.hdr[2] == FrameKind::Bulk as u8
    }
}

/// Queues a small frame (an announcement or a control frame) ahead of the bulk frames at the
/// end of `tx` that have not begun, so that it does not wait behind their payloads: a bulk
/// frame names its message by number, so frames that overtake it change no order that
/// matching sees.
pub(super) fn queue_ahead_of_bulk(tx: &mut VecDeque<TxOp>, op: TxOp) {
    let at = tx.iter().rposition(|o| !o.unstarted_bulk()).map_or(0, |i| i + 1);
    tx.insert(at, op);
}

/// Where an arriving payload goes.
#[derive(Debug)]
pub(super) enum Dest {
    /// Straight into a posted receive's memory.
    User { req: ReqId, buf: RawBuf },
    /// Into an engine buffer; `req` is set when a receive claimed the message mid-flight.
    Owned { req: Option<(ReqId, Sink)>, buf: AlignedBuf },
    /// Nowhere yet: a large message nobody has asked for. Its payload stays in the socket for
    /// the rest of progress pass `since`, so a receive posted right after (the usual case for a
    /// program receiving messages one by one) takes it straight into its own memory instead of
    /// through an engine buffer and a copy. The next pass buffers it, so nothing waits on it.
    Unclaimed { since: u64 },
    /// Nowhere yet: the payload of announced message `n`, which no receive has asked for (this
    /// side cleared it ahead). Like `Unclaimed`, it stays in the stream for the rest of pass
    /// `since`, for a receive matching the announcement to take it straight into its memory;
    /// then it becomes `AheadBuffered`.
    Ahead { n: u64, since: u64 },
    /// Into an engine buffer, for announced message `n` that no receive has asked for: it
    /// stays where its announcement waits in the unexpected queue.
    AheadBuffered { n: u64, buf: AlignedBuf },
}

impl Dest {
    /// Where the rest of a payload goes once receive `req` claims it, `filled` of its `len`
    /// bytes already in the engine buffer `buf`.
    pub(super) fn claim(
        req: ReqId,
        sink: Sink,
        buf: AlignedBuf,
        filled: usize,
        len: usize,
    ) -> Dest {
        match sink {
            Sink::User(ub) if len <= ub.len => {
                // SAFETY: the receive claiming the payload is live.
                let into = unsafe { ub.bytes_mut() };
                into[..filled].copy_from_slice(&buf.as_bytes()[..filled]);
                Dest::User { req, buf: ub }
            }
            sink => Dest::Owned { req: Some((req, sink)), buf },
        }
    }

    /// Where the payload's bytes go, or `None` while it is unclaimed.
    fn bytes_mut(&mut self) -> Option<&mut [u8]> {
        match self {
            // SAFETY: the receive is live while it is the destination.
            Dest::User { buf, .. } => Some(unsafe { buf.bytes_mut() }),
            Dest::Owned { buf, .. } | Dest::AheadBuffered { buf, .. } => Some(buf.as_mut_bytes()),
            Dest::Unclaimed { .. } | Dest::Ahead { .. } => None,
        }
    }
}

#[derive(Debug)]
pub(super) enum Rx {
    Header,
    /// A payload arriving: `hdr` is its message's envelope (for a bulk frame, that of the
    /// message it was announced as); taking it frees `cost` bytes of the sender's credit.
    Payload {
        hdr: FrameHeader,
        dest: Dest,
        filled: usize,
        cost: u64,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Link {
    Open,
    /// The peer said goodbye; it sends nothing more.
    Closed,
    /// The connection failed; the text is the cause.
    Dead(String),
}

#[derive(Debug)]
pub(super) struct Conn {
    pub(super) stream: Box<dyn Stream>,
    pub(super) readable: bool,
    pub(super) writable: bool,
    /// The poller announced the end of the peer's stream (or an error): read until it is seen.
    pub(super) ended: bool,
    staging: Box<[u8]>,
    lo: usize,
    hi: usize,
    pub(super) rx: Rx,
    pub(super) tx: VecDeque<TxOp>,
    pub(super) link: Link,
    pub(super) flow: ConnFlow,
    /// Writing to the peer failed: everything it sent is read now (buffered where no receive
    /// takes it), before the connection is judged (see [`State::drain`]).
    draining: bool,
}

impl Conn {
    /// A connection over an established stream, with nothing sent or received yet.
    pub(super) fn new(stream: Box<dyn Stream>) -> Conn {
        Conn {
            stream,
            readable: true,
            writable: true,
            ended: false,
            staging: Box::default(),
            lo: 0,
            hi: 0,
            rx: Rx::Header,
            tx: VecDeque::new(),
            link: Link::Open,
            flow: ConnFlow::default(),
            draining: false,
        }
    }

    /// Takes the stream's own readiness, for a stream no poller event announces.
    pub(super) fn refresh(&mut self) {
        if let Some((readable, writable)) = self.stream.ready() {
            self.readable |= readable;
            self.writable |= writable;
        }
    }

    /// Whether nothing of the next frame has been read yet (no header or payload under way,
    /// nothing staged).
    pub(super) fn between_frames(&self) -> bool {
        matches!(self.rx, Rx::Header) && self.lo == self.hi
    }

    /// Whether the payload arriving waits in the stream for a receive (`Unclaimed`, `Ahead`).
    pub(super) fn is_unclaimed(&self) -> bool {
        matches!(self.rx, Rx::Payload { dest: Dest::Unclaimed { .. } | Dest::Ahead { .. }, .. })
    }

    /// The header of the message arriving on this connection, if no receive has claimed it yet
    /// (its payload still in the socket, or partly in an engine buffer).
    pub(super) fn arriving_unclaimed(&self) -> Option<&FrameHeader> {
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
    pub(super) fn has_backlog(&self) -> bool {
        self.link == Link::Open && (self.readable || self.is_unclaimed())
    }
}

impl State {
    pub(super) fn flush(&mut self, r: usize) {
        let Some(Some(c)) = self.conns.get_mut(r) else { return };
        let mut failed = None;
        while !c.tx.is_empty() {
            // The usual queue holds a frame or two: gather into a small array then, since
            // setting up all MAX_IOV slots costs more than writing a small frame to a ring.
            let written = if c.tx.len() <= SMALL_QUEUE {
                let mut iov = [IoSlice::new(&[]); 2 * SMALL_QUEUE];
                let n = gather(&c.tx, &mut iov);
                c.stream.write_vectored(&iov[..n])
            } else {
                let mut iov = [IoSlice::new(&[]); MAX_IOV];
                let n = gather(&c.tx, &mut iov);
                c.stream.write_vectored(&iov[..n])
            };
            match written {
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
            self.drain(r);
            self.kill(r, cause);
        }
    }

    /// Reads all that peer `r`, to which writing just failed, has sent. A peer that finalized
    /// closes its streams once it has said goodbye and everything it sent is in this rank's
    /// ring or socket, while this rank may still write to it (a credit frame, say): then the
    /// failure is only its end, and the messages in front of its goodbye must not be lost with
    /// the connection. So they are all taken now, into receives or else buffered (large ones
    /// too, which the usual read leaves in the stream for a receive to come), whatever the
    /// read budget. What the peer can have sent is bounded by the credit this rank granted
    /// it, and the payloads this rank cleared.
    fn drain(&mut self, r: usize) {
        let Some(Some(c)) = self.conns.get_mut(r) else { return };
        if c.link == Link::Open || c.link == Link::Closed {
            c.draining = true;
            c.readable = true;
            self.read(r);
        }
    }

    pub(super) fn read(&mut self, r: usize) {
        let mut budget = READ_BUDGET;
        loop {
            if let Err(cause) = self.parse(r) {
                self.kill(r, cause);
                return;
            }
            let Some(Some(c)) = self.conns.get_mut(r) else { return };
            // A peer that said goodbye still sends the payloads this rank cleared: read on.
            if matches!(c.link, Link::Dead(_)) || (!c.draining && (budget == 0 || c.is_unclaimed()))
            {
                return;
            }
            // Choose where the next bytes go.
            let direct = match &mut c.rx {
                Rx::Payload { dest, filled, hdr, .. } if c.lo == c.hi => {
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
                    // Allocated on the first read: a connection that never carries anything
                    // (most pairs of a large job) costs no staging memory.
                    if c.staging.is_empty() {
                        c.staging = vec![0u8; STAGING].into_boxed_slice();
                    }
                    let hi = c.hi;
                    (c.stream.read(&mut c.staging[hi..]).map(|n| (n, false)), STAGING - hi)
                }
            };
            // A short read drained the socket: with edge-triggered polling, new data raises a
            // new event, so there is no need to read again just to see EAGAIN. Not so once the
            // peer's end was announced: it may lie right behind these bytes, and no new event
            // would come for it.
            if matches!(res, Ok((n, _)) if n > 0 && n < asked) && !c.ended && !c.draining {
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
    pub(super) fn parse(&mut self, r: usize) -> std::result::Result<(), String> {
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
                    match hdr.kind {
                        FrameKind::Goodbye => {
                            c.link = Link::Closed;
                            // Failed at the end of this pass, after every connection has been
                            // read: if another peer died too, its loss is reported first.
                            self.goodbyes.push(r);
                            return Ok(());
                        }
                        FrameKind::Rts | FrameKind::Cts | FrameKind::Credit => {
                            self.on_control(r, hdr)?;
                            continue;
                        }
                        FrameKind::Data | FrameKind::Bulk | FrameKind::Failed => {}
                    }
                    let len = usize::try_from(hdr.len).map_err(|_| "frame too long".to_string())?;
                    let (hdr, dest, cost) = match hdr.kind {
                        FrameKind::Bulk => self.bulk_dest(r, &hdr)?,
                        FrameKind::Failed => (hdr, Dest::Owned { req: None, buf: buffer(len)? }, 0),
                        _ => {
                            let (dest, cost) = self.data_dest(r, &hdr, len)?;
                            (hdr, dest, cost)
                        }
                    };
                    let Some(Some(c)) = self.conns.get_mut(r) else { return Ok(()) };
                    c.rx = Rx::Payload { hdr, dest, filled: 0, cost };
                }
                Rx::Payload { hdr, dest, filled, .. } => {
                    let len = hdr.len as usize;
                    if let Dest::Unclaimed { since } = *dest {
                        if since == self.pass && !c.draining {
                            return Ok(());
                        }
                        // Nobody asked for it within a pass: buffer it, so the messages behind
                        // it (which someone may be waiting for) keep flowing.
                        *dest = Dest::Owned { req: None, buf: buffer(len)? };
                    }
                    if let Dest::Ahead { n, since } = *dest {
                        if since == self.pass && !c.draining {
                            return Ok(());
                        }
                        *dest = Dest::AheadBuffered { n, buf: buffer(len)? };
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
                    let Rx::Payload { hdr, dest, cost, .. } =
                        std::mem::replace(&mut c.rx, Rx::Header)
                    else {
                        return Ok(());
                    };
                    let info = MsgInfo { src: r, tag: hdr.tag, len };
                    if hdr.kind == FrameKind::Failed {
                        if let Dest::Owned { buf, .. } = &dest {
                            let why = String::from_utf8_lossy(buf.as_bytes()).into_owned();
                            // A tag above 0 names the rank whose loss made the sender fail.
                            if let Some(b) = hdr.tag.checked_sub(1) {
                                if let Ok(b) = usize::try_from(b) {
                                    self.reported_lost(r, b, &why);
                                }
                            }
                            // Its own abort (a notice passing on another rank's loss
                            // only quotes one).
                            if hdr.tag == 0 && why.starts_with(super::ABORTED) {
                                return Err(why);
                            }
                            return Err(format!("it failed ({why})"));
                        }
                    }
                    match dest {
                        Dest::User { req, .. } => {
                            self.m.complete(req, Ok(Completion { info: Some(info), data: None }))
                        }
                        Dest::Owned { req: Some((req, sink)), buf } => {
                            let res = fill_sink(sink, buf, info);
                            self.m.complete(req, res);
                        }
                        Dest::Owned { req: None, buf } => {
                            self.m.arrived(hdr.context, r, hdr.tag, buf, cost)
                        }
                        Dest::AheadBuffered { n, buf } => self.ahead_buffered(r, n, buf, cost),
                        // Not reached: an unclaimed payload is given a home before any of it
                        // is taken.
                        Dest::Unclaimed { .. } | Dest::Ahead { .. } => {}
                    }
                }
            }
        }
    }

    /// Where the payload of a data frame from `r` goes, and the credit its taking frees (none
    /// when a posted receive takes it now: that credit is freed at once).
    fn data_dest(
        &mut self,
        r: usize,
        hdr: &FrameHeader,
        len: usize,
    ) -> std::result::Result<(Dest, u64), String> {
        let cost = (len as u64).saturating_add(HEADER_LEN as u64);
        self.charge(r, cost)?;
        // Before any receive is matched to it (a failure here fails them all).
        if len >= ALLOC_CHECK_MIN {
            drop(buffer(len)?);
        }
        let dest = match self.m.take_posted(hdr.context, r, hdr.tag) {
            Some(Posted { req, sink: Sink::User(buf), .. }) if len <= buf.len => {
                Dest::User { req, buf }
            }
            Some(p) => match buffer(len) {
                Ok(buf) => Dest::Owned { req: Some((p.req, p.sink)), buf },
                Err(cause) => {
                    let e = self.lost(r, &cause);
                    self.m.complete(p.req, Err(e));
                    return Err(cause);
                }
            },
            None if len >= DIRECT_READ_MIN => {
                return Ok((Dest::Unclaimed { since: self.pass }, cost))
            }
            None => return Ok((Dest::Owned { req: None, buf: buffer(len)? }, cost)),
        };
        self.m.free(r, cost);
        Ok((dest, 0))
    }

    pub(super) fn eof(&mut self, r: usize) {
        let Some(Some(c)) = self.conns.get_mut(r) else { return };
        if c.link == Link::Closed {
            c.readable = false;
            return;
        }
        self.kill(r, "connection closed without a goodbye (the process exited or crashed)".into());
    }
}
