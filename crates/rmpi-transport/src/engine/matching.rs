//! Matching: posted receives, arrived messages nobody has asked for yet, and the request table.
//!
//! Pure bookkeeping, with no knowledge of how bytes travel: a transport hands complete messages
//! to [`Matching::arrived`] and announced large ones (ready-to-send, see `flow.rs`) to
//! [`Matching::announced`], or claims a posted receive for a message still arriving with
//! [`Matching::take_posted`]; receives come in through [`Matching::take_unexpected`] and
//! [`Matching::post`]. It also counts the eager bytes receives have taken from each sender, for
//! the sender's credit. The rules are MPI's: a receive matches the earliest arrived message with its
//! context, source and tag; an arriving message matches the earliest posted receive.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;

use super::idhash::IdMap;
use crate::buf::{AlignedBuf, RawBuf};
use crate::error::{Error, Result};

/// A request's id, unique within one engine.
pub(crate) type ReqId = u64;

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
    /// Whether a message with this envelope is one this receive takes.
    pub(crate) fn matches(&self, ctx: u32, src: usize, tag: u64) -> bool {
        envelope_matches(ctx == self.ctx, self.src, self.tag, src, tag)
    }
}

/// Whether a message from `src` with `tag` on the wanted context fits the wanted source and tag
/// (`None`: any).
fn envelope_matches(
    same_ctx: bool,
    want_src: Option<usize>,
    want_tag: Option<u64>,
    src: usize,
    tag: u64,
) -> bool {
    same_ctx && want_src.is_none_or(|s| s == src) && want_tag.is_none_or(|t| t == tag)
}

#[derive(Debug)]
enum Slot {
    Pending,
    Done(Result<Completion>),
}

/// What an unexpected message holds.
#[derive(Debug)]
enum Body {
    /// Its payload; taking it frees `cost` bytes of its sender's credit.
    Eager { buf: AlignedBuf, cost: u64 },
    /// Only its announcement: rendezvous number `n` of its sender, `len` bytes waiting there.
    Announced { n: u64, len: usize },
}

impl Body {
    fn len(&self) -> usize {
        match self {
            Body::Eager { buf, .. } => buf.len(),
            Body::Announced { len, .. } => *len,
        }
    }
}

/// An arrived message nobody has asked for yet.
#[derive(Debug)]
struct Unexpected {
    ctx: u32,
    src: usize,
    tag: u64,
    body: Body,
}

/// A receive matched to an announced message: the caller clears the sender to send it.
#[derive(Debug)]
pub(crate) struct Cleared {
    /// The message's envelope.
    pub(crate) info: MsgInfo,
    /// Its context.
    pub(crate) ctx: u32,
    /// Its rendezvous number on the sender's connection.
    pub(crate) n: u64,
    /// The receive that takes it.
    pub(crate) posted: Posted,
}

/// What posting a receive against the unexpected queue found.
#[derive(Debug)]
pub(crate) enum Take {
    /// A buffered message completed it.
    Done,
    /// It matched a message whose payload is still at its sender.
    Announced(Cleared),
    /// Nothing matched: the receive, handed back.
    Nothing(Posted),
}

/// The matching queues and request table.
#[derive(Debug, Default)]
pub(crate) struct Matching {
    posted: VecDeque<Posted>,
    unexpected: VecDeque<Unexpected>,
    slots: IdMap<ReqId, Slot>,
    next_req: ReqId,
    /// Per sender: eager bytes receives have taken and the sender has not been told of.
    freed: IdMap<usize, u64>,
}

impl Matching {
    /// A fresh request id with a pending slot.
    pub(crate) fn new_req(&mut self) -> ReqId {
        self.next_req += 1;
        let id = self.next_req;
        self.slots.insert(id, Slot::Pending);
        id
    }

