//! Ranks in mismatched collective calls get an error that says so, never a hang or garbage.

mod common;

use common::with_timeout;
use rmpi_collectives::*;
use std::time::{Duration, Instant};

use rmpi_transport::{local, Communicator, Error, Result};

/// Runs `f` on `p` ranks and returns each rank's outcome (errors as strings).
fn outcomes(
    p: usize,
    f: impl Fn(&Communicator) -> Result<()> + Sync + Send + 'static,
) -> Vec<std::result::Result<(), String>> {
    with_timeout(30, move || {
        let out = local::run(p, |world| {
            let r = f(&world).map_err(|e| e.to_string());
            Ok(r)
        });
        out.expect("the harness itself failed")
    })
}

fn is_mismatch(r: &std::result::Result<(), String>) -> bool {
    matches!(r, Err(m) if m.contains("collective mismatch"))
}

fn checked() -> Settings {
    Settings { check: true, ..Settings::default() }
}

/// The stall slice of the tests that rely on stall detection.
const T: Duration = Duration::from_millis(50);

/// Default settings (no consistency check) with the short stall slice.
fn quick() -> Settings {
    Settings { stall: Some(T), ..Settings::default() }
}

/// Runs `f` on `p` ranks (each gets the communicator with [`quick`] settings) and returns each
/// rank's outcome and how long the slowest rank took.
fn timed(
    p: usize,
    f: impl Fn(Tuned<'_>) -> Result<()> + Sync + Send + 'static,
) -> (Vec<std::result::Result<(), String>>, Duration) {
    let start = Instant::now();
    let out = outcomes(p, move |w| f(w.with_settings(quick())));
    (out, start.elapsed())
}

/// Asserts that every rank failed within 5 s, at least one with a mismatch (the others may see
/// that rank leave first).
fn all_fail(what: &str, out: &[std::result::Result<(), String>], took: Duration) {
    assert!(took < Duration::from_secs(5), "{what}: took {took:?}: {out:?}");
    assert!(out.iter().all(|o| o.is_err()), "{what}: {out:?}");
    assert!(out.iter().any(is_mismatch), "{what}: {out:?}");
}

/// Asserts that every rank got a mismatch error that mentions each of `words`, within 5 s.
fn all_mismatch(
    what: &str,
    out: &[std::result::Result<(), String>],
    took: Duration,
    words: &[&str],
) {
    assert!(took < Duration::from_secs(5), "{what}: took {took:?}: {out:?}");
    eprintln!("{what}: every rank failed within {took:?}: {out:?}");
    for (r, o) in out.iter().enumerate() {
        assert!(is_mismatch(o), "{what}: rank {r}: {out:?}");
        let m = o.as_ref().unwrap_err();
        for w in words {
            assert!(m.contains(w), "{what}: rank {r} does not mention {w:?}: {m}");
        }
    }
}

#[test]
fn different_counts_are_reported() {
    let out = outcomes(2, |w| {
        let mut v = vec![1u32; 10 + w.rank()];
        w.bcast(&mut v, 0)
    });
    assert!(is_mismatch(&out[1]), "{out:?}");
    assert!(out[1].as_ref().unwrap_err().contains("different byte count"), "{out:?}");
}

#[test]
fn different_operations_are_reported() {
    // Rank 1's broadcast receive meets rank 0's allreduce message.
    let out = outcomes(2, |w| {
        let mut v = [1.0f64; 4];
        if w.rank() == 1 {
            w.bcast(&mut v, 0)
        } else {
            w.allreduce_in_place(&mut v, Sum)
        }
    });
    assert!(is_mismatch(&out[1]), "{out:?}");
    let m = out[1].as_ref().unwrap_err();
    assert!(m.contains("allreduce") && m.contains("bcast"), "{m}");
    // Rank 0 cannot complete its allreduce without rank 1: it fails too (rank 1 is gone).
    assert!(out[0].is_err(), "{out:?}");
}

#[test]
fn a_cycle_of_waits_is_broken_by_the_check() {
    // Without the check this pattern waits in a cycle (0 on 1, 1 on 2, 2 on 0): the messages
    // that would reveal the mismatch are from ranks nobody is waiting for.
    let out = outcomes(3, |w| {
        let mut v = [1.0f64; 4];
        let w = w.with_settings(checked());
        if w.communicator().rank() == 2 {
            w.bcast(&mut v, 0)
        } else {
            w.allreduce_in_place(&mut v, Sum)
        }
    });
    for o in &out {
        assert!(is_mismatch(o), "{out:?}");
        let m = o.as_ref().unwrap_err();
        assert!(m.contains("allreduce") && m.contains("bcast root 0"), "{m}");
    }
}

#[test]
fn different_roots_are_reported_with_the_check() {
    for p in [2, 3, 5] {
        let out = outcomes(p, move |w| {
            let mut v = [w.rank() as i32; 3];
            let root = usize::from(w.rank() == p - 1);
            w.with_settings(checked()).bcast(&mut v, root)
        });
        for (r, o) in out.iter().enumerate() {
            assert!(is_mismatch(o), "p={p} rank {r}: {o:?}");
            let m = o.as_ref().unwrap_err();
            assert!(m.contains("root 0") && m.contains("root 1"), "p={p} rank {r}: {m}");
        }
    }
}

#[test]
fn different_counts_and_ops_are_reported_everywhere_with_the_check() {
    let out = outcomes(4, |w| {
        let s = checked();
        let mut v = vec![0u8; if w.rank() == 3 { 5 } else { 4 }];
        w.with_settings(s).allreduce_in_place(&mut v, BOr)
    });
    assert!(out.iter().all(is_mismatch), "{out:?}");
    let out = outcomes(3, |w| {
        let s = checked();
        if w.rank() == 1 {
            w.with_settings(s).barrier()
        } else {
            // The root passes no buffer here; the check runs first, so the mismatch wins.
            w.with_settings(s).gather::<u8>(&[1], None, 0)
        }
    });
    assert!(out.iter().all(is_mismatch), "{out:?}");
    assert!(out[0].as_ref().unwrap_err().contains("barrier"), "{out:?}");
}

#[test]
fn a_skipped_call_is_reported_not_hung() {
    // Rank 1 skips the first barrier: its next call meets the others' barrier messages.
    let out = outcomes(2, |w| {
        if w.rank() == 0 {
            w.barrier()?;
        }
        let mut v = [1i64];
        w.allreduce_in_place(&mut v, Sum)
    });
    assert!(out.iter().any(is_mismatch), "{out:?}");
}

#[test]
fn a_cycle_of_waits_is_an_error_without_the_check() {
    // 0 waits on 1 and 1 on 0 in the allreduce, 2 waits on 0 in the broadcast: no data message
    // ever meets a receive of the other call; the stall queries find the mismatch.
    let (out, took) = timed(3, |w| {
        let mut v = [1.0f64; 4];
        if w.communicator().rank() == 2 {
            w.bcast(&mut v, 0)
        } else {
            w.allreduce_in_place(&mut v, Sum)
        }
    });
    all_mismatch("allreduce vs bcast", &out, took, &["allreduce", "bcast root 0"]);
}

#[test]
fn a_pure_receive_cycle_is_an_error() {
    // Rank 0 waits for root 1's broadcast, rank 1 for root 0's scatter: nobody sends.
    let (out, took) = timed(2, |w| {
        let mut v = [0u32; 2];
        if w.communicator().rank() == 0 {
            w.bcast(&mut v, 1)
        } else {
            w.scatter::<u32>(None, &mut v, 0)
        }
    });
    all_mismatch("bcast vs scatter", &out, took, &["bcast root 1", "scatter root 0"]);
}

#[test]
fn different_operations_are_errors_everywhere() {
    // Both roots wait for the other rank's contribution: nobody sends.
    let (out, took) = timed(2, |w| {
        let mut res = [0u64; 2];
        if w.communicator().rank() == 0 {
            w.reduce(&[1u64, 2], Some(&mut res[..]), Sum, 0)
        } else {
            w.gather(&[1u64], Some(&mut res[..]), 1)
        }
    });
    all_mismatch("reduce vs gather", &out, took, &["reduce root 0", "gather root 1"]);
    // Ranks 0 and 1 in an allreduce, rank 2 in an allgather of the same size.
    let (out, took) = timed(3, |w| {
        let mut res = [0u32; 3];
        if w.communicator().rank() == 2 {
            w.allgather(&[1], &mut res)
        } else {
            w.allreduce(&[1, 2, 3], &mut res, Sum)
        }
    });
    all_fail("allreduce vs allgather", &out, took);
}

#[test]
fn ranks_that_do_not_depend_on_the_odd_one_out_finish() {
    // What remains undetected: ranks 0 and 1 finish their scan (the chain never needs rank 2),
    // rank 2's exscan gets rank 1's scan message and reports the mismatch.
    let (out, took) = timed(3, |w| {
        let mut res = [0u32; 3];
        if w.communicator().rank() == 2 {
            w.exscan(&[1, 2, 3], &mut res, Sum)
        } else {
            w.with_settings(Settings {
                scan: ScanAlgo::Chain,
                stall: Some(T),
                ..Settings::default()
            })
            .scan(&[1, 2, 3], &mut res, Sum)
        }
    });
    assert!(took < Duration::from_secs(5), "took {took:?}: {out:?}");
    assert!(out[0].is_ok() && out[1].is_ok(), "{out:?}");
    assert!(is_mismatch(&out[2]), "{out:?}");
    assert!(out[2].as_ref().unwrap_err().contains("exscan"), "{out:?}");
}

#[test]
fn different_roots_are_errors_everywhere() {
    // Each rank expects the broadcast from the next rank: a cycle of receives.
    let (out, took) = timed(3, |w| {
        let r = w.communicator().rank();
        let mut v = [0i32; 3];
        w.bcast(&mut v, (r + 1) % 3)
    });
    all_mismatch("roots 1, 2, 0", &out, took, &["root"]);
}

#[test]
fn different_counts_are_errors_everywhere() {
    for (p, big) in [(2, 1), (3, 2), (4, 0)] {
        let (out, took) = timed(p, move |w| {
            let n = if w.communicator().rank() == big { 6 } else { 5 };
            let mut v = vec![1u16; n];
            w.allreduce_in_place(&mut v, Sum)
        });
        all_fail(&format!("counts on p={p}"), &out, took);
    }
}

#[test]
fn disagreeing_roots_of_senders_fail_the_next_call() {
    // Both ranks think they are the root: both only send and return Ok (not detectable without
    // a round trip); the stale messages make the next call fail on both ranks.
    let (out, took) = timed(2, |w| {
        let r = w.communicator().rank();
        let mut v = [r as u8 + 7; 4];
        w.bcast(&mut v, r)?;
        if v != [r as u8 + 7; 4] {
            return Err(Error::Encode(format!("the root's buffer changed: {v:?}")));
        }
        let mut s = [1u32; 4];
        w.allreduce_in_place(&mut s, Sum)?;
        Err(Error::Encode(format!("the allreduce after the bad bcast returned {s:?}")))
    });
    all_mismatch("bcast roots 0 and 1, then allreduce", &out, took, &["bcast"]);
}

#[test]
fn late_ranks_in_matching_calls_are_not_mismatches() {
    // One rank joins each call 5 stall slices late; the others query it meanwhile.
    for p in [2, 3, 4] {
        let (out, _) = timed(p, move |w| {
            let r = w.communicator().rank();
            let late = |who: usize| {
                if r == who {
                    std::thread::sleep(5 * T);
                }
            };
            let mut v = [r as u64 + 1; 3];
            late(p - 1);
            w.allreduce_in_place(&mut v, Sum)?;
            let want = (p * (p + 1) / 2) as u64;
            if v != [want; 3] {
                return Err(Error::Encode(format!("allreduce gave {v:?}")));
            }
            let mut b = if r == 0 { [9u8; 100] } else { [0; 100] };
            late(p - 1);
            w.bcast(&mut b, 0)?;
            late(0);
            w.bcast(&mut b, p - 1)?;
            if b != [9; 100] {
                return Err(Error::Encode("bcast gave the wrong bytes".into()));
            }
            let mut all = vec![0u32; p];
            let root = r == 1;
            late(0);
            w.gather(&[r as u32], root.then_some(&mut all[..]), 1)?;
            if root && all != (0..p as u32).collect::<Vec<_>>() {
                return Err(Error::Encode(format!("gather gave {all:?}")));
            }
            late(1);
            let o = w.allgather_obj(&r)?;
            if o != (0..p).collect::<Vec<_>>() {
                return Err(Error::Encode(format!("allgather_obj gave {o:?}")));
            }
            // An object larger than one framed message (length first, then the value).
            late(0);
            let big = w.bcast_obj((r == 0).then(|| vec![5u32; 10_000]), 0)?;
            if big != vec![5u32; 10_000] {
                return Err(Error::Encode("bcast_obj gave the wrong vector".into()));
            }
            late(p - 1);
            w.barrier()
        });
        assert!(out.iter().all(|o| o.is_ok()), "p={p}: {out:?}");
    }
}

#[test]
fn an_invalid_argument_on_one_rank_fails_the_others() {
    // Rank 1's receive buffer is too small; it stays alive (as a program that goes on would)
    // while the others, who wait for its data, are told.
    let (out, took) = timed(3, |w| {
        let r = w.communicator().rank();
        let mut all = vec![0u8; if r == 1 { 5 } else { 6 }];
        let res = w.allgather(&[r as u8; 2], &mut all);
        if r == 1 {
            std::thread::sleep(40 * T);
        }
        res
    });
    assert!(out[1].as_ref().is_err_and(|m| m.contains("invalid argument")), "{out:?}");
    for r in [0, 2] {
        assert!(is_mismatch(&out[r]), "{out:?}");
        assert!(
            out[r].as_ref().unwrap_err().contains("rank 1 was called with an invalid"),
            "{out:?}"
        );
    }
    assert!(took < 40 * T + Duration::from_secs(1), "took {took:?}");
}

#[test]
fn invalid_root_and_buffers_are_reported() {
    let out = outcomes(2, |w| {
        let mut v = [0u8; 2];
        match w.bcast(&mut v, 2) {
            Err(Error::InvalidRank { rank: 2, size: 2 }) => {}
            other => return Err(Error::Encode(format!("expected InvalidRank, got {other:?}"))),
        }
        let mut small = [0u8; 3];
        w.allgather(&[1u8, 2], &mut small)
    });
    for o in &out {
        let m = o.as_ref().expect_err("a too small buffer must be an error");
        assert!(m.contains("invalid argument"), "{out:?}");
        assert!(m.contains("3 elements, 4 needed"), "{out:?}");
    }
}
