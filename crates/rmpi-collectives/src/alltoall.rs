//! Alltoall: every exchange posted at once for short blocks, pairwise rounds for long ones.

use bytemuck::Pod;
use rmpi_transport::Result;

use crate::call::Call;
use crate::shape::pieces_mut;

/// Every receive and send posted at once (rank r + i and r - i first).
pub(crate) fn scattered<T: Pod>(c: &Call, send: &[T], recv: &mut [T], k: usize) -> Result<()> {
    let r = c.rank;
    post_all(c, recv, k, &send[r * k..(r + 1) * k], |d| &send[d * k..(d + 1) * k])
}

/// One round with every message posted at once: block i of `out` (`k` elements) comes from
/// rank i (our own is `mine`), and rank d is sent `block_for(d)`; rank r + i and r − i first.
/// Alltoall and the linear allgather are this pattern with different send blocks.
pub(crate) fn post_all<'a, T: Pod>(
    c: &Call,
    out: &mut [T],
    k: usize,
    mine: &[T],
    block_for: impl Fn(usize) -> &'a [T],
) -> Result<()> {
    let (p, r) = (c.size, c.rank);
    let mut blocks: Vec<Option<&mut [T]>> =
        pieces_mut(out, &vec![k; p]).into_iter().map(Some).collect();
    if let Some(b) = blocks[r].take() {
        b.copy_from_slice(mine);
    }
    let mut recvs = Vec::with_capacity(p);
    let mut sends = Vec::with_capacity(p);
    for i in 1..p {
        let src = (r + p - i) % p;
        if let Some(b) = blocks[src].take() {
            recvs.push((b, src));
        }
        let dst = (r + i) % p;
        sends.push((block_for(dst), dst));
    }
    c.exchange_many(recvs, &sends)
}

/// Pairwise exchange: in round i send to r + i and receive from r - i.
pub(crate) fn pairwise<T: Pod>(c: &Call, send: &[T], recv: &mut [T], k: usize) -> Result<()> {
    let (p, r) = (c.size, c.rank);
    recv[r * k..(r + 1) * k].copy_from_slice(&send[r * k..(r + 1) * k]);
    for i in 1..p {
        let (dst, src) = ((r + i) % p, (r + p - i) % p);
        c.sendrecv(&send[dst * k..(dst + 1) * k], dst, &mut recv[src * k..(src + 1) * k], src)?;
    }
    Ok(())
}
