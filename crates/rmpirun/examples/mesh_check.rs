//! A small rmpi rank program used by rmpirun's tests and measurements.
//!
//! `mesh_check` joins the job (rendezvous + full mesh, unless `RMPI_CONNECT=lazy`), passes a token around the ring, sums all
//! ranks at rank 0 and sends the sum back to everyone, checks it, prints one line and finalizes.
//! `mesh_check --hang` prints `ready RANK PID` after joining and then sleeps (for kill tests);
//! `mesh_check --crash R` makes rank R abort (SIGABRT) after joining. `mesh_check --transports`
//! also prints `rank R shm: A,B,...`, the ranks it reaches through shared memory. When a peer is lost, a rank
//! prints the error and sleeps, so only the launcher ends it; with `--victims-exit` it exits
//! with status 1 at once instead, as most programs do.
//! `mesh_check --kill R` makes rank R SIGKILL itself once rank 0 has the ring back, while every
//! other rank waits for a message from any rank; they print `rank N lost: ERROR` on stdout and
//! sleep until the launcher ends them (a survivor that exited at once could be reported lost
//! before the victim).
//! `mesh_check --wait-peer` makes rank 0 wait, after joining, for a message from the last rank
//! that never comes (the others hang): it prints `rank 0: lost after S s: ERROR` when the wait
//! fails, then stalls.
//! `mesh_check --fail R[,R...] HOW` makes those ranks fail right after the ring, while the
//! others wait for them: HOW is `kill` (SIGKILL to itself), `exit` (status 3), `panic` or `abort` (`abort(7)`).

use std::time::Duration;

use rmpi_transport::{Any, Communicator};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let hang = args.iter().any(|a| a == "--hang");
    let transports = args.iter().any(|a| a == "--transports");
    let crash: Option<usize> = args
        .iter()
        .position(|a| a == "--crash")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok());
    let kill: Option<usize> = args
        .iter()
        .position(|a| a == "--kill")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok());
    let fail: Option<(Vec<usize>, String)> =
        args.iter().position(|a| a == "--fail").and_then(|i| {
            let ranks =
                args.get(i + 1)?.split(',').map(|r| r.parse().ok()).collect::<Option<_>>()?;
            Some((ranks, args.get(i + 2)?.clone()))
        });
    let victims_exit = args.iter().any(|a| a == "--victims-exit");
    // The tests that use this program expect every rank to notice a lost peer by itself, also
    // one it never talked to: that needs the full mesh (an explicit RMPI_CONNECT still wins).
    if std::env::var_os(rmpi_transport::env::CONNECT).is_none() {
        std::env::set_var(rmpi_transport::env::CONNECT, "eager");
    }
    let comm = match Communicator::init() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mesh_check: init failed: {e}");
            std::process::exit(2);
        }
    };
    let (rank, size) = (comm.rank(), comm.size());
    let on_error = |rank: usize, err: &str| -> ! {
        if victims_exit {
            eprintln!("rank {rank}: {err}");
            std::process::exit(1);
        }
        stall(rank, err)
    };
    if let Err(e) = ring(&comm) {
        on_error(rank, &e.to_string());
    }
    if let Some((_, how)) = fail.as_ref().filter(|(r, _)| r.contains(&rank)) {
        match how.as_str() {
            // SAFETY: kill(2) on this very process; no memory involved.
            "kill" => unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            },
            "exit" => std::process::exit(3),
            "abort" => comm.abort(7),
            _ => panic!("rank {rank} fails on purpose"),
        }
    }
    if args.iter().any(|a| a == "--wait-peer") {
        println!("ready {rank} {}", std::process::id());
        if rank == 0 {
            let t0 = std::time::Instant::now();
            if let Err(e) = comm.recv::<u8>(size - 1, 99) {
                println!("rank 0: lost after {:.1} s: {e}", t0.elapsed().as_secs_f64());
            }
        }
        std::thread::sleep(Duration::from_secs(300));
        return;
    }
    if let Some(victim) = kill {
        // Rank 0 has the ring token back only once every ring message has arrived: only then
        // does it let the victim die, so no survivor can still be waiting for the ring.
        if rank == 0 && victim != 0 && victim < size {
            if let Err(e) = comm.send(&[1u64], victim, 9) {
                stall(rank, &e.to_string());
            }
        }
        if rank == victim && victim != 0 {
            if let Err(e) = comm.recv::<u64>(0, 9) {
                stall(rank, &e.to_string());
            }
        }
        if rank == victim {
            println!("killing {rank} {}", std::process::id());
            // SAFETY: kill(2) with our own pid and a valid signal number.
            unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        }
        // Nobody sends: this returns only with the loss of a peer.
        let e = comm.recv::<u64>(Any, Any).err().map(|e| e.to_string()).unwrap_or_default();
        println!("rank {rank} lost: {e}");
        std::thread::sleep(Duration::from_secs(300));
        std::process::exit(3);
    }
    if hang {
        println!("ready {rank} {}", std::process::id());
        std::thread::sleep(Duration::from_secs(300));
        return;
    }
    if crash == Some(rank) {
        std::thread::sleep(Duration::from_millis(100));
        std::process::abort();
    }
    match sum_all(&comm) {
        Ok(sum) => {
            let want = (size * (size - 1) / 2) as u64;
            if sum != want {
                eprintln!("rank {rank}: sum {sum}, expected {want}");
                std::process::exit(1);
            }
            // The launcher's name for this host: the tests check placement by hostfile name.
            let host = comm.host_of(rank).unwrap_or_default();
            println!("rank {rank}/{size} on {host}: sum {sum} ok");
            if transports {
                let shm: Vec<String> = (0..size)
                    .filter(|r| comm.shares_memory_with(*r).unwrap_or(false))
                    .map(|r| r.to_string())
                    .collect();
                println!("rank {rank} shm: {}", shm.join(","));
            }
        }
        Err(e) => on_error(rank, &e.to_string()),
    }
    if let Err(e) = comm.finalize() {
        eprintln!("rank {rank}: finalize: {e}");
        std::process::exit(1);
    }
}

