//! Two-level collectives against the flat ones, on whatever placement the launcher gave.
//!
//! `hier_check check DIR`: every rank runs barrier, bcast, reduce and allreduce with the
//! two-level algorithm forced, with `auto`, and with flat algorithms forced, on exact integer
//! sums, a non-commutative operator and float sums, at several lengths and roots, and compares
//! the results bit for bit (floats: the same bits on every rank). Barriers are checked through
//! files in DIR (shared by all ranks): after a barrier every rank must see every rank's entry
//! file. Prints `hier_check rank R on HOST: ok, N checks` and exits 0, or names the first
//! difference and exits 1.
//!
//! `hier_check bench [ITERS [ROUNDS]]`: times flat and two-level allreduce (8 B and 1 MiB),
//! bcast (8 B) and barrier in alternating rounds; rank 0 prints the median over rounds of the
//! slowest rank's mean per call, in microseconds, side by side.
//!
//! Run under `rmpirun` (the multi-host tests in `crates/rmpirun/tests/hier.rs`) or by any
//! launcher that follows `docs/launch-contract.md` (the local tests in `tests/hier.rs`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use rmpi_collectives::*;
use rmpi_transport::{Communicator, Error, Result};

fn main() {
    std::process::exit(run(std::env::args().skip(1).collect()));
}

/// Runs the mode `args` ask for in the job this process belongs to; the exit code.
pub fn run(args: Vec<String>) -> i32 {
    let world = match Communicator::init() {
        Ok(w) => w,
        Err(e) => {
            eprintln!("hier_check: init: {e}");
            return 2;
        }
    };
    let num = |i: usize, d: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let out = match args.first().map(String::as_str) {
        Some("check") => match args.get(1) {
            Some(dir) => check(&world, Path::new(dir)),
            None => Err(Error::InvalidArgument { rank: world.rank(), msg: "no DIR".into() }),
        },
        Some("bench") => bench(&world, num(1, 200), num(2, 7)),
        _ => {
            eprintln!("usage: hier_check check DIR | hier_check bench [ITERS [ROUNDS]]");
            return 2;
        }
    };
    let code = match out {
        Ok(()) => 0,
        Err(e) => {
            let host = world.host_of(world.rank()).unwrap_or_default();
            println!("hier_check rank {} on {host}: FAILED: {e}", world.rank());
            1
        }
    };
    match world.finalize() {
        Ok(()) => code,
        Err(e) => {
            println!("hier_check: finalize: {e}");
            1
        }
    }
}

/// Two levels forced for every family that has them.
fn hier() -> Settings {
    Settings {
        barrier: BarrierAlgo::Hier,
        bcast: BcastAlgo::Hier,
        reduce: ReduceAlgo::Hier,
        allreduce: AllreduceAlgo::Hier,
        allgather: AllgatherAlgo::Hier,
        ..Settings::default()
    }
}

/// Flat algorithms forced (a second flat set checks the long-message ones).
fn flats() -> [Settings; 2] {
    let d = Settings::default();
    [
        Settings {
            barrier: BarrierAlgo::Dissemination,
            bcast: BcastAlgo::Binomial,
            reduce: ReduceAlgo::Binomial,
            allreduce: AllreduceAlgo::RecursiveDoubling,
            allgather: AllgatherAlgo::Bruck,
            ..d
        },
        Settings {
            barrier: BarrierAlgo::Dissemination,
            bcast: BcastAlgo::ScatterAllgather,
            reduce: ReduceAlgo::Linear,
            allreduce: AllreduceAlgo::Ring,
            allgather: AllgatherAlgo::Ring,
            ..d
        },
    ]
}

/// An affine map x ↦ a·x + b (wrapping): composing them is associative but not commutative.
type Affine = [u64; 2];

