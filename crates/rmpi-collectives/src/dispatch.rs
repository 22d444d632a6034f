//! Where a chosen algorithm becomes a function call, for every family (the choice itself is
//! [`Settings`]' `pick_*`). The whole communicator's call (with its [`Layout`]) and each level
//! of a two-level call (no layout: one level is one host, or one rank per host) go through
//! here, so both choose with the same settings and the same cost model. `Auto` is never
//! picked; it shares an arm with the default algorithm so that every match is exhaustive.

use bytemuck::Pod;
use rmpi_transport::Result;

use crate::algo::{
    AllgatherAlgo, AllreduceAlgo, AlltoallAlgo, BarrierAlgo, BcastAlgo, GatherAlgo, Placement,
    ReduceAlgo, ReduceScatterAlgo, ScanAlgo, ScatterAlgo, Settings,
};
use crate::call::Call;
use crate::layout::Layout;
use crate::ops::Op;
use crate::scratch;
use crate::{
    allreduce, alltoall, barrier, bcast, gather, hier, reduce, reduce_scatter, scan, scatter,
};

fn placement(lay: Option<&Layout>) -> Placement {
    lay.map_or(Placement::ONE_HOST, Layout::placement)
}

/// Barrier.
pub(crate) fn barrier(c: &Call, s: &Settings, lay: Option<&Layout>) -> Result<()> {
    match (s.pick_barrier(placement(lay)), lay) {
        (BarrierAlgo::Hier, Some(l)) => hier::barrier(c, s, l),
        (BarrierAlgo::Linear, _) => barrier::linear(c),
        (BarrierAlgo::Flat, _) => barrier::flat(c),
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
        (AllreduceAlgo::Flat, _) => allreduce::flat(c, buf, op),
        (AllreduceAlgo::Auto | AllreduceAlgo::RecursiveDoubling | AllreduceAlgo::Hier, _) => {
            allreduce::recursive_doubling(c, buf, op)
        }
    }
}

/// Reduce to rank 0 (in rank order for any operator), then broadcast from it; each half is
/// chosen as that call on its own would be.
fn reduce_bcast<T: Pod, O: Op<T>>(c: &Call, s: &Settings, buf: &mut [T], op: &O) -> Result<()> {
    let root = c.rank == 0;
    scratch::with(if root { buf.len() } else { 0 }, |out: &mut [T]| {
        reduce(c, s, None, buf, root.then_some(out), op, 0)?;
        if root {
            buf.copy_from_slice(out);
        }
        Ok::<_, rmpi_transport::Error>(())
    })?;
    bcast(c, s, None, buf, 0)
}

/// Scatter of the root's `send` (checked by the caller) into every rank's `recv`.
pub(crate) fn scatter<T: Pod>(
    c: &Call,
    s: &Settings,
    send: Option<&[T]>,
    recv: &mut [T],
    root: usize,
) -> Result<()> {
    match s.pick_scatter(std::mem::size_of_val(recv) * c.size, c.size) {
        ScatterAlgo::Linear => {
            let counts = vec![recv.len(); c.size];
            scatter::linear(c, send.map(|a| (a, &counts[..])), recv, root)
        }
        ScatterAlgo::Auto | ScatterAlgo::Binomial => scatter::binomial(c, send, recv, root),
    }
}

/// Gather of every rank's `send` into the root's `recv` (checked by the caller).
pub(crate) fn gather<T: Pod>(
    c: &Call,
    s: &Settings,
    send: &[T],
    recv: Option<&mut [T]>,
    root: usize,
) -> Result<()> {
    match s.pick_gather(std::mem::size_of_val(send) * c.size, c.size) {
        GatherAlgo::Linear => {
            let counts = vec![send.len(); c.size];
            gather::linear(c, send, recv.map(|o| (o, &counts[..])), root)
        }
        GatherAlgo::Auto | GatherAlgo::Binomial => gather::binomial(c, send, recv, root),
    }
}

/// Allgather of every rank's `send` into `recv` (`size * send.len()` elements).
pub(crate) fn allgather<T: Pod>(
    c: &Call,
    s: &Settings,
    lay: Option<&Layout>,
    send: &[T],
    recv: &mut [T],
) -> Result<()> {
    match (s.pick_allgather(std::mem::size_of_val(recv), c.size, placement(lay)), lay) {
        (AllgatherAlgo::Hier, Some(l)) => hier::allgather(c, s, l, send, recv),
        (AllgatherAlgo::Ring, _) => gather::ring(c, send, recv, &vec![send.len(); c.size]),
        (AllgatherAlgo::Linear, _) => gather::allgather_linear(c, send, recv),
        (AllgatherAlgo::Auto | AllgatherAlgo::Bruck | AllgatherAlgo::Hier, _) => {
            gather::bruck(c, send, recv)
        }
    }
}

/// Alltoall of blocks of `k` elements.
pub(crate) fn alltoall<T: Pod>(
    c: &Call,
    s: &Settings,
    send: &[T],
    recv: &mut [T],
    k: usize,
) -> Result<()> {
    match s.pick_alltoall(k * std::mem::size_of::<T>(), c.size) {
        AlltoallAlgo::Pairwise => alltoall::pairwise(c, send, recv, k),
        AlltoallAlgo::Auto | AlltoallAlgo::Scattered => alltoall::scattered(c, send, recv, k),
    }
}

/// Reduce-scatter of `send` (`size * recv.len()` elements) into every rank's block.
pub(crate) fn reduce_scatter<T: Pod, O: Op<T>>(
    c: &Call,
    s: &Settings,
    send: &[T],
    recv: &mut [T],
    op: &O,
) -> Result<()> {
    match s.pick_reduce_scatter(std::mem::size_of_val(send), c.size, op.commutative()) {
        ReduceScatterAlgo::Ring => reduce_scatter::ring(c, send, recv, op),
        ReduceScatterAlgo::Direct => reduce_scatter::direct(c, send, recv, op),
        ReduceScatterAlgo::Auto | ReduceScatterAlgo::ReduceThenScatter => {
            reduce_scatter::reduce_then_scatter(c, send, recv, op)
        }
    }
}

/// Inclusive or (`exclusive`) exclusive scan.
pub(crate) fn scan<T: Pod, O: Op<T>>(
    c: &Call,
    s: &Settings,
    send: &[T],
    recv: &mut [T],
    op: &O,
    exclusive: bool,
) -> Result<()> {
    match s.pick_scan(std::mem::size_of_val(send), c.size) {
        ScanAlgo::Chain => scan::chain(c, send, recv, op, exclusive),
        ScanAlgo::Auto | ScanAlgo::RecursiveDoubling => {
            scan::recursive_doubling(c, send, recv, op, exclusive)
        }
    }
}
