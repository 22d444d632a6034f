//! Allreduce: recursive doubling for short vectors and non-commutative operators; ring or
//! Rabenseifner (reduce-scatter + allgather) for long ones; on a few ranks, a flat exchange of
//! whole vectors (short ones), reduce + bcast, or a direct reduce-scatter + allgather with
//! every message posted at once.
//!
//! Every algorithm here gives every rank the same bits: a pair that exchanges whole vectors
//! computes `(lower ranks) ∘ (higher ranks)` on both sides with the same operands in the same
//! order, and the reduce-scatter based algorithms reduce each chunk on one rank only and then
//! copy it.

use bytemuck::Pod;
use rmpi_transport::Result;

use crate::call::Call;
use crate::ops::Op;
use crate::scratch;
use crate::shape::{part, pieces_mut, ring_reduce_step, span, split_pair, Fold};

/// The steps before and after the power-of-two part of recursive doubling and halving.
trait FoldSteps {
    fn fold_in<T: Pod, O: Op<T>>(&self, c: &Call, buf: &mut [T], op: &O) -> Result<()>;
    fn fold_out<T: Pod>(&self, c: &Call, buf: &mut [T]) -> Result<()>;
}

impl FoldSteps for Fold {
    /// Before: even ranks below 2*rem send, odd ones combine `received ∘ own`.
    fn fold_in<T: Pod, O: Op<T>>(&self, c: &Call, buf: &mut [T], op: &O) -> Result<()> {
        let r = c.rank;
        if r < 2 * self.rem {
            if r % 2 == 0 {
                c.send(buf, r + 1)?;
            } else {
                scratch::with(buf.len(), |tmp: &mut [T]| {
                    c.recv_into(tmp, r - 1)?;
                    op.combine_rev(tmp, buf);
                    Ok::<_, rmpi_transport::Error>(())
                })?;
            }
        }
        Ok(())
    }

    /// After: odd ranks below 2*rem hand the result back to their even partner.
    fn fold_out<T: Pod>(&self, c: &Call, buf: &mut [T]) -> Result<()> {
        let r = c.rank;
        if r < 2 * self.rem {
            if r % 2 == 1 {
                c.send(buf, r - 1)?;
            } else {
                c.recv_into(buf, r + 1)?;
            }
        }
        Ok(())
    }
}

/// Recursive doubling: after folding to a power of two, log2(pof2) exchanges of the whole
/// vector with the partner `new_rank ^ 2^k`; both compute `lower ∘ higher`.
pub(crate) fn recursive_doubling<T: Pod, O: Op<T>>(c: &Call, buf: &mut [T], op: &O) -> Result<()> {
    let r = c.rank;
    let f = Fold::new(c.size);
    f.fold_in(c, buf, op)?;
    if let Some(nr) = f.new_rank(r) {
        scratch::with(buf.len(), |tmp: &mut [T]| {
            let mut mask = 1;
            while mask < f.pof2 {
                let partner = f.real_rank(nr ^ mask);
                c.sendrecv(buf, partner, tmp, partner)?;
                if partner < r {
                    op.combine_rev(tmp, buf);
                } else {
                    op.combine(buf, tmp);
                }
                mask <<= 1;
            }
            Ok::<_, rmpi_transport::Error>(())
        })?;
    }
    f.fold_out(c, buf)
}

/// Ring: ring reduce-scatter (rank r ends with chunk r) then ring allgather.
pub(crate) fn ring<T: Pod, O: Op<T>>(c: &Call, buf: &mut [T], op: &O) -> Result<()> {
    let (p, n) = (c.size, buf.len());
    crate::reduce_scatter::ring_in_place(c, buf, |i| part(n, p, i), op)?;
    crate::bcast::ring_allgather_chunks(c, buf, |i| part(n, p, i), c.rank)
}

