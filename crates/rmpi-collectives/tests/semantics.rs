//! Reduction order and reproducibility, non-commutative operators, location and logical
//! operators, object forms, and isolation from user point-to-point traffic.

mod common;

use common::with_timeout;
use rmpi_collectives::*;
use rmpi_transport::{local, Result};

type Mat = [u64; 4];

const ALL_ALLREDUCE: [AllreduceAlgo; 7] = [
    AllreduceAlgo::Auto,
    AllreduceAlgo::RecursiveDoubling,
    AllreduceAlgo::Ring,
    AllreduceAlgo::Rabenseifner,
    AllreduceAlgo::ReduceBcast,
    AllreduceAlgo::Direct,
    AllreduceAlgo::Flat,
];

/// 2x2 matrix product with wrapping arithmetic: associative, not commutative.
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

fn mat(rank: usize, i: usize) -> Mat {
    let x = (rank * 31 + i * 7) as u64;
    [x % 5 + 1, x % 3, (x / 3) % 4, x % 7 + 2]
}

fn mats(rank: usize, n: usize) -> Vec<Mat> {
    (0..n).map(|i| mat(rank, i)).collect()
}

#[test]
fn non_commutative_ops_apply_in_rank_order() {
    with_timeout(120, || {
        for p in 1..=9 {
            let n = 5;
            let mut want = mats(0, n);
            let mut prefix = vec![want.clone()];
            for r in 1..p {
                matmul(&mut want, &mats(r, n));
                prefix.push(want.clone());
            }
            let out = local::run(p, |world| {
                let r = world.rank();
                let op = UserOp::new(matmul, false);
                let mut got = Vec::new();
                for algo in ALL_ALLREDUCE {
                    let s = Settings { allreduce: algo, ..Settings::default() };
                    let mut v = mats(r, n);
                    world.with_settings(s).allreduce_in_place(&mut v, &op)?;
                    got.push(v);
                }
                for root in 0..p {
                    let mut v = vec![[0u64; 4]; n];
                    world.reduce(&mats(r, n), (r == root).then_some(&mut v[..]), &op, root)?;
                    if r == root {
                        got.push(v);
                    }
                }
                let chain = Settings { scan: ScanAlgo::Chain, ..Settings::default() };
                let mut sc2 = vec![[0u64; 4]; n];
                world.with_settings(chain).scan(&mats(r, n), &mut sc2, &op)?;
                let mut ex2 = vec![[9u64; 4]; n];
                world.with_settings(chain).exscan(&mats(r, n), &mut ex2, &op)?;
                let mut sc = vec![[0u64; 4]; n];
                world.scan(&mats(r, n), &mut sc, &op)?;
                let mut ex = vec![[9u64; 4]; n];
                world.exscan(&mats(r, n), &mut ex, &op)?;
                // reduce_scatter_block: block r of the rank-order product.
                let send: Vec<Mat> = (0..p).flat_map(|_| mats(r, n)).collect();
                let mut rs = vec![[0u64; 4]; n];
                world.reduce_scatter_block(&send, &mut rs, &op)?;
                Ok((got, sc, ex, rs, sc2, ex2))
            })
            .unwrap_or_else(|e| panic!("p={p}: {e}"));
            for (r, (got, sc, ex, rs, sc2, ex2)) in out.into_iter().enumerate() {
                for g in &got {
                    assert_eq!(g, &want, "p={p} rank={r}");
                }
                assert_eq!(sc, prefix[r], "scan p={p} rank={r}");
                assert_eq!(sc2, prefix[r], "chain scan p={p} rank={r}");
                if r > 0 {
                    assert_eq!(ex2, prefix[r - 1], "chain exscan p={p} rank={r}");
                }
                if r > 0 {
                    assert_eq!(ex, prefix[r - 1], "exscan p={p} rank={r}");
                } else {
                    assert_eq!(ex, vec![[9u64; 4]; n], "exscan leaves rank 0 alone");
                }
                assert_eq!(rs, want, "reduce_scatter_block p={p} rank={r}");
            }
        }
    })
}

