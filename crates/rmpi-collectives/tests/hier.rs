//! Two-level collectives on real processes of this machine, placed on made-up hosts: every rank
//! gets a host name (`RMPI_HOST`) from a placement, so the collectives see several hosts
//! (shared memory still joins all of them; what matters here is the layout). Each placement runs
//! `examples/hier_check.rs` (this test binary re-executed as every rank, joined through a
//! rendezvous server run by the test), which compares the two-level algorithms with the flat
//! ones bit for bit and checks that its barriers are real.

mod common;

#[path = "../examples/hier_check.rs"]
#[allow(dead_code)]
mod hier_check;

use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rmpi_transport::rendezvous::RendezvousServer;
use rmpi_transport::token::JobToken;

use common::wait_with_deadline;

/// One job at a time: each is as many processes as the machine has cores, or more.
static SERIAL: Mutex<()> = Mutex::new(());

/// The child side: nothing in a normal test run; as a rank, runs the check and exits.
#[test]
fn child_entry() {
    let Ok(dir) = std::env::var("HIER_CHECK_DIR") else { return };
    std::process::exit(hier_check::run(vec!["check".into(), dir]));
}

/// Runs the check with rank i on host `hosts[i]` (and `extra` environment), and asserts that
/// every rank says ok.
fn job(name: &str, hosts: &[&str], extra: &[(&str, &str)]) {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let p = hosts.len();
    let dir = std::env::temp_dir().join(format!("hier-check-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let token = JobToken::generate();
    let server =
        RendezvousServer::bind("127.0.0.1:0".parse().unwrap(), p, token, Duration::from_secs(60))
            .unwrap();
    let rv = server.local_addr();
    server.spawn();
    let exe = std::env::current_exe().unwrap();
    let start = Instant::now();
    let mut children: Vec<Child> = hosts
        .iter()
        .enumerate()
        .map(|(r, host)| {
            let local: Vec<usize> = (0..p).filter(|i| hosts[*i] == *host).collect();
            let mut cmd = Command::new(&exe);
            cmd.args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
                .env("HIER_CHECK_DIR", &dir)
                .env("RMPI_SIZE", p.to_string())
                .env("RMPI_RANK", r.to_string())
                .env("RMPI_TOKEN", token.to_hex())
                .env("RMPI_RENDEZVOUS", rv.to_string())
                .env("RMPI_HOST", host)
                .env("RMPI_LOCAL_SIZE", local.len().to_string())
                .env("RMPI_LOCAL_RANK", local.iter().position(|i| *i == r).unwrap().to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit());
            for (k, v) in extra {
                cmd.env(k, v);
            }
            cmd.spawn().unwrap()
        })
        .collect();
    let deadline = start + Duration::from_secs(120);
    let codes: Vec<Option<i32>> =
        children.iter_mut().map(|c| wait_with_deadline(c, deadline)).collect();
    let outputs: Vec<String> = children
        .iter_mut()
        .map(|c| {
            let mut s = String::new();
            if let Some(out) = c.stdout.as_mut() {
                let _ = std::io::Read::read_to_string(out, &mut s);
            }
            s
        })
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    let report = format!("{name}: codes {codes:?}, outputs {outputs:#?}");
    let mut names: Vec<&str> = hosts.to_vec();
    names.sort_unstable();
    names.dedup();
    let widest = names.iter().map(|n| hosts.iter().filter(|h| *h == n).count()).max();
    let contiguous = names.iter().all(|n| {
        let at: Vec<usize> = (0..p).filter(|i| hosts[*i] == *n).collect();
        at[at.len() - 1] - at[0] + 1 == at.len()
    });
    for (r, host) in hosts.iter().enumerate() {
        assert_eq!(codes[r], Some(0), "rank {r}: {report}");
        let want = format!(
            "hier_check rank {r} on {host}: ok, {} hosts, widest {}, contiguous {contiguous}, ",
            names.len(),
            widest.unwrap_or(0)
        );
        assert!(outputs[r].contains(&want), "rank {r}: no `{want}` in {report}");
    }
    eprintln!("{name}: {p} ranks in {:?}", start.elapsed());
}

#[test]
fn consecutive_ranks_per_host() {
    job("slot", &["a", "a", "a", "b", "b", "b", "c", "c"], &[]);
}

#[test]
fn hosts_in_turn() {
    job("node", &["a", "b", "c", "a", "b", "c", "a", "b"], &[]);
}

#[test]
fn uneven_hosts_and_a_host_with_one_rank() {
    job("uneven", &["a", "a", "b", "a", "a", "c", "c", "a"], &[]);
}

#[test]
fn without_shared_memory() {
    job("noshm", &["a", "a", "a", "b", "b", "b", "c", "c"], &[("RMPI_SHM", "0")]);
}
