//! One collective call: its signature, the tag that carries it, and checked point-to-point.
//!
//! Every message of a collective call carries a tag made from the call's sequence number, the
//! operation, the root and a hash of the byte count. Receives accept any tag from the expected
//! source, so a message from a peer that is in a different call (another operation, root or
//! count, or another call altogether) is noticed and reported as [`Error::Mismatch`] instead of
//! being taken for data.
//!
//! Every wait goes through [`Call::wait`], which waits in slices of the stall time. A rank whose
//! slice runs out asks the peer it waits for which call it is in (a query on the communicator's
//! control channel) and reads the queries and notices that reached it: a query of the same
//! sequence number with another signature proves a mismatch, which is then told to every member
//! (a notice) so that a cycle of waits ends in an error on every rank instead of a hang.

use bytemuck::Pod;
use std::time::Duration;

use rmpi_transport::{Channel, Communicator, Error, Request, Result, Status, Tag};

/// The collective operations, as they appear in tags and error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
#[allow(missing_docs)]
pub enum OpKind {
    Barrier = 1,
    Bcast,
    Scatter,
    Scatterv,
    Gather,
    Gatherv,
    Allgather,
    Allgatherv,
    Reduce,
    Allreduce,
    ReduceScatter,
    Alltoall,
    Scan,
    Exscan,
    BcastObj,
    GatherObj,
    ScatterObj,
    AllgatherObj,
    ReduceObj,
    AllreduceObj,
    /// The consistency check run before a call when checking is on.
    Check = 63,
}

const ALL_KINDS: [OpKind; 21] = [
    OpKind::Barrier,
    OpKind::Bcast,
    OpKind::Scatter,
    OpKind::Scatterv,
    OpKind::Gather,
    OpKind::Gatherv,
    OpKind::Allgather,
    OpKind::Allgatherv,
    OpKind::Reduce,
    OpKind::Allreduce,
    OpKind::ReduceScatter,
    OpKind::Alltoall,
    OpKind::Scan,
    OpKind::Exscan,
    OpKind::BcastObj,
    OpKind::GatherObj,
    OpKind::ScatterObj,
    OpKind::AllgatherObj,
    OpKind::ReduceObj,
    OpKind::AllreduceObj,
    OpKind::Check,
];

impl OpKind {
    /// The MPI-style name.
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Barrier => "barrier",
            OpKind::Bcast => "bcast",
            OpKind::Scatter => "scatter",
            OpKind::Scatterv => "scatterv",
            OpKind::Gather => "gather",
            OpKind::Gatherv => "gatherv",
            OpKind::Allgather => "allgather",
            OpKind::Allgatherv => "allgatherv",
            OpKind::Reduce => "reduce",
            OpKind::Allreduce => "allreduce",
            OpKind::ReduceScatter => "reduce_scatter",
            OpKind::Alltoall => "alltoall",
            OpKind::Scan => "scan",
            OpKind::Exscan => "exscan",
            OpKind::BcastObj => "bcast_obj",
            OpKind::GatherObj => "gather_obj",
            OpKind::ScatterObj => "scatter_obj",
            OpKind::AllgatherObj => "allgather_obj",
            OpKind::ReduceObj => "reduce_obj",
            OpKind::AllreduceObj => "allreduce_obj",
            OpKind::Check => "consistency check",
        }
    }

    pub(crate) fn from_u8(v: u8) -> Option<OpKind> {
        ALL_KINDS.iter().copied().find(|k| *k as u8 == v)
    }

    /// Whether the operation has a root.
    pub fn rooted(self) -> bool {
        matches!(
            self,
            OpKind::Bcast
                | OpKind::Scatter
                | OpKind::Scatterv
                | OpKind::Gather
                | OpKind::Gatherv
                | OpKind::Reduce
                | OpKind::BcastObj
                | OpKind::GatherObj
                | OpKind::ScatterObj
                | OpKind::ReduceObj
        )
    }
}