/// Sends a counter once around the ring; every rank adds one.
fn ring(comm: &Communicator) -> rmpi_transport::Result<()> {
    let (rank, size) = (comm.rank(), comm.size());
    if size == 1 {
        return Ok(());
    }
    let next = (rank + 1) % size;
    let prev = (rank + size - 1) % size;
    if rank == 0 {
        comm.send(&[1u64], next, 1)?;
        let (v, _) = comm.recv::<u64>(prev, 1)?;
        if v.first() != Some(&(size as u64)) {
            eprintln!("ring came back with {v:?}, expected {size}");
            std::process::exit(1);
        }
    } else {
        let (v, _) = comm.recv::<u64>(prev, 1)?;
        comm.send(&[v.first().copied().unwrap_or(0) + 1], next, 1)?;
    }
    Ok(())
}

/// Reduce to rank 0, then broadcast back.
fn sum_all(comm: &Communicator) -> rmpi_transport::Result<u64> {
    let (rank, size) = (comm.rank(), comm.size());
    if rank == 0 {
        let mut sum = 0u64;
        for src in 1..size {
            let (v, _) = comm.recv::<u64>(src, 2)?;
            sum += v.first().copied().unwrap_or(0);
        }
        for dst in 1..size {
            comm.send(&[sum], dst, 3)?;
        }
        Ok(sum)
    } else {
        comm.send(&[rank as u64], 0, 2)?;
        let (v, _) = comm.recv::<u64>(0, 3)?;
        Ok(v.first().copied().unwrap_or(0))
    }
}

/// Reports a lost peer and waits to be ended by the launcher.
fn stall(rank: usize, err: &str) -> ! {
    eprintln!("rank {rank}: {err}");
    std::thread::sleep(Duration::from_secs(300));
    std::process::exit(3);
}
