//! A shared-memory [`Stream`]: two single-producer/single-consumer byte rings in the segment,
//! one each way. The writer copies bytes in and then publishes its tail (release); the reader
//! sees the tail (acquire), copies out and publishes its head. A reader never sees a byte that
//! is not completely written, whatever happens to the writer. Large payloads are lent instead
//! of copied into the ring (see [`super::lend`]).

use std::cell::Cell;
use std::io::{self, IoSlice};
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;

use super::lend::{self, Lent, Loan};
use super::segment::{Pair, Segment, CMA_YES, WAIT_LOAN, WAIT_ROOM};
use super::wake::Waker;
use crate::engine::stream::Stream;
use crate::wire::{FrameHeader, FrameKind, HEADER_LEN};

/// The goodbye frame, which a rank sends each peer as its last bytes.
fn goodbye() -> [u8; HEADER_LEN] {
    FrameHeader { kind: FrameKind::Goodbye, context: 0, tag: 0, len: 0 }.encode()
}

/// The stream between local rank `me` and local rank `peer` (indices in the host's group).
#[derive(Debug)]
pub(crate) struct ShmStream {
    seg: Arc<Segment>,
    waker: Arc<Waker>,
    me: usize,
    peer: usize,
    /// The peer's process has exited (its pidfd said so).
    peer_gone: bool,
    /// This side closed its writing half.
    write_closed: bool,
    /// This side closed both halves.
    closed: bool,
    /// Whether this side has written anything yet (until then its ring is empty, and looking at
    /// it would only bring a page of the segment into memory for nothing).
    wrote: bool,
    /// The reader's head of the outbound ring as this writer last read it: a lower bound of the
    /// real one. The room it leaves is used until it runs out, so the writer reads the reader's
    /// cache line only about once per ring's worth of bytes instead of on every write (each
    /// read would move the line between the cores, and the reader's next store to it back).
    head_seen: Cell<u64>,
    /// The peer's process id (lent bytes are read from its memory).
    peer_pid: u32,
    /// Payload slices from this size on are lent when the peer reads loans (0: never lend).
    lend_min: usize,
    /// The payload lent right now.
    loan: Option<Loan>,
    /// Bytes of the peer's goodbye read so far, when it said it through its control block.
    bye_read: usize,
    /// This side said its goodbye through its control block.
    bye_aside: bool,
}

impl ShmStream {
    /// The stream from group index `me` to `peer`, whose process is `peer_pid`; lending slices
    /// of at least `lend_min` bytes (0: never).
    pub(crate) fn new(
        seg: Arc<Segment>,
        waker: Arc<Waker>,
        (me, peer): (usize, usize),
        peer_pid: u32,
        lend_min: usize,
    ) -> Self {
        ShmStream {
            seg,
            waker,
            me,
            peer,
            peer_gone: false,
            write_closed: false,
            closed: false,
            wrote: false,
            head_seen: Cell::new(0),
            peer_pid,
            lend_min,
            loan: None,
            bye_read: 0,
            bye_aside: false,
        }
    }

    /// Whether the peer said goodbye through its control block (it never wrote to this ring).
    /// The tail first: it shares a cache line with what every look reads anyway, and a peer
    /// that wrote never sets the flag, so the peer's control block is read only while it
    /// has not.
    fn peer_said_bye(&self) -> bool {
        self.inbound().w.tail.load(Ordering::Acquire) == 0
            && self.seg.ctl(self.peer).bye.load(Ordering::Acquire) != 0
    }

    /// Reads the peer's goodbye given through its control block, then the end of the stream.
    fn read_bye(&mut self, buf: &mut [u8]) -> usize {
        let bye = goodbye();
        let n = buf.len().min(HEADER_LEN - self.bye_read);
        buf[..n].copy_from_slice(&bye[self.bye_read..self.bye_read + n]);
        self.bye_read += n;
        n
    }

