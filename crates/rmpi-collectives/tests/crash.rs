//! A rank that dies mid-collective makes every survivor's call fail, naming it.
//!
//! Ranks are real processes (this test binary re-executed with `COLL_CRASH_*` variables, see
//! [`child_entry`]), joined through a rendezvous server run by the test; one of them calls
//! `_exit` from a timer thread while the ranks are busy in collectives.

mod common;

use std::io::Read;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rmpi_collectives::*;
use rmpi_transport::rendezvous::RendezvousServer;
use rmpi_transport::token::JobToken;
use rmpi_transport::{BootConfig, Communicator, Error};

use common::wait_with_deadline;

const SIZE: usize = 4;
const VICTIM: usize = 2;
/// Exit codes of a child.
const NAMED_THE_VICTIM: i32 = 0;
const OTHER_ERROR: i32 = 3;
const NO_ERROR: i32 = 4;
const CANNOT_JOIN: i32 = 5;
const VICTIM_CODE: i32 = 9;

/// The child side: does nothing in a normal test run (no `COLL_CRASH_RANK`); as a child it
/// joins the job, runs collectives until one fails, reports and exits.
#[test]
fn child_entry() {
    let Ok(rank) = std::env::var("COLL_CRASH_RANK") else { return };
    std::process::exit(child(&rank));
}

fn child(rank: &str) -> i32 {
    let parse = || -> Option<(usize, SocketAddr, JobToken)> {
        Some((
            rank.parse().ok()?,
            std::env::var("COLL_CRASH_RV").ok()?.parse().ok()?,
            JobToken::from_hex(&std::env::var("COLL_CRASH_TOKEN").ok()?).ok()?,
        ))
    };
    let Some((rank, rv, token)) = parse() else {
        println!("bad child environment");
        return CANNOT_JOIN;
    };
    let mut cfg = BootConfig::new(rank, SIZE, token, rv);
    cfg.boot_timeout = Duration::from_secs(20);
    cfg.host_label = Some(format!("proc{rank}"));
    // Connections on demand (the default): a survivor that never talked to the victim learns of
    // its loss from the failure notices of the survivors that did (docs/scale.md).
    let world = match Communicator::join(&cfg) {
        Ok(w) => w,
        Err(e) => {
            println!("join failed: {e}");
            return CANNOT_JOIN;
        }
    };
    if rank == VICTIM {
        std::thread::spawn(|| {
            std::thread::sleep(Duration::from_millis(300));
            // SAFETY: _exit ends the process at once, like a crash; nothing is left to run.
            unsafe { libc::_exit(VICTIM_CODE) }
        });
    }
    let start = Instant::now();
    let mut big = vec![1.0f64; 1 << 19];
    let mut round = 0u64;
    let err = loop {
        if start.elapsed() > Duration::from_secs(20) {
            println!("no error after {round} rounds");
            return NO_ERROR;
        }
        let r = match round % 3 {
            0 => world.allreduce_in_place(&mut big, Sum),
            1 => world.bcast(&mut big, (round as usize) % SIZE),
            _ => world.barrier(),
        };
        if let Err(e) = r {
            break e;
        }
        round += 1;
    };
    println!("rank {rank} after {round} rounds, {:?}: {err}", start.elapsed());
    // Survivors leave at once: the others must still name the rank that crashed, not one that
    // merely finalized after it (the transport reports a failed member before a finished one, and
    // fails collective sends as well as receives when any member is lost).
    match err {
        Error::PeerLost { rank: VICTIM, .. } => NAMED_THE_VICTIM,
        _ => OTHER_ERROR,
    }
}

#[test]
fn a_dead_rank_is_named_by_every_survivor() {
    let token = JobToken::generate();
    let server = RendezvousServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        SIZE,
        token,
        Duration::from_secs(20),
    )
    .unwrap();
    let rv = server.local_addr();
    server.spawn();
    let exe = std::env::current_exe().unwrap();
    let start = Instant::now();
    let mut children: Vec<Child> = (0..SIZE)
        .map(|r| {
            Command::new(&exe)
                .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
                .env("COLL_CRASH_RANK", r.to_string())
                .env("COLL_CRASH_RV", rv.to_string())
                .env("COLL_CRASH_TOKEN", token.to_hex())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let deadline = start + Duration::from_secs(40);
    let codes: Vec<Option<i32>> =
        children.iter_mut().map(|c| wait_with_deadline(c, deadline)).collect();
    let outputs: Vec<String> = children
        .iter_mut()
        .map(|c| {
            let mut s = String::new();
            if let Some(out) = c.stdout.as_mut() {
                let _ = out.read_to_string(&mut s);
            }
            s
        })
        .collect();
    let report = format!("codes {codes:?}, outputs {outputs:#?}");
    assert_eq!(codes[VICTIM], Some(VICTIM_CODE), "{report}");
    for r in (0..SIZE).filter(|r| *r != VICTIM) {
        assert_eq!(codes[r], Some(NAMED_THE_VICTIM), "rank {r}: {report}");
        assert!(outputs[r].contains(&format!("rank {VICTIM} on proc{VICTIM}")), "{report}");
    }
    // The victim dies 300 ms after joining; survivors notice within seconds, not timeouts.
    assert!(start.elapsed() < Duration::from_secs(15), "took {:?}: {report}", start.elapsed());
}