    /// Takes the result of a finished request, leaving pending ones alone.
    pub(crate) fn take_done(&mut self, id: ReqId) -> Option<Result<Completion>> {
        match self.slots.get(&id) {
            Some(Slot::Done(_)) => match self.slots.remove(&id) {
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
        matches!(self.slots.get(&id), Some(Slot::Done(_)))
    }

    /// Whether `id` is still a request here: not yet completed, or completed with its result
    /// not yet taken. One whose result was taken holds nothing of its caller any more.
    pub(crate) fn is_open(&self, id: ReqId) -> bool {
        self.slots.contains_key(&id)
    }

    /// Records a request's result. A request that was let go of has no slot: its result is
    /// dropped.
    pub(crate) fn complete(&mut self, id: ReqId, r: Result<Completion>) {
        if let Some(slot) = self.slots.get_mut(&id) {
            *slot = Slot::Done(r);
        }
    }

    /// Lets go of a request: withdraws it if it is a posted receive, and drops its slot.
    pub(crate) fn forget(&mut self, id: ReqId) {
        if let Some(i) = self.posted.iter().position(|p| p.req == id) {
            self.posted.remove(i);
        }
        self.slots.remove(&id);
    }

    /// The source a receive still waiting in the posted queue takes its message from (`None`:
    /// not waiting there, or from any source).
    pub(crate) fn posted_source(&self, id: ReqId) -> Option<usize> {
        self.posted.iter().find(|p| p.req == id).and_then(|p| p.src)
    }

    /// Whether `id` is a receive still waiting in the posted queue.
    pub(crate) fn is_posted(&self, id: ReqId) -> bool {
        self.posted.iter().any(|p| p.req == id)
    }

    /// The earliest posted receive that takes a message with this envelope, removed from the
    /// queue (for a message whose payload is about to arrive).
    pub(crate) fn take_posted(&mut self, ctx: u32, src: usize, tag: u64) -> Option<Posted> {
        self.take_posted_if(ctx, src, tag, |_| true)
    }

    /// The earliest posted receive that a message from `src` with `tag` on `ctx` completes,
    /// taken only if `ok` holds for it (otherwise it stays where it is).
    pub(crate) fn take_posted_if(
        &mut self,
        ctx: u32,
        src: usize,
        tag: u64,
        ok: impl FnOnce(&Posted) -> bool,
    ) -> Option<Posted> {
        let i = self.posted.iter().position(|p| p.matches(ctx, src, tag))?;
        if !ok(&self.posted[i]) {
            return None;
        }
        self.posted.remove(i)
    }

    /// A complete message: it completes the earliest posted receive that takes it, or waits in
    /// the unexpected queue. Taking it frees `cost` bytes of the sender's credit.
    pub(crate) fn arrived(&mut self, ctx: u32, src: usize, tag: u64, buf: AlignedBuf, cost: u64) {
        match self.take_posted(ctx, src, tag) {
            Some(p) => {
                self.free(src, cost);
                let info = MsgInfo { src, tag, len: buf.len() };
                let r = fill_sink(p.sink, buf, info);
                self.complete(p.req, r);
            }
            None => {
                let body = Body::Eager { buf, cost };
                self.unexpected.push_back(Unexpected { ctx, src, tag, body })
            }
        }
    }

    /// An announced message (rendezvous number `n` of `src`) that no posted receive took: it
    /// waits in the unexpected queue, in order with the buffered ones.
    pub(crate) fn announced(&mut self, ctx: u32, src: usize, tag: u64, n: u64, len: usize) {
        let body = Body::Announced { n, len };
        self.unexpected.push_back(Unexpected { ctx, src, tag, body });
    }

    /// Completes `p` from the earliest arrived message it takes, or matches it to an announced
    /// one; otherwise hands `p` back.
    pub(crate) fn take_unexpected(&mut self, p: Posted) -> Take {
        let Some(i) = self.unexpected.iter().position(|u| p.matches(u.ctx, u.src, u.tag)) else {
            return Take::Nothing(p);
        };
        let Some(u) = self.unexpected.remove(i) else { return Take::Nothing(p) };
        let info = MsgInfo { src: u.src, tag: u.tag, len: u.body.len() };
        match u.body {
            Body::Eager { buf, cost } => {
                self.free(u.src, cost);
                let r = fill_sink(p.sink, buf, info);
                self.complete(p.req, r);
                Take::Done
            }
            Body::Announced { n, .. } => {
                Take::Announced(Cleared { info, ctx: u.ctx, n, posted: p })
            }
        }
    }

    /// The envelope of announced message `n` of `src` still waiting here: context and tag.
    pub(crate) fn announcement(&self, src: usize, n: u64) -> Option<(u32, u64, usize)> {
        self.unexpected.iter().find_map(|u| match u.body {
            Body::Announced { n: m, len } if u.src == src && m == n => Some((u.ctx, u.tag, len)),
            _ => None,
        })
    }

    /// The earliest announced message of `src` with this context and tag still waiting here
    /// whose number `skip` does not exclude: its number and length.
    pub(crate) fn next_announced(
        &self,
        src: usize,
        (ctx, tag): (u32, u64),
        skip: impl Fn(u64) -> bool,
    ) -> Option<(u64, usize)> {
        self.unexpected.iter().find_map(|u| match u.body {
            Body::Announced { n, len } if u.src == src && u.ctx == ctx && u.tag == tag => {
                (!skip(n)).then_some((n, len))
            }
            _ => None,
        })
    }

    /// The payload of announced message `n` of `src`, sent before any receive asked for it (this
    /// side cleared it ahead): the message stays where it is in the
    /// queue, now buffered; taking it frees `cost` bytes of the sender's credit. False if it is
    /// not waiting here.
    pub(crate) fn fill_announced(
        &mut self,
        src: usize,
        n: u64,
        buf: AlignedBuf,
        cost: u64,
    ) -> bool {
        let found = self
            .unexpected
            .iter_mut()
            .find(|u| u.src == src && matches!(u.body, Body::Announced { n: m, .. } if m == n));
        match found {
            Some(u) => {
                u.body = Body::Eager { buf, cost };
                true
            }
            None => false,
        }
    }

    /// Forgets the announced messages of `src`, a peer that is gone: they will never come.
    pub(crate) fn drop_announced_from(&mut self, src: usize) {
        self.unexpected.retain(|u| u.src != src || matches!(u.body, Body::Eager { .. }));
    }

    /// Counts `cost` eager bytes of `src` as taken.
    pub(crate) fn free(&mut self, src: usize, cost: u64) {
        if cost > 0 {
            *self.freed.entry(src).or_default() += cost;
        }
    }

    /// Takes the freed counts of at least `min` bytes, to tell their senders.
    pub(crate) fn take_freed(&mut self, min: u64) -> Vec<(usize, u64)> {
        let due: Vec<(usize, u64)> =
            self.freed.iter().filter(|(_, n)| **n >= min).map(|(s, n)| (*s, *n)).collect();
        for (s, _) in &due {
            self.freed.remove(s);
        }
        due
    }

    /// Queues a receive that nothing arrived has matched.
    pub(crate) fn post(&mut self, p: Posted) {
        self.posted.push_back(p);
    }

    /// The envelope of the earliest arrived message that a receive for `(ctx, src, tag)` would
    /// take, without taking it.
    pub(crate) fn probe(&self, ctx: u32, src: Option<usize>, tag: Option<u64>) -> Option<MsgInfo> {
        self.unexpected
            .iter()
            .find(|u| envelope_matches(u.ctx == ctx, src, tag, u.src, u.tag))
            .map(|u| MsgInfo { src: u.src, tag: u.tag, len: u.body.len() })
    }

    /// Fails every posted receive for which `why` gives an error; the others stay, in order.
    pub(crate) fn fail_posted(&mut self, mut why: impl FnMut(&Posted) -> Option<Error>) {
        let posted = std::mem::take(&mut self.posted);
        for p in posted {
            match why(&p) {
                Some(e) => self.complete(p.req, Err(e)),
                None => self.posted.push_back(p),
            }
        }
    }
}

/// Puts a complete engine buffer where its receive wants it.
pub(crate) fn fill_sink(sink: Sink, buf: AlignedBuf, info: MsgInfo) -> Result<Completion> {
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
    use super::*;

    fn recv(m: &mut Matching, src: Option<usize>, tag: Option<u64>) -> ReqId {
        let req = m.new_req();
        let p = Posted { req, ctx: 4, src, tag, sink: Sink::Alloc, watch: Watch::One(0) };
        if let Take::Nothing(p) = m.take_unexpected(p) {
            m.post(p);
        }
        req
    }

    fn msg(b: &[u8]) -> AlignedBuf {
        AlignedBuf::from_bytes(b)
    }

    fn got(m: &mut Matching, id: ReqId) -> (usize, u64, Vec<u8>) {
        let c = m.take_done(id).expect("complete").expect("ok");
        let info = c.info.expect("receive info");
        (info.src, info.tag, c.data.expect("data").as_bytes().to_vec())
    }

    #[test]
    fn arrived_messages_wait_and_match_in_order_per_sender_and_tag() {
        let mut m = Matching::default();
        m.arrived(4, 1, 7, msg(b"a"), 0);
        m.arrived(4, 1, 7, msg(b"b"), 0);
        m.arrived(4, 2, 7, msg(b"c"), 0);
        m.arrived(5, 1, 7, msg(b"other context"), 0);
        assert_eq!(m.probe(4, None, Some(7)).map(|i| i.src), Some(1));
        let r2 = recv(&mut m, Some(2), None);
        assert_eq!(got(&mut m, r2), (2, 7, b"c".to_vec()));
        let a = recv(&mut m, None, None);
        let b = recv(&mut m, Some(1), Some(7));
        assert_eq!(got(&mut m, a), (1, 7, b"a".to_vec()));
        assert_eq!(got(&mut m, b), (1, 7, b"b".to_vec()));
        // The other context's message is untouched by receives on context 4.
        let c = recv(&mut m, None, None);
        assert!(!m.is_done(c));
        assert!(m.probe(5, Some(1), Some(7)).is_some());
    }

    #[test]
    fn an_arriving_message_takes_the_earliest_posted_receive_that_fits() {
        let mut m = Matching::default();
        let only_tag_9 = recv(&mut m, None, Some(9));
        let any = recv(&mut m, None, None);
        let later_any = recv(&mut m, None, None);
        m.arrived(4, 3, 1, msg(b"x"), 0);
        assert!(!m.is_done(only_tag_9));
        assert_eq!(got(&mut m, any), (3, 1, b"x".to_vec()));
        assert!(!m.is_done(later_any));
        m.arrived(4, 0, 9, msg(b"y"), 0);
        assert_eq!(got(&mut m, only_tag_9), (0, 9, b"y".to_vec()));
    }

    #[test]
    fn a_message_longer_than_the_receive_buffer_is_a_truncation_error() {
        let mut m = Matching::default();
        let mut small = [0u8; 2];
        let req = m.new_req();
        let sink = Sink::User(RawBuf::from_mut(&mut small));
        let p = Posted { req, ctx: 4, src: None, tag: None, sink, watch: Watch::One(0) };
        match m.take_unexpected(p) {
            Take::Nothing(p) => m.post(p),
            other => panic!("nothing arrived yet: {other:?}"),
        }
        m.arrived(4, 1, 3, msg(b"abc"), 0);
        match m.take_done(req) {
            Some(Err(Error::Truncated { source_rank: 1, tag: 3, len: 3, capacity: 2 })) => {}
            other => panic!("expected truncation, got {other:?}"),
        }
        // A message that fits lands in caller memory.
        let req = m.new_req();
        let sink = Sink::User(RawBuf::from_mut(&mut small));
        let p = Posted { req, ctx: 4, src: None, tag: None, sink, watch: Watch::One(0) };
        m.arrived(4, 1, 3, msg(b"ok"), 0);
        assert!(matches!(m.take_unexpected(p), Take::Done));
        assert!(m.take_done(req).is_some_and(|r| r.is_ok()));
        assert_eq!(&small, b"ok");
    }

    #[test]
    fn forgotten_requests_leave_no_trace_and_their_messages_stay() {
        let mut m = Matching::default();
        let r = recv(&mut m, Some(1), None);
        assert!(m.is_posted(r));
        m.forget(r);
        assert!(!m.is_posted(r));
        m.arrived(4, 1, 0, msg(b"kept"), 0);
        // The result of a let-go request is dropped; asking for it is an error, not a hang.
        assert!(matches!(m.take_done(r), Some(Err(_))));
        let again = recv(&mut m, Some(1), None);
        assert_eq!(got(&mut m, again), (1, 0, b"kept".to_vec()));
    }

    #[test]
    fn failing_posted_receives_keeps_the_others_in_order() {
        let mut m = Matching::default();
        let from1 = recv(&mut m, Some(1), None);
        let from2 = recv(&mut m, Some(2), None);
        let any = recv(&mut m, None, None);
        m.fail_posted(|p| (p.src == Some(1)).then_some(Error::Finalized { rank: 0 }));
        assert!(matches!(m.take_done(from1), Some(Err(Error::Finalized { .. }))));
        m.arrived(4, 2, 0, msg(b"z"), 0);
        assert_eq!(got(&mut m, from2), (2, 0, b"z".to_vec()));
        assert!(m.is_posted(any));
    }

    #[test]
    fn announced_messages_keep_their_place_and_taken_eager_bytes_are_counted_per_sender() {
        let mut m = Matching::default();
        m.arrived(4, 1, 7, msg(b"first"), 37);
        m.announced(4, 1, 7, 1, 1 << 20);
        m.arrived(4, 1, 7, msg(b"third"), 37);
        // Probe sees the announced length; the order holds across both kinds.
        let a = recv(&mut m, Some(1), Some(7));
        assert_eq!(got(&mut m, a), (1, 7, b"first".to_vec()));
        assert_eq!(m.probe(4, None, None).map(|i| i.len), Some(1 << 20));
        let req = m.new_req();
        let p =
            Posted { req, ctx: 4, src: None, tag: None, sink: Sink::Alloc, watch: Watch::One(1) };
        match m.take_unexpected(p) {
            Take::Announced(c) => assert_eq!((c.n, c.info.len, c.info.src), (1, 1 << 20, 1)),
            other => panic!("expected the announcement, got {other:?}"),
        }
        // A payload cleared ahead fills an announcement in place.
        m.announced(4, 1, 7, 2, 3);
        assert!(m.fill_announced(1, 2, msg(b"abc"), 0));
        assert!(!m.fill_announced(1, 9, msg(b"x"), 0));
        let c = recv(&mut m, Some(1), None);
        assert_eq!(got(&mut m, c), (1, 7, b"third".to_vec()));
        // Credit: only what receives took, and only once it reaches the threshold.
        assert!(m.take_freed(100).is_empty());
        assert_eq!(m.take_freed(50), vec![(1, 74)]);
        assert!(m.take_freed(1).is_empty());
        // A lost sender's announcements go; its buffered messages stay.
        m.announced(4, 2, 0, 3, 10);
        m.arrived(4, 2, 0, msg(b"kept"), 0);
        m.drop_announced_from(2);
        assert_eq!(m.probe(4, Some(2), None).map(|i| i.len), Some(4));
    }
}
