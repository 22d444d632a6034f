//! The wait loop: a waiting thread makes progress itself, polls for a while as the host's load
//! allows (see [`Polling`]), then sleeps in the poller, or on a condition variable while another
//! thread holds the poller. With local peers, it polls by watching their cache lines between
//! progress passes (see [`shm::Lookout`]). What the poller reports is recorded here too: socket readiness, a
//! local peer's exit (its pidfd) and wake-ups from local peers.

use std::io;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mio::Events;

use super::connect::Connector;
use super::framing::Conn;
use super::polling::Polling;
use super::shm;
use super::state::State;
use super::{lock, Engine, MAX_SLEEP};
use crate::error::{Error, Result};

/// While spinning with local peers, how many progress passes per poller call.
const SHM_PASSES_PER_POLL: u32 = 16;

/// While busily spinning with local peers, how many looks at their cache lines per progress
/// pass (and per clock read) when nothing changes.
const BUSY_LOOKS: u32 = 128;

/// The same while yielding the core after every look: one (a yield costs more than a pass, and
/// with more ranks than cores the pass after each yield is what the policy was measured with).
const YIELDING_LOOKS: u32 = 1;

/// While busily spinning, the most one stretch between two clock reads counts against the spin:
/// a longer one means the thread was not running (another task had the core) or was moving
/// bytes, and neither is polling. So a preempted rank still polls for its whole spin once it
/// runs again, instead of going to sleep just as its peer is about to answer.
const MAX_STRETCH: Duration = Duration::from_micros(10);

impl Engine {
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
        check: impl FnMut(&mut State) -> Option<Result<R>>,
    ) -> Result<R> {
        self.wait_focused(deadline, max_sleep, None, what, check)
    }

    /// [`wait_with`](Self::wait_with) for the condition that request `req` completes, when
    /// given: if it is a receive from one local peer, a polling rank watches only that peer's
    /// inbound line between passes (the others' news waits for the next pass, at most
    /// [`BUSY_LOOKS`] looks away).
    pub(crate) fn wait_focused<R>(
        &self,
        deadline: Option<Instant>,
        max_sleep: Duration,
        req: Option<super::ReqId>,
        what: impl Fn() -> String,
        mut check: impl FnMut(&mut State) -> Option<Result<R>>,
    ) -> Result<R> {
        // The one local peer to watch (its group index, and its rank), once the first look
        // found the condition unmet.
        let (mut focus, mut source) = (None, None);
        // Set once the condition did not hold at the first look: when the wait began, and how
        // it polls (the host's load is read only by a wait that polls).
        let mut began: Option<(Instant, Polling, Duration)> = None;
        // Time spent polling so far (see MAX_STRETCH), and when it was last counted.
        let (mut polled_for, mut counted) = (Duration::ZERO, None);
        let mut polls = 0u32;
        // Whether the poller just made a pass (then the condition is checked before another one,
        // so an unclaimed message is offered to this caller first).
        let mut fresh = false;
        loop {
            let (seen, backlog, sending) = {
                let mut st = lock(&self.state);
                // The condition may hold already (a send written at once, a receive that
                // matched when it was posted): then it is taken without a pass or a clock read.
                if began.is_none() {
                    if let Some(r) = check(&mut st) {
                        return r;
                    }
                    if let (Some(id), Some(l)) = (req, &self.lookout) {
                        source = st.shm_source(id);
                        focus = source.and_then(|r| l.index_of(r));
                    }
                }
                // What the local peers' words say before this pass: a change after it is news.
                let seen = self.lookout.as_ref().map(|l| l.sight(st.shm_sending(), focus));
                // A frame from the one peer watched goes straight to its receive when it can
                // (see `express`); anything else takes a pass.
                if !std::mem::take(&mut fresh) && !source.is_some_and(|r| st.express(r)) {
                    st.progress();
                }
                if let Some(r) = check(&mut st) {
                    return r;
                }
                (seen, st.conns.iter().flatten().any(Conn::has_backlog), st.shm_sending())
            };
            let now = Instant::now();
            let (start, polling, spin) = *began.get_or_insert_with(|| {
                let local = (self.ranks_on_host, self.lookout.is_some());
                let (p, s) = self.polling.policy(self.spin, local, now);
                (now, p, s)
            });
            // Busy polling still yields now and then (every so many passes, never while
            // watching the peers' lines); yielding polling after every look.
            let (yield_every, looks, watch_yield) = match polling {
                Polling::Busy => (64, BUSY_LOOKS, u32::MAX),
                Polling::Yielding => (1, YIELDING_LOOKS, 1),
                Polling::None => (1, 1, 1),
            };
            // Input left behind by the last pass (a read budget used up, a payload held back
            // for a receive) raises no new event: look again without sleeping.
            let mut sleep = if backlog { Duration::ZERO } else { max_sleep };
            if let Some(d) = deadline {
                if now >= d {
                    return Err(Error::Timeout { after: now - start, what: what() });
                }
                sleep = sleep.min(d - now);
            }
            let stretch = now - counted.unwrap_or(now);
            counted = Some(now);
            polled_for += match polling {
                Polling::Busy => stretch.min(MAX_STRETCH),
                // Yielding hands the core on by design: the time away counts.
                Polling::Yielding | Polling::None => stretch,
            };
            let spinning = polled_for < spin;
            if spinning {
                sleep = Duration::ZERO;
            }
            if let (true, Some(l), Some(seen)) = (spinning, &self.lookout, seen) {
                // Shared memory needs no system call to look at: watch the peers' cache lines
                // until they change (or a while passes), and ask the kernel about sockets,
                // pidfds and wake-ups only every few passes.
                polls += 1;
                if polls % SHM_PASSES_PER_POLL != 0 {
                    if !backlog {
                        l.watch(seen, (sending, focus), looks, watch_yield);
                    } else if polls % yield_every == 0 {
                        std::thread::yield_now();
                    }
                    continue;
                }
            }
            match self.poller.try_lock() {
                Ok(mut p) => {
                    let p = &mut *p;
                    // Before sleeping, ask local peers for a wake-up, then look once more.
                    let bell = self.bell.as_ref().filter(|_| !sleep.is_zero());
                    if let Some(b) = bell {
                        b.arm();
                        if lock(&self.state).shm_pending() {
                            sleep = Duration::ZERO;
                        }
                    }
                    let polled = p.poll.poll(&mut p.events, Some(sleep));
                    if let Some(b) = bell {
                        b.disarm();
                    }
                    match polled {
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
}

impl State {
    /// Records what the poller reported.
    pub(super) fn mark(&mut self, events: &Events) {
        let size = self.conns.len();
        for ev in events.iter() {
            let t = ev.token().0;
            if ev.token() == shm::WAKE {
                if let Some(g) = &self.shm {
                    g.drain_wakes();
                }
                continue;
            }
            if ev.token() == Connector::token(size) {
                if let Some(c) = &mut self.connect {
                    c.poke();
                }
                continue;
            }
            if t >= size {
                // A local peer's process exited: its stream ends after what it wrote.
                if let Some(Some(c)) = self.conns.get_mut(t - size) {
                    c.stream.peer_exited();
                    c.readable = true;
                    c.writable = true;
                }
                continue;
            }
            if let Some(Some(c)) = self.conns.get_mut(t) {
                if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                    c.readable = true;
                }
                if ev.is_read_closed() || ev.is_error() {
                    c.ended = true;
                }
                if ev.is_writable() || ev.is_write_closed() || ev.is_error() {
                    c.writable = true;
                }
            }
        }
    }
}
