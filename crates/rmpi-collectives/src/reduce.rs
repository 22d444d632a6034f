//! Reduce: binomial tree for short messages and non-commutative operators, ring reduce-scatter
//! + gather to the root for long ones.

use bytemuck::Pod;
use rmpi_transport::Result;

use crate::bcast::{children, tree_pos};
use crate::call::{part, Call};
use crate::ops::Op;

/// Binomial tree reduction. For a commutative operator the tree is rooted at `root`; otherwise
/// it is rooted at rank 0, where relative and real ranks coincide so every combine is
/// `(lower ranks) ∘ (higher ranks)`, and rank 0 forwards the result to `root`.
///
/// A node receives from its children in increasing subtree distance; its partial result
/// covers relative ranks `[vr, vr + 2^k)` after the k-th child, so the result is
/// `x0 ∘ (x1) ∘ (x2 ∘ x3) ∘ (x4 ∘ ... ∘ x7) ...` in relative rank order.
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
    if kids.is_empty() {
        // A leaf sends its own contribution untouched.
        match parent {
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
    let mut own: Vec<T>;
    let mut recv = recv;
    let acc: &mut [T] = match (&mut recv, r == root && tree_root == root) {
        (Some(out), true) => {
            out.copy_from_slice(send);
            out
        }
        _ => {
            own = send.to_vec();
            &mut own
        }
    };
    let mut tmp: Vec<T> = bytemuck::zeroed_vec(send.len());
    for &(v, _) in kids.iter().rev() {
        c.recv_into(&mut tmp, (v + tree_root) % p)?;
        op.combine(acc, &tmp);
    }
    if let Some(parent) = parent {
        c.send(acc, parent)?;
    } else if root != tree_root {
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
