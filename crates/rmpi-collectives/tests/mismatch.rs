//! Ranks in mismatched collective calls get an error that says so, never a hang or garbage.

mod common;

use common::with_timeout;
use rmpi_collectives::*;
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
        assert!(is_mismatch(o), "{out:?}");
        assert!(o.as_ref().unwrap_err().contains("3 elements, 4 needed"), "{out:?}");
    }
}
