//! Broadcast: binomial tree for short messages, scatter + ring allgather for long ones.

use bytemuck::Pod;
use rmpi_transport::Result;

use crate::call::{part, split_pair, Call};

/// The span of elements of chunks `a..b` when `n` elements are split into `p` chunks.
pub(crate) fn span(n: usize, p: usize, a: usize, b: usize) -> std::ops::Range<usize> {
    if a >= b {
        let s = part(n, p, a.min(p - 1)).start;
        return s..s;
    }
    part(n, p, a).start..part(n, p, b - 1).end
}

/// Where rank `r` sits in a binomial tree rooted at `root`: its relative rank, its parent (as a
/// real rank, `None` at the root) and the mask of its lowest set bit (p rounded up to a power of
/// two at the root).
pub(crate) fn tree_pos(r: usize, p: usize, root: usize) -> (usize, Option<usize>, usize) {
    let vr = (r + p - root) % p;
    let mut mask = 1;
    while mask < p {
        if vr & mask != 0 {
            return (vr, Some((r + p - mask) % p), mask);
        }
        mask <<= 1;
    }
    (vr, None, mask)
}

/// Children of relative rank `vr` (whose lowest set bit is `mask`), largest subtree first, as
/// `(relative rank, subtree size)`.
pub(crate) fn children(vr: usize, mask: usize, p: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut m = mask >> 1;
    while m > 0 {
        if vr + m < p {
            out.push((vr + m, m.min(p - vr - m)));
        }
        m >>= 1;
    }
    out
}

/// Binomial tree: receive from the parent, then send to every child at once.
pub(crate) fn binomial<T: Pod>(c: &Call, buf: &mut [T], root: usize) -> Result<()> {
    let (p, r) = (c.size, c.rank);
    let (vr, parent, mask) = tree_pos(r, p, root);
    if let Some(parent) = parent {
        c.recv_into(buf, parent)?;
    }
    let dests: Vec<usize> = children(vr, mask, p).iter().map(|(v, _)| (v + root) % p).collect();
    c.send_all(buf, &dests)
}

/// Linear: the root sends to every other rank at once; one hop for everybody.
pub(crate) fn linear<T: Pod>(c: &Call, buf: &mut [T], root: usize) -> Result<()> {
    if c.rank == root {
        let dests: Vec<usize> = (1..c.size).map(|i| (root + i) % c.size).collect();
        c.send_all(buf, &dests)
    } else {
        c.recv_into(buf, root)
    }
}

/// Scatter + allgather (van de Geijn): the root's buffer is split into p chunks, scattered down
/// a binomial tree (each subtree gets its chunks), then a ring allgather completes every copy.
pub(crate) fn scatter_allgather<T: Pod>(c: &Call, buf: &mut [T], root: usize) -> Result<()> {
    let (p, r) = (c.size, c.rank);
    let n = buf.len();
    let (vr, parent, mask) = tree_pos(r, p, root);
    if let Some(parent) = parent {
        let hi = (vr + mask).min(p);
        c.recv_into(&mut buf[span(n, p, vr, hi)], parent)?;
    }
    let kids = children(vr, mask, p);
    let msgs: Vec<(&[T], usize)> =
        kids.iter().map(|&(v, size)| (&buf[span(n, p, v, v + size)], (v + root) % p)).collect();
    c.send_each(&msgs)?;
    ring_allgather_chunks(c, buf, |i| part(n, p, i), vr)
}

/// Ring allgather in place: the rank at ring position `me` owns chunk `me` (chunk `i` of the
/// buffer is `chunk(i)`; positions are ranks rotated by a constant, so the right neighbour of
/// position `me` is rank `r + 1`). Each step sends
/// the chunk received last to the right neighbour and receives the next one from the left,
/// straight into its place.
pub(crate) fn ring_allgather_chunks<T: Pod>(
    c: &Call,
    buf: &mut [T],
    chunk: impl Fn(usize) -> std::ops::Range<usize>,
    me: usize,
) -> Result<()> {
    let (p, r) = (c.size, c.rank);
    let (right, left) = ((r + 1) % p, (r + p - 1) % p);
    for s in 0..p.saturating_sub(1) {
        let send_i = (me + p - s) % p;
        let recv_i = (me + 2 * p - s - 1) % p;
        let (sb, rb) = split_pair(buf, chunk(send_i), chunk(recv_i));
        c.sendrecv(sb, right, rb, left)?;
    }
    Ok(())
}

/// Segment length (bytes) of the pipelined chain broadcast.
pub(crate) const PIPELINE_SEGMENT: usize = 256 << 10;

/// Pipelined chain: ranks form the chain root, root+1, ..., root-1 and the message travels in
/// segments; every segment's receive is posted up front (straight into its place in `buf`) and
/// each segment is passed on as soon as it is in, so the root sends the message once and the
/// time is about one transfer plus p - 2 segment delays.
pub(crate) fn pipeline<T: Pod>(c: &Call, buf: &mut [T], root: usize) -> Result<()> {
    let (p, r) = (c.size, c.rank);
    let vr = (r + p - root) % p;
    let seg = (PIPELINE_SEGMENT / std::mem::size_of::<T>().max(1)).max(1);
    let n = buf.len();
    let nseg = n.div_ceil(seg).max(1);
    let next = (vr + 1 < p).then_some((r + 1) % p);
    let prev = (vr > 0).then_some((r + p - 1) % p);
    let bounds = |k: usize| k * seg..((k + 1) * seg).min(n);
    match prev {
        None => {
            let Some(next) = next else { return Ok(()) };
            let msgs: Vec<(&[T], usize)> = (0..nseg).map(|k| (&buf[bounds(k)], next)).collect();
            c.send_each(&msgs)
        }
        Some(prev) => c.recv_segments_forward(buf, seg, nseg, prev, next),
    }
}
