//! The short-message algorithms for few ranks (flat barrier and allreduce, linear barrier,
//! direct reduce-scatter),
//! with shared memory between the ranks and, in a child process of this test binary, with
//! `RMPI_SHM=0` (loopback TCP): barriers that really wait, and allreduce results against a
//! serial reduction in rank order, for a commutative and a non-commutative operator, bit for
//! bit on every rank.

mod common;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{input, reference, wait_with_deadline, with_timeout};
use rmpi_collectives::*;
use rmpi_transport::local;

/// Set in the child: the mode it runs in (`tcp`).
const MODE_ENV: &str = "SMALL_COLL_MODE";

const BARRIERS: [BarrierAlgo; 5] = [
    BarrierAlgo::Auto,
    BarrierAlgo::Dissemination,
    BarrierAlgo::Linear,
    BarrierAlgo::Flat,
    BarrierAlgo::Hier,
];

/// 2x2 matrix product with wrapping arithmetic: associative, not commutative.
type Mat = [u64; 4];
fn matmul(x: &mut [Mat], y: &[Mat]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a = [
            a[0].wrapping_mul(b[0]).wrapping_add(a[1].wrapping_mul(b[2])),
            a[0].wrapping_mul(b[1]).wrapping_add(a[1].wrapping_mul(b[3])),
            a[2].wrapping_mul(b[0]).wrapping_add(a[3].wrapping_mul(b[2])),
            a[2].wrapping_mul(b[1]).wrapping_add(a[3].wrapping_mul(b[3])),
        ];
    }
}
fn mats(rank: usize, n: usize) -> Vec<Mat> {
    (0..n).map(|i| [rank as u64 + 2, i as u64 + 1, 3 * rank as u64 + 1, 7]).collect()
}

/// Whether every rank shares memory with every other (checked so that each mode is what it
/// claims to be).
fn expect_shared(world: &rmpi_transport::Communicator, want: bool) -> rmpi_transport::Result<()> {
    for r in (0..world.size()).filter(|&r| r != world.rank()) {
        assert_eq!(world.shares_memory_with(r)?, want, "rank {} with {r}", world.rank());
    }
    Ok(())
}

