//! Scatter (binomial or linear) and scatterv (linear).

use bytemuck::Pod;
use rmpi_transport::Result;

use crate::call::Call;
use crate::shape::{children, tree_pos};

/// Binomial scatter: the root rotates its blocks into relative rank order, and every rank
/// receives its subtree's blocks from its parent, keeps the first and passes the rest on.
pub(crate) fn binomial<T: Pod>(
    c: &Call,
    send: Option<&[T]>,
    recv: &mut [T],
    root: usize,
) -> Result<()> {
    let (p, r) = (c.size, c.rank);
    let k = recv.len();
    let (vr, parent, mask) = tree_pos(r, p, root);
    let kids = children(vr, mask, p);
    let tmp: Vec<T> = match (parent, send) {
        (None, Some(all)) => {
            let mut t = Vec::with_capacity(p * k);
            t.extend_from_slice(&all[root * k..]);
            t.extend_from_slice(&all[..root * k]);
            t
        }
        (None, None) => bytemuck::zeroed_vec(p * k),
        (Some(parent), _) => {
            if kids.is_empty() {
                return c.recv_into(recv, parent);
            }
            let mut t = bytemuck::zeroed_vec(mask.min(p - vr) * k);
            c.recv_into(&mut t, parent)?;
            t
        }
    };
    let msgs: Vec<(&[T], usize)> = kids
        .iter()
        .map(|&(v, size)| (&tmp[(v - vr) * k..(v - vr + size) * k], (v + root) % p))
        .collect();
    c.send_each(&msgs)?;
    recv.copy_from_slice(&tmp[..k]);
    Ok(())
}

/// Linear scatter(v): the root sends every block straight from its buffer.
pub(crate) fn linear<T: Pod>(
    c: &Call,
    send: Option<(&[T], &[usize])>,
    recv: &mut [T],
    root: usize,
) -> Result<()> {
    let r = c.rank;
    match send {
        Some((all, counts)) if r == root => {
            let mut msgs = Vec::with_capacity(counts.len());
            let mut off = 0;
            for (i, &n) in counts.iter().enumerate() {
                if i == r {
                    recv.copy_from_slice(&all[off..off + n]);
                } else {
                    msgs.push((&all[off..off + n], i));
                }
                off += n;
            }
            c.send_each(&msgs)
        }
        _ => c.recv_into(recv, root),
    }
}