/// Floats that are not small integers: rounding depends on the reduction order.
fn noisy(rank: usize, n: usize, run_salt: u64) -> Vec<f64> {
    let _ = run_salt;
    (0..n)
        .map(|i| {
            let h = (rank as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
                ^ (i as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            (h >> 11) as f64 / (1u64 << 53) as f64 * 10f64.powi((i % 9) as i32 - 4)
        })
        .collect()
}

fn allreduce_bits(p: usize, n: usize, algo: AllreduceAlgo) -> Vec<Vec<u64>> {
    local::run(p, |world| {
        let s = Settings { allreduce: algo, ..Settings::default() };
        let mine = noisy(world.rank(), n, 0);
        let mut v = mine.clone();
        world.with_settings(s).allreduce_in_place(&mut v, Sum)?;
        // The out-of-place form (its own code path for the ring) must give the same bits.
        let mut out = vec![0.0; n];
        world.with_settings(s).allreduce(&mine, &mut out, Sum)?;
        let same = v.iter().zip(&out).all(|(a, b)| a.to_bits() == b.to_bits());
        let mut bits: Vec<u64> = v.iter().map(|x| x.to_bits()).collect();
        bits.push(u64::from(same));
        Ok(bits)
    })
    .unwrap()
}

#[test]
fn allreduce_is_bitwise_identical_across_ranks_and_runs() {
    with_timeout(120, || {
        for p in [2, 3, 4, 5, 7, 8, 9] {
            for n in [1, 1000, 100_003] {
                for algo in ALL_ALLREDUCE {
                    let a = allreduce_bits(p, n, algo);
                    assert!(
                        a.iter().all(|b| b[n] == 1),
                        "p={p} n={n} {algo:?}: in/out of place differ"
                    );
                    for r in 1..p {
                        assert!(a[r] == a[0], "p={p} n={n} {algo:?}: rank {r} differs from rank 0");
                    }
                    if n == 1000 {
                        let b = allreduce_bits(p, n, algo);
                        assert!(a == b, "p={p} n={n} {algo:?}: two runs differ");
                    }
                }
            }
        }
    })
}

#[test]
fn location_and_logical_operators() {
    with_timeout(60, || {
        let out = local::run(5, |world| {
            let r = world.rank();
            // Values 3,1,4,1,5 at ranks 0..4: min 1 first at rank 1; max 5 at rank 4.
            let vals = [3.0f64, 1.0, 4.0, 1.0, 5.0];
            let mut mn = [Loc::new(vals[r], r as u64)];
            world.allreduce_in_place(&mut mn, MinLoc)?;
            let mut mx = [Loc::new(vals[r] as i32, r as u32)];
            world.allreduce_in_place(&mut mx, MaxLoc)?;
            let mut land = [(r != 2) as u8, 1];
            world.allreduce_in_place(&mut land, LAnd)?;
            let mut lor = [(r == 2) as u16, 0];
            world.allreduce_in_place(&mut lor, LOr)?;
            let mut bits = [1u32 << r, 0xFF];
            world.allreduce_in_place(&mut bits, BOr)?;
            let mut band = [0xFFu32 & !(1 << r)];
            world.allreduce_in_place(&mut band, BAnd)?;
            let mut x = [1u64 << r];
            world.allreduce_in_place(&mut x, BXor)?;
            let mut prod = [(r + 1) as i64];
            world.allreduce_in_place(&mut prod, Prod)?;
            Ok((mn[0], mx[0], land, lor, bits, band, x, prod))
        })
        .unwrap();
        for o in out {
            assert_eq!(o.0, Loc::new(1.0, 1));
            assert_eq!(o.1, Loc::new(5, 4));
            assert_eq!(o.2, [0, 1]);
            assert_eq!(o.3, [1, 0]);
            assert_eq!(o.4, [0b11111, 0xFF]);
            assert_eq!(o.5, [0xE0]);
            assert_eq!(o.6, [0b11111]);
            assert_eq!(o.7, [120]);
        }
    })
}

#[test]
fn object_forms_every_root() {
    with_timeout(60, || {
        for p in [1, 2, 3, 5] {
            let out = local::run(p, |world| {
                let r = world.rank();
                let mut seen = Vec::new();
                for root in 0..p {
                    let v = (r == root).then(|| format!("hello from {root}"));
                    seen.push(world.bcast_obj(v, root)?);
                    let g = world.gather_obj(&(r, vec![r; r]), root)?;
                    if r == root {
                        let g =
                            g.ok_or_else(|| rmpi_transport::Error::Encode("no gather".into()))?;
                        seen.push(format!("{g:?}"));
                    } else if g.is_some() {
                        seen.push("non-root got a gather result".into());
                    }
                    let vals = (r == root).then(|| (0..p).map(|i| format!("to {i}")).collect());
                    seen.push(world.scatter_obj(vals, root)?);
                    let red = world.reduce_obj(r.to_string(), |a, b| a + "," + &b, root)?;
                    seen.push(format!("{red:?}"));
                }
                seen.push(format!("{:?}", world.allgather_obj(&(r as u8))?));
                seen.push(world.allreduce_obj(r.to_string(), |a, b| a + &b)?);
                Ok(seen)
            })
            .unwrap();
            for (r, seen) in out.into_iter().enumerate() {
                let mut it = seen.into_iter();
                for root in 0..p {
                    assert_eq!(it.next().unwrap(), format!("hello from {root}"));
                    if r == root {
                        let want: Vec<(usize, Vec<usize>)> =
                            (0..p).map(|i| (i, vec![i; i])).collect();
                        assert_eq!(it.next().unwrap(), format!("{want:?}"));
                    }
                    assert_eq!(it.next().unwrap(), format!("to {r}"));
                    let joined = (0..p).map(|i| i.to_string()).collect::<Vec<_>>().join(",");
                    let want = if r == root { Some(joined) } else { None };
                    assert_eq!(it.next().unwrap(), format!("{want:?}"));
                }
                let all: Vec<u8> = (0..p as u8).collect();
                assert_eq!(it.next().unwrap(), format!("{all:?}"));
                assert_eq!(it.next().unwrap(), (0..p).map(|i| i.to_string()).collect::<String>());
            }
        }
    })
}

#[test]
fn collectives_never_see_user_messages() {
    with_timeout(60, || {
        let out = local::run(4, |world| -> Result<Vec<String>> {
            let (p, r) = (world.size(), world.rank());
            let right = (r + 1) % p;
            let left = (r + p - 1) % p;
            let big: Vec<f64> = vec![r as f64; 1 << 18];
            let mut errs = Vec::new();
            world.scope(|s| -> Result<()> {
                // User messages in flight, on tags 0.. like the first collective calls', big
                // enough not to be delivered at once.
                let mut reqs = Vec::new();
                for tag in 0..4u64 {
                    reqs.push(s.isend(&big, right, tag)?);
                }
                for round in 0..5 {
                    let mut v = vec![1.0f64; 1000 + round];
                    world.allreduce_in_place(&mut v, Sum)?;
                    if v.iter().any(|x| *x != p as f64) {
                        errs.push(format!("allreduce round {round} saw foreign data"));
                    }
                    let mut b = vec![if r == 0 { 7u8 } else { 0 }; 3];
                    world.bcast(&mut b, 0)?;
                    if b != [7, 7, 7] {
                        errs.push(format!("bcast round {round} saw foreign data: {b:?}"));
                    }
                }
                for tag in 0..4u64 {
                    let (v, st) = world.recv::<f64>(left, tag)?;
                    if st.tag != tag || v.len() != big.len() || v.iter().any(|x| *x != left as f64)
                    {
                        errs.push(format!("user message tag {tag} damaged"));
                    }
                }
                rmpi_transport::Request::wait_all(reqs)?;
                Ok(())
            })?;
            Ok(errs)
        })
        .unwrap();
        let errs: Vec<String> = out.into_iter().flatten().collect();
        assert!(errs.is_empty(), "{errs:?}");
    })
}

#[test]
fn collectives_on_split_and_dup_communicators() {
    with_timeout(60, || {
        let out = local::run(5, |world| {
            let r = world.rank();
            let half = world.split(Some((r % 2) as u32), -(r as i64))?.ok_or_else(|| {
                rmpi_transport::Error::Encode("split returned no communicator".into())
            })?;
            let dup = world.dup()?;
            // Interleave calls on the three communicators; each has its own sequence.
            let mut a = [r as u64];
            half.allreduce_in_place(&mut a, Sum)?;
            let mut b = [r as u64];
            world.allreduce_in_place(&mut b, Max)?;
            let mut g = vec![0u64; half.size()];
            half.allgather(&[r as u64], &mut g)?;
            let mut c = [if dup.rank() == 4 { 42u64 } else { 0 }];
            dup.bcast(&mut c, 4)?;
            let mut sc = [0u64];
            half.scan(&[r as u64], &mut sc, Sum)?;
            Ok((a[0], b[0], g, c[0], sc[0]))
        })
        .unwrap();
        for (r, (a, b, g, c, sc)) in out.into_iter().enumerate() {
            // Evens {0, 2, 4} and odds {1, 3}, ordered by descending world rank (key = -rank).
            let members: Vec<u64> = if r % 2 == 0 { vec![4, 2, 0] } else { vec![3, 1] };
            assert_eq!(a, members.iter().sum::<u64>(), "rank {r}");
            assert_eq!(b, 4);
            assert_eq!(g, members, "rank {r}");
            assert_eq!(c, 42);
            let pos = members.iter().position(|m| *m == r as u64).unwrap();
            assert_eq!(sc, members[..=pos].iter().sum::<u64>(), "rank {r}");
        }
    })
}