/// What identifies a collective call across ranks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Sig {
    pub(crate) seq: u64,
    pub(crate) kind: OpKind,
    pub(crate) root: usize,
    /// Bytes every rank agrees on (0 when ranks legitimately differ, as in the `v` forms).
    pub(crate) bytes: u64,
}

const ROOT_BITS: u32 = 12;
const HASH_BITS: u32 = 12;

fn fold(bytes: u64) -> u64 {
    bytes.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - HASH_BITS)
}

impl Sig {
    pub(crate) fn tag(&self) -> Tag {
        ((self.seq & 0xFFFF_FFFF) << 32)
            | ((self.kind as u64) << 24)
            | (((self.root as u64) & ((1 << ROOT_BITS) - 1)) << HASH_BITS)
            | fold(self.bytes)
    }

    pub(crate) fn describe(&self) -> String {
        let mut s = format!("collective #{} {}", self.seq, self.kind.name());
        if self.kind.rooted() {
            s += &format!(" root {}", self.root);
        }
        if self.bytes > 0 {
            s += &format!(" of {} bytes", self.bytes);
        }
        s
    }

    /// Describes a received tag that differs from this call's.
    fn describe_other(&self, tag: Tag) -> String {
        let seq = tag >> 32;
        let kind = OpKind::from_u8(((tag >> 24) & 0xFF) as u8);
        let root = (tag >> HASH_BITS) & ((1 << ROOT_BITS) - 1);
        let hash = tag & ((1 << HASH_BITS) - 1);
        let Some(kind) = kind else {
            return format!("a message with foreign tag {tag:#x}");
        };
        let mut s = format!("collective #{seq} (mod 2^32) {}", kind.name());
        if kind.rooted() {
            s += &format!(" root {root} (mod 4096)");
        }
        if kind == self.kind && seq == self.seq & 0xFFFF_FFFF && hash != fold(self.bytes) {
            s += " with a different byte count";
        }
        s
    }
}

/// Control-channel tag of a query: "I am waiting for you in this call" (transport uses < 16).
const QUERY_TAG: Tag = 16;
/// Control-channel tag of a notice: "ranks are in different calls" (the call's sequence number,
/// little-endian, then the description).
const NOTICE_TAG: Tag = 17;
/// The length header of a byte message of any length (see [`Call::recv_bytes`]).
const HEADER_BYTES: usize = 8;
/// Byte messages up to this length travel in one message with their header.
pub(crate) const INLINE_BYTES: usize = 4096 - HEADER_BYTES;
/// Words of a query: the call's sequence number, operation, root, bytes, and the sender's rank.
const DESC_WORDS: usize = 5;

impl Sig {
    fn words(self, rank: usize) -> [u64; DESC_WORDS] {
        [self.seq, self.kind as u64, self.root as u64, self.bytes, rank as u64]
    }

    /// The signature and rank in `w` (`None` for an unknown operation).
    fn from_words(w: &[u64]) -> Option<(Sig, usize)> {
        let kind = OpKind::from_u8(u8::try_from(w[1]).ok()?)?;
        let root = usize::try_from(w[2]).ok()?;
        let rank = usize::try_from(w[4]).ok()?;
        Some((Sig { seq: w[0], kind, root, bytes: w[3] }, rank))
    }
}

/// A collective call in progress on one rank.
pub(crate) struct Call<'c> {
    ch: Channel<'c>,
    ctl: Channel<'c>,
    pub(crate) rank: usize,
    pub(crate) size: usize,
    pub(crate) sig: Sig,
    tag: Tag,
    /// The signature other ranks are asked about (the user's call, also during its check).
    query: Sig,
    /// The stall slice: how long a wait lasts before the peer is asked which call it is in.
    stall: Duration,
    /// For a call on a subset of the communicator (see [`Call::within`]): the communicator rank
    /// of each of its members; `rank`, `size` and every peer are then indices into it.
    map: Option<&'c [usize]>,
    /// The communicator's size (every member is told about a mismatch).
    members: usize,
}

