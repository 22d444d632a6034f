//! Every collective against a serial reference: p = 1..9, 16 and 32 ranks, every root, counts
//! 0, 1, odd and (for small p) several MiB, on i32/u64/f32/f64, under every algorithm choice.

mod common;

use common::{input, prefixes, reference, with_timeout, Failures, Num};
use rmpi_collectives::*;
use rmpi_transport::{local, Communicator, Result};

/// The algorithm variants every suite runs under.
fn variants() -> Vec<(&'static str, Settings)> {
    let short = Settings {
        bcast: BcastAlgo::Binomial,
        reduce: ReduceAlgo::Binomial,
        allreduce: AllreduceAlgo::RecursiveDoubling,
        allgather: AllgatherAlgo::Bruck,
        gather: GatherAlgo::Binomial,
        scatter: ScatterAlgo::Binomial,
        alltoall: AlltoallAlgo::Scattered,
        reduce_scatter: ReduceScatterAlgo::ReduceThenScatter,
        scan: ScanAlgo::RecursiveDoubling,
        ..Settings::default()
    };
    let long = Settings {
        bcast: BcastAlgo::ScatterAllgather,
        reduce: ReduceAlgo::ReduceScatterGather,
        allreduce: AllreduceAlgo::Ring,
        allgather: AllgatherAlgo::Ring,
        gather: GatherAlgo::Linear,
        scatter: ScatterAlgo::Linear,
        alltoall: AlltoallAlgo::Pairwise,
        reduce_scatter: ReduceScatterAlgo::Ring,
        scan: ScanAlgo::Chain,
        ..Settings::default()
    };
    vec![
        ("auto", Settings::default()),
        ("short", short),
        ("long", long),
        (
            "rabenseifner",
            Settings { allreduce: AllreduceAlgo::Rabenseifner, bcast: BcastAlgo::Pipeline, ..long },
        ),
        (
            "linear+reduce_bcast+check",
            Settings {
                allreduce: AllreduceAlgo::ReduceBcast,
                bcast: BcastAlgo::Linear,
                reduce: ReduceAlgo::Linear,
                allgather: AllgatherAlgo::Linear,
                check: true,
                ..short
            },
        ),
        ("direct", Settings { allreduce: AllreduceAlgo::Direct, ..long }),
        (
            "flat",
            Settings {
                allreduce: AllreduceAlgo::Flat,
                barrier: BarrierAlgo::Flat,
                reduce_scatter: ReduceScatterAlgo::Direct,
                allgather: AllgatherAlgo::Linear,
                ..short
            },
        ),
        ("linear barrier", Settings { barrier: BarrierAlgo::Linear, ..short }),
    ]
}

fn concat<T: Num>(p: usize, n: usize, seed: u64) -> Vec<T> {
    (0..p).flat_map(|r| input::<T>(r, n, seed)).collect()
}

fn uneven(n: usize, p: usize) -> Vec<usize> {
    (0..p).map(|i| (n + 3 * i) % (n + 5)).collect()
}

