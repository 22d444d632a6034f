//! Gather (binomial or linear), gatherv (linear), allgather (Bruck or ring), allgatherv (ring).

use bytemuck::Pod;
use rmpi_transport::Result;

use crate::call::Call;
use crate::scratch;
use crate::shape::{children, pieces_mut, split_pair, tree_pos};

/// Binomial gather: each rank collects its subtree's blocks (relative rank order) in a buffer
/// and sends it to its parent; the root rotates them into rank order.
pub(crate) fn binomial<T: Pod>(
    c: &Call,
    send: &[T],
    recv: Option<&mut [T]>,
    root: usize,
) -> Result<()> {
    let (p, r) = (c.size, c.rank);
    let k = send.len();
    let (vr, parent, mask) = tree_pos(r, p, root);
    let kids = children(vr, mask, p);
    if kids.is_empty() {
        if let Some(parent) = parent {
            return c.send(send, parent);
        }
    }
    let subtree = if parent.is_none() { p } else { mask.min(p - vr) };
    let mut tmp: Vec<T> = bytemuck::zeroed_vec(subtree * k);
    tmp[..k].copy_from_slice(send);
    {
        let mut lens = vec![k];
        for &(_, size) in kids.iter().rev() {
            lens.push(size * k);
        }
        let mut bufs = pieces_mut(&mut tmp, &lens).into_iter().skip(1);
        let mut recvs = Vec::with_capacity(kids.len());
        for &(v, _) in kids.iter().rev() {
            if let Some(b) = bufs.next() {
                recvs.push((b, (v + root) % p));
            }
        }
        c.exchange_many(recvs, &[])?;
    }
    match (parent, recv) {
        (Some(parent), _) => c.send(&tmp, parent),
        (None, Some(out)) => {
            // Relative block i belongs to rank (i + root) % p.
            let split = (p - root) * k;
            out[root * k..].copy_from_slice(&tmp[..split]);
            out[..root * k].copy_from_slice(&tmp[split..]);
            Ok(())
        }
        (None, None) => Ok(()),
    }
}

/// Linear gather(v): the root receives every block straight into its place.
pub(crate) fn linear<T: Pod>(
    c: &Call,
    send: &[T],
    recv: Option<(&mut [T], &[usize])>,
    root: usize,
) -> Result<()> {
    let r = c.rank;
    match recv {
        Some((out, counts)) if r == root => {
            let mut bufs = pieces_mut(out, counts);
            bufs[r].copy_from_slice(send);
            let recvs = bufs
                .into_iter()
                .enumerate()
                .filter(|(i, _)| *i != r)
                .map(|(i, b)| (b, i))
                .collect();
            c.exchange_many(recvs, &[])
        }
        _ => c.send(send, root),
    }
}

/// Ring allgather(v) straight into `out` (rank i's block at `offsets[i]`, `counts[i]` long).
pub(crate) fn ring<T: Pod>(c: &Call, send: &[T], out: &mut [T], counts: &[usize]) -> Result<()> {
    let r = c.rank;
    let offsets: Vec<usize> = counts
        .iter()
        .scan(0, |acc, &n| {
            let o = *acc;
            *acc += n;
            Some(o)
        })
        .collect();
    out[offsets[r]..offsets[r] + counts[r]].copy_from_slice(send);
    crate::bcast::ring_allgather_chunks(c, out, |i| offsets[i]..offsets[i] + counts[i], r)
}

/// Linear allgather: every rank sends its block to every other rank and receives theirs, all
/// posted at once (rank r + i and r − i first), straight into `out`. One round of (p − 1)
/// messages each way per rank.
pub(crate) fn allgather_linear<T: Pod>(c: &Call, send: &[T], out: &mut [T]) -> Result<()> {
    crate::alltoall::post_all(c, out, send.len(), send, |_| send)
}

/// Bruck allgather: in round k every rank sends the blocks it has (up to 2^k of them) to
/// rank r - 2^k and receives as many from r + 2^k; block i of the work buffer is rank r + i's,
/// so a final rotation puts them in rank order.
pub(crate) fn bruck<T: Pod>(c: &Call, send: &[T], out: &mut [T]) -> Result<()> {
    let (p, r) = (c.size, c.rank);
    let k = send.len();
    scratch::with(p * k, |tmp: &mut [T]| {
        tmp[..k].copy_from_slice(send);
        let mut dist = 1;
        while dist < p {
            let cnt = dist.min(p - dist);
            let (sb, rb) = split_pair(tmp, 0..cnt * k, dist * k..(dist + cnt) * k);
            c.sendrecv(sb, (r + p - dist) % p, rb, (r + dist) % p)?;
            dist *= 2;
        }
        let split = (p - r) * k;
        out[r * k..].copy_from_slice(&tmp[..split]);
        out[..r * k].copy_from_slice(&tmp[split..]);
        Ok(())
    })
}
