//! Inclusive and exclusive prefix reductions by recursive doubling.
//!
//! In round k rank r exchanges its partial result (covering ranks `[r - 2^k + 1 .. r]` roughly)
//! with `r ^ 2^k`; a rank keeps what comes from below as the left operand, so non-commutative
//! operators see rank order.

use bytemuck::Pod;
use rmpi_transport::Result;

use crate::call::Call;
use crate::ops::Op;
use crate::scratch;
use crate::shape::{seg_elems, SCAN_SEGMENT};

/// Recursive doubling scan. Inclusive: `recv` on rank r gets `x0 ∘ ... ∘ xr`. Exclusive: rank
/// r > 0 gets `x0 ∘ ... ∘ x(r-1)` and rank 0's `recv` is left untouched.
pub(crate) fn recursive_doubling<T: Pod, O: Op<T>>(
    c: &Call,
    send: &[T],
    recv: &mut [T],
    op: &O,
    exclusive: bool,
) -> Result<()> {
    let (p, r) = (c.size, c.rank);
    // Whether `recv` holds a partial result yet (the inclusive scan starts from our own).
    let mut have = !exclusive;
    if have {
        recv.copy_from_slice(send);
    }
    let n = send.len();
    scratch::with(2 * n, |space: &mut [T]| {
        let (partial, tmp) = space.split_at_mut(n);
        partial.copy_from_slice(send);
        let mut mask = 1;
        while mask < p {
            let dst = r ^ mask;
            if dst < p {
                c.sendrecv(partial, dst, tmp, dst)?;
                if dst < r {
                    op.combine_rev(tmp, partial);
                    if have {
                        op.combine_rev(tmp, recv);
                    } else {
                        recv.copy_from_slice(tmp);
                        have = true;
                    }
                } else {
                    op.combine(partial, tmp);
                }
            }
            mask <<= 1;
        }
        Ok(())
    })
}

/// Pipelined chain: rank r receives the prefix of ranks `0..r` from r - 1 segment by segment,
/// combines it with its own (`prefix ∘ own`) and passes each segment on to r + 1 at once, so
/// a long vector costs about one transfer plus p - 1 segment delays.
///
/// With `exclusive`, `recv` gets the received prefix (rank 0's is left untouched) and the
/// combined one travels on; otherwise `recv` gets the combined one.
pub(crate) fn chain<T: Pod, O: Op<T>>(
    c: &Call,
    send: &[T],
    recv: &mut [T],
    op: &O,
    exclusive: bool,
) -> Result<()> {
    let (p, r) = (c.size, c.rank);
    let n = send.len();
    let seg = seg_elems::<T>(SCAN_SEGMENT);
    let mut tmp: Vec<T> =
        if exclusive && r > 0 && r + 1 < p { bytemuck::zeroed_vec(seg.min(n)) } else { Vec::new() };
    let mut start = 0;
    loop {
        let end = (start + seg).min(n);
        let out = &mut recv[start..end];
        let own = &send[start..end];
        if r == 0 {
            if exclusive {
                if p > 1 {
                    c.send(own, 1)?;
                }
            } else {
                out.copy_from_slice(own);
                if p > 1 {
                    c.send(out, 1)?;
                }
            }
        } else {
            c.recv_into(out, r - 1)?;
            if exclusive {
                if r + 1 < p {
                    let t = &mut tmp[..end - start];
                    t.copy_from_slice(out);
                    op.combine(t, own);
                    c.send(t, r + 1)?;
                }
            } else {
                op.combine(out, own);
                if r + 1 < p {
                    c.send(out, r + 1)?;
                }
            }
        }
        if end >= n {
            return Ok(());
        }
        start = end;
    }
}