impl<'c> Call<'c> {
    /// Starts a call: takes the next sequence number and checks `root`.
    pub(crate) fn start(
        comm: &'c Communicator,
        kind: OpKind,
        root: usize,
        bytes: u64,
        stall: Duration,
    ) -> Result<Self> {
        let size = comm.size();
        if kind.rooted() && root >= size {
            return Err(Error::InvalidRank { rank: root, size });
        }
        let sig = Sig { seq: comm.begin_collective()?, kind, root, bytes };
        Ok(Call {
            ch: comm.collective_channel(),
            ctl: comm.control_channel(),
            rank: comm.rank(),
            size,
            sig,
            tag: sig.tag(),
            query: sig,
            stall,
            map: None,
            members: size,
        })
    }

    /// The same call on a subset of the communicator: `members` (communicator ranks, this
    /// rank's at index `me`) take part, numbered by their index, so an algorithm written for a
    /// whole communicator runs on them unchanged (the levels of the two-level algorithms).
    /// Messages keep this call's tag; a member of several subsets takes part in them one after
    /// another, and messages between one pair keep their order, so the levels never mix.
    pub(crate) fn within<'s>(&'s self, members: &'s [usize], me: usize) -> Call<'s> {
        Call {
            ch: self.ch,
            ctl: self.ctl,
            rank: me,
            size: members.len(),
            sig: self.sig,
            tag: self.tag,
            query: self.query,
            stall: self.stall,
            map: Some(members),
            members: self.members,
        }
    }

    /// The communicator rank of member `i`.
    fn at(&self, i: usize) -> usize {
        match self.map {
            Some(m) => m.get(i).copied().unwrap_or(i),
            None => i,
        }
    }

    /// This rank's communicator rank.
    fn me(&self) -> usize {
        self.at(self.rank)
    }