/// Ring into a separate output: the reduce-scatter receives each partial chunk straight into
/// `recv` and combines it there with this rank's chunk of `send` (`received ∘ own`, the same
/// operands and order as [`ring`], so the same bits), which saves the copy of `send` and the
/// scratch buffer; the allgather then works in `recv`.
pub(crate) fn ring_out_of_place<T: Pod, O: Op<T>>(
    c: &Call,
    send: &[T],
    recv: &mut [T],
    op: &O,
) -> Result<()> {
    let (p, r, n) = (c.size, c.rank, send.len());
    let (right, left) = ((r + 1) % p, (r + p - 1) % p);
    for s in 0..p - 1 {
        let (send_i, recv_i) = ring_reduce_step(r, p, s);
        let rr = part(n, p, recv_i);
        if s == 0 {
            c.sendrecv(&send[part(n, p, send_i)], right, &mut recv[rr.clone()], left)?;
        } else {
            let (sb, rb) = split_pair(recv, part(n, p, send_i), rr.clone());
            c.sendrecv(sb, right, rb, left)?;
        }
        op.combine(&mut recv[rr.clone()], &send[rr]);
    }
    crate::bcast::ring_allgather_chunks(c, recv, |i| part(n, p, i), r)
}

/// Rabenseifner: fold to a power of two, recursive halving reduce-scatter (each active rank
/// ends with chunk `new_rank` of pof2 chunks), recursive doubling allgather, unfold.
pub(crate) fn rabenseifner<T: Pod, O: Op<T>>(c: &Call, buf: &mut [T], op: &O) -> Result<()> {
    let r = c.rank;
    let n = buf.len();
    let f = Fold::new(c.size);
    f.fold_in(c, buf, op)?;
    if let Some(nr) = f.new_rank(r) {
        let q = f.pof2;
        let span = |a: usize, b: usize| span(n, q, a, b);
        let mut tmp: Vec<T> = bytemuck::zeroed_vec(span(0, q.div_ceil(2).max(1)).len());
        // Recursive halving: keep the half of the window that contains chunk `nr`.
        let (mut lo, mut hi) = (0, q);
        let mut dist = q / 2;
        while dist > 0 {
            let partner = f.real_rank(nr ^ dist);
            let mid = lo + (hi - lo) / 2;
            let (keep, give) =
                if nr & dist == 0 { ((lo, mid), (mid, hi)) } else { ((mid, hi), (lo, mid)) };
            let kr = span(keep.0, keep.1);
            let t = &mut tmp[..kr.len()];
            c.sendrecv(&buf[span(give.0, give.1)], partner, t, partner)?;
            if partner < r {
                op.combine_rev(t, &mut buf[kr]);
            } else {
                op.combine(&mut buf[kr], t);
            }
            (lo, hi) = keep;
            dist /= 2;
        }
        // Recursive doubling allgather: windows double until they cover everything.
        let mut dist = 1;
        while dist < q {
            let partner = f.real_rank(nr ^ dist);
            let base = nr & !(2 * dist - 1);
            let (mine, theirs) = if nr & dist == 0 {
                ((base, base + dist), (base + dist, base + 2 * dist))
            } else {
                ((base + dist, base + 2 * dist), (base, base + dist))
            };
            let (sb, rb) = split_pair(buf, span(mine.0, mine.1), span(theirs.0, theirs.1));
            c.sendrecv(sb, partner, rb, partner)?;
            dist *= 2;
        }
    }
    f.fold_out(c, buf)
}

