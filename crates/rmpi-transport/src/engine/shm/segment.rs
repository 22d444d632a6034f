//! The shared segment of one host's ranks: its layout (specified in `docs/shared-memory.md`) and
//! its mapping.
//!
//! A memfd created by the host's leader (its lowest world rank) and mapped by every local rank.
//! All-zero is the valid initial state, so nobody initialises it. Only the pages a pair of ranks
//! actually uses are ever backed by memory: a rank's footprint grows with the local peers it
//! talks to, not with the job.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicU32, AtomicU64};

/// Page-aligned start of every area.
const PAGE: usize = 4096;
/// Bytes of one rank's control block.
const CTL: usize = 64;
/// Bytes of one pair's control block (a cache line for the writer, one for the reader).
const PAIR: usize = 128;

/// Ring bytes per ordered pair: large for small groups, small for big ones (the footprint is this
/// times the local peers a rank receives from).
pub(crate) fn ring_bytes(n: usize) -> usize {
    match n {
        0..=8 => 1 << 20,
        9..=64 => 256 << 10,
        _ => 32 << 10,
    }
}

/// The segment header, at offset 0.
#[repr(C)]
pub(crate) struct Header {
    /// Local ranks that have mapped the segment (a futex word: the leader waits on it).
    pub(crate) attached: AtomicU32,
}

/// One rank's control block.
#[repr(C, align(64))]
pub(crate) struct Ctl {
    /// Nonzero while the rank is about to sleep or sleeping in its poller: whoever gives it work
    /// then wakes it.
    pub(crate) sleeping: AtomicU32,
    /// Set once the rank has mapped the segment.
    pub(crate) attached: AtomicU32,
    /// Whether this rank reads lent memory ([`WriterSide::lent_addr`]) of its peers itself:
    /// 0 not known yet, [`CMA_YES`], or [`CMA_NO`] (the kernel refused its probe, or
    /// `RMPI_SHM_CMA=0`). Writers lend memory only to a reader that said yes.
    pub(crate) cma: AtomicU32,
    /// Set when the rank has said goodbye to every local peer whose ring it never wrote to (a
    /// goodbye through each of those rings would bring a page of each into memory).
    pub(crate) bye: AtomicU32,
    /// The address, in this rank's own address space, of this very word: its peers probe
    /// whether they may read this rank's memory by reading it.
    pub(crate) probe: AtomicU64,
    /// How many of its inbound streams this rank has closed ([`ReaderSide::closed`]): a writer
    /// reads a pair's closing flag (in the reader's line, which it otherwise rarely reads) only
    /// once this is nonzero.
    pub(crate) closes: AtomicU32,
}

/// [`Ctl::cma`]: the rank reads its peers' lent memory.
pub(crate) const CMA_YES: u32 = 1;
/// [`Ctl::cma`]: the rank does not; lend it nothing.
pub(crate) const CMA_NO: u32 = 2;

/// The writer's cache line of a pair.
#[repr(C, align(64))]
pub(crate) struct WriterSide {
    /// Bytes written so far (monotonic; the ring offset is this modulo the ring size).
    pub(crate) tail: AtomicU64,
    /// Set by the writer when it sends nothing more.
    pub(crate) closed: AtomicU32,
    /// What the writer waits for, as bits: [`WAIT_ROOM`] (it found the ring full),
    /// [`WAIT_LOAN`] (its lent bytes to be taken). The reader clears a bit when it wakes the
    /// writer for it.
    pub(crate) waiting: AtomicU32,
    /// Where the bytes lent right now start, in the writer's address space (0: none, or taken
    /// back for a moment: the reader waits).
    pub(crate) lent_addr: AtomicU64,
    /// How many bytes are lent right now.
    pub(crate) lent_len: AtomicU64,
    /// Bytes lent so far, the current loan included (monotonic; published last, release).
    pub(crate) lent_total: AtomicU64,
    /// Bumped each time the writer takes lent memory back: a reader that sees it change while
    /// it read throws those bytes away.
    pub(crate) lent_gen: AtomicU32,
}

/// [`WriterSide::waiting`]: the writer waits for room in the ring.
pub(crate) const WAIT_ROOM: u32 = 1;
/// [`WriterSide::waiting`]: the writer waits for the reader to take lent bytes.
pub(crate) const WAIT_LOAN: u32 = 2;

/// The reader's cache line of a pair.
#[repr(C, align(64))]
pub(crate) struct ReaderSide {
    /// Bytes read so far.
    pub(crate) head: AtomicU64,
    /// Set by the reader when it reads nothing more.
    pub(crate) closed: AtomicU32,
    /// Lent bytes read so far (monotonic; the writer's send completes when it covers a loan).
    pub(crate) taken: AtomicU64,
}

