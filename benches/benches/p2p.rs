//! criterion benchmarks of rmpi point-to-point between two ranks (threads of this process over
//! loopback TCP, via `rmpi::local`): ping-pong one-way latency (half a round trip) and
//! streaming bandwidth (a window of nonblocking zero-copy sends, then a 4-byte ack).
//!
//! Rank 0 runs criterion; rank 1 follows its orders (`rmpi_benches::driver`), so both ranks
//! stay alive across iterations. Run with `cargo bench -p rmpi-benches --bench p2p`.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use rmpi::Communicator;
use rmpi_benches::driver::{self, or_exit, Order};
use rmpi_benches::link::{Link, RmpiLink};
use rmpi_benches::p2p::{self, Role};
use rmpi_benches::Result;

/// Message sizes: 0 B to 16 MiB in steps of 8x.
const SIZES: [usize; 10] = [0, 1, 8, 64, 512, 4096, 32768, 262144, 2 << 20, 16 << 20];
/// Largest size.
const MAX: usize = 16 << 20;
/// Bytes in flight per bandwidth window are capped here (64 messages up to 1 MiB, fewer above).
const WINDOW_BYTES: usize = 64 << 20;

const LATENCY: u64 = 0;
const BANDWIDTH: u64 = 1;

/// Messages per bandwidth window for `size`-byte messages.
fn window(size: usize) -> usize {
    (WINDOW_BYTES / size.max(1)).clamp(1, p2p::WINDOW)
}

/// Runs one order on either rank; returns the initiator's measured time.
fn run(link: &mut RmpiLink, role: Role, bufs: &mut Bufs, o: Order) -> Result<Duration> {
    let size = driver::to_usize(o.size)?;
    let iters = driver::to_usize(o.iters)?;
    link.sync()?;
    match o.what {
        LATENCY => p2p::pingpong(link, role, &mut bufs.ping[..size], 0, iters).map(|t| t / 2),
        _ => p2p::stream(link, role, &mut bufs.window, (size, window(size)), 0, iters),
    }
}

struct Bufs {
    ping: Vec<u8>,
    window: Vec<u8>,
}

fn initiator(world: &Communicator) -> Result<()> {
    let mut c = Criterion::default()
        .sample_size(10)
        .nresamples(10_000)
        .without_plots()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .configure_from_args();
    let mut link = RmpiLink::new(world.clone(), 1);
    let mut bufs = Bufs { ping: vec![1u8; MAX], window: vec![1u8; MAX] };
    for (what, name) in [(LATENCY, "p2p_latency"), (BANDWIDTH, "p2p_bandwidth")] {
        let mut g = c.benchmark_group(name);
        g.sampling_mode(SamplingMode::Flat);
        for size in SIZES {
            if what == BANDWIDTH && size == 0 {
                continue;
            }
            let per_iter = if what == LATENCY { size } else { size * window(size) };
            g.throughput(Throughput::Bytes(per_iter as u64));
            g.bench_function(BenchmarkId::from_parameter(size), |b| {
                b.iter_custom(|iters| {
                    let o = Order { what, size: size as u64, iters };
                    or_exit(driver::give(world, o));
                    or_exit(run(&mut link, Role::Initiator, &mut bufs, o))
                })
            });
        }
        g.finish();
    }
    driver::stop(world)?;
    c.final_summary();
    Ok(())
}

fn responder(world: &Communicator) -> Result<()> {
    let mut link = RmpiLink::new(world.clone(), 0);
    let mut bufs = Bufs { ping: vec![1u8; MAX], window: vec![1u8; MAX] };
    driver::serve(world, |o| run(&mut link, Role::Responder, &mut bufs, o).map(drop))
}

fn main() {
    driver::run_local("p2p bench", 2, initiator, responder);
}