/// One element type, one count, one algorithm variant, all operations.
fn suite<T: Num>(
    world: &Communicator,
    s: Settings,
    n: usize,
    roots: &[usize],
    seed: u64,
    f: &mut Failures,
) -> Result<()> {
    let w = world.with_settings(s);
    let (p, r) = (world.size(), world.rank());
    let tn = std::any::type_name::<T>();
    let ctx = |op: &str, root: Option<usize>| format!("{op} {tn} n={n} root={root:?} rank={r}");
    for (k, &root) in roots.iter().enumerate() {
        let seed = seed + 100 * k as u64;
        // bcast
        let mut buf = if r == root { input::<T>(root, n, seed) } else { vec![T::from_i64(0); n] };
        w.bcast(&mut buf, root)?;
        f.eq(|| ctx("bcast", Some(root)), &buf, &input::<T>(root, n, seed));
        // reduce
        for (name, which) in [("sum", 0), ("min", 1), ("max", 2)] {
            let mine = input::<T>(r, n, seed + 1);
            let mut out = vec![T::from_i64(0); n];
            let target = (r == root).then_some(&mut out[..]);
            let want = match which {
                0 => {
                    w.reduce(&mine, target, Sum, root)?;
                    reference(p, n, seed + 1, &Sum)
                }
                1 => {
                    w.reduce(&mine, target, Min, root)?;
                    reference(p, n, seed + 1, &Min)
                }
                _ => {
                    w.reduce(&mine, target, Max, root)?;
                    reference(p, n, seed + 1, &Max)
                }
            };
            if r == root {
                f.eq(|| ctx(&format!("reduce {name}"), Some(root)), &out, &want);
            }
        }
        // gather
        let mut all = vec![T::from_i64(0); n * p];
        w.gather(&input::<T>(r, n, seed + 2), (r == root).then_some(&mut all[..]), root)?;
        if r == root {
            f.eq(|| ctx("gather", Some(root)), &all, &concat::<T>(p, n, seed + 2));
        }
        // scatter
        let src = concat::<T>(p, n, seed + 3);
        let mut mine = vec![T::from_i64(0); n];
        w.scatter((r == root).then_some(&src[..]), &mut mine, root)?;
        f.eq(|| ctx("scatter", Some(root)), &mine, &input::<T>(r, n, seed + 3));
        // gatherv / scatterv with uneven counts
        let counts = uneven(n, p);
        let pieces: Vec<T> = (0..p).flat_map(|i| input::<T>(i, counts[i], seed + 4)).collect();
        let mut all = vec![T::from_i64(0); pieces.len()];
        let recv = (r == root).then_some((&mut all[..], &counts[..]));
        w.gatherv(&input::<T>(r, counts[r], seed + 4), recv, root)?;
        if r == root {
            f.eq(|| ctx("gatherv", Some(root)), &all, &pieces);
        }
        let mut mine = vec![T::from_i64(0); counts[r]];
        w.scatterv((r == root).then_some((&pieces[..], &counts[..])), &mut mine, root)?;
        f.eq(|| ctx("scatterv", Some(root)), &mine, &input::<T>(r, counts[r], seed + 4));
    }
    // allreduce, both forms
    let mut out = vec![T::from_i64(0); n];
    w.allreduce(&input::<T>(r, n, seed + 5), &mut out, Sum)?;
    f.eq(|| ctx("allreduce sum", None), &out, &reference(p, n, seed + 5, &Sum));
    let mut buf = input::<T>(r, n, seed + 6);
    w.allreduce_in_place(&mut buf, Max)?;
    f.eq(|| ctx("allreduce max", None), &buf, &reference(p, n, seed + 6, &Max));
    let mut buf = input::<T>(r, n, seed + 6);
    w.allreduce_in_place(&mut buf, Min)?;
    f.eq(|| ctx("allreduce min", None), &buf, &reference(p, n, seed + 6, &Min));
    // allgather, allgatherv
    let mut all = vec![T::from_i64(0); n * p];
    w.allgather(&input::<T>(r, n, seed + 7), &mut all)?;
    f.eq(|| ctx("allgather", None), &all, &concat::<T>(p, n, seed + 7));
    let counts = uneven(n, p);
    let pieces: Vec<T> = (0..p).flat_map(|i| input::<T>(i, counts[i], seed + 8)).collect();
    let mut all = vec![T::from_i64(0); pieces.len()];
    w.allgatherv(&input::<T>(r, counts[r], seed + 8), &mut all, &counts)?;
    f.eq(|| ctx("allgatherv", None), &all, &pieces);
    // alltoall: block j of rank i is input(i, n, seed + 10 + j)
    let send: Vec<T> = (0..p).flat_map(|j| input::<T>(r, n, seed + 10 + j as u64)).collect();
    let mut recv = vec![T::from_i64(0); n * p];
    w.alltoall(&send, &mut recv)?;
    let want: Vec<T> = (0..p).flat_map(|i| input::<T>(i, n, seed + 10 + r as u64)).collect();
    f.eq(|| ctx("alltoall", None), &recv, &want);
    // reduce_scatter_block
    let mut mine = vec![T::from_i64(0); n];
    w.reduce_scatter_block(&input::<T>(r, n * p, seed + 9), &mut mine, Sum)?;
    let full = reference(p, n * p, seed + 9, &Sum);
    f.eq(|| ctx("reduce_scatter_block", None), &mine, &full[r * n..(r + 1) * n]);
    // scan, exscan
    let pre = prefixes(p, n, seed + 11, &Sum);
    let mut out = vec![T::from_i64(0); n];
    w.scan(&input::<T>(r, n, seed + 11), &mut out, Sum)?;
    f.eq(|| ctx("scan", None), &out, &pre[r]);
    let mut out = vec![T::from_i64(7); n];
    w.exscan(&input::<T>(r, n, seed + 11), &mut out, Sum)?;
    let want = if r == 0 { vec![T::from_i64(7); n] } else { pre[r - 1].clone() };
    f.eq(|| ctx("exscan", None), &out, &want);
    w.barrier()
}

