//! Where a chosen algorithm becomes a function call, for the families with a two-level form:
//! the whole communicator's call (with its [`Layout`]) and each level of a two-level call (no
//! layout: one level is one host, or one rank per host) go through here, so both choose with
//! the same [`Settings`] and the same cost model.

use bytemuck::Pod;
use rmpi_transport::Result;

use crate::algo::{AllreduceAlgo, BarrierAlgo, BcastAlgo, Placement, ReduceAlgo, Settings};
use crate::call::Call;
use crate::layout::Layout;
use crate::ops::Op;
use crate::{allreduce, barrier, bcast, hier, reduce};

fn placement(lay: Option<&Layout>) -> Placement {
    lay.map_or(Placement::ONE_HOST, Layout::placement)
}

/// Barrier.
pub(crate) fn barrier(c: &Call, s: &Settings, lay: Option<&Layout>) -> Result<()> {
    match (s.pick_barrier(placement(lay)), lay) {
        (BarrierAlgo::Hier, Some(l)) => hier::barrier(c, s, l),
        // `Auto` is never picked, nor two levels without a layout.
        (BarrierAlgo::Auto | BarrierAlgo::Dissemination | BarrierAlgo::Hier, _) => {
            barrier::barrier(c)
        }
    }
}

/// Broadcast of `buf` from `root`.
pub(crate) fn bcast<T: Pod>(
    c: &Call,
    s: &Settings,
    lay: Option<&Layout>,
    buf: &mut [T],
    root: usize,
) -> Result<()> {
    match (s.pick_bcast(std::mem::size_of_val(buf), c.size, placement(lay)), lay) {
        (BcastAlgo::Hier, Some(l)) => hier::bcast(c, s, l, buf, root),
        (BcastAlgo::ScatterAllgather, _) => bcast::scatter_allgather(c, buf, root),
        (BcastAlgo::Pipeline, _) => bcast::pipeline(c, buf, root),
        (BcastAlgo::Linear, _) => bcast::linear(c, buf, root),
        (BcastAlgo::Auto | BcastAlgo::Binomial | BcastAlgo::Hier, _) => {
            bcast::binomial(c, buf, root)
        }
    }
}

/// Reduce of `send` into `recv` at `root` (`recv` checked by the caller).
pub(crate) fn reduce<T: Pod, O: Op<T>>(
    c: &Call,
    s: &Settings,
    lay: Option<&Layout>,
    send: &[T],
    recv: Option<&mut [T]>,
    op: &O,
    root: usize,
) -> Result<()> {
    let bytes = std::mem::size_of_val(send);
    match (s.pick_reduce(bytes, c.size, op.commutative(), placement(lay)), lay) {
        (ReduceAlgo::Hier, Some(l)) => hier::reduce(c, s, l, send, recv, op, root),
        (ReduceAlgo::ReduceScatterGather, _) => {
            reduce::reduce_scatter_gather(c, send, recv, op, root)
        }
        (ReduceAlgo::Linear, _) => reduce::linear(c, send, recv, op, root),
        (ReduceAlgo::Auto | ReduceAlgo::Binomial | ReduceAlgo::Hier, _) => {
            reduce::binomial(c, send, recv, op, root)
        }
    }
}

/// The allreduce algorithm for `bytes` (the ring has an out-of-place form the caller uses).
pub(crate) fn pick_allreduce(
    c: &Call,
    s: &Settings,
    lay: Option<&Layout>,
    bytes: usize,
    commutative: bool,
) -> AllreduceAlgo {
    s.pick_allreduce(bytes, c.size, commutative, placement(lay))
}

/// In-place allreduce of `buf` with `algo` (from [`pick_allreduce`]).
pub(crate) fn allreduce<T: Pod, O: Op<T>>(
    c: &Call,
    s: &Settings,
    lay: Option<&Layout>,
    algo: AllreduceAlgo,
    buf: &mut [T],
    op: &O,
) -> Result<()> {
    if c.size == 1 {
        return Ok(());
    }
    match (algo, lay) {
        (AllreduceAlgo::Hier, Some(l)) => hier::allreduce(c, s, l, buf, op),
        (AllreduceAlgo::Ring, _) => allreduce::ring(c, buf, op),
        (AllreduceAlgo::Rabenseifner, _) => allreduce::rabenseifner(c, buf, op),
        (AllreduceAlgo::ReduceBcast, _) => reduce_bcast(c, s, buf, op),
        (AllreduceAlgo::Direct, _) => allreduce::direct(c, buf, op),
        (AllreduceAlgo::Auto | AllreduceAlgo::RecursiveDoubling | AllreduceAlgo::Hier, _) => {
            allreduce::recursive_doubling(c, buf, op)
        }
    }
}

/// Reduce to rank 0 (in rank order for any operator), then broadcast from it; each half is
/// chosen as that call on its own would be.
fn reduce_bcast<T: Pod, O: Op<T>>(c: &Call, s: &Settings, buf: &mut [T], op: &O) -> Result<()> {
    let root = c.rank == 0;
    let mut out: Vec<T> = if root { bytemuck::zeroed_vec(buf.len()) } else { Vec::new() };
    reduce(c, s, None, buf, root.then_some(&mut out[..]), op, 0)?;
    if root {
        buf.copy_from_slice(&out);
    }
    bcast(c, s, None, buf, 0)
}
