//! A shared-memory [`Stream`]: two single-producer/single-consumer byte rings in the segment,
//! one each way. The writer copies bytes in and then publishes its tail (release); the reader
//! sees the tail (acquire), copies out and publishes its head. A reader never sees a byte that
//! is not completely written, whatever happens to the writer.

use std::io::{self, IoSlice};
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;

use super::segment::{Pair, Segment};
use super::wake::Waker;
use crate::engine::stream::Stream;

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
}

impl ShmStream {
    pub(crate) fn new(seg: Arc<Segment>, waker: Arc<Waker>, me: usize, peer: usize) -> Self {
        ShmStream {
            seg,
            waker,
            me,
            peer,
            peer_gone: false,
            write_closed: false,
            closed: false,
            wrote: false,
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

    /// Free bytes in the outbound ring.
    fn room(&self) -> u64 {
        if !self.wrote {
            return self.cap();
        }
        let p = self.outbound();
        let used = p.w.tail.load(Ordering::Relaxed).wrapping_sub(p.r.head.load(Ordering::Acquire));
        self.cap().saturating_sub(used)
    }

    /// Whether writing can only fail now (as far as this side knows before its first write).
    fn write_refused(&self) -> bool {
        self.peer_gone
            || self.write_closed
            || (self.wrote && self.outbound().r.closed.load(Ordering::Acquire) != 0)
    }
}

impl Stream for ShmStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let cap = self.cap();
        let ring = self.seg.ring(self.peer, self.me);
        let p = self.inbound();
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
            return if closed { Ok(0) } else { Err(io::ErrorKind::WouldBlock.into()) };
        }
        let n = (avail as usize).min(buf.len());
        let at = (head % cap) as usize;
        let first = n.min(cap as usize - at);
        // SAFETY: bytes [head, head + n) of the ring are published by the writer (acquire above)
        // and are not touched by it until our head passes them; `ring` has `cap` bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(ring.add(at), buf.as_mut_ptr(), first);
            std::ptr::copy_nonoverlapping(ring, buf.as_mut_ptr().add(first), n - first);
        }
        p.r.head.store(head + n as u64, Ordering::Release);
        fence(Ordering::SeqCst);
        if p.w.waiting.load(Ordering::Relaxed) != 0 && p.w.waiting.swap(0, Ordering::AcqRel) != 0 {
            self.waker.wake(self.peer);
        }
        Ok(n)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.wrote = true;
        if self.write_refused() {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "the peer reads no more"));
        }
        let cap = self.cap();
        let mut room = self.room();
        if room == 0 {
            // Ask the reader for a wake-up, then look again (it may have read in between).
            self.outbound().w.waiting.store(1, Ordering::SeqCst);
            room = self.room();
            if room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
        }
        let ring = self.seg.ring(self.me, self.peer);
        let p = self.outbound();
        let mut tail = p.w.tail.load(Ordering::Relaxed);
        let mut written = 0usize;
        for b in bufs {
            let mut src: &[u8] = b;
            while !src.is_empty() && room > 0 {
                let at = (tail % cap) as usize;
                let n = src.len().min(room as usize).min(cap as usize - at);
                // SAFETY: [tail, tail + n) is free ring space (room computed from the reader's
                // head with acquire), within the ring's `cap` bytes, and only this writer uses it.
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
            self.outbound().w.closed.store(1, Ordering::Release);
            self.nudge_peer();
        }
    }

    fn close(&mut self) {
        if std::mem::replace(&mut self.closed, true) {
            return;
        }
        self.close_write();
        self.inbound().r.closed.store(1, Ordering::Release);
        // A writer waiting for room must learn that none will come.
        self.waker.wake(self.peer);
    }

    /// Bytes in the ring live in memory the peer has mapped: they are delivered once written.
    fn unacked(&self) -> usize {
        0
    }

    fn ready(&self) -> Option<(bool, bool)> {
        let p = self.inbound();
        let input = p.w.tail.load(Ordering::Acquire) != p.r.head.load(Ordering::Relaxed)
            || p.w.closed.load(Ordering::Acquire) != 0
            || self.peer_gone;
        Some((input, self.room() > 0 || self.write_refused()))
    }

    fn peer_exited(&mut self) {
        self.peer_gone = true;
    }
}

impl Drop for ShmStream {
    fn drop(&mut self) {
        self.close();
    }
}