    /// A goodbye to a peer this side never wrote to: said through this rank's control block
    /// (one flag for all such peers), so the ring's pages stay untouched.
    fn says_bye_aside(&self, bufs: &[IoSlice<'_>]) -> bool {
        if self.wrote {
            return false;
        }
        let mut bytes = bufs.iter().flat_map(|b| b.iter());
        let bye = goodbye();
        bufs.iter().map(|b| b.len()).sum::<usize>() == HEADER_LEN
            && bye.iter().all(|x| bytes.next() == Some(x))
    }

    /// Whether a payload slice of `len` bytes is lent rather than copied.
    fn lends(&self, len: usize) -> bool {
        self.lend_min > 0
            && len >= self.lend_min
            && self.seg.ctl(self.peer).cma.load(Ordering::Acquire) == CMA_YES
    }

    /// A write while a payload is lent: reports the bytes the reader has taken since the last
    /// report.
    fn write_lent(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let rest: &[u8] = bufs.iter().find(|b| !b.is_empty()).map_or(&[], |b| b);
        let seg = self.seg.clone();
        let p = seg.pair(self.me, self.peer);
        let Some(loan) = self.loan.as_mut() else { return Ok(0) };
        let republished = loan.is_moved();
        let got = loan.write(p, rest)?;
        if loan.done() {
            self.loan = None;
        }
        if republished {
            self.nudge_peer();
        }
        match got {
            Some(n) => Ok(n as usize),
            None => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    /// Wakes the writer of the inbound ring if it waits for `what` (room, or lent bytes to be
    /// taken: [`WAIT_ROOM`], [`WAIT_LOAN`]).
    fn wake_writer(&self, p: &Pair, what: u32) {
        fence(Ordering::SeqCst);
        let waits = |w: u32| w & what != 0;
        if waits(p.w.waiting.load(Ordering::Relaxed))
            && waits(p.w.waiting.fetch_and(!what, Ordering::AcqRel))
        {
            self.waker.wake(self.peer);
        }
    }

    /// Reads lent bytes (the ring is empty): `closed` says whether the writer has closed, and
    /// `lent_total` is the loan counter as read before the ring's tail.
    fn read_lent(&mut self, buf: &mut [u8], closed: bool, lent_total: u64) -> io::Result<usize> {
        if self.peer_gone {
            // Its memory is gone (and its process id may name another process soon).
            return Ok(0);
        }
        let p = self.inbound();
        match lend::read(p, self.peer_pid, buf, lent_total)? {
            Lent::Read(n) => {
                self.wake_writer(p, WAIT_LOAN);
                Ok(n)
            }
            Lent::Gone => Ok(0),
            Lent::Nothing | Lent::Wait if closed => Ok(0),
            Lent::Nothing | Lent::Wait => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    /// Copies the inbound ring's bytes from stream position `from` on into `buf`, which the
    /// writer has published (the caller read `tail` with acquire and found them below it).
    fn copy_out(&self, from: u64, buf: &mut [u8]) {
        let cap = self.cap();
        let ring = self.seg.ring(self.peer, self.me);
        let n = buf.len();
        let at = (from % cap) as usize;
        let first = n.min(cap as usize - at);
        // SAFETY: bytes [from, from + n) of the ring are published by the writer (its tail was
        // read with acquire past them) and are not touched by it until our head passes them;
        // `n` is at most the ring's `cap` bytes, so the two pieces stay inside it.
        unsafe {
            std::ptr::copy_nonoverlapping(ring.add(at), buf.as_mut_ptr(), first);
            std::ptr::copy_nonoverlapping(ring, buf.as_mut_ptr().add(first), n - first);
        }
    }

    fn inbound(&self) -> &Pair {
        self.seg.pair(self.peer, self.me)
    }

    fn outbound(&self) -> &Pair {
        self.seg.pair(self.me, self.peer)
    }

    fn cap(&self) -> u64 {
        self.seg.layout.ring as u64
    }

    /// Wakes the peer if it announced it is going to sleep.
    fn nudge_peer(&self) {
        fence(Ordering::SeqCst);
        if self.seg.ctl(self.peer).sleeping.load(Ordering::Relaxed) != 0 {
            self.waker.wake(self.peer);
        }
    }

    /// Free bytes in the outbound ring, at least `want` if there are (or any, for 1): as far as
    /// the head last read says, and from the reader's head itself when that leaves less.
    fn room(&self, want: u64) -> u64 {
        if !self.wrote {
            return self.cap();
        }
        let p = self.outbound();
        let tail = p.w.tail.load(Ordering::Relaxed);
        let cap = self.cap();
        let mut free = cap.saturating_sub(tail.wrapping_sub(self.head_seen.get()));
        if free < want {
            let head = p.r.head.load(Ordering::Acquire);
            self.head_seen.set(head);
            free = cap.saturating_sub(tail.wrapping_sub(head));
        }
        free
    }

    /// Whether writing can only fail now (as far as this side knows before its first write).
    /// The reader's closing flag is read only once its control block says it closed a stream
    /// (that line is read after every write anyway, see `nudge_peer`).
    fn write_refused(&self) -> bool {
        self.peer_gone
            || self.write_closed
            || (self.wrote
                && self.seg.ctl(self.peer).closes.load(Ordering::Acquire) != 0
                && self.outbound().r.closed.load(Ordering::Acquire) != 0)
    }
}

impl Stream for ShmStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let cap = self.cap();
        let p = self.inbound();
        // The loan counter before the tail: the writer lends a payload only after its frame
        // header is in the ring, so a loan seen here comes after bytes the tail read below
        // covers. Read the other way round, a loan published in between would be taken ahead of
        // its header.
        let lent_total = p.w.lent_total.load(Ordering::Acquire);
        // The closing flag first: the writer sets it after its last tail, so a tail read after
        // it is final.
        let closed = self.peer_gone || p.w.closed.load(Ordering::Acquire) != 0;
        let tail = p.w.tail.load(Ordering::Acquire);
        let head = p.r.head.load(Ordering::Relaxed);
        let avail = tail.wrapping_sub(head);
        if avail > cap {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "corrupt ring indices"));
        }
        if avail == 0 {
            if tail == 0 && self.peer_said_bye() {
                return Ok(self.read_bye(buf));
            }
            return self.read_lent(buf, closed, lent_total);
        }
        let n = (avail as usize).min(buf.len());
        self.copy_out(head, &mut buf[..n]);
        p.r.head.store(head + n as u64, Ordering::Release);
        self.wake_writer(p, WAIT_ROOM);
        Ok(n)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        if self.says_bye_aside(bufs) && !self.write_refused() {
            // Every stream of this rank says its goodbye last (finalize), so the flag is set once
            // all goodbyes are due; `tail` stays 0, which is how the peer tells the two apart.
            self.seg.ctl(self.me).bye.store(1, Ordering::Release);
            self.bye_aside = true;
            self.nudge_peer();
            return Ok(HEADER_LEN);
        }
        self.wrote = true;
        if self.loan.is_some() {
            // Bytes the reader took before it closed count as sent.
            let res = self.write_lent(bufs);
            if self.write_refused() && would_block(&res) {
                return Err(io::Error::new(io::ErrorKind::BrokenPipe, "the peer reads no more"));
            }
            return res;
        }
        if self.write_refused() {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "the peer reads no more"));
        }
        if let Some(b) = bufs.iter().find(|b| !b.is_empty()) {
            if self.lends(b.len()) {
                // Nothing is in the ring behind the lent bytes: they follow all that is.
                self.loan = Some(Loan::publish(self.outbound(), b));
                self.nudge_peer();
                return self.write_lent(bufs);
            }
        }
        let cap = self.cap();
        let want = bufs.iter().map(|b| b.len() as u64).sum::<u64>().clamp(1, cap);
        let mut room = self.room(want);
        if room == 0 {
            // Ask the reader for a wake-up, then look again (it may have read in between).
            self.outbound().w.waiting.fetch_or(WAIT_ROOM, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            room = self.room(want);
            if room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
        }
        let ring = self.seg.ring(self.me, self.peer);
        let p = self.outbound();
        let mut tail = p.w.tail.load(Ordering::Relaxed);
        let mut written = 0usize;
        for b in bufs {
            if written > 0 && self.lends(b.len()) {
                // Lent by the next write, once what comes before it is in the ring.
                break;
            }
            let mut src: &[u8] = b;
            while !src.is_empty() && room > 0 {
                let at = (tail % cap) as usize;
                let n = src.len().min(room as usize).min(cap as usize - at);
                // SAFETY: [tail, tail + n) is free ring space (room computed from a head the
                // reader published, read with acquire: the reader's head only grows), within the
                // ring's `cap` bytes, and only this writer uses it.
                unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), ring.add(at), n) };
                src = &src[n..];
                tail += n as u64;
                room -= n as u64;
                written += n;
            }
            if room == 0 {
                break;
            }
        }
        p.w.tail.store(tail, Ordering::Release);
        self.nudge_peer();
        Ok(written)
    }

    fn close_write(&mut self) {
        if !self.write_closed {
            self.write_closed = true;
            // After a goodbye through the control block the peer reads the end of the stream
            // right behind it: the pair's page stays untouched.
            if !self.bye_aside {
                self.outbound().w.closed.store(1, Ordering::Release);
                self.nudge_peer();
            }
        }
    }

    fn close(&mut self) {
        if std::mem::replace(&mut self.closed, true) {
            return;
        }
        self.close_write();
        self.payload_moving();
        self.inbound().r.closed.store(1, Ordering::Release);
        // Writers look at the flag above only once this count says there is one to see.
        self.seg.ctl(self.me).closes.fetch_add(1, Ordering::AcqRel);
        // A writer waiting for room must learn that none will come (one that never wrote
        // waits for nothing).
        if self.inbound().w.tail.load(Ordering::Acquire) != 0 {
            self.waker.wake(self.peer);
        }
    }

    /// Bytes in the ring live in memory the peer has mapped: they are delivered once written.
    fn unacked(&self) -> usize {
        0
    }

    fn ready(&self) -> Option<(bool, bool)> {
        let p = self.inbound();
        let input = p.w.tail.load(Ordering::Acquire) != p.r.head.load(Ordering::Relaxed)
            || p.w.closed.load(Ordering::Acquire) != 0
            || self.peer_said_bye()
            || self.peer_gone
            || lend::ready(p);
        let room = match &self.loan {
            Some(loan) => loan.writable(self.outbound()),
            None => self.room(1) > 0,
        };
        Some((input, room || self.write_refused()))
    }

    fn peek(&self, buf: &mut [u8]) -> usize {
        let p = self.inbound();
        let tail = p.w.tail.load(Ordering::Acquire);
        let head = p.r.head.load(Ordering::Relaxed);
        let avail = tail.wrapping_sub(head);
        if avail > self.cap() {
            // Left for `read` to report.
            return 0;
        }
        let n = (avail as usize).min(buf.len());
        self.copy_out(head, &mut buf[..n]);
        avail as usize
    }

    fn take_after(&mut self, skip: usize, buf: &mut [u8]) -> bool {
        let p = self.inbound();
        let tail = p.w.tail.load(Ordering::Acquire);
        let head = p.r.head.load(Ordering::Relaxed);
        let avail = tail.wrapping_sub(head);
        let want = (skip + buf.len()) as u64;
        if avail > self.cap() || avail < want {
            return false;
        }
        self.copy_out(head + skip as u64, buf);
        p.r.head.store(head + want, Ordering::Release);
        self.wake_writer(p, WAIT_ROOM);
        true
    }

    fn peer_exited(&mut self) {
        self.peer_gone = true;
    }

    /// Takes a lent payload back: the reader copies nothing more from its memory (the next
    /// write publishes where it is now).
    fn payload_moving(&mut self) {
        let seg = self.seg.clone();
        if let Some(loan) = self.loan.as_mut() {
            loan.take_back(seg.pair(self.me, self.peer));
        }
    }
}

