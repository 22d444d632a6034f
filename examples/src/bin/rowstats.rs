//! Scatter, compute, gather on a real numeric job: rank 0 builds a matrix of noisy signals,
//! scatters its rows (uneven pieces when the rows do not divide evenly), every rank computes the
//! mean, standard deviation and the correlation of each of its rows with a reference signal,
//! and rank 0 gathers the results, checks them against a serial computation and prints a summary.
//!
//! `rmpirun -n 3 target/release/rowstats [ROWS] [COLS]`

use rand::{Rng, SeedableRng};
use rmpi::prelude::*;

/// Mean, standard deviation, correlation with the reference.
fn stats(row: &[f64], reference: &[f64]) -> [f64; 3] {
    let n = row.len() as f64;
    let mean = row.iter().sum::<f64>() / n;
    let rmean = reference.iter().sum::<f64>() / n;
    let (mut sxx, mut syy, mut sxy) = (0.0, 0.0, 0.0);
    for (x, y) in row.iter().zip(reference) {
        let (dx, dy) = (x - mean, y - rmean);
        sxx += dx * dx;
        syy += dy * dy;
        sxy += dx * dy;
    }
    [mean, (sxx / n).sqrt(), sxy / (sxx * syy).sqrt()]
}

fn main() -> Result<(), rmpi::Error> {
    let world = rmpi::init()?;
    let mut args = std::env::args().skip(1);
    let rows: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(1001);
    let cols: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(4096);
    let (me, p) = (world.rank(), world.size());
    let reference: Vec<f64> = (0..cols).map(|j| (j as f64 * 0.01).sin()).collect();

    // Rows per rank: as even as possible.
    let rows_of = |r: usize| rows / p + usize::from(r < rows % p);
    let counts: Vec<usize> = (0..p).map(|r| rows_of(r) * cols).collect();

    let matrix = (me == 0).then(|| {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut m = Vec::with_capacity(rows * cols);
        for i in 0..rows {
            let (gain, phase) = ((i % 7) as f64 - 3.0, (i % 5) as f64 * 0.3);
            for j in 0..cols {
                let noise: f64 = rng.random::<f64>() - 0.5;
                m.push(gain * (j as f64 * 0.01 + phase).sin() + noise);
            }
        }
        m
    });

    let mut mine = vec![0.0f64; counts[me]];
    world.scatterv(matrix.as_deref().map(|m| (m, &counts[..])), &mut mine, 0)?;
    let local: Vec<f64> = mine.chunks(cols).flat_map(|row| stats(row, &reference)).collect();

    let stat_counts: Vec<usize> = (0..p).map(|r| rows_of(r) * 3).collect();
    let mut all = vec![0.0f64; if me == 0 { rows * 3 } else { 0 }];
    world.gatherv(&local, (me == 0).then_some((&mut all[..], &stat_counts[..])), 0)?;

    if let Some(m) = matrix {
        let serial: Vec<f64> = m.chunks(cols).flat_map(|row| stats(row, &reference)).collect();
        let matches = serial == all;
        let best = all
            .chunks(3)
            .enumerate()
            .max_by(|a, b| a.1[2].total_cmp(&b.1[2]))
            .map(|(i, s)| (i, s[2]))
            .unwrap_or((0, 0.0));
        let mean_std = all.chunks(3).map(|s| s[1]).sum::<f64>() / rows as f64;
        println!("{rows} rows x {cols} columns over {p} ranks");
        println!("mean row standard deviation {mean_std:.4}");
        println!("row most correlated with the reference: {} (r = {:.4})", best.0, best.1);
        println!("matches serial: {}", if matches { "yes" } else { "NO" });
        if !matches {
            std::process::exit(1);
        }
    }
    world.finalize()
}
