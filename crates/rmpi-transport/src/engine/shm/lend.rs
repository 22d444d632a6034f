//! Single-copy transfers: instead of copying a large payload into the ring, the writer *lends*
//! it: it publishes the payload's address and length in the pair's control block, and the
//! reader copies the bytes straight from the writer's memory into its destination with
//! `process_vm_readv` (one copy instead of two). The lent bytes sit in the stream right after
//! everything the ring holds; the writer writes nothing more until they are all taken, and only
//! then reports them written, so the send completes (and the caller's buffer is released) once
//! the reader has them. See `docs/shared-memory.md` for the protocol.

use std::io;
use std::sync::atomic::{fence, Ordering};

use super::segment::{Pair, WAIT_LOAN};
use super::sys;

/// The smallest payload slice ever lent.
pub(crate) const LEND_MIN: usize = 32 << 10;

/// Payload slices from this size on are lent rather than copied through a ring of `ring`
/// bytes: those at least four times the ring's size (and [`LEND_MIN`]). Below that, two copies
/// through the ring, pipelined and in cache, beat one `process_vm_readv` (a system call that
/// walks and pins the writer's pages, with the writer idle until it is done); above it, a
/// payload would pass through the ring in many rounds, each a hand-over between the two ranks
/// (on a crowded host, a context switch), where one loan moves it all
/// (docs/shared-memory.md, "Large messages").
pub(crate) fn lend_from(ring: usize) -> usize {
    ring.saturating_mul(4).max(LEND_MIN)
}

/// What the writer knows of its current loan.
#[derive(Debug)]
pub(super) struct Loan {
    /// Where the first lent byte is in the memory published now (the part not yet reported
    /// written starts at `base + reported`).
    base: u64,
    len: u64,
    /// `lent_total` before this loan.
    start: u64,
    /// Bytes of it already reported written to the engine.
    reported: u64,
    /// The memory was taken back (it is about to move); the next write publishes where it is.
    moved: bool,
}

impl Loan {
    /// Lends `b` through `p`.
    pub(super) fn publish(p: &Pair, b: &[u8]) -> Loan {
        let start = p.w.lent_total.load(Ordering::Relaxed);
        let (base, len) = (b.as_ptr() as u64, b.len() as u64);
        p.w.lent_addr.store(base, Ordering::Relaxed);
        p.w.lent_len.store(len, Ordering::Relaxed);
        p.w.lent_total.store(start + len, Ordering::Release);
        Loan { base, len, start, reported: 0, moved: false }
    }

    /// Bytes of this loan the reader has taken.
    fn taken(&self, p: &Pair) -> u64 {
        p.r.taken.load(Ordering::Acquire).saturating_sub(self.start).min(self.len)
    }

    /// Bytes taken but not yet reported written (reporting them now).
    fn advance(&mut self, p: &Pair) -> u64 {
        let taken = self.taken(p);
        let n = taken.saturating_sub(self.reported);
        self.reported = taken;
        n
    }

    /// Whether the next write has something to do: report progress or publish moved memory.
    pub(super) fn writable(&self, p: &Pair) -> bool {
        self.moved || self.taken(p) > self.reported
    }

    /// Whether the memory is taken back and not yet published again.
    pub(super) fn is_moved(&self) -> bool {
        self.moved
    }

    /// Whether every lent byte has been reported written.
    pub(super) fn done(&self) -> bool {
        self.reported == self.len
    }

    /// Takes the memory back: once this returns, the reader uses no byte it reads from it.
    pub(super) fn take_back(&mut self, p: &Pair) {
        p.w.lent_addr.store(0, Ordering::SeqCst);
        p.w.lent_gen.fetch_add(1, Ordering::SeqCst);
        self.moved = true;
    }

    /// A write while lending: `rest` is what the engine still has to send of the lent slice
    /// (it presents the same payload again, from where the last report left it). Returns the
    /// bytes newly taken, `Ok(None)` when there are none yet.
    pub(super) fn write(&mut self, p: &Pair, rest: &[u8]) -> io::Result<Option<u64>> {
        if rest.len() as u64 != self.len - self.reported {
            return Err(io::Error::other(format!(
                "the lent payload changed length ({} bytes left, {} presented)",
                self.len - self.reported,
                rest.len()
            )));
        }
        let at = rest.as_ptr() as u64;
        if self.moved || at != self.base.wrapping_add(self.reported) {
            if !self.moved {
                self.take_back(p);
            }
            // The reader reads `base + offset` for offsets at or past `reported`.
            self.base = at.wrapping_sub(self.reported);
            p.w.lent_addr.store(self.base, Ordering::SeqCst);
            self.moved = false;
        }
        let n = self.advance(p);
        if n > 0 {
            return Ok(Some(n));
        }
        // Ask the reader for a wake-up, then look again (it may have taken some in between).
        p.w.waiting.fetch_or(WAIT_LOAN, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        let n = self.advance(p);
        Ok((n > 0).then_some(n))
    }
}

/// What a reader found lent.
pub(super) enum Lent {
    /// Nothing is lent.
    Nothing,
    /// A loan whose memory is taken back for a moment: look again when woken.
    Wait,
    /// This many bytes were copied into the buffer.
    Read(usize),
    /// The writer's process is gone.
    Gone,
}

/// Whether `p` holds lent bytes the reader can take now.
pub(super) fn ready(p: &Pair) -> bool {
    p.w.lent_total.load(Ordering::Acquire) != p.r.taken.load(Ordering::Relaxed)
        && p.w.lent_addr.load(Ordering::Acquire) != 0
}

/// Copies lent bytes of the writer `pid` through `p` into `buf` (the reader's side). `total` is
/// `lent_total` as the reader loaded it (acquire) before the ring's tail: only a loan published
/// by then may be read, since one published later may belong behind ring bytes not yet read.
/// (The writer publishes no further loan until this one is taken, so the current loan's length
/// and address belong to `total`.)
pub(super) fn read(p: &Pair, pid: u32, buf: &mut [u8], total: u64) -> io::Result<Lent> {
    let taken = p.r.taken.load(Ordering::Relaxed);
    if total == taken || buf.is_empty() {
        return Ok(Lent::Nothing);
    }
    let len = p.w.lent_len.load(Ordering::Relaxed);
    let off = taken.wrapping_sub(total.wrapping_sub(len));
    if total < taken || off >= len {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "corrupt loan counters"));
    }
    let gen = p.w.lent_gen.load(Ordering::SeqCst);
    let base = p.w.lent_addr.load(Ordering::SeqCst);
    if base == 0 {
        return Ok(Lent::Wait);
    }
    let want = buf.len().min((len - off) as usize);
    let n = match sys::read_process(pid, base.wrapping_add(off), &mut buf[..want]) {
        Ok(n) => n,
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(Lent::Gone),
        Err(e) if e.raw_os_error() == Some(libc::EFAULT) => {
            return Err(io::Error::other(format!(
                "reading the message from the sender's memory: {e} (it exited or released it)"
            )))
        }
        Err(e) => {
            return Err(io::Error::other(format!(
                "the kernel refused reading the message from the sender's memory: {e} (set \
                 RMPI_SHM_CMA=0 to copy through the shared segment instead)"
            )))
        }
    };
    fence(Ordering::SeqCst);
    if p.w.lent_gen.load(Ordering::SeqCst) != gen {
        // Taken back while we read: what we read may be stale; read it again from where the
        // writer publishes it next.
        return Ok(Lent::Wait);
    }
    p.r.taken.store(taken + n as u64, Ordering::Release);
    Ok(Lent::Read(n))
}
