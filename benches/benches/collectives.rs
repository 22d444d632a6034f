//! criterion benchmarks of rmpi's collectives on 2 and 4 ranks (threads of this process over
//! loopback TCP, via `rmpi::local`), 8 B to 16 MiB, with the sizes meaning what they mean in the
//! OSU tests (see `rmpi_benches::coll`).
//!
//! A measurement of `n` iterations is `n` calls, each followed by a barrier; the time reported
//! is the calls' time alone (not the barriers'), averaged over the ranks, as OSU reports it.
//! Rank 0 runs criterion; the others follow its orders (`rmpi_benches::driver`), so every rank
//! stays alive across iterations. Run with `cargo bench -p rmpi-benches --bench collectives`.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use rmpi::Communicator;
use rmpi_benches::coll::{self, Buffers, Coll};
use rmpi_benches::driver::{self, or_exit, Order};
use rmpi_benches::Result;

/// The collectives measured.
const COLLS: [Coll; 7] = [
    Coll::Allreduce,
    Coll::Bcast,
    Coll::Reduce,
    Coll::Gather,
    Coll::Scatter,
    Coll::Allgather,
    Coll::Alltoall,
];
/// Message sizes: 8 B to 16 MiB in steps of 8x.
const SIZES: [usize; 8] = [8, 64, 512, 4096, 32768, 262144, 2 << 20, 16 << 20];

/// Buffers of the last (collective, size) measured, reused while criterion repeats it.
#[derive(Default)]
struct Cache(Option<((Coll, usize), Buffers)>);

impl Cache {
    fn get(&mut self, coll: Coll, size: usize, comm: &Communicator) -> &mut Buffers {
        if self.0.as_ref().is_none_or(|(k, _)| *k != (coll, size)) {
            self.0 = Some(((coll, size), Buffers::new(coll, size, comm.size(), comm.rank())));
        }
        match &mut self.0 {
            Some((_, b)) => b,
            None => unreachable!("filled just above"),
        }
    }
}

/// Runs one order on any rank; rank 0 gets the time per call averaged over ranks.
fn run(comm: &Communicator, cache: &mut Cache, o: Order) -> Result<Option<Duration>> {
    let coll = Coll::ALL
        .get(driver::to_usize(o.what)?)
        .copied()
        .ok_or_else(|| rmpi_benches::BenchError::Protocol(format!("no collective {}", o.what)))?;
    let size = driver::to_usize(o.size)?;
    let iters = driver::to_usize(o.iters)?;
    let b = cache.get(coll, size, comm);
    let per_call_us = coll::time_calls(coll, comm, size, b, 0, iters)?;
    Ok(coll::over_ranks(comm, per_call_us)?
        .map(|(avg, _, _)| Duration::from_secs_f64(avg * 1e-6 * iters as f64)))
}

fn initiator(world: &Communicator) -> Result<()> {
    let mut c = Criterion::default()
        .sample_size(10)
        .nresamples(10_000)
        .without_plots()
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_millis(800))
        .configure_from_args();
    let mut cache = Cache::default();
    for coll in COLLS {
        let what = Coll::ALL.iter().position(|c| *c == coll).unwrap_or_default() as u64;
        let mut g = c.benchmark_group(format!("{}/{}ranks", coll.name(), world.size()));
        g.sampling_mode(SamplingMode::Flat);
        for size in SIZES {
            g.throughput(Throughput::Bytes(size as u64));
            g.bench_function(BenchmarkId::from_parameter(size), |b| {
                b.iter_custom(|iters| {
                    let o = Order { what, size: size as u64, iters };
                    or_exit(driver::give(world, o));
                    or_exit(run(world, &mut cache, o)).unwrap_or_default()
                })
            });
        }
        g.finish();
    }
    driver::stop(world)?;
    c.final_summary();
    Ok(())
}

fn follower(world: &Communicator) -> Result<()> {
    let mut cache = Cache::default();
    driver::serve(world, |o| run(world, &mut cache, o).map(drop))
}

fn main() {
    for ranks in [2, 4] {
        driver::run_local("collectives bench", ranks, initiator, follower);
    }
}
