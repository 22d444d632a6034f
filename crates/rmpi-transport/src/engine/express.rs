//! The express receive: a wait for a message from one local peer takes the peer's next frame
//! straight from the shared-memory ring into the receive it completes, when that frame is a
//! whole data frame already in the ring. It skips the progress pass (every other connection,
//! the staging buffer, the frame parser) and does what the parser would have done with that
//! frame: the same matching, the same credit, the same completion. Anything else (no whole
//! frame yet, a control frame, a frame for a receive that is not posted, bytes staged or
//! queued on that connection) is left to the pass.

use super::framing::{buffer, Link};
use super::matching::{fill_sink, Completion, MsgInfo, Posted, Sink};
use super::state::State;
use crate::wire::{FrameHeader, FrameKind, HEADER_LEN};

impl State {
    /// Takes the next frame from peer `r` into the posted receive it completes, if it can as
    /// described above; returns whether it did.
    pub(super) fn express(&mut self, r: usize) -> bool {
        let max = self.max_message;
        let Some(Some(c)) = self.conns.get_mut(r) else { return false };
        if c.link != Link::Open || !c.tx.is_empty() || !c.between_frames() {
            return false;
        }
        let mut head = [0u8; HEADER_LEN];
        let avail = c.stream.peek(&mut head);
        if avail < HEADER_LEN {
            return false;
        }
        // A header the parser would refuse is left to it, to fail the peer with its cause.
        let Ok(hdr) = FrameHeader::decode(&head, max) else { return false };
        let Ok(len) = usize::try_from(hdr.len) else { return false };
        if hdr.kind != FrameKind::Data || avail - HEADER_LEN < len {
            return false;
        }
        let fits = |p: &Posted| match &p.sink {
            Sink::User(b) => len <= b.len,
            Sink::Alloc => true,
        };
        let Some(p) = self.m.take_posted_if(hdr.context, r, hdr.tag, fits) else { return false };
        let cost = (len + HEADER_LEN) as u64;
        if let Err(cause) = self.charge(r, cost) {
            self.m.complete(p.req, Err(self.lost(r, &cause)));
            self.kill(r, cause);
            return true;
        }
        let info = MsgInfo { src: r, tag: hdr.tag, len };
        let done = match p.sink {
            Sink::User(b) => {
                // SAFETY: the receive is posted, so its memory is live and not otherwise
                // accessed until its request completes (RawBuf's contract); `len` fits in it.
                let into = unsafe { &mut b.bytes_mut()[..len] };
                self.take(r, into).then_some(Ok(Completion { info: Some(info), data: None }))
            }
            Sink::Alloc => match buffer(len) {
                Ok(mut buf) => {
                    self.take(r, buf.as_mut_bytes()).then(|| fill_sink(Sink::Alloc, buf, info))
                }
                Err(cause) => {
                    self.m.complete(p.req, Err(self.lost(r, &cause)));
                    self.kill(r, cause);
                    return true;
                }
            },
        };
        match done {
            Some(res) => {
                self.m.free(r, cost);
                self.m.complete(p.req, res);
                self.return_credit();
            }
            None => {
                // Not reached: the frame was whole in the ring, which only this rank reads.
                let cause = "its shared-memory stream lost bytes it had published".to_string();
                self.m.complete(p.req, Err(self.lost(r, &cause)));
                self.kill(r, cause);
            }
        }
        true
    }

    /// Takes the frame header and then `into.len()` payload bytes from peer `r`'s stream.
    fn take(&mut self, r: usize, into: &mut [u8]) -> bool {
        match self.conns.get_mut(r) {
            Some(Some(c)) => c.stream.take_after(HEADER_LEN, into),
            _ => false,
        }
    }
}
