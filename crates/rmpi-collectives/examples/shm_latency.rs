//! Mean latency of small collectives between processes (run under `rmpirun -n P`), next to a
//! point-to-point exchange of the same size, to see what a collective adds to the messages it
//! sends: `rmpirun -n P target/release/examples/shm_latency [ITERS]`. Rank 0 prints the median of
//! five rounds per operation, in microseconds per call.

use std::time::Instant;

use rmpi_collectives::*;
use rmpi_transport::{Communicator, Result};

fn main() {
    let n = match std::env::args().nth(1).map(|s| s.parse::<usize>()) {
        None => 5000,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("shm_latency: ITERS must be a positive number");
            std::process::exit(2)
        }
    };
    if let Err(e) = run(n) {
        eprintln!("shm_latency: {e}");
        std::process::exit(1);
    }
}

type Case = (&'static str, Box<dyn Fn(&Communicator) -> Result<()>>);

fn run(n: usize) -> Result<()> {
    let w = Communicator::init()?;
    let (p, r) = (w.size(), w.rank());
    let cases: Vec<Case> = vec![
        (
            "p2p exchange 8B",
            Box::new(move |w: &Communicator| {
                let mut got = [0u64];
                let peer = r ^ 1;
                if peer < p {
                    w.sendrecv_into(&[1u64], peer, 3, &mut got, peer, 3)?;
                }
                Ok(())
            }),
        ),
        (
            "allreduce 8B",
            Box::new(|w: &Communicator| {
                let mut v = [1.0f64];
                w.allreduce_in_place(&mut v, Sum)
            }),
        ),
        (
            "bcast 8B",
            Box::new(|w: &Communicator| {
                let mut v = [1.0f64];
                w.bcast(&mut v, 0)
            }),
        ),
        ("barrier", Box::new(|w: &Communicator| w.barrier())),
        (
            "reduce 8B",
            Box::new(|w: &Communicator| {
                let v = [1.0f64];
                let mut out = [0.0f64];
                let root = w.rank() == 0;
                w.reduce(&v, root.then_some(&mut out[..]), Sum, 0)
            }),
        ),
    ];
    let mut rows: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    for _ in 0..5 {
        for (i, (_, f)) in cases.iter().enumerate() {
            w.barrier()?;
            let t = Instant::now();
            for _ in 0..n {
                f(&w)?;
            }
            rows[i].push(t.elapsed().as_secs_f64() * 1e6 / n as f64);
        }
    }
    if r == 0 {
        for (i, (name, _)) in cases.iter().enumerate() {
            let v = &mut rows[i];
            v.sort_by(|a, b| a.total_cmp(b));
            println!("p={p} {name:16} {:8.2} us", v[2]);
        }
    }
    Ok(())
}