/// `inout` then `rhs`, element by element.
fn compose(inout: &mut [Affine], rhs: &[Affine]) {
    for (l, r) in inout.iter_mut().zip(rhs) {
        *l = [l[0].wrapping_mul(r[0]), l[1].wrapping_mul(r[0]).wrapping_add(r[1])];
    }
}

fn input(rank: usize, n: usize, salt: u64) -> Vec<u64> {
    (0..n as u64)
        .map(|i| {
            (rank as u64 + 1)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add(i.wrapping_mul(0xBF58_476D_1CE4_E5B9) ^ salt)
        })
        .collect()
}

fn affine(rank: usize, n: usize) -> Vec<Affine> {
    input(rank, n, 7).iter().map(|v| [v | 1, v >> 7]).collect()
}

fn floats(rank: usize, n: usize) -> Vec<f64> {
    input(rank, n, 3).iter().map(|v| (*v >> 11) as f64 / (1u64 << 40) as f64 - 1.0).collect()
}

struct Checker<'w> {
    world: &'w Communicator,
    checks: usize,
}

impl Checker<'_> {
    fn fail(&self, what: String) -> Error {
        Error::InvalidArgument { rank: self.world.rank(), msg: what }
    }

    fn same<T: PartialEq + std::fmt::Debug>(
        &mut self,
        what: &str,
        got: &[T],
        want: &[T],
    ) -> Result<()> {
        self.checks += 1;
        match got.iter().zip(want).position(|(g, w)| g != w) {
            None if got.len() == want.len() => Ok(()),
            None => {
                Err(self.fail(format!("{what}: {} elements, {} wanted", got.len(), want.len())))
            }
            Some(i) => {
                Err(self
                    .fail(format!("{what}: element {i} is {:?}, flat gives {:?}", got[i], want[i])))
            }
        }
    }

    /// Every rank holds the same bits in `v` (checked with two flat allreduces).
    fn same_everywhere(&mut self, what: &str, v: &[f64]) -> Result<()> {
        let bits: Vec<u64> = v.iter().map(|x| x.to_bits()).collect();
        let flat = self.world.with_settings(flats()[0]);
        let (mut lo, mut hi) = (bits.clone(), bits.clone());
        flat.allreduce_in_place(&mut lo, Min)?;
        flat.allreduce_in_place(&mut hi, Max)?;
        self.same(&format!("{what} (lowest bits on any rank)"), &lo, &bits)?;
        self.same(&format!("{what} (highest bits on any rank)"), &hi, &bits)
    }
}