fn would_block<T>(r: &io::Result<T>) -> bool {
    matches!(r, Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

impl Drop for ShmStream {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::shm::segment::CMA_NO;
    use crate::engine::shm::sys;
    use crate::token::JobToken;
    use std::os::fd::AsFd;

    /// Both ends of the stream from group index 0 to 1 in a fresh two-member segment, with
    /// member 1 reading loans when `cma` says so.
    fn pair(cma: u32) -> (ShmStream, ShmStream) {
        let fd = sys::memfd().expect("memfd");
        let seg = Arc::new(Segment::map(fd.as_fd(), 2).expect("map"));
        seg.ctl(1).cma.store(cma, Ordering::Release);
        let waker = Arc::new(Waker::new(JobToken::generate(), &[0, 1]).expect("waker"));
        let pid = std::process::id();
        let w = ShmStream::new(seg.clone(), waker.clone(), (0, 1), pid, lend::LEND_MIN);
        let r = ShmStream::new(seg, waker, (1, 0), pid, lend::LEND_MIN);
        (w, r)
    }

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 4096) as u8).collect()
    }

    #[test]
    fn a_large_payload_is_read_from_the_writers_memory_and_completes_when_taken() {
        let (mut w, mut r) = pair(CMA_YES);
        let hdr = [9u8; 16];
        let payload = pattern(1 << 20);
        let iov = [IoSlice::new(&hdr), IoSlice::new(&payload)];
        // The header goes through the ring; the payload is lent by the next write.
        assert_eq!(w.write_vectored(&iov).unwrap(), 16);
        assert!(would_block(&w.write_vectored(&iov[1..])), "nothing taken yet");
        assert!(r.ready().unwrap().0);
        let mut got = vec![0u8; 16];
        assert_eq!(r.read(&mut got).unwrap(), 16);
        assert_eq!(got, hdr);
        let mut got = vec![0u8; payload.len()];
        let mut filled = 0;
        while filled < got.len() {
            filled += r.read(&mut got[filled..]).unwrap();
        }
        assert!(got == payload, "the lent bytes arrive intact");
        assert!(w.ready().unwrap().1, "the writer may report progress");
        assert_eq!(w.write_vectored(&iov[1..]).unwrap(), payload.len());
        assert!(w.loan.is_none());
        assert_eq!(w.outbound().w.lent_total.load(Ordering::Relaxed), payload.len() as u64);
        assert_eq!(w.outbound().w.tail.load(Ordering::Relaxed), 16, "no payload in the ring");
        // Afterwards small frames go through the ring again, behind the lent bytes.
        assert_eq!(w.write_vectored(&[IoSlice::new(&hdr)]).unwrap(), 16);
        assert_eq!(r.read(&mut got[..64]).unwrap(), 16);
    }

    #[test]
    fn lent_memory_taken_back_mid_read_is_read_from_where_it_moved() {
        let (mut w, mut r) = pair(CMA_YES);
        let n = 256 << 10;
        let mut old = pattern(n);
        assert!(would_block(&w.write_vectored(&[IoSlice::new(&old)])));
        let mut got = vec![0u8; n];
        assert_eq!(r.read(&mut got[..100_000]).unwrap(), 100_000);
        // The engine copies the payload out of caller memory that is released next.
        w.payload_moving();
        let moved = old.clone();
        old.iter_mut().for_each(|b| *b = 0xEE);
        assert!(would_block(&r.read(&mut got[100_000..])), "nothing to read while taken back");
        assert!(!r.ready().unwrap().0);
        // The engine presents the payload again from where its last report left it (0).
        assert_eq!(w.write_vectored(&[IoSlice::new(&moved)]).unwrap(), 100_000);
        let mut filled = 100_000;
        while filled < n {
            filled += r.read(&mut got[filled..]).unwrap();
        }
        assert!(got == pattern(n), "nothing of the released memory is used");
        assert_eq!(w.write_vectored(&[IoSlice::new(&moved[100_000..])]).unwrap(), n - 100_000);
        assert!(w.loan.is_none());
    }

    #[test]
    fn a_reader_that_refused_loans_gets_payloads_through_the_ring() {
        let (mut w, mut r) = pair(CMA_NO);
        let payload = pattern(200_000);
        let mut sent = 0;
        let mut got = vec![0u8; payload.len()];
        let mut filled = 0;
        while filled < payload.len() {
            if sent < payload.len() {
                sent += w.write_vectored(&[IoSlice::new(&payload[sent..])]).unwrap();
            }
            filled += r.read(&mut got[filled..]).unwrap();
        }
        assert!(got == payload);
        assert_eq!(w.outbound().w.lent_total.load(Ordering::Relaxed), 0, "nothing was lent");
    }

    #[test]
    fn a_goodbye_to_a_ring_never_written_leaves_it_untouched() {
        let (mut w, mut r) = pair(CMA_YES);
        let bye = goodbye();
        assert_eq!(
            w.write_vectored(&[IoSlice::new(&bye[..10]), IoSlice::new(&bye[10..])]).unwrap(),
            HEADER_LEN
        );
        w.close_write();
        assert_eq!(w.outbound().w.tail.load(Ordering::Relaxed), 0);
        assert_eq!(w.outbound().w.closed.load(Ordering::Relaxed), 0);
        assert!(r.ready().unwrap().0);
        let mut got = [0u8; 64];
        assert_eq!(r.read(&mut got[..5]).unwrap(), 5);
        assert_eq!(r.read(&mut got[5..]).unwrap(), HEADER_LEN - 5);
        assert_eq!(got[..HEADER_LEN], bye);
        assert_eq!(r.read(&mut got).unwrap(), 0, "then the end of the stream");
        // A goodbye after other bytes goes through the ring, and the flag does not apply.
        let (mut w, mut r) = pair(CMA_YES);
        assert_eq!(w.write_vectored(&[IoSlice::new(&[1, 2, 3])]).unwrap(), 3);
        assert_eq!(w.write_vectored(&[IoSlice::new(&bye)]).unwrap(), HEADER_LEN);
        assert_eq!(w.outbound().w.tail.load(Ordering::Relaxed), 3 + HEADER_LEN as u64);
        assert_eq!(r.read(&mut got).unwrap(), 3 + HEADER_LEN);
        assert!(would_block(&r.read(&mut got)));
    }

    #[test]
    fn a_writer_finds_room_again_once_the_reader_has_read_and_fails_once_it_closed() {
        let (mut w, mut r) = pair(CMA_NO);
        let cap = w.cap() as usize;
        let chunk = pattern(cap / 4 + 7);
        let mut got = vec![0u8; cap];
        // Several rounds of filling the ring and draining it: each time the writer's view of
        // the head is too old to leave room, so it must read the reader's head again.
        let mut sent_total = 0u64;
        for round in 0..5 {
            let mut sent = 0;
            loop {
                match w.write_vectored(&[IoSlice::new(&chunk)]) {
                    Ok(n) => sent += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("round {round}: {e}"),
                }
            }
            assert_eq!(sent, cap, "round {round}: the whole ring is used");
            assert!(!w.ready().unwrap().1, "round {round}: no room while full");
            let mut filled = 0;
            while filled < cap {
                filled += r.read(&mut got[filled..]).unwrap();
            }
            for (i, b) in got.iter().enumerate() {
                let at = (sent_total as usize + i) % chunk.len();
                assert_eq!(*b, chunk[at], "round {round}: byte {i}");
            }
            sent_total += cap as u64;
            assert!(w.ready().unwrap().1, "round {round}: room again once read");
            // Keep the stream aligned with the chunk for the check above.
            let rest = chunk.len() - (sent_total as usize % chunk.len());
            if rest != chunk.len() {
                let n = w.write_vectored(&[IoSlice::new(&chunk[chunk.len() - rest..])]).unwrap();
                assert_eq!(n, rest);
                let mut tail = vec![0u8; rest];
                let mut filled = 0;
                while filled < rest {
                    filled += r.read(&mut tail[filled..]).unwrap();
                }
                sent_total += rest as u64;
            }
        }
        // The reader closes: the writer, which has room by its own count, is refused.
        r.close();
        let err = w.write_vectored(&[IoSlice::new(&chunk[..8])]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }

    #[test]
    fn a_closing_writer_takes_its_loan_back_and_the_stream_ends() {
        let (mut w, mut r) = pair(CMA_YES);
        let payload = pattern(1 << 20);
        assert!(would_block(&w.write_vectored(&[IoSlice::new(&payload)])));
        w.close();
        let mut got = vec![0u8; 1024];
        assert_eq!(r.read(&mut got).unwrap(), 0, "end of stream, nothing read from the loan");
    }

    #[test]
    fn headers_and_lent_payloads_arrive_in_stream_order_across_threads() {
        // A reader polling an empty ring while the writer puts a header into the ring and lends
        // the payload right after must never take the payload ahead of the header.
        let (mut w, mut r) = pair(CMA_YES);
        const MSGS: usize = 3000;
        let len = lend::LEND_MIN;
        let writer = std::thread::spawn(move || {
            let payload = vec![0u8; len];
            for i in 0..MSGS {
                let hdr = [(i % 251) as u8 + 1; 16];
                let mut off = 0;
                while off < 16 + len {
                    let sent = if off < 16 {
                        w.write_vectored(&[IoSlice::new(&hdr[off..]), IoSlice::new(&payload)])
                    } else {
                        // The engine presents what is left of the payload.
                        w.write_vectored(&[IoSlice::new(&payload[off - 16..])])
                    };
                    match sent {
                        Ok(n) => off += n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::hint::spin_loop(),
                        Err(e) => panic!("write: {e}"),
                    }
                }
            }
            w
        });
        let mut got = vec![0u8; 16 + len];
        for i in 0..MSGS {
            let mut filled = 0;
            while filled < got.len() {
                match r.read(&mut got[filled..]) {
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::hint::spin_loop(),
                    Err(e) => panic!("read: {e}"),
                }
            }
            let want = (i % 251) as u8 + 1;
            assert!(got[..16].iter().all(|&b| b == want), "message {i}: header out of order");
            assert!(got[16..].iter().all(|&b| b == 0), "message {i}: payload out of order");
        }
        writer.join().unwrap();
    }
}