/// Direct reduce-scatter + allgather, two rounds with every message posted at once: rank d
/// owns chunk d, every rank sends chunk d to its owner, the owner combines the p pieces in rank
/// order (`x0 ∘ x1 ∘ … ∘ x(p-1)`, so any operator works), then sends the result to every rank.
/// Each rank moves 2(p−1)/p of the vector as the ring does, in 2 rounds instead of 2(p−1), at
/// the price of (p−1)/p of the vector in scratch space and p−1 messages in flight per round:
/// a fit for few ranks.
pub(crate) fn direct<T: Pod, O: Op<T>>(c: &Call, buf: &mut [T], op: &O) -> Result<()> {
    let (p, r, n) = (c.size, c.rank, buf.len());
    if p == 1 {
        return Ok(());
    }
    let mine = part(n, p, r);
    let k = mine.len();
    // Round 1: chunk r of every other rank, in rank order, into one slot each.
    let mut slots: Vec<T> = bytemuck::zeroed_vec(k * (p - 1));
    let others: Vec<usize> = (0..p).filter(|&i| i != r).collect();
    let recvs: Vec<(&mut [T], usize)> =
        pieces_mut(&mut slots, &vec![k; p - 1]).into_iter().zip(others.iter().copied()).collect();
    let sends: Vec<(&[T], usize)> =
        (1..p).map(|i| (r + i) % p).map(|d| (&buf[part(n, p, d)], d)).collect();
    c.exchange_many(recvs, &sends)?;
    combine_in_rank_order(&mut slots, k, r, &mut buf[mine], op);
    // Round 2: our reduced chunk to every rank, every other chunk from its owner.
    let lens: Vec<usize> = (0..p).map(|i| part(n, p, i).len()).collect();
    let mut pieces: Vec<Option<&mut [T]>> = pieces_mut(buf, &lens).into_iter().map(Some).collect();
    let own: &[T] = pieces[r].take().map_or(&[], |b| -> &[T] { b });
    let recvs: Vec<(&mut [T], usize)> =
        (1..p).map(|i| (r + p - i) % p).filter_map(|s| pieces[s].take().map(|b| (b, s))).collect();
    let sends: Vec<(&[T], usize)> = (1..p).map(|i| (own, (r + i) % p)).collect();
    c.exchange_many(recvs, &sends)
}

/// Flat: every rank sends its whole vector to every other rank at once, receives theirs, and
/// combines the p vectors itself in rank order (`x0 ∘ x1 ∘ … ∘ x(p−1)`: the same operands in the
/// same order on every rank, so the same bits, for any operator). One hop, and one wait per
/// rank, where the tree and reduce + bcast need two hops; the price is p − 1 messages each way
/// per rank, p − 1 copies of the vector in scratch space and p − 1 combines on every rank: a fit
/// for short vectors on few ranks, where a hop (a wake-up or a turn on a shared core) costs
/// more than a message.
pub(crate) fn flat<T: Pod, O: Op<T>>(c: &Call, buf: &mut [T], op: &O) -> Result<()> {
    let (p, r, n) = (c.size, c.rank, buf.len());
    if p == 1 {
        return Ok(());
    }
    scratch::with(n * (p - 1), |slots: &mut [T]| {
        {
            // Slot j holds the vector of the j-th other rank in rank order.
            let others = (0..p).filter(|&i| i != r);
            let recvs: Vec<(&mut [T], usize)> =
                pieces_mut(slots, &vec![n; p - 1]).into_iter().zip(others).collect();
            let own: &[T] = buf;
            let sends: Vec<(&[T], usize)> = (1..p).map(|i| (own, (r + i) % p)).collect();
            c.exchange_many(recvs, &sends)?;
        }
        combine_in_rank_order(slots, n, r, buf, op);
        Ok(())
    })
}

/// `buf = x0 ∘ x1 ∘ … ∘ x(p−1)`, folded from the left, where `buf` holds `x_r` and `slots`
/// (slot j: elements `j*n..(j+1)*n`) the other ranks' vectors in rank order. The lower ranks'
/// vectors fold into the first slot, which then goes in front of `buf`; the higher ones follow.
pub(crate) fn combine_in_rank_order<T: Pod, O: Op<T>>(
    slots: &mut [T],
    n: usize,
    r: usize,
    buf: &mut [T],
    op: &O,
) {
    let others = slots.len().checked_div(n).unwrap_or(0);
    let slot = |j: usize| j * n..(j + 1) * n;
    if r > 0 && n > 0 {
        let (head, tail) = slots.split_at_mut(n);
        for j in 1..r {
            op.combine(head, &tail[slot(j - 1)]);
        }
        op.combine_rev(head, buf);
    }
    for j in r..others {
        op.combine(buf, &slots[slot(j)]);
    }
}
