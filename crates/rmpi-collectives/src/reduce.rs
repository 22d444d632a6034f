//! Reduce: a binomial tree, segmented for long messages when p > 2; ring reduce-scatter + gather
//! to the root for long messages on many ranks.

use bytemuck::Pod;
use rmpi_transport::Result;

use crate::call::Call;
use crate::ops::Op;
use crate::scratch;
use crate::shape::{children, part, pieces_mut, seg_elems, tree_pos, REDUCE_SEGMENT};

/// Binomial tree reduction. For a commutative operator the tree is rooted at `root`; otherwise
/// it is rooted at rank 0, where relative and real ranks coincide so every combine is
/// `(lower ranks) ∘ (higher ranks)`, and rank 0 forwards the result to `root`.
///
/// A node receives from its children in increasing subtree distance; its partial result
/// covers relative ranks `[vr, vr + 2^k)` after the k-th child, so the result is
/// `x0 ∘ (x1) ∘ (x2 ∘ x3) ∘ (x4 ∘ ... ∘ x7) ...` in relative rank order.
///
/// Messages longer than [`REDUCE_SEGMENT`] bytes travel the tree in segments: a node combines segment
/// k from each child and sends it on before it takes segment k + 1, so every level works at
/// once and each segment is combined while it is still in cache (one pass over a 16 MiB vector
/// received whole runs at memory speed; one over 256 KiB pieces does not leave the cache).
/// Every element is still combined in the same order, so the result does not depend on it.
///
/// `recv` must be `Some` at `root` (checked by the caller).
pub(crate) fn binomial<T: Pod, O: Op<T>>(
    c: &Call,
    send: &[T],
    recv: Option<&mut [T]>,
    op: &O,
    root: usize,
) -> Result<()> {
    let (p, r) = (c.size, c.rank);
    let tree_root = if op.commutative() { root } else { 0 };
    let (vr, parent, mask) = tree_pos(r, p, tree_root);
    let kids = children(vr, mask, p);
    let n = send.len();
    // Segments only where a node has several children to take turns with (p > 2): every rank
    // derives the same segment size from (n, p), so the messages match.
    let seg_bytes = if p > 2 { REDUCE_SEGMENT } else { usize::MAX };
    let seg = seg_elems::<T>(seg_bytes).min(n.max(1));
    let nseg = n.div_ceil(seg).max(1);
    let piece = |k: usize| (k * seg).min(n)..((k + 1) * seg).min(n);
    if kids.is_empty() {
        // A leaf sends its own contribution untouched.
        match parent {
            Some(parent) if nseg > 1 => {
                let msgs: Vec<(&[T], usize)> =
                    (0..nseg).map(|k| (&send[piece(k)], parent)).collect();
                c.send_each(&msgs)?
            }
            Some(parent) => c.send(send, parent)?,
            // p == 1: the root is its own tree.
            None => {
                if let Some(out) = recv {
                    out.copy_from_slice(send);
                }
                return Ok(());
            }
        }
        if r == root && tree_root != root {
            if let Some(out) = recv {
                c.recv_into(out, tree_root)?;
            }
        }
        return Ok(());
    }
    // The partial result is built in the output buffer at the root (elsewhere in a buffer of
    // its own). The first child's segment is received straight into it and combined with this
    // rank's own values from the left, so `send` is never copied.
    let mut own: Vec<T>;
    let mut recv = recv;
    let acc: &mut [T] = match (&mut recv, r == root && tree_root == root) {
        (Some(out), true) => out,
        _ => {
            own = bytemuck::zeroed_vec(n);
            &mut own
        }
    };
    // One segment buffer for each child after the first; all children's pieces of a segment are
    // received at once, so each lands in place whichever child is quicker.
    let extra = kids.len().saturating_sub(1);
    let mut tmp: Vec<T> = bytemuck::zeroed_vec(extra * seg);
    for k in 0..nseg {
        let range = piece(k);
        let len = range.len();
        let acc_k = &mut acc[range.clone()];
        let mut order = kids.iter().rev().map(|&(v, _)| (v + tree_root) % p);
        let Some(first) = order.next() else { break };
        let mut bufs: Vec<(&mut [T], usize)> = vec![(&mut *acc_k, first)];
        bufs.extend(tmp.chunks_mut(seg).map(|t| &mut t[..len]).zip(order));
        c.exchange_many(bufs, &[])?;
        op.combine_rev(&send[range.clone()], acc_k);
        for t in tmp.chunks(seg) {
            op.combine(acc_k, &t[..len]);
        }
        if let Some(parent) = parent {
            c.send(acc_k, parent)?;
        }
    }
    if parent.is_none() && root != tree_root {
        // Rank 0 holds the rank-order result; the root is elsewhere.
        c.send(acc, root)?;
    }
    if r == root && tree_root != root {
        if let Some(out) = recv {
            c.recv_into(out, tree_root)?;
        }
    }
    Ok(())
}

