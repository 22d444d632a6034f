//! Inclusive and exclusive prefix reductions by recursive doubling.
//!
//! In round k rank r exchanges its partial result (covering ranks `[r - 2^k + 1 .. r]` roughly)
//! with `r ^ 2^k`; a rank keeps what comes from below as the left operand, so non-commutative
//! operators see rank order.

use bytemuck::Pod;
use rmpi_transport::Result;

use crate::call::Call;
use crate::ops::Op;

/// Inclusive scan: `recv` on rank r gets `x0 ∘ ... ∘ xr`.
pub(crate) fn scan<T: Pod, O: Op<T>>(c: &Call, send: &[T], recv: &mut [T], op: &O) -> Result<()> {
    let (p, r) = (c.size, c.rank);
    recv.copy_from_slice(send);
    let mut partial = send.to_vec();
    let mut tmp: Vec<T> = bytemuck::zeroed_vec(send.len());
    let mut mask = 1;
    while mask < p {
        let dst = r ^ mask;
        if dst < p {
            c.sendrecv(&partial, dst, &mut tmp, dst)?;
            if dst < r {
                op.combine_rev(&tmp, &mut partial);
                op.combine_rev(&tmp, recv);
            } else {
                op.combine(&mut partial, &tmp);
            }
        }
        mask <<= 1;
    }
    Ok(())
}

/// Exclusive scan: `recv` on rank r > 0 gets `x0 ∘ ... ∘ x(r-1)`; rank 0's is left untouched.
pub(crate) fn exscan<T: Pod, O: Op<T>>(c: &Call, send: &[T], recv: &mut [T], op: &O) -> Result<()> {
    let (p, r) = (c.size, c.rank);
    let mut partial = send.to_vec();
    let mut tmp: Vec<T> = bytemuck::zeroed_vec(send.len());
    let mut have = false;
    let mut mask = 1;
    while mask < p {
        let dst = r ^ mask;
        if dst < p {
            c.sendrecv(&partial, dst, &mut tmp, dst)?;
            if dst < r {
                op.combine_rev(&tmp, &mut partial);
                if have {
                    op.combine_rev(&tmp, recv);
                } else {
                    recv.copy_from_slice(&tmp);
                    have = true;
                }
            } else {
                op.combine(&mut partial, &tmp);
            }
        }
        mask <<= 1;
    }
    Ok(())
}
