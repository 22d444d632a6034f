//! Collective latency tests: which collective, its buffers and one call of it, and the OSU
//! timing loop (every call timed alone, a barrier between calls, the per-rank averages reduced
//! to rank 0 for the average/min/max columns).
//!
//! Sizes follow the OSU conventions: bcast, gather, scatter, allgather: bytes per rank;
//! alltoall: bytes per pair; reduce, allreduce, scan: bytes of `f64`s summed (size/8 elements,
//! at least 1); reduce_scatter: bytes of the whole reduced vector, each rank getting 1/p of it
//! (at least one `f64`).

use std::time::Instant;

use rmpi::prelude::{Collectives, Max, Min, Sum};
use rmpi::Communicator;

use crate::error::{BenchError, Result};
use crate::options::{Defaults, Options};
use crate::table;

/// One collective operation under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coll {
    /// `bcast` from rank 0.
    Bcast,
    /// `reduce` of `f64`s with `Sum` to rank 0.
    Reduce,
    /// `allreduce` of `f64`s with `Sum`.
    Allreduce,
    /// `gather` to rank 0.
    Gather,
    /// `scatter` from rank 0.
    Scatter,
    /// `barrier` (no data).
    Barrier,
    /// `allgather`.
    Allgather,
    /// `alltoall`.
    Alltoall,
    /// `reduce_scatter_block` of `f64`s with `Sum`.
    ReduceScatter,
    /// Inclusive `scan` of `f64`s with `Sum`.
    Scan,
}

impl Coll {
    /// Every collective, in the order of the OSU suite.
    pub const ALL: [Coll; 10] = [
        Coll::Bcast,
        Coll::Reduce,
        Coll::Allreduce,
        Coll::Gather,
        Coll::Scatter,
        Coll::Barrier,
        Coll::Allgather,
        Coll::Alltoall,
        Coll::ReduceScatter,
        Coll::Scan,
    ];

    /// The short name (`allreduce`, `reduce_scatter`, ...), as in the program names.
    pub fn name(self) -> &'static str {
        match self {
            Coll::Bcast => "bcast",
            Coll::Reduce => "reduce",
            Coll::Allreduce => "allreduce",
            Coll::Gather => "gather",
            Coll::Scatter => "scatter",
            Coll::Barrier => "barrier",
            Coll::Allgather => "allgather",
            Coll::Alltoall => "alltoall",
            Coll::ReduceScatter => "reduce_scatter",
            Coll::Scan => "scan",
        }
    }

    /// The test's title line.
    pub fn title(self) -> &'static str {
        match self {
            Coll::Bcast => "Broadcast Latency Test",
            Coll::Reduce => "Reduce Latency Test",
            Coll::Allreduce => "Allreduce Latency Test",
            Coll::Gather => "Gather Latency Test",
            Coll::Scatter => "Scatter Latency Test",
            Coll::Barrier => "Barrier Latency Test",
            Coll::Allgather => "Allgather Latency Test",
            Coll::Alltoall => "All-to-All Latency Test",
            Coll::ReduceScatter => "Reduce_scatter Latency Test",
            Coll::Scan => "Scan Latency Test",
        }
    }

    /// Bytes of the send and receive buffers one rank needs for `size` on `p` ranks.
    fn buffer_bytes(self, size: usize, p: usize) -> (usize, usize) {
        let f64s = f64_count(size) * 8;
        match self {
            Coll::Bcast => (size, 0),
            Coll::Reduce | Coll::Allreduce | Coll::Scan => (f64s, f64s),
            Coll::Gather | Coll::Allgather => (size, size * p),
            Coll::Scatter => (size * p, size),
            Coll::Alltoall => (size * p, size * p),
            Coll::ReduceScatter => {
                let per = (f64_count(size) / p).max(1);
                (per * p * 8, per * 8)
            }
            Coll::Barrier => (0, 0),
        }
    }
}

/// Number of `f64`s for a message of `size` bytes: size/8, at least 1.
pub fn f64_count(size: usize) -> usize {
    (size / 8).max(1)
}

/// A rank's send and receive buffers, sized for the largest message of a sweep and aligned
/// for `f64`.
#[derive(Debug)]
pub struct Buffers {
    send: Vec<f64>,
    recv: Vec<f64>,
}

impl Buffers {
    /// Buffers for `coll` with messages up to `max_size` bytes on `p` ranks; the send buffer
    /// holds `rank + 1` in every `f64` (ordinary numbers to add up).
    pub fn new(coll: Coll, max_size: usize, p: usize, rank: usize) -> Buffers {
        let (s, r) = coll.buffer_bytes(max_size, p);
        Buffers { send: vec![(rank + 1) as f64; s.div_ceil(8)], recv: vec![0.0; r.div_ceil(8)] }
    }
}

