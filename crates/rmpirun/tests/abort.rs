//! `abort(7)` under rmpirun: the job's status is 7 and rmpirun blames the aborting rank, every
//! run, over shared memory and over TCP (`RMPI_SHM=0`), on one host and over 4 hosts in network
//! namespaces (skipped where those cannot be built). The peers' own errors are checked in
//! rmpi-transport's `abort` test: here rmpirun ends them, and when it does is a race.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::netns::{unavailable, Cluster, Options, SERIAL};
use support::{mesh_check, rmpirun, run, Finished};

const LIMIT: Duration = Duration::from_secs(60);

/// The one "ended the job" line of a run.
fn verdict(out: &Finished) -> String {
    let v: Vec<&str> = out.stderr.lines().filter(|l| l.ends_with("; ended the job")).collect();
    assert_eq!(v.len(), 1, "one verdict: {}", out.stderr);
    v[0].to_string()
}

fn check(out: &Finished, blamed: &str, what: &str) {
    let v = verdict(out);
    assert!(
        v.starts_with(blamed) && v.contains("status 7 (abort(7))"),
        "{what}: {v}\n{}",
        out.stderr
    );
    assert_eq!(out.code(), 7, "{what}: {}", out.stderr);
}

#[test]
fn an_aborting_rank_sets_the_status_every_time_on_one_host() {
    let mesh = mesh_check();
    let mesh = mesh.to_str().unwrap();
    for shm in ["1", "0"] {
        for run_no in 0..20 {
            let mut cmd = Command::new(rmpirun());
            cmd.args(["-n", "4", mesh, "--victims-exit", "--fail", "2", "abort"])
                .env("RMPI_SHM", shm)
                .stdin(Stdio::null());
            check(&run(cmd, LIMIT), "rmpirun: rank 2 on ", &format!("RMPI_SHM={shm} run {run_no}"));
        }
    }
}

#[test]
fn an_aborting_rank_sets_the_status_every_time_over_four_hosts() {
    if let Some(why) = unavailable() {
        let _ = writeln!(std::io::stderr(), "SKIPPED rmpirun abort cluster test: {why}");
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let c = Cluster::new(30, Options::hosts(4));
    let hostfile = c.hostfile("h1 slots=2\nh2 slots=2\nh3 slots=2\nh4 slots=2\n");
    let hostfile = hostfile.to_str().unwrap();
    let mesh = mesh_check();
    let mesh = mesh.to_str().unwrap();
    for shm in ["RMPI_SHM=1", "RMPI_SHM=0"] {
        for run_no in 0..20 {
            let args = [
                "-n",
                "8",
                "-x",
                shm,
                "--hostfile",
                hostfile,
                mesh,
                "--victims-exit",
                "--fail",
                "5",
            ];
            let out = run(c.rmpirun(&[&args[..], &["abort"]].concat()), LIMIT);
            check(&out, "rmpirun: rank 5 on h3 ", &format!("{shm} run {run_no}"));
        }
    }
    c.assert_no_orphans(Duration::from_secs(3));
}