/// Linear reduction: every rank sends its vector to the root at once; the root receives them
/// all (each into its own slot, whichever arrives first) and combines them in rank order,
/// `x0 ∘ x1 ∘ ... ∘ x(p-1)`, so any operator works. One hop for everybody; the root handles
/// p − 1 messages, so this is for short vectors on few ranks.
///
/// `recv` must be `Some` at `root` (checked by the caller).
pub(crate) fn linear<T: Pod, O: Op<T>>(
    c: &Call,
    send: &[T],
    recv: Option<&mut [T]>,
    op: &O,
    root: usize,
) -> Result<()> {
    let (p, r, n) = (c.size, c.rank, send.len());
    let Some(out) = recv.filter(|_| r == root) else {
        return c.send(send, root);
    };
    if p == 1 {
        out.copy_from_slice(send);
        return Ok(());
    }
    // The lowest other rank's vector lands straight in `out` (the left end of the expression,
    // or second after the root's own when the root is rank 0); the rest get a slot each.
    let first = usize::from(root == 0);
    let others: Vec<usize> = (0..p).filter(|&i| i != root && i != first).collect();
    scratch::with(n * others.len(), |slots: &mut [T]| {
        let lens = vec![n; others.len()];
        let mut bufs: Vec<(&mut [T], usize)> = vec![(&mut *out, first)];
        bufs.extend(pieces_mut(slots, &lens).into_iter().zip(others));
        c.exchange_many(bufs, &[])?;
        if root == 0 {
            op.combine_rev(send, out);
        }
        // `others` is in rank order, so the slots are taken in turn.
        let mut slot = 0;
        for i in first + 1..p {
            let x = if i == root {
                send
            } else {
                slot += 1;
                &slots[(slot - 1) * n..slot * n]
            };
            op.combine(out, x);
        }
        Ok(())
    })
}

/// Ring reduce-scatter over a copy of `send`, then every rank sends its reduced chunk straight
/// to the root (commutative operators only).
pub(crate) fn reduce_scatter_gather<T: Pod, O: Op<T>>(
    c: &Call,
    send: &[T],
    recv: Option<&mut [T]>,
    op: &O,
    root: usize,
) -> Result<()> {
    let (p, r) = (c.size, c.rank);
    let n = send.len();
    let mut work = send.to_vec();
    crate::reduce_scatter::ring_in_place(c, &mut work, |i| part(n, p, i), op)?;
    match recv {
        Some(out) if r == root => {
            out[part(n, p, r)].copy_from_slice(&work[part(n, p, r)]);
            let mut bufs = Vec::with_capacity(p.saturating_sub(1));
            let mut rest: &mut [T] = out;
            let mut base = 0;
            for i in 0..p {
                let range = part(n, p, i);
                let (head, tail) = std::mem::take(&mut rest).split_at_mut(range.end - base);
                base = range.end;
                rest = tail;
                if i != r {
                    bufs.push((head, i));
                }
            }
            c.exchange_many(bufs, &[])
        }
        _ => c.send(&work[part(n, p, r)], root),
    }
}