    /// A call of another kind sharing this one's sequence number (the consistency check).
    pub(crate) fn sub(&self, kind: OpKind) -> Call<'c> {
        let sig = Sig { seq: self.sig.seq, kind, root: 0, bytes: 0 };
        Call { sig, tag: sig.tag(), ..*self }
    }

    /// An error saying this rank's arguments are unusable. The other members are told (see
    /// [`Call::notify`]), so that those waiting for this rank fail instead of waiting for it.
    pub(crate) fn invalid(&self, msg: impl std::fmt::Display) -> Error {
        let msg = format!("{}: {msg}", self.sig.describe());
        self.tell_all(&format!("rank {} was called with an invalid argument in {msg}", self.me()));
        Error::InvalidArgument { rank: self.me(), msg }
    }

    /// An error saying another rank disagrees with this one about a byte count (every member
    /// is told, see [`Call::notify`]).
    fn count_mismatch(&self, src: usize, len: usize, expect: usize) -> Error {
        let what = format!("{}: rank {src} sent {len} bytes where", self.sig.describe());
        self.notify(
            format!("{what} this rank expects {expect}"),
            format!("{what} rank {} expects {expect}", self.me()),
        )
    }

    /// An error saying `src` sent a message of another call (every member is told).
    fn mismatch(&self, src: usize, tag: Tag) -> Error {
        let (mine, other) = (self.sig.describe(), self.sig.describe_other(tag));
        self.notify(
            format!("this rank is in {mine} but rank {src} sent a message of {other}"),
            format!("rank {} is in {mine} but rank {src} sent it a message of {other}", self.me()),
        )
    }

    /// Checks a received message's envelope: our tag, and `expect` bytes if given.
    pub(crate) fn check(&self, st: &Status, expect: Option<usize>) -> Result<()> {
        if st.tag != self.tag {
            return Err(self.mismatch(st.source, st.tag));
        }
        match expect {
            Some(n) if n != st.len => Err(self.count_mismatch(st.source, st.len, n)),
            _ => Ok(()),
        }
    }

    /// Turns a transport error about a message from member `src` that did not fit into a
    /// mismatch report.
    pub(crate) fn explain(&self, e: Error, src: usize, expect: usize) -> Error {
        let src = self.at(src);
        match e {
            Error::Truncated { tag, .. } if tag != self.tag => self.mismatch(src, tag),
            Error::Truncated { len, .. } => self.count_mismatch(src, len, expect),
            // A peer that left may have said why first (posting to it fails before any wait).
            e @ Error::PeerLost { .. } => self.noticed().ok().flatten().unwrap_or(e),
            e => e,
        }
    }

    // ------------------------------------------------------------ stall detection

    /// Waits for `req` (an operation with `peer`) in slices of the stall time; after each slice
    /// that runs out, asks `peer` which call it is in and reads the control messages that
    /// arrived (see [`Call::stalled`]). Every wait of a collective goes through here.
    pub(crate) fn wait<T>(&self, req: Request<'_, T>, peer: usize) -> Result<T> {
        let mut req = req;
        loop {
            let done = req.wait_timeout(self.stall);
            // A failure (a lost member, say) may be the consequence of a mismatch that a
            // notice already explains.
            let done = done.map_err(|e| self.noticed().ok().flatten().unwrap_or(e))?;
            match done {
                Ok(v) => return Ok(v),
                Err(r) => {
                    req = r;
                    self.stalled(peer)?;
                }
            }
        }
    }

    /// Waits for each of `reqs` (with the peer each is for); the first error wins.
    fn wait_each<T>(&self, reqs: Vec<(Request<'_, T>, usize)>) -> Result<Vec<T>> {
        let mut out = Vec::with_capacity(reqs.len());
        for (r, peer) in reqs {
            out.push(self.wait(r, peer)?);
        }
        Ok(out)
    }

    /// One stall slice ran out while waiting for `peer`: send it a query with this call's
    /// signature, then handle every notice and query that has arrived. A notice for this call
    /// or a later one is this call's error. A query for this sequence number with another
    /// signature proves a mismatch: every member is told and the error returned. Queries that
    /// agree, and stale or early ones, are dropped (a waiting sender repeats its query).
    fn stalled(&self, peer: usize) -> Result<()> {
        if peer != self.rank {
            // Best effort: a peer that can take no query any more (it finished its part and
            // finalized, or failed) is no error here. If the wait needs it, the wait itself
            // fails naming the right rank; if its message is already in, the wait completes.
            let _ = self.ctl.send(&self.query.words(self.me()), self.at(peer), QUERY_TAG);
        }
        if let Some(e) = self.noticed()? {
            return Err(e);
        }
        while let Some(st) = self.ctl.iprobe(None, Some(QUERY_TAG))? {
            let (w, _) = self.ctl.recv::<u64>(st.source, Some(QUERY_TAG))?;
            if w.len() != DESC_WORDS {
                continue;
            }
            let Some((other, r)) = Sig::from_words(&w) else { continue };
            if other.seq != self.query.seq || other == self.query {
                continue;
            }
            let (mine, theirs) = (self.query.describe(), other.describe());
            return Err(self.notify(
                format!("rank {r} is in {theirs} while this rank is in {mine}"),
                format!("rank {r} is in {theirs} while rank {} is in {mine}", self.me()),
            ));
        }
        Ok(())
    }

    /// Reads the notices that have arrived: the first about this call or a later one becomes
    /// this call's error; older ones are dropped.
    fn noticed(&self) -> Result<Option<Error>> {
        while let Some(st) = self.ctl.iprobe(None, Some(NOTICE_TAG))? {
            let (w, _) = self.ctl.recv::<u8>(st.source, Some(NOTICE_TAG))?;
            let Some((seq, text)) = w.split_first_chunk::<8>() else { continue };
            if u64::from_le_bytes(*seq) >= self.query.seq {
                return Ok(Some(Error::Mismatch {
                    rank: self.me(),
                    msg: format!(
                        "this rank is in {}; rank {} found: {}",
                        self.query.describe(),
                        st.source,
                        String::from_utf8_lossy(text)
                    ),
                }));
            }
        }
        Ok(None)
    }

    /// Tells every other member of the communicator about a mismatch (`shared`, naming this
    /// rank) and returns this rank's error (`local`). The notices are best effort: a member
    /// that cannot be reached is lost anyway, and this rank's error is the same either way.
    fn notify(&self, local: String, shared: String) -> Error {
        self.tell_all(&shared);
        Error::Mismatch { rank: self.me(), msg: local }
    }

    /// Sends a notice about this call with `text` to every other member (best effort).
    fn tell_all(&self, text: &str) {
        let mut w = self.query.seq.to_le_bytes().to_vec();
        w.extend_from_slice(text.as_bytes());
        let me = self.me();
        for dest in (0..self.members).filter(|d| *d != me) {
            let _ = self.ctl.send(&w, dest, NOTICE_TAG);
        }
    }

    // ------------------------------------------------------------ point-to-point

    /// Sends `buf` to `dest`.
    pub(crate) fn send<T: Pod>(&self, buf: &[T], dest: usize) -> Result<()> {
        let ch: Channel<'_> = self.ch;
        ch.scope(|s| self.wait(s.isend(buf, self.at(dest), self.tag)?, dest))
    }

    /// Receives exactly `buf.len()` elements from `src` into `buf`.
    pub(crate) fn recv_into<T: Pod>(&self, buf: &mut [T], src: usize) -> Result<()> {
        let n = std::mem::size_of_val(buf);
        let ch: Channel<'_> = self.ch;
        let st = ch
            .scope(|s| self.wait(s.irecv_into(buf, self.at(src), None)?, src))
            .map_err(|e| self.explain(e, src, n))?;
        self.check(&st, Some(n))
    }

    /// Receives a byte message of any length from `src`, sent with one of the `send_bytes`
    /// forms: a first message of at most [`INLINE_BYTES`] + 8 bytes (an 8-byte length, then the
    /// bytes if they fit), then, if they did not, the bytes as a second message. Both are
    /// receives into buffers, so both wait in slices like every other receive.
    pub(crate) fn recv_bytes(&self, src: usize) -> Result<Vec<u8>> {
        let mut first = vec![0u8; HEADER_BYTES + INLINE_BYTES];
        let ch: Channel<'_> = self.ch;
        let st = ch
            .scope(|s| self.wait(s.irecv_into(&mut first, self.at(src), None)?, src))
            .map_err(|e| self.explain(e, src, first.len()))?;
        self.check(&st, None)?;
        let bad = |msg: String| Error::Decode { source_rank: self.at(src), msg };
        let Some((head, _)) = first.split_first_chunk::<HEADER_BYTES>() else {
            return Err(bad("no length header".into()));
        };
        let n = u64::from_le_bytes(*head);
        let n = usize::try_from(n).map_err(|_| bad(format!("a length of {n} bytes")))?;
        if st.len == HEADER_BYTES + n {
            first.truncate(st.len);
            first.drain(..HEADER_BYTES);
            return Ok(first);
        }
        if st.len != HEADER_BYTES || n <= INLINE_BYTES {
            return Err(bad(format!("a {}-byte message announces {n} bytes", st.len)));
        }
        let mut rest = Vec::new();
        rest.try_reserve_exact(n).map_err(|e| bad(format!("cannot hold {n} bytes: {e}")))?;
        rest.resize(n, 0);
        self.recv_into(&mut rest, src)?;
        Ok(rest)
    }

    /// Sends a byte message to `dest` for [`recv_bytes`](Self::recv_bytes).
    pub(crate) fn send_bytes(&self, bytes: &[u8], dest: usize) -> Result<()> {
        self.send_bytes_each(&[(bytes, dest)])
    }

    /// Sends one byte message to every rank in `dests` for [`recv_bytes`](Self::recv_bytes).
    pub(crate) fn send_bytes_all(&self, bytes: &[u8], dests: &[usize]) -> Result<()> {
        let msgs: Vec<(&[u8], usize)> = dests.iter().map(|d| (bytes, *d)).collect();
        self.send_bytes_each(&msgs)
    }

    /// Sends each `(bytes, dest)` for [`recv_bytes`](Self::recv_bytes), all at once.
    pub(crate) fn send_bytes_each(&self, msgs: &[(&[u8], usize)]) -> Result<()> {
        let heads: Vec<Vec<u8>> = msgs
            .iter()
            .map(|(b, _)| {
                let mut h = (b.len() as u64).to_le_bytes().to_vec();
                if b.len() <= INLINE_BYTES {
                    h.extend_from_slice(b);
                }
                h
            })
            .collect();
        let mut out: Vec<(&[u8], usize)> = Vec::with_capacity(2 * msgs.len());
        for ((b, d), h) in msgs.iter().zip(&heads) {
            out.push((h, *d));
            if b.len() > INLINE_BYTES {
                out.push((b, *d));
            }
        }
        self.send_each(&out)
    }

    /// Sends `sbuf` to `dest` while receiving exactly `rbuf.len()` elements from `src`.
    pub(crate) fn sendrecv<T: Pod>(
        &self,
        sbuf: &[T],
        dest: usize,
        rbuf: &mut [T],
        src: usize,
    ) -> Result<()> {
        let n = std::mem::size_of_val(rbuf);
        let tag = self.tag;
        let ch: Channel<'_> = self.ch;
        let st = ch.scope(|s| {
            let r = s.irecv_into(rbuf, self.at(src), None)?;
            let w = s.isend(sbuf, self.at(dest), tag)?;
            let st = self.wait(r, src)?;
            self.wait(w, dest)?;
            Ok::<_, Error>(st)
        });
        let st = st.map_err(|e| self.explain(e, src, n))?;
        self.check(&st, Some(n))
    }

    /// Sends `buf` to every rank in `dests` at once.
    pub(crate) fn send_all<T: Pod>(&self, buf: &[T], dests: &[usize]) -> Result<()> {
        match dests {
            [] => Ok(()),
            [d] => self.send(buf, *d),
            _ => {
                let msgs: Vec<(&[T], usize)> = dests.iter().map(|d| (buf, *d)).collect();
                self.send_each(&msgs)
            }
        }
    }

    /// Sends each `(slice, dest)` at once.
    pub(crate) fn send_each<T: Pod>(&self, msgs: &[(&[T], usize)]) -> Result<()> {
        let tag = self.tag;
        let ch: Channel<'_> = self.ch;
        ch.scope(|s| {
            let mut reqs = Vec::with_capacity(msgs.len());
            for (buf, d) in msgs {
                reqs.push((s.isend(buf, self.at(*d), tag)?, *d));
            }
            self.wait_each(reqs).map(drop)
        })
    }

    /// Receives `nseg` consecutive segments of `seg` elements of `buf` from `src` (all posted
    /// up front, so each lands in place) and, if `next` is given, sends each segment on to it as
    /// soon as it has arrived.
    pub(crate) fn recv_segments_forward<T: Pod>(
        &self,
        buf: &mut [T],
        seg: usize,
        nseg: usize,
        src: usize,
        next: Option<usize>,
    ) -> Result<()> {
        let tag = self.tag;
        let ch: Channel<'_> = self.ch;
        let n = buf.len();
        let lens: Vec<usize> =
            (0..nseg).map(|k| ((k + 1) * seg).min(n) - (k * seg).min(n)).collect();
        let out = ch.scope(|s| {
            // Every piece is made from one raw pointer so that the receive (writing piece k)
            // and the later send (reading piece k once its receive is complete) do not rely on
            // borrows the compiler cannot see as disjoint in time.
            let base = buf.as_mut_ptr();
            let mut rreqs = Vec::with_capacity(nseg);
            let mut off = 0;
            for &l in &lens {
                // SAFETY: pieces off..off+l are disjoint and inside `buf`, which is exclusively
                // borrowed for this whole function; `buf` is not used directly after this.
                let head: &mut [T] = unsafe { std::slice::from_raw_parts_mut(base.add(off), l) };
                off += l;
                rreqs.push(s.irecv_into(head, self.at(src), None)?);
            }
            let mut sreqs = Vec::with_capacity(nseg);
            let mut statuses = Vec::with_capacity(nseg);
            let mut off = 0;
            for (k, r) in rreqs.into_iter().enumerate() {
                let st = self
                    .wait(r, src)
                    .map_err(|e| self.explain(e, src, lens[k] * std::mem::size_of::<T>()))?;
                self.check(&st, Some(lens[k] * std::mem::size_of::<T>()))?;
                statuses.push(st);
                if let Some(d) = next {
                    // SAFETY: piece k (off..off+lens[k]) is inside `buf`; its receive has
                    // completed, so nothing writes it any more, and no other receive covers it.
                    let piece: &[T] = unsafe { std::slice::from_raw_parts(base.add(off), lens[k]) };
                    sreqs.push((s.isend(piece, self.at(d), tag)?, d));
                }
                off += lens[k];
            }
            self.wait_each(sreqs)?;
            Ok::<_, Error>(statuses)
        });
        out.map(drop)
    }

    /// Receives each `(buffer, src)` at once, each exactly filling its buffer, while sending
    /// each `(slice, dest)` of `sends`.
    pub(crate) fn exchange_many<T: Pod>(
        &self,
        recvs: Vec<(&mut [T], usize)>,
        sends: &[(&[T], usize)],
    ) -> Result<()> {
        let tag = self.tag;
        let ch: Channel<'_> = self.ch;
        let expect: Vec<(usize, usize)> =
            recvs.iter().map(|(b, src)| (std::mem::size_of_val(*b), *src)).collect();
        let out = ch.scope(|s| {
            let mut rreqs = Vec::with_capacity(recvs.len());
            for (b, src) in recvs {
                rreqs.push(s.irecv_into(b, self.at(src), None)?);
            }
            let mut sreqs = Vec::with_capacity(sends.len());
            for (b, d) in sends {
                sreqs.push((s.isend(b, self.at(*d), tag)?, *d));
            }
            let mut first_err = None;
            let mut statuses = Vec::with_capacity(rreqs.len());
            for (i, r) in rreqs.into_iter().enumerate() {
                match self.wait(r, expect[i].1) {
                    Ok(st) => statuses.push(st),
                    Err(e) => {
                        if first_err.is_none() {
                            first_err = Some(self.explain(e, expect[i].1, expect[i].0));
                        }
                        break;
                    }
                }
            }
            if let Some(e) = first_err {
                return Err(e);
            }
            self.wait_each(sreqs)?;
            Ok(statuses)
        })?;
        for (st, (n, _)) in out.iter().zip(&expect) {
            self.check(st, Some(*n))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_decode() {
        let s = Sig { seq: 5, kind: OpKind::Bcast, root: 1, bytes: 80 };
        let t = Sig { seq: 5, kind: OpKind::Bcast, root: 0, bytes: 80 };
        assert_ne!(s.tag(), t.tag());
        assert!(s.describe_other(t.tag()).contains("bcast root 0"));
        let u = Sig { seq: 5, kind: OpKind::Bcast, root: 1, bytes: 88 };
        assert!(s.describe_other(u.tag()).contains("different byte count"));
    }
}