/// The control block of the ring from one rank to another.
#[repr(C)]
pub(crate) struct Pair {
    pub(crate) w: WriterSide,
    pub(crate) r: ReaderSide,
}

const _: () = assert!(std::mem::size_of::<Ctl>() == CTL);
const _: () = assert!(std::mem::size_of::<Pair>() == PAIR);

fn page_up(x: usize) -> usize {
    x.div_ceil(PAGE) * PAGE
}

/// Byte offsets of the areas for a group of `n` ranks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    pub(crate) n: usize,
    pub(crate) ring: usize,
    ctls: usize,
    pairs: usize,
    rings: usize,
    pub(crate) len: usize,
}

impl Layout {
    pub(crate) fn new(n: usize) -> Layout {
        let ring = ring_bytes(n);
        let ctls = PAGE;
        let pairs = page_up(ctls + n * CTL);
        let rings = page_up(pairs + n * n * PAIR);
        Layout { n, ring, ctls, pairs, rings, len: rings + n * n * ring }
    }
}

/// A mapped segment.
#[derive(Debug)]
pub(crate) struct Segment {
    base: *mut u8,
    pub(crate) layout: Layout,
}

// SAFETY: the mapping is shared memory accessed only through atomics and through ring byte ranges
// that the single-producer/single-consumer protocol gives to one side at a time.
unsafe impl Send for Segment {}
// SAFETY: as above.
unsafe impl Sync for Segment {}

impl Segment {
    /// Sizes the memfd `fd` for `n` ranks (every rank sets the same size, so the order does not
    /// matter) and maps it.
    pub(crate) fn map(fd: BorrowedFd<'_>, n: usize) -> io::Result<Segment> {
        let layout = Layout::new(n);
        let len = libc::off_t::try_from(layout.len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "segment too large"))?;
        // SAFETY: ftruncate on a descriptor we hold.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), len) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh shared mapping of the whole file; checked for MAP_FAILED below.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                layout.len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_NORESERVE,
                fd.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Segment { base: base.cast(), layout })
    }

    pub(crate) fn header(&self) -> &Header {
        // SAFETY: offset 0 lies in the mapping, which is page-aligned and lives as long as self;
        // the header is only accessed through atomics.
        unsafe { &*self.base.cast::<Header>() }
    }

    pub(crate) fn ctl(&self, i: usize) -> &Ctl {
        assert!(i < self.layout.n, "rank index {i} outside the group");
        // SAFETY: in bounds (checked), 64-aligned, atomics only.
        unsafe { &*self.base.add(self.layout.ctls + i * CTL).cast::<Ctl>() }
    }

    /// The control block of the ring from `from` to `to`. A receiver's blocks are adjacent (it
    /// looks at all of them on every progress pass).
    pub(crate) fn pair(&self, from: usize, to: usize) -> &Pair {
        let n = self.layout.n;
        assert!(from < n && to < n, "pair ({from}, {to}) outside the group");
        // SAFETY: in bounds (checked), 128-aligned, atomics only.
        unsafe { &*self.base.add(self.layout.pairs + (to * n + from) * PAIR).cast::<Pair>() }
    }

    /// The ring bytes from `from` to `to`.
    pub(crate) fn ring(&self, from: usize, to: usize) -> *mut u8 {
        let n = self.layout.n;
        assert!(from < n && to < n, "pair ({from}, {to}) outside the group");
        // SAFETY: in bounds (checked): the ring area holds n*n rings.
        unsafe { self.base.add(self.layout.rings + (to * n + from) * self.layout.ring) }
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `map`; nothing refers to it any more (every
        // user holds the Arc that is being dropped).
        unsafe { libc::munmap(self.base.cast(), self.layout.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn areas_are_page_aligned_and_do_not_overlap() {
        for n in [2, 3, 64, 65, 1024] {
            let l = Layout::new(n);
            assert_eq!(l.pairs % PAGE, 0);
            assert_eq!(l.rings % PAGE, 0);
            assert!(l.ctls + n * CTL <= l.pairs);
            assert!(l.pairs + n * n * PAIR <= l.rings);
            assert_eq!(l.len, l.rings + n * n * l.ring);
        }
        assert_eq!(Layout::new(2).ring, 1 << 20);
        assert_eq!(Layout::new(64).ring, 256 << 10);
        assert_eq!(Layout::new(1024).ring, 32 << 10);
    }
}