fn check(world: &Communicator, dir: &Path) -> Result<()> {
    let (p, r) = (world.size(), world.rank());
    let mut c = Checker { world, checks: 0 };
    let roots: Vec<usize> = {
        let mut v = vec![0, p - 1, p / 2 + usize::from(p > 2)];
        v.retain(|x| *x < p);
        v.dedup();
        v
    };
    let modes = [("hier", hier()), ("auto", Settings::default())];
    for (round, (name, s)) in modes.iter().enumerate() {
        barrier_check(&mut c, dir, round, *s, name)?;
    }
    for n in [1usize, 1000, 70_000] {
        // Sums of integers: every algorithm gives exactly the same.
        let mine = input(r, n, 1);
        let mut want = vec![0u64; n];
        world.with_settings(flats()[0]).allreduce(&mine, &mut want, Sum)?;
        for (name, s) in &modes {
            let t = world.with_settings(*s);
            let mut got = vec![0u64; n];
            t.allreduce(&mine, &mut got, Sum)?;
            c.same(&format!("{name} allreduce Sum of {n}"), &got, &want)?;
            let mut got = mine.clone();
            t.allreduce_in_place(&mut got, Sum)?;
            c.same(&format!("{name} allreduce_in_place Sum of {n}"), &got, &want)?;
            for &root in &roots {
                let mut got = vec![0u64; n];
                t.reduce(&mine, (r == root).then_some(&mut got[..]), Sum, root)?;
                if r == root {
                    c.same(&format!("{name} reduce Sum of {n} to {root}"), &got, &want)?;
                }
                let mut b = if r == root { mine.clone() } else { vec![0; n] };
                t.bcast(&mut b, root)?;
                c.same(&format!("{name} bcast of {n} from {root}"), &b, &input(root, n, 1))?;
            }
        }
        for flat in flats() {
            let mut got = mine.clone();
            world.with_settings(flat).allreduce_in_place(&mut got, Sum)?;
            c.same(&format!("flat {:?} allreduce Sum of {n}", flat.allreduce), &got, &want)?;
        }
        // Allgather: every rank's block in rank order.
        let every: Vec<u64> = (0..p).flat_map(|i| input(i, n, 1)).collect();
        for (name, s) in modes.iter().chain(&[("flat", flats()[0]), ("flat ring", flats()[1])]) {
            let mut got = vec![0u64; n * p];
            world.with_settings(*s).allgather(&mine, &mut got)?;
            c.same(&format!("{name} allgather of {n}"), &got, &every)?;
        }
        // A non-commutative operator: rank order must be kept.
        let op = UserOp::new(compose, false);
        let mine = affine(r, n);
        let mut want = mine.clone();
        world.with_settings(flats()[0]).allreduce_in_place(&mut want, &op)?;
        let serial = (1..p).fold(affine(0, n), |mut acc, i| {
            compose(&mut acc, &affine(i, n));
            acc
        });
        c.same(&format!("flat affine allreduce of {n} against rank order"), &want, &serial)?;
        for (name, s) in &modes {
            let t = world.with_settings(*s);
            let mut got = mine.clone();
            t.allreduce_in_place(&mut got, &op)?;
            c.same(&format!("{name} affine allreduce of {n}"), &got, &want)?;
            for &root in &roots {
                let mut got = vec![[0u64; 2]; n];
                t.reduce(&mine, (r == root).then_some(&mut got[..]), &op, root)?;
                if r == root {
                    c.same(&format!("{name} affine reduce of {n} to {root}"), &got, &want)?;
                }
            }
        }
        // Float sums: rounding depends on the order, but every rank holds the same bits.
        for (name, s) in &modes {
            let mut v = floats(r, n);
            world.with_settings(*s).allreduce_in_place(&mut v, Sum)?;
            c.same_everywhere(&format!("{name} f64 allreduce of {n}"), &v)?;
        }
    }
    let at = placement(world);
    println!(
        "hier_check rank {r} on {}: ok, {} hosts, widest {}, contiguous {}, {} checks",
        world.host_of(r)?,
        at.hosts,
        at.widest,
        at.contiguous,
        c.checks
    );
    Ok(())
}

/// A barrier is real when no rank leaves it before every rank has entered: each rank makes a
/// file before it enters; after it, every rank must see all of them.
fn barrier_check(c: &mut Checker, dir: &Path, round: usize, s: Settings, name: &str) -> Result<()> {
    let (p, r) = (c.world.size(), c.world.rank());
    let file = |i: usize| -> PathBuf { dir.join(format!("barrier-{round}-{i}")) };
    let io = |e: std::io::Error| c.fail(format!("{name} barrier: {}: {e}", dir.display()));
    std::fs::write(file(r), b"in").map_err(io)?;
    c.world.with_settings(s).barrier()?;
    let missing: Vec<usize> = (0..p).filter(|i| !file(*i).exists()).collect();
    c.checks += 1;
    if !missing.is_empty() {
        return Err(
            c.fail(format!("{name} barrier let rank {r} out before ranks {missing:?} came"))
        );
    }
    Ok(())
}

