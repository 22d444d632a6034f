//! Mean latency of small collectives, to compare builds (how the cost of stall detection in
//! `docs/collectives.md` was measured).
//!
//! `cargo run --release -p rmpi-collectives --example coll_latency -- [P [ITERS]]` (defaults 2
//! and 2000): P ranks as threads over loopback TCP run ITERS calls of each operation, three
//! rounds; rank 0's median round is printed in microseconds per call.

use std::time::Instant;

use rmpi_collectives::*;
use rmpi_transport::{local, Result};

fn arg(i: usize, default: usize) -> usize {
    match std::env::args().nth(i) {
        None => default,
        Some(s) => s.parse().unwrap_or_else(|_| {
            eprintln!("coll_latency: argument {i} must be a positive number, got {s:?}");
            std::process::exit(2)
        }),
    }
}

fn main() {
    if let Err(e) = run(arg(1, 2).max(1), arg(2, 2000).max(1)) {
        eprintln!("coll_latency: {e}");
        std::process::exit(1);
    }
}

fn run(p: usize, n: usize) -> Result<()> {
    let out = local::run(p, move |w| {
        let mut res = Vec::new();
        for _ in 0..3 {
            let mut row = Vec::new();
            w.barrier()?;
            let t = Instant::now();
            for _ in 0..n {
                let mut v = [1u64];
                w.allreduce_in_place(&mut v, Sum)?;
            }
            row.push(("allreduce 8B", t.elapsed().as_secs_f64() * 1e6 / n as f64));
            w.barrier()?;
            let t = Instant::now();
            for _ in 0..n {
                let mut v = [1u64];
                w.bcast(&mut v, 0)?;
            }
            row.push(("bcast 8B", t.elapsed().as_secs_f64() * 1e6 / n as f64));
            w.barrier()?;
            let t = Instant::now();
            for _ in 0..n {
                w.bcast_obj((w.rank() == 0).then_some(7u64), 0)?;
            }
            row.push(("bcast_obj u64", t.elapsed().as_secs_f64() * 1e6 / n as f64));
            w.barrier()?;
            let t = Instant::now();
            for _ in 0..n {
                w.allgather_obj(&w.rank())?;
            }
            row.push(("allgather_obj", t.elapsed().as_secs_f64() * 1e6 / n as f64));
            w.barrier()?;
            let t = Instant::now();
            for _ in 0..n {
                w.barrier()?;
            }
            row.push(("barrier", t.elapsed().as_secs_f64() * 1e6 / n as f64));
            res.push(row);
        }
        Ok(res)
    })?;
    // Rank 0's rounds: print the median of 3 for each operation.
    let rows = &out[0];
    for i in 0..rows[0].len() {
        let mut v: Vec<f64> = rows.iter().map(|r| r[i].1).collect();
        v.sort_by(|a, b| a.total_cmp(b));
        println!("p={p} {:14} {:8.2} us", rows[0][i].0, v[1]);
    }
    Ok(())
}
