//! Shared memory between the ranks of one host: per-pair byte rings in one segment (see
//! `docs/shared-memory.md`), offered to the engine as [`Stream`]s like TCP
//! connections, so matching, framing and failure handling are the same for both.
//!
//! * [`host`]: which ranks are on one host (kernel identity, never host names).
//! * [`segment`]: the segment's layout and mapping.
//! * [`ring`]: the stream over a pair of rings.
//! * [`lend`]: large payloads read straight from the sender's memory (one copy).
//! * [`sys`]: the system calls behind all of these.
//! * [`wake`]: waking a rank that sleeps in its poller.
//! * [`boot`]: creating and mapping the segment at start-up.
//!
//! A local peer's death is seen through a pidfd in the poller (a process that exits, however it
//! exits, makes it readable); between threads of one process, through the flags a dropped
//! engine sets in the rings.

mod boot;
mod host;
mod lend;
mod ring;
mod segment;
mod sys;
mod wake;

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;

use mio::unix::SourceFd;

use super::stream::Stream;
use mio::{Interest, Registry, Token};

pub(crate) use boot::{join, members, Offer};
use ring::ShmStream;
use segment::Segment;
use wake::Waker;

/// The poller token of the wake socket.
pub(crate) const WAKE: Token = Token(usize::MAX);

/// The poller token of the pidfd of world rank `r` in a world of `size`.
pub(crate) fn pid_token(size: usize, r: usize) -> Token {
    Token(size + r)
}

/// This rank's membership in its host's group.
#[derive(Debug)]
pub(crate) struct Group {
    seg: Arc<Segment>,
    waker: Arc<Waker>,
    /// World ranks, by group index.
    members: Vec<usize>,
    /// This rank's group index.
    me: usize,
    inbox: mio::net::UnixDatagram,
    /// Death watches of members in other processes: (world rank, pidfd).
    pidfds: Vec<(usize, OwnedFd)>,
    /// Members whose process had exited before it could be watched.
    exited: Vec<usize>,
    /// Process ids, by group index.
    pids: Vec<u32>,
    /// The eager credit each member grants this rank (its offer's grant), by group index.
    grants: Vec<u64>,
    /// Payload slices from this size on are lent to peers that read loans (0: never).
    lend_min: usize,
}

impl Group {
    /// The world ranks reached through shared memory, this one included.
    pub(crate) fn members(&self) -> &[usize] {
        &self.members
    }

    /// The eager credit world rank `r`, a member, grants this rank (0 for a non-member).
    pub(crate) fn grant_of(&self, r: usize) -> u64 {
        let i = self.members.iter().position(|m| *m == r);
        i.and_then(|i| self.grants.get(i).copied()).unwrap_or(0)
    }

    /// A stream to each other member: (world rank, stream).
    pub(crate) fn streams(&self) -> Vec<(usize, Box<dyn Stream>)> {
        let mut out: Vec<(usize, Box<dyn Stream>)> = Vec::new();
        for (i, r) in self.members.iter().enumerate() {
            if i != self.me {
                let pid = self.pids.get(i).copied().unwrap_or(0);
                let (seg, waker) = (self.seg.clone(), self.waker.clone());
                let mut s = ShmStream::new(seg, waker, (self.me, i), pid, self.lend_min);
                if self.exited.contains(r) {
                    s.peer_exited();
                }
                out.push((*r, Box::new(s)));
            }
        }
        out
    }

    /// Registers the wake socket and the death watches with the poller.
    pub(crate) fn register(&mut self, registry: &Registry, size: usize) -> io::Result<()> {
        registry.register(&mut self.inbox, WAKE, Interest::READABLE)?;
        for (r, fd) in &self.pidfds {
            let raw = fd.as_raw_fd();
            registry.register(&mut SourceFd(&raw), pid_token(size, *r), Interest::READABLE)?;
        }
        Ok(())
    }

    /// Takes the pending wake-ups.
    pub(crate) fn drain_wakes(&self) {
        wake::drain(&self.inbox);
    }

    /// The flag through which this rank asks to be woken.
    pub(crate) fn bell(&self) -> Bell {
        Bell { seg: self.seg.clone(), me: self.me }
    }

    /// What a polling rank watches between progress passes.
    pub(crate) fn lookout(&self) -> Lookout {
        let peers = (0..self.members.len()).filter(|i| *i != self.me).collect();
        Lookout { seg: self.seg.clone(), me: self.me, peers, members: self.members.clone() }
    }
}

/// The words of the segment that change when a local peer gives this rank something to do: per
/// peer, the writer's cache line of the inbound ring (its tail, loan and closing flag) and,
/// when this rank has sends queued, the reader's line of the outbound one (room and lent bytes
/// taken). A polling rank compares a digest of them with one taken before its last progress
/// pass, which reads one cache line per peer (two with sends queued) and no clock, instead of
/// making a whole pass under the state lock.
///
/// Anything else that can change (a goodbye through a control block, a socket, another thread of
/// this process) is seen by the next progress pass, which the caller makes after a bounded
/// number of looks at the latest.
#[derive(Debug)]
pub(crate) struct Lookout {
    seg: Arc<Segment>,
    me: usize,
    /// Group indices of the other members.
    peers: Vec<usize>,
    /// World ranks, by group index.
    members: Vec<usize>,
}