/// Every rank adds one to a shared counter before each barrier; after it, every rank must see
/// the additions of all p ranks. One rank in turn is late to arrive, so a barrier that lets a
/// rank through early is caught.
fn barriers_wait(shared: bool) {
    for p in 1..=6 {
        for algo in BARRIERS {
            let count = AtomicUsize::new(0);
            let rounds = 12;
            local::run(p, |world| {
                expect_shared(&world, shared)?;
                let w = world.with_settings(Settings { barrier: algo, ..Settings::default() });
                let r = world.rank();
                for round in 0..rounds {
                    if round % p == r {
                        std::thread::sleep(Duration::from_millis(3));
                    }
                    count.fetch_add(1, Ordering::SeqCst);
                    w.barrier()?;
                    let seen = count.load(Ordering::SeqCst);
                    assert!(
                        seen >= p * (round + 1),
                        "{algo:?} p={p} rank {r} left barrier {round} having seen {seen} arrivals"
                    );
                }
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{algo:?} p={p}: {e}"));
            assert_eq!(count.load(Ordering::SeqCst), p * rounds);
        }
    }
}

/// The flat allreduce (forced, and as `Auto` picks it on 3-4 ranks) against serial reductions.
fn flat_allreduce_matches_serial(shared: bool) {
    for p in 1..=6 {
        for n in [0usize, 1, 3, 129, 600] {
            let prod = {
                let mut want = mats(0, n);
                for r in 1..p {
                    matmul(&mut want, &mats(r, n));
                }
                want
            };
            let out = local::run(p, |world| {
                expect_shared(&world, shared)?;
                let r = world.rank();
                let mut got = Vec::new();
                for algo in [AllreduceAlgo::Flat, AllreduceAlgo::Auto] {
                    let w =
                        world.with_settings(Settings { allreduce: algo, ..Settings::default() });
                    let mut sum = vec![0i32; n];
                    w.allreduce(&input::<i32>(r, n, 5), &mut sum, Sum)?;
                    let mut fl = input::<f64>(r, n, 6);
                    w.allreduce_in_place(&mut fl, Max)?;
                    let mut m = mats(r, n);
                    w.allreduce_in_place(&mut m, UserOp::new(matmul, false))?;
                    got.push((sum, fl, m));
                }
                // Reduce-scatter: block r of the rank-order reduction of every rank's p blocks.
                let mut blocks = Vec::new();
                for algo in [ReduceScatterAlgo::Direct, ReduceScatterAlgo::Auto] {
                    let w = world
                        .with_settings(Settings { reduce_scatter: algo, ..Settings::default() });
                    let mut sum = vec![0i32; n];
                    w.reduce_scatter_block(&input::<i32>(r, n * p, 7), &mut sum, Sum)?;
                    let send: Vec<Mat> = (0..p).flat_map(|j| mats(r + j, n)).collect();
                    let mut m = vec![[0u64; 4]; n];
                    w.reduce_scatter_block(&send, &mut m, UserOp::new(matmul, false))?;
                    blocks.push((sum, m));
                }
                Ok((got, blocks))
            })
            .unwrap_or_else(|e| panic!("p={p} n={n}: {e}"));
            let sum = reference::<i32, _>(p, n, 5, &Sum);
            let max = reference::<f64, _>(p, n, 6, &Max);
            let rs_sum = reference::<i32, _>(p, n * p, 7, &Sum);
            for (r, (got, blocks)) in out.iter().enumerate() {
                // Block r of rank i's send is mats(i + r, n).
                let mut want = mats(r, n);
                for i in 1..p {
                    matmul(&mut want, &mats(i + r, n));
                }
                for (i, (s, m)) in blocks.iter().enumerate() {
                    assert_eq!(
                        s[..],
                        rs_sum[r * n..(r + 1) * n],
                        "rs sum p={p} n={n} rank {r} {i}"
                    );
                    assert_eq!(m, &want, "rs matmul p={p} n={n} rank {r} variant {i}");
                }
                for (i, (s, f, m)) in got.iter().enumerate() {
                    assert_eq!(s, &sum, "sum p={p} n={n} rank {r} variant {i}");
                    assert_eq!(f, &max, "max p={p} n={n} rank {r} variant {i}");
                    assert_eq!(m, &prod, "matmul p={p} n={n} rank {r} variant {i}");
                }
            }
        }
    }
}

/// Float sums whose rounding depends on the order: every rank gets the same bits.
fn flat_allreduce_same_bits(shared: bool) {
    for p in [3, 4, 5] {
        let n = 77;
        let out = local::run(p, |world| {
            expect_shared(&world, shared)?;
            let r = world.rank();
            let mine: Vec<f64> =
                (0..n).map(|i| ((r * 7919 + i * 104_729) % 1000) as f64 * 1.1e-3 + 1e7).collect();
            let w = world
                .with_settings(Settings { allreduce: AllreduceAlgo::Flat, ..Settings::default() });
            let mut v = mine.clone();
            w.allreduce_in_place(&mut v, Sum)?;
            Ok(v.iter().map(|x| x.to_bits()).collect::<Vec<u64>>())
        })
        .unwrap_or_else(|e| panic!("p={p}: {e}"));
        for r in 1..p {
            assert_eq!(out[r], out[0], "p={p}: rank {r} differs from rank 0");
        }
    }
}

fn all(shared: bool) {
    barriers_wait(shared);
    flat_allreduce_matches_serial(shared);
    flat_allreduce_same_bits(shared);
}

/// In this process's own mode: shared memory unless the whole run has `RMPI_SHM=0`.
#[test]
fn in_the_default_mode() {
    if std::env::var_os(MODE_ENV).is_some() {
        return;
    }
    let shared = std::env::var("RMPI_SHM").as_deref() != Ok("0");
    with_timeout(240, move || all(shared));
}

/// The child side: runs everything over TCP when started by [`without_shared_memory`].
#[test]
fn child_tcp() {
    if std::env::var(MODE_ENV).as_deref() == Ok("tcp") {
        with_timeout(240, || all(false));
    }
}

#[test]
fn without_shared_memory() {
    if std::env::var_os(MODE_ENV).is_some() {
        return;
    }
    let exe = std::env::current_exe().unwrap();
    // The child's output goes to a file, so that it never blocks on a full pipe.
    let log = std::env::temp_dir().join(format!("small-coll-{}.log", std::process::id()));
    let file = std::fs::File::create(&log).unwrap();
    let mut child = Command::new(exe)
        .args(["--exact", "child_tcp", "--nocapture", "--test-threads=1"])
        .env(MODE_ENV, "tcp")
        .env("RMPI_SHM", "0")
        .stdout(Stdio::from(file.try_clone().unwrap()))
        .stderr(Stdio::from(file))
        .spawn()
        .unwrap();
    // The child's own watchdog ends it first; this deadline only guards against a lost child.
    let code = wait_with_deadline(&mut child, Instant::now() + Duration::from_secs(300));
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    assert_eq!(code, Some(0), "child failed:\n{text}");
    assert!(text.contains("test child_tcp ... ok"), "child did not run the test:\n{text}");
}