fn too_small(n: usize) -> BenchError {
    BenchError::Usage(format!("{n}-byte message exceeds the buffers (raise -m MAX)"))
}

/// Slices the first `n` elements of `v`, or says the buffers are too small.
fn prefix<T>(v: &[T], n: usize) -> Result<&[T]> {
    v.get(..n).ok_or_else(|| too_small(n))
}

/// Mutable [`prefix`].
fn prefix_mut<T>(v: &mut [T], n: usize) -> Result<&mut [T]> {
    v.get_mut(..n).ok_or_else(|| too_small(n))
}

/// Makes one call of `coll` with messages of `size` bytes (see the module docs for what the
/// size means for each collective). Every rank of `comm` must make the same call.
pub fn call(coll: Coll, comm: &Communicator, size: usize, b: &mut Buffers) -> Result<()> {
    let p = comm.size();
    let root = comm.rank() == 0;
    let n = f64_count(size);
    match coll {
        Coll::Barrier => comm.barrier()?,
        Coll::Bcast => {
            let bytes = bytemuck::cast_slice_mut::<f64, u8>(&mut b.send);
            comm.bcast(prefix_mut(bytes, size)?, 0)?
        }
        Coll::Reduce => {
            let out = if root { Some(prefix_mut(&mut b.recv, n)?) } else { None };
            comm.reduce(prefix(&b.send, n)?, out, Sum, 0)?
        }
        Coll::Allreduce => comm.allreduce(prefix(&b.send, n)?, prefix_mut(&mut b.recv, n)?, Sum)?,
        Coll::Scan => comm.scan(prefix(&b.send, n)?, prefix_mut(&mut b.recv, n)?, Sum)?,
        Coll::ReduceScatter => {
            let per = (n / p).max(1);
            comm.reduce_scatter_block(
                prefix(&b.send, per * p)?,
                prefix_mut(&mut b.recv, per)?,
                Sum,
            )?
        }
        Coll::Gather => {
            let recv = bytemuck::cast_slice_mut::<f64, u8>(&mut b.recv);
            let out = if root { Some(prefix_mut(recv, size * p)?) } else { None };
            comm.gather(b_send(&b.send, size)?, out, 0)?
        }
        Coll::Scatter => {
            let send = if root { Some(b_send(&b.send, size * p)?) } else { None };
            let recv = bytemuck::cast_slice_mut::<f64, u8>(&mut b.recv);
            comm.scatter(send, prefix_mut(recv, size)?, 0)?
        }
        Coll::Allgather => {
            let recv = bytemuck::cast_slice_mut::<f64, u8>(&mut b.recv);
            comm.allgather(b_send(&b.send, size)?, prefix_mut(recv, size * p)?)?
        }
        Coll::Alltoall => {
            let recv = bytemuck::cast_slice_mut::<f64, u8>(&mut b.recv);
            comm.alltoall(b_send(&b.send, size * p)?, prefix_mut(recv, size * p)?)?
        }
    }
    Ok(())
}

/// The first `n` bytes of a send buffer.
fn b_send(send: &[f64], n: usize) -> Result<&[u8]> {
    prefix(bytemuck::cast_slice::<f64, u8>(send), n)
}

/// The option defaults of a collective test.
pub fn defaults(coll: Coll) -> Defaults {
    match coll {
        Coll::Barrier => Defaults { min_size: 0, ..Defaults::COLLECTIVE },
        _ => Defaults::COLLECTIVE,
    }
}

/// Average latency of `iters` timed calls (after `warmup` untimed ones), each call timed alone
/// with a barrier after it, in microseconds.
pub fn time_calls(
    coll: Coll,
    comm: &Communicator,
    size: usize,
    b: &mut Buffers,
    warmup: usize,
    iters: usize,
) -> Result<f64> {
    let mut total = 0.0;
    comm.barrier()?;
    for i in 0..warmup + iters {
        let t0 = Instant::now();
        call(coll, comm, size, b)?;
        let el = t0.elapsed().as_secs_f64();
        if i >= warmup {
            total += el;
        }
        comm.barrier()?;
    }
    Ok(total * 1e6 / iters.max(1) as f64)
}

