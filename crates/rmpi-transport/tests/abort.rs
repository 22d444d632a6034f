//! `abort(code)` between real processes: ranks are this test binary run again as children
//! (`ROLE` in their environment), joined through a real rendezvous, over shared memory and over
//! TCP (`RMPI_SHM=0`). The aborting rank exits with its code, and every peer waiting on it
//! learns that it aborted (its failure notice), not merely that its connection closed.

use std::io::Read;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rmpi_transport::rendezvous::RendezvousServer;
use rmpi_transport::token::JobToken;
use rmpi_transport::{env, Communicator};

const ROLE: &str = "RMPI_ABORT_TEST_ROLE";
const LIMIT: Duration = Duration::from_secs(30);
/// The rank that aborts, and its code.
const ABORTER: usize = 1;
const CODE: i32 = 7;

/// The child side: joins; every rank but [`ABORTER`] sends it one message (so every pair that
/// talks is connected, over TCP too) and then waits for one that never comes, printing the
/// error; the aborter takes the messages and aborts.
#[test]
fn child() {
    let Ok(role) = std::env::var(ROLE) else { return };
    let w = Communicator::init().expect("joining");
    if role == "abort" {
        for src in (0..w.size()).filter(|r| *r != ABORTER) {
            w.recv::<u8>(src, 1).expect("hello from a waiter");
        }
        w.abort(CODE);
    }
    w.send(&[1u8], ABORTER, 1).expect("hello to the aborter");
    match w.recv::<u8>(ABORTER, 2) {
        Ok(_) => println!("rank: received a message nobody sent"),
        Err(e) => println!("rank: {e}"),
    }
}

/// Runs a job of `n` ranks (with `RMPI_SHM=shm`) to its end; each rank's exit code and the
/// lines it printed.
fn job(n: usize, shm: &str) -> Vec<(Option<i32>, Vec<String>)> {
    let token = JobToken::generate();
    let rv = RendezvousServer::bind(SocketAddr::from(([127, 0, 0, 1], 0)), n, token, LIMIT)
        .expect("rendezvous");
    let addr = rv.local_addr();
    rv.spawn();
    let exe = std::env::current_exe().expect("test binary");
    let mut children: Vec<Child> = (0..n)
        .map(|r| {
            Command::new(&exe)
                .args(["--exact", "child", "--nocapture", "--test-threads", "1"])
                .env(ROLE, if r == ABORTER { "abort" } else { "wait" })
                .env(env::SIZE, n.to_string())
                .env(env::RANK, r.to_string())
                .env(env::TOKEN, token.to_hex())
                .env(env::RENDEZVOUS, addr.to_string())
                .env(env::LOCAL_SIZE, n.to_string())
                .env(env::HOST, "here")
                .env(env::BOOT_TIMEOUT, "30")
                .env(env::SHM, shm)
                .env_remove("RMPI_AGENT_FD")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("starting a rank")
        })
        .collect();
    let deadline = Instant::now() + LIMIT;
    let mut out = Vec::new();
    for c in &mut children {
        let code = loop {
            match c.try_wait().expect("wait") {
                Some(st) => break st.code(),
                None if Instant::now() > deadline => {
                    let _ = c.kill();
                    let _ = c.wait();
                    break None;
                }
                None => std::thread::sleep(Duration::from_millis(5)),
            }
        };
        let mut text = String::new();
        if let Some(mut o) = c.stdout.take() {
            let _ = o.read_to_string(&mut text);
        }
        // Only the rank's own lines; the harness's `test child ... ` may precede the first.
        let lines = text.lines().filter_map(|l| l.find("rank: ").map(|at| l[at + 6..].to_string()));
        out.push((code, lines.collect()));
    }
    for c in &mut children {
        let _ = c.kill();
        let _ = c.wait();
    }
    out
}

#[test]
fn every_peer_hears_that_the_rank_aborted_and_the_rank_exits_with_its_code() {
    let want = format!("rank {ABORTER} on here aborted (code {CODE})");
    for shm in ["1", "0"] {
        for run in 0..20 {
            let ranks = job(3, shm);
            for (r, (code, lines)) in ranks.iter().enumerate() {
                if r == ABORTER {
                    assert_eq!(*code, Some(CODE), "RMPI_SHM={shm} run {run}: aborter's status");
                } else {
                    assert_eq!(
                        lines,
                        &vec![want.clone()],
                        "RMPI_SHM={shm} run {run}: rank {r} (status {code:?})"
                    );
                }
            }
        }
    }
}