/// The large-message suite: the operations whose algorithms switch with size, on about
/// `big` elements per rank in total.
fn big_suite(
    world: &Communicator,
    s: Settings,
    big: usize,
    seed: u64,
    f: &mut Failures,
) -> Result<()> {
    let w = world.with_settings(s);
    let (p, r) = (world.size(), world.rank());
    let ctx = |op: &str| format!("{op} f64 big={big} rank={r}");
    for root in [0, p - 1] {
        let mut buf = if r == root { input::<f64>(root, big, seed) } else { vec![0.0; big] };
        w.bcast(&mut buf, root)?;
        f.eq(|| ctx(&format!("bcast root {root}")), &buf, &input::<f64>(root, big, seed));
    }
    let mut out = vec![0.0; big];
    w.reduce(&input::<f64>(r, big, seed + 1), (r == p - 1).then_some(&mut out[..]), Sum, p - 1)?;
    if r == p - 1 {
        f.eq(|| ctx("reduce"), &out, &reference(p, big, seed + 1, &Sum));
    }
    let mut buf = input::<f64>(r, big, seed + 2);
    w.allreduce_in_place(&mut buf, Sum)?;
    f.eq(|| ctx("allreduce"), &buf, &reference(p, big, seed + 2, &Sum));
    let n = big / p;
    let mut all = vec![0.0; n * p];
    w.allgather(&input::<f64>(r, n, seed + 3), &mut all)?;
    f.eq(|| ctx("allgather"), &all, &concat::<f64>(p, n, seed + 3));
    let mut all = vec![0.0; n * p];
    w.gather(&input::<f64>(r, n, seed + 4), (r == 0).then_some(&mut all[..]), 0)?;
    if r == 0 {
        f.eq(|| ctx("gather"), &all, &concat::<f64>(p, n, seed + 4));
    }
    let src = concat::<f64>(p, n, seed + 5);
    let mut mine = vec![0.0; n];
    w.scatter((r == 0).then_some(&src[..]), &mut mine, 0)?;
    f.eq(|| ctx("scatter"), &mine, &input::<f64>(r, n, seed + 5));
    let mut mine = vec![0.0; n];
    w.reduce_scatter_block(&input::<f64>(r, n * p, seed + 6), &mut mine, Sum)?;
    let full = reference(p, n * p, seed + 6, &Sum);
    f.eq(|| ctx("reduce_scatter_block"), &mine, &full[r * n..(r + 1) * n]);
    let k = n / p;
    let send: Vec<f64> = (0..p).flat_map(|j| input::<f64>(r, k, seed + 10 + j as u64)).collect();
    let mut recv = vec![0.0; k * p];
    w.alltoall(&send, &mut recv)?;
    let want: Vec<f64> = (0..p).flat_map(|i| input::<f64>(i, k, seed + 10 + r as u64)).collect();
    f.eq(|| ctx("alltoall"), &recv, &want);
    Ok(())
}

struct Plan {
    counts: &'static [usize],
    /// Run the `f32`/`u64` suites too (not only `i32` and `f64`).
    all_types: bool,
    /// How many of [`variants`] to run.
    variants: usize,
    big: Option<usize>,
}

fn run_p(p: usize, plan: Plan) {
    let fails = with_timeout(150, move || {
        local::run(p, |world| {
            let mut f = Failures::default();
            let all_roots: Vec<usize> = (0..p).collect();
            for (vi, (name, s)) in variants().into_iter().take(plan.variants).enumerate() {
                for &n in plan.counts {
                    let seed = (vi * 1000 + n) as u64;
                    suite::<i32>(&world, s, n, &all_roots, seed, &mut f)?;
                    suite::<f64>(&world, s, n, &all_roots, seed, &mut f)?;
                    if plan.all_types {
                        suite::<u64>(&world, s, n, &all_roots, seed, &mut f)?;
                        suite::<f32>(&world, s, n, &all_roots, seed, &mut f)?;
                    }
                }
                // The big suite skips the variant that only changes small-message choices.
                if let (Some(big), true) = (plan.big, vi != 4) {
                    big_suite(&world, s, big, vi as u64, &mut f)?;
                }
                for m in &mut f.0 {
                    if !m.starts_with('[') {
                        *m = format!("[{name}] {m}");
                    }
                }
            }
            Ok(f.0)
        })
        .expect("collectives returned an error")
    });
    let fails: Vec<String> = fails.into_iter().flatten().collect();
    assert!(
        fails.is_empty(),
        "{} failures, first ones:\n{}",
        fails.len(),
        fails[..fails.len().min(20)].join("\n")
    );
}

/// About 3 MiB of f64 (an odd count).
const BIG: usize = 393_219;

#[test]
fn p1_to_p4_with_large_counts() {
    for p in 1..=4 {
        run_p(p, Plan { counts: &[0, 1, 13], all_types: true, variants: 8, big: Some(BIG) });
    }
}

#[test]
fn p5_to_p9() {
    for p in 5..=9 {
        let big = (p == 5).then_some(BIG);
        run_p(p, Plan { counts: &[0, 1, 13], all_types: true, variants: 8, big });
    }
}

#[test]
fn p16() {
    run_p(16, Plan { counts: &[0, 7], all_types: false, variants: 3, big: None });
}

#[test]
fn p32() {
    run_p(32, Plan { counts: &[1], all_types: false, variants: 3, big: None });
}
