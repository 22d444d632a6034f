//! Times every algorithm of a collective family side by side, to choose the size thresholds
//! recorded in `docs/collectives.md`.
//!
//! `cargo run --release -p rmpi-collectives --example coll_tune -- OP P [MAXBYTES]`, with OP one
//! of bcast, reduce, allreduce, allgather, gather, scatter, alltoall, reduce_scatter, scan; P ranks
//! run as threads over loopback TCP. For each size (powers of 4 from 8 bytes) the algorithms
//! take turns in rounds (every call timed alone with a barrier after it, as in the OSU programs),
//! and the median over rounds of the mean time per call (averaged over ranks, as in the OSU tables)
//! is printed in microseconds.

use std::time::Instant;

use rmpi_collectives::*;
use rmpi_transport::{local, Communicator, Error, Result};

type Variant = (&'static str, Settings);

fn variants(op: &str) -> Option<Vec<Variant>> {
    let d = Settings::default();
    let v: Vec<Variant> = match op {
        "bcast" => vec![
            ("binomial", Settings { bcast: BcastAlgo::Binomial, ..d }),
            ("scatter_allgather", Settings { bcast: BcastAlgo::ScatterAllgather, ..d }),
            ("pipeline", Settings { bcast: BcastAlgo::Pipeline, ..d }),
            ("linear", Settings { bcast: BcastAlgo::Linear, ..d }),
        ],
        "reduce" => vec![
            ("binomial", Settings { reduce: ReduceAlgo::Binomial, ..d }),
            ("rs_gather", Settings { reduce: ReduceAlgo::ReduceScatterGather, ..d }),
        ],
        "allreduce" => vec![
            ("rec_doubling", Settings { allreduce: AllreduceAlgo::RecursiveDoubling, ..d }),
            ("ring", Settings { allreduce: AllreduceAlgo::Ring, ..d }),
            ("rabenseifner", Settings { allreduce: AllreduceAlgo::Rabenseifner, ..d }),
            ("reduce_bcast", Settings { allreduce: AllreduceAlgo::ReduceBcast, ..d }),
        ],
        "allgather" => vec![
            ("bruck", Settings { allgather: AllgatherAlgo::Bruck, ..d }),
            ("ring", Settings { allgather: AllgatherAlgo::Ring, ..d }),
        ],
        "gather" => vec![
            ("binomial", Settings { gather: GatherAlgo::Binomial, ..d }),
            ("linear", Settings { gather: GatherAlgo::Linear, ..d }),
        ],
        "scatter" => vec![
            ("binomial", Settings { scatter: ScatterAlgo::Binomial, ..d }),
            ("linear", Settings { scatter: ScatterAlgo::Linear, ..d }),
        ],
        "alltoall" => vec![
            ("scattered", Settings { alltoall: AlltoallAlgo::Scattered, ..d }),
            ("pairwise", Settings { alltoall: AlltoallAlgo::Pairwise, ..d }),
        ],
        "reduce_scatter" => vec![
            (
                "reduce_scatter",
                Settings { reduce_scatter: ReduceScatterAlgo::ReduceThenScatter, ..d },
            ),
            ("ring", Settings { reduce_scatter: ReduceScatterAlgo::Ring, ..d }),
        ],
        "scan" => vec![
            ("rec_doubling", Settings { scan: ScanAlgo::RecursiveDoubling, ..d }),
            ("chain", Settings { scan: ScanAlgo::Chain, ..d }),
        ],
        _ => return None,
    };
    Some(v)
}

/// One call of `op` with `bytes` per rank (OSU conventions).
fn call(w: &Tuned<'_>, op: &str, bytes: usize, a: &mut [f64], b: &mut [f64]) -> Result<()> {
    let p = w.communicator().size();
    let r = w.communicator().rank();
    let n = (bytes / 8).max(1);
    match op {
        "bcast" => w.bcast(&mut a[..n], 0),
        "reduce" => w.reduce(&a[..n], (r == 0).then_some(&mut b[..n]), Sum, 0),
        "allreduce" => w.allreduce(&a[..n], &mut b[..n], Sum),
        "allgather" => w.allgather(&a[..n], &mut b[..n * p]),
        "gather" => w.gather(&a[..n], (r == 0).then_some(&mut b[..n * p]), 0),
        "scatter" => w.scatter((r == 0).then_some(&a[..n * p]), &mut b[..n], 0),
        "alltoall" => w.alltoall(&a[..n * p], &mut b[..n * p]),
        "scan" => w.scan(&a[..n], &mut b[..n], Sum),
        _ => {
            let k = (n / p).max(1);
            w.reduce_scatter_block(&a[..k * p], &mut b[..k], Sum)
        }
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn tune(world: Communicator, op: &str, max: usize) -> Result<Vec<String>> {
    let vs = variants(op).ok_or_else(|| Error::Encode(format!("unknown operation {op}")))?;
    let p = world.size();
    let mut a = vec![1.0f64; (max / 8).max(1) * p];
    let mut b = vec![0.0f64; (max / 8).max(1) * p];
    let mut lines = vec![format!(
        "{:>10} {}",
        "bytes",
        vs.iter().map(|v| format!("{:>18}", v.0)).collect::<String>()
    )];
    let mut bytes = 8;
    while bytes <= max {
        let iters = (200_000 / bytes.max(1024)).clamp(3, 200);
        let rounds = 5;
        let mut times = vec![Vec::new(); vs.len()];
        for _ in 0..rounds {
            for (i, (_, s)) in vs.iter().enumerate() {
                let w = world.with_settings(*s);
                call(&w, op, bytes, &mut a, &mut b)?;
                w.barrier()?;
                // As the OSU programs do: every call timed alone, a barrier after it.
                let mut total = 0.0;
                for _ in 0..iters {
                    let t = Instant::now();
                    call(&w, op, bytes, &mut a, &mut b)?;
                    total += t.elapsed().as_secs_f64();
                    w.barrier()?;
                }
                let mut dt = [total * 1e6 / iters as f64];
                // The average over ranks, as the OSU tables report.
                w.allreduce_in_place(&mut dt, Sum)?;
                times[i].push(dt[0] / p as f64);
            }
        }
        let cells: String = times.iter_mut().map(|t| format!("{:>18.1}", median(t))).collect();
        lines.push(format!("{bytes:>10} {cells}"));
        bytes *= 4;
    }
    Ok(lines)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(op), Some(p)) = (args.first(), args.get(1).and_then(|s| s.parse::<usize>().ok()))
    else {
        eprintln!("usage: coll_tune OP P [MAXBYTES]");
        std::process::exit(2);
    };
    let max = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(16 << 20);
    match local::run(p, |w| tune(w, op, max)) {
        Ok(out) => {
            println!("# {op}, {p} ranks (threads over loopback TCP), us per call (OSU average)");
            for l in &out[0] {
                println!("{l}");
            }
        }
        Err(e) => {
            eprintln!("coll_tune: {e}");
            std::process::exit(1);
        }
    }
}
