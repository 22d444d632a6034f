//! Broadcast: binomial tree for short messages, scatter + ring allgather for long ones.

use bytemuck::Pod;
use rmpi_transport::Result;

use crate::call::Call;
// object.rs takes the tree shape from here.
pub(crate) use crate::shape::{children, tree_pos};
use crate::shape::{part, ring_gather_step, seg_elems, span, split_pair, BCAST_SEGMENT};

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
        let (send_i, recv_i) = ring_gather_step(me, p, s);
        let (sb, rb) = split_pair(buf, chunk(send_i), chunk(recv_i));
        c.sendrecv(sb, right, rb, left)?;
    }
    Ok(())
}

/// Pipelined chain: ranks form the chain root, root+1, ..., root-1 and the message travels in
/// segments; every segment's receive is posted up front (straight into its place in `buf`) and
/// each segment is passed on as soon as it is in, so the root sends the message once and the
/// time is about one transfer plus p - 2 segment delays.
pub(crate) fn pipeline<T: Pod>(c: &Call, buf: &mut [T], root: usize) -> Result<()> {
    let (p, r) = (c.size, c.rank);
    let vr = (r + p - root) % p;
    let seg = seg_elems::<T>(BCAST_SEGMENT);
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
