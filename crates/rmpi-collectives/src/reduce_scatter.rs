//! Reduce-scatter: the ring (also the first half of ring allreduce and long reduce), reduce
//! then scatter for short messages and non-commutative operators, or on few ranks the direct
//! exchange of every block with its owner.

use std::ops::Range;

use bytemuck::Pod;
use rmpi_transport::Result;

use crate::call::Call;
use crate::ops::Op;
use crate::scratch;
use crate::shape::{pieces_mut, ring_reduce_step};

/// Ring reduce-scatter in place: `work` holds this rank's contribution, split into p chunks
/// (`chunk(i)` is the range of chunk i). After p-1 steps chunk `r` of `work` on rank r holds
/// the full reduction of chunk r (other chunks hold partial sums).
///
/// Chunk i travels the ring i+1, i+2, ..., i (mod p): each rank combines the partial result it
/// receives (left operand) with its own contribution. Every chunk is reduced exactly once, so
/// the operator must be commutative.
pub(crate) fn ring_in_place<T: Pod, O: Op<T>>(
    c: &Call,
    work: &mut [T],
    chunk: impl Fn(usize) -> Range<usize>,
    op: &O,
) -> Result<()> {
    let (p, r) = (c.size, c.rank);
    if p == 1 {
        return Ok(());
    }
    let (right, left) = ((r + 1) % p, (r + p - 1) % p);
    let longest = (0..p).map(|i| chunk(i).len()).max().unwrap_or(0);
    let mut tmp: Vec<T> = bytemuck::zeroed_vec(longest);
    for s in 0..p - 1 {
        let (send_i, recv_i) = ring_reduce_step(r, p, s);
        let rr = chunk(recv_i);
        let t = &mut tmp[..rr.len()];
        c.sendrecv(&work[chunk(send_i)], right, t, left)?;
        op.combine_rev(t, &mut work[rr]);
    }
    Ok(())
}

/// Reduce-scatter with equal blocks by the ring: `send` has p blocks of `recv.len()`.
pub(crate) fn ring<T: Pod, O: Op<T>>(c: &Call, send: &[T], recv: &mut [T], op: &O) -> Result<()> {
    let n = recv.len();
    let mut work = send.to_vec();
    ring_in_place(c, &mut work, |i| i * n..(i + 1) * n, op)?;
    let r = c.rank;
    recv.copy_from_slice(&work[r * n..(r + 1) * n]);
    Ok(())
}

/// Reduce to rank 0 (binomial, rank order) then scatter (binomial) the blocks.
pub(crate) fn reduce_then_scatter<T: Pod, O: Op<T>>(
    c: &Call,
    send: &[T],
    recv: &mut [T],
    op: &O,
) -> Result<()> {
    let mut full: Vec<T> = if c.rank == 0 { bytemuck::zeroed_vec(send.len()) } else { Vec::new() };
    let out = if c.rank == 0 { Some(&mut full[..]) } else { None };
    crate::reduce::binomial(c, send, out, op, 0)?;
    let src = if c.rank == 0 { Some(&full[..]) } else { None };
    crate::scatter::binomial(c, src, recv, 0)
}

/// Direct: every rank sends block d of `send` to rank d at once and receives block r from every
/// other rank, then combines the p pieces in rank order (`x0 ∘ x1 ∘ … ∘ x(p−1)`, so any operator
/// works). One hop and the ring's volume, at the price of p − 1 messages in flight each way and
/// p − 1 blocks of scratch space: a fit for few ranks.
pub(crate) fn direct<T: Pod, O: Op<T>>(c: &Call, send: &[T], recv: &mut [T], op: &O) -> Result<()> {
    let (p, r, n) = (c.size, c.rank, recv.len());
    recv.copy_from_slice(&send[r * n..(r + 1) * n]);
    if p == 1 {
        return Ok(());
    }
    scratch::with(n * (p - 1), |slots: &mut [T]| {
        {
            let others = (0..p).filter(|&i| i != r);
            let recvs: Vec<(&mut [T], usize)> =
                pieces_mut(slots, &vec![n; p - 1]).into_iter().zip(others).collect();
            let sends: Vec<(&[T], usize)> =
                (1..p).map(|i| (r + i) % p).map(|d| (&send[d * n..(d + 1) * n], d)).collect();
            c.exchange_many(recvs, &sends)?;
        }
        crate::allreduce::combine_in_rank_order(slots, n, r, recv, op);
        Ok(())
    })
}
