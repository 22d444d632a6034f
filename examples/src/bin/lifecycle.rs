//! The two edges of a rank's life, checked: a second `rmpi::init()` is an immediate
//! `AlreadyInitialized`, and after `finalize` every operation is `Finalized`, the same run bare
//! and under a launcher: `rmpirun -n 3 target/release/lifecycle`.

use std::time::{Duration, Instant};

use rmpi::prelude::*;

/// `Ok` when `r` is the `Finalized` error of `rank`, else what it was instead.
fn expect_finalized<T: std::fmt::Debug>(
    what: &str,
    rank: usize,
    r: Result<T, Error>,
) -> Result<(), String> {
    match r {
        Err(Error::Finalized { rank: r }) if r == rank => Ok(()),
        other => Err(format!("{what} after finalize on rank {rank}: {other:?}")),
    }
}

fn check() -> Result<usize, String> {
    let world = rmpi::init().map_err(|e| format!("first init: {e}"))?;
    let (rank, size) = (world.rank(), world.size());

    let t = Instant::now();
    match rmpi::init() {
        Err(Error::AlreadyInitialized { rank: r }) if r == rank => {}
        other => return Err(format!("second init on rank {rank}: {other:?}")),
    }
    // Immediate, not after the boot timeout (60 s by default): a generous bound.
    if t.elapsed() > Duration::from_secs(20) {
        return Err(format!("second init took {:?}", t.elapsed()));
    }

    world.barrier().map_err(|e| format!("barrier: {e}"))?;
    let handle = world.clone();
    world.finalize().map_err(|e| format!("finalize: {e}"))?;

    expect_finalized("send", rank, handle.send(&[1u8], (rank + 1) % size, 0))?;
    expect_finalized("send to self", rank, handle.send(&[1u8], rank, 0))?;
    expect_finalized("recv", rank, handle.recv::<u8>(Any, Any))?;
    expect_finalized("iprobe", rank, handle.iprobe(Any, Any))?;
    expect_finalized("barrier", rank, handle.barrier())?;
    let mut x = [1.0f64];
    expect_finalized("allreduce", rank, handle.allreduce_in_place(&mut x, Sum))?;
    expect_finalized("bcast_obj", rank, handle.bcast_obj(Some(1u8), 0))?;
    expect_finalized("split", rank, handle.split(Some(0), 0))?;
    match rmpi::init() {
        Err(Error::AlreadyInitialized { .. }) => Ok(size),
        other => Err(format!("init after finalize on rank {rank}: {other:?}")),
    }
}

fn main() {
    match check() {
        Ok(size) => println!("lifecycle ok on a world of {size}"),
        Err(e) => {
            eprintln!("lifecycle: {e}");
            std::process::exit(1);
        }
    }
}