/// A digest of the words a [`Lookout`] watches: (inbound, outbound when sends are queued). The
/// inbound digest covers every other member, or only the one a wait focuses on (see
/// [`Lookout::watch`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Sighting(u64, Option<u64>);

/// Folds `v` into the digest `h` (each step a multiplication by an odd constant, so a change of
/// any one word changes the digest).
fn fold(h: u64, v: u64) -> u64 {
    (h ^ v).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29)
}

impl Lookout {
    /// The digest of the watched words now; the outbound ones only when `sending` (the
    /// readers' lines move between the cores with every message read, and a rank that sends
    /// nothing has nothing to learn from them).
    /// With `focus` (a group index), the inbound words of that member only.
    pub(crate) fn sight(&self, sending: bool, focus: Option<usize>) -> Sighting {
        Sighting(self.inbound(focus), sending.then(|| self.outbound()))
    }

    /// The group index of world rank `rank`, if it is another member.
    pub(crate) fn index_of(&self, rank: usize) -> Option<usize> {
        self.members.iter().position(|r| *r == rank).filter(|i| *i != self.me)
    }

    fn inbound(&self, focus: Option<usize>) -> u64 {
        let line = |h: u64, i: usize| {
            let w = &self.seg.pair(i, self.me).w;
            let h = fold(h, w.tail.load(Ordering::Acquire));
            let h = fold(h, w.lent_total.load(Ordering::Acquire));
            let h = fold(h, w.lent_addr.load(Ordering::Acquire));
            fold(h, u64::from(w.closed.load(Ordering::Acquire)))
        };
        match focus {
            Some(i) => line(0, i),
            None => self.peers.iter().fold(0, |h, &i| line(h, i)),
        }
    }

    fn outbound(&self) -> u64 {
        self.peers.iter().fold(0, |h, &i| {
            let r = &self.seg.pair(self.me, i).r;
            let h = fold(h, r.head.load(Ordering::Acquire));
            let h = fold(h, r.taken.load(Ordering::Acquire));
            fold(h, u64::from(r.closed.load(Ordering::Acquire)))
        })
    }

    /// Looks at the watched words up to `looks` times, yielding the core after every
    /// `yield_every` looks, and says whether they changed since `since` (then a progress pass
    /// has something to find; the outbound words count only when `sending`; the inbound ones
    /// of the member `focus` only, when given, as for `since`). While focused, every look also
    /// prefetches the ring lines that member writes next (see [`NextLines::prefetch`]).
    pub(crate) fn watch(
        &self,
        since: Sighting,
        (sending, focus): (bool, Option<usize>),
        looks: u32,
        yield_every: u32,
    ) -> bool {
        if sending && since.1.is_none() {
            // Sends were queued after the sighting: a pass takes a new one.
            return true;
        }
        let next = focus.map(|i| self.next_lines(i));
        for n in 1..=looks {
            if let Some(lines) = next {
                lines.prefetch();
            }
            if self.inbound(focus) != since.0 || (sending && Some(self.outbound()) != since.1) {
                return true;
            }
            if n % yield_every.max(1) == 0 {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        false
    }
}

impl Lookout {
    /// The cache lines of the ring from member `i` where its next bytes land (the line at this
    /// rank's head and the one after it: a small frame may straddle them).
    fn next_lines(&self, i: usize) -> NextLines {
        let cap = self.seg.layout.ring;
        let head = self.seg.pair(i, self.me).r.head.load(Ordering::Relaxed);
        let at = (head % cap as u64) as usize & !(LINE - 1);
        let ring = self.seg.ring(i, self.me);
        // Both lie inside the ring's `cap` bytes (`at < cap`, the second only when below it).
        let first = ring.wrapping_add(at).cast_const();
        let second = (at + LINE < cap).then(|| ring.wrapping_add(at + LINE).cast_const());
        NextLines(first, second)
    }
}

/// A cache line's size, as the segment's layout assumes it.
const LINE: usize = 64;

/// The ring lines a frame from a watched peer is written to next (see [`NextLines::prefetch`]).
#[derive(Clone, Copy)]
struct NextLines(*const u8, Option<*const u8>);

impl NextLines {
    /// Asks the processor to bring the lines into this core's cache while the watch looks at
    /// the peer's tail: the writer copies a frame there before it publishes its tail, so when
    /// the tail moves, the bytes behind it are already here (or on their way) instead of a
    /// second cache miss after the first. A prefetch is only a hint: it reads no value, never
    /// faults, and does nothing for a page of the ring never written (lazy rings stay
    /// unallocated).
    fn prefetch(self) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            // SAFETY: prefetching is a hint with no effect on memory or program state; the
            // addresses are inside the mapping (see `next_lines`).
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(self.0.cast());
                if let Some(p) = self.1 {
                    _mm_prefetch::<_MM_HINT_T0>(p.cast());
                }
            }
        }
    }
}

/// This rank's "wake me" flag in the segment.
#[derive(Debug)]
pub(crate) struct Bell {
    seg: Arc<Segment>,
    me: usize,
}

impl Bell {
    /// Announces that this rank is going to sleep: from now on, a local peer that gives it work
    /// wakes it. The caller looks for work once more afterwards, then sleeps.
    pub(crate) fn arm(&self) {
        self.seg.ctl(self.me).sleeping.store(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }

    /// This rank is awake again.
    pub(crate) fn disarm(&self) {
        self.seg.ctl(self.me).sleeping.store(0, Ordering::Relaxed);
    }
}
