//! The classic MPI example: integrate 4/(1+x²) over [0, 1], which is π.
//!
//! Rank 0 broadcasts the number of intervals; every rank sums its share of the midpoints; a
//! reduce adds the shares at rank 0, which prints π and the error.
//!
//! `rmpirun -n 4 target/release/cpi [INTERVALS]`

use std::f64::consts::PI;
use std::time::Instant;

use rmpi::prelude::*;

fn main() -> Result<(), rmpi::Error> {
    let world = rmpi::init()?;
    let start = Instant::now();
    let mut n = [0u64];
    if world.rank() == 0 {
        n[0] = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(50_000_000);
    }
    world.bcast(&mut n, 0)?;
    let n = n[0];
    let h = 1.0 / n as f64;
    let mut sum = 0.0;
    let mut i = world.rank() as u64 + 1;
    while i <= n {
        let x = h * (i as f64 - 0.5);
        sum += 4.0 / (1.0 + x * x);
        i += world.size() as u64;
    }
    let mine = [h * sum];
    let mut pi = [0.0f64];
    let root = world.rank() == 0;
    world.reduce(&mine, root.then_some(&mut pi[..]), Sum, 0)?;
    if root {
        println!("pi is approximately {:.16}, error is {:.3e}", pi[0], (pi[0] - PI).abs());
        println!(
            "{n} intervals on {} ranks in {:.3} s",
            world.size(),
            start.elapsed().as_secs_f64()
        );
    }
    world.finalize()
}