/// The median over `rounds` of the slowest rank's mean time per call of `f`, in µs.
fn timed(
    world: &Communicator,
    iters: usize,
    rounds: usize,
    mut f: impl FnMut(usize) -> Result<()>,
) -> Result<Vec<f64>> {
    let flat = world.with_settings(flats()[0]);
    let mut out = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        flat.barrier()?;
        let t = Instant::now();
        for i in 0..iters {
            f(i)?;
        }
        let mut us = [t.elapsed().as_secs_f64() * 1e6 / iters as f64];
        flat.allreduce_in_place(&mut us, Max)?;
        out.push(us[0]);
    }
    Ok(out)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn bench(world: &Communicator, iters: usize, rounds: usize) -> Result<()> {
    let p = world.size();
    let d = Settings::default();
    let flat_for = |bytes: usize| Settings {
        allreduce: d.pick_allreduce(bytes, p, true, Placement::ONE_HOST),
        allgather: d.pick_allgather(bytes * p, p, Placement::ONE_HOST),
        bcast: d.pick_bcast(bytes, p, Placement::ONE_HOST),
        barrier: BarrierAlgo::Dissemination,
        ..d
    };
    let mut rows = Vec::new();
    for (label, n, iters) in
        [("allreduce 8 B", 1usize, iters), ("allreduce 1 MiB", 1 << 17, iters / 10)]
    {
        let bytes = n * 8;
        let iters = iters.max(3);
        let (mut f, mut h) = (Vec::new(), Vec::new());
        let mut v = vec![1.0f64; n];
        // Alternating rounds, so that both see the same machine load.
        for _ in 0..rounds {
            let t = world.with_settings(flat_for(bytes));
            f.extend(timed(world, iters, 1, |_| t.allreduce_in_place(&mut v, Sum))?);
            let t = world.with_settings(hier());
            h.extend(timed(world, iters, 1, |_| t.allreduce_in_place(&mut v, Sum))?);
        }
        rows.push((
            label.to_string(),
            format!("{:?}", flat_for(bytes).allreduce),
            median(f),
            median(h),
        ));
    }
    for (label, n, iters) in
        [("allgather 8 B", 1usize, iters), ("allgather 32 KiB", 1 << 12, iters / 10)]
    {
        let bytes = n * 8;
        let iters = iters.max(3);
        let (mut f, mut h) = (Vec::new(), Vec::new());
        let mine = vec![1u64; n];
        let mut all = vec![0u64; n * p];
        for _ in 0..rounds {
            let t = world.with_settings(flat_for(bytes));
            f.extend(timed(world, iters, 1, |_| t.allgather(&mine, &mut all))?);
            let t = world.with_settings(hier());
            h.extend(timed(world, iters, 1, |_| t.allgather(&mine, &mut all))?);
        }
        rows.push((
            label.to_string(),
            format!("{:?}", flat_for(bytes).allgather),
            median(f),
            median(h),
        ));
    }
    let (mut f, mut h) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let mut b = [7u64];
        let t = world.with_settings(flat_for(8));
        f.extend(timed(world, iters, 1, |i| t.bcast(&mut b, i % p))?);
        let t = world.with_settings(hier());
        h.extend(timed(world, iters, 1, |i| t.bcast(&mut b, i % p))?);
    }
    rows.push((
        "bcast 8 B (rotating root)".into(),
        format!("{:?}", flat_for(8).bcast),
        median(f),
        median(h),
    ));
    let (mut f, mut h) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t = world.with_settings(flat_for(8));
        f.extend(timed(world, iters, 1, |_| t.barrier())?);
        let t = world.with_settings(hier());
        h.extend(timed(world, iters, 1, |_| t.barrier())?);
    }
    rows.push(("barrier".into(), "Dissemination".into(), median(f), median(h)));
    if world.rank() == 0 {
        println!("# {p} ranks, median of {rounds} alternating rounds, slowest rank's µs per call");
        println!("{:<28} {:>20} {:>12} {:>12}", "operation", "flat algorithm", "flat", "two-level");
        for (op, algo, f, h) in rows {
            println!("{op:<28} {algo:>20} {f:>12.1} {h:>12.1}");
        }
    }
    Ok(())
}