/// Average, minimum and maximum of every rank's `value`, at rank 0 (`None` elsewhere).
pub fn over_ranks(comm: &Communicator, value: f64) -> Result<Option<(f64, f64, f64)>> {
    let root = comm.rank() == 0;
    let (mut sum, mut min, mut max) = ([0.0f64], [0.0f64], [0.0f64]);
    comm.reduce(&[value], root.then_some(&mut sum[..]), Sum, 0)?;
    comm.reduce(&[value], root.then_some(&mut min[..]), Min, 0)?;
    comm.reduce(&[value], root.then_some(&mut max[..]), Max, 0)?;
    Ok(root.then(|| (sum[0] / comm.size() as f64, min[0], max[0])))
}

/// Reduces every rank's latency to rank 0 and prints the row there.
fn report(comm: &Communicator, opts: &Options, size: usize, lat: f64, iters: usize) -> Result<()> {
    if let Some((avg, min, max)) = over_ranks(comm, lat)? {
        table::emit(&if opts.full {
            table::full_row(size, avg, min, max, iters)
        } else {
            table::row(size, avg)
        });
    }
    Ok(())
}

/// The sweep of one collective on `comm`; rank 0 prints the table.
pub fn latency_table(coll: Coll, comm: &Communicator, opts: &Options) -> Result<()> {
    if comm.rank() == 0 {
        let cols =
            if opts.full { table::COLLECTIVE_FULL_COLUMNS } else { table::COLLECTIVE_COLUMNS };
        table::header("rmpi", coll.title(), comm.size(), cols);
    }
    if coll == Coll::Barrier {
        let lat = time_barriers(comm, opts.warmup_for(opts.iters), opts.iters)?;
        return report(comm, opts, 0, lat, opts.iters);
    }
    let mut b = Buffers::new(coll, opts.max_size, comm.size(), comm.rank());
    for size in opts.sizes().into_iter().filter(|s| *s > 0) {
        let iters = opts.iters_for(size);
        let lat = time_calls(coll, comm, size, &mut b, opts.warmup_for(iters), iters)?;
        report(comm, opts, size, lat, iters)?;
    }
    Ok(())
}

/// Average latency of `iters` back-to-back barriers (after `warmup` ones), in microseconds.
pub fn time_barriers(comm: &Communicator, warmup: usize, iters: usize) -> Result<f64> {
    comm.barrier()?;
    let mut t0 = Instant::now();
    for i in 0..warmup + iters {
        if i == warmup {
            t0 = Instant::now();
        }
        comm.barrier()?;
    }
    Ok(t0.elapsed().as_secs_f64() * 1e6 / iters.max(1) as f64)
}

/// The body of an `osu_<collective>` program: join the job, run the sweep, finalize.
pub fn main(coll: Coll) -> Result<()> {
    let opts = Options::from_env(defaults(coll));
    let world = rmpi::init()?;
    latency_table(coll, &world, &opts)?;
    Ok(world.finalize()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffer_sizes_follow_the_osu_conventions() {
        assert_eq!(Coll::Bcast.buffer_bytes(64, 4), (64, 0));
        assert_eq!(Coll::Allreduce.buffer_bytes(4, 4), (8, 8));
        assert_eq!(Coll::Gather.buffer_bytes(64, 4), (64, 256));
        assert_eq!(Coll::Scatter.buffer_bytes(64, 4), (256, 64));
        assert_eq!(Coll::Alltoall.buffer_bytes(64, 4), (256, 256));
        // 64 bytes = 8 doubles over 4 ranks: 2 each.
        assert_eq!(Coll::ReduceScatter.buffer_bytes(64, 4), (64, 16));
        // 8 bytes = 1 double: still one per rank.
        assert_eq!(Coll::ReduceScatter.buffer_bytes(8, 4), (32, 8));
    }

    #[test]
    fn every_collective_runs_and_reduces_right() {
        let sizes = [8usize, 24, 4096];
        let out = rmpi::local::run(3, |world| {
            let mut sums = Vec::new();
            for coll in Coll::ALL {
                let mut b = Buffers::new(coll, 4096, world.size(), world.rank());
                for size in sizes {
                    call(coll, &world, size, &mut b).map_err(|e| match e {
                        BenchError::Rmpi(e) => e,
                        other => panic!("{other}"),
                    })?;
                    if coll == Coll::Allreduce {
                        sums.push(b.recv[0]);
                    }
                }
            }
            Ok(sums)
        })
        .unwrap();
        // Ranks hold 1, 2, 3: every allreduce sums to 6.
        for sums in out {
            assert_eq!(sums, vec![6.0; 3]);
        }
    }
}
