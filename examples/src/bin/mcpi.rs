//! Monte Carlo π: every rank throws random darts at the unit square, an allreduce adds up the
//! hits, and every rank then knows the estimate (rank 0 prints it).
//!
//! `rmpirun -n 4 target/release/mcpi [DARTS_PER_RANK] [SEED]`

use std::f64::consts::PI;

use rand::{Rng, SeedableRng};
use rmpi::prelude::*;

fn main() -> Result<(), rmpi::Error> {
    let world = rmpi::init()?;
    let mut args = std::env::args().skip(1);
    let darts: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(10_000_000);
    let seed: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(2026);
    // A distinct, reproducible stream per rank.
    let mut rng = rand::rngs::StdRng::seed_from_u64(
        seed ^ (world.rank() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
    );
    let mut hits = 0u64;
    for _ in 0..darts {
        let (x, y): (f64, f64) = (rng.random(), rng.random());
        if x * x + y * y <= 1.0 {
            hits += 1;
        }
    }
    let mut total = [hits, darts];
    world.allreduce_in_place(&mut total, Sum)?;
    let pi = 4.0 * total[0] as f64 / total[1] as f64;
    if world.rank() == 0 {
        println!(
            "pi ~ {pi:.6} from {} darts on {} ranks (error {:.2e})",
            total[1],
            world.size(),
            (pi - PI).abs()
        );
    }
    world.finalize()
}
