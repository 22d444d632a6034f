//! Both bootstraps under rmpirun: `RMPI_BOOTSTRAP=directory` (the default: node agents gather
//! their ranks, peers are looked up at first dial) and `table` (the launcher's rendezvous), with
//! real ranks on this machine; and the directory's failure when a rank never registers.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use support::{mesh_check, rmpirun, run, workspace_example};

const LIMIT: Duration = Duration::from_secs(120);

fn job(mode: &str, args: &[&str]) -> Command {
    let mut c = Command::new(rmpirun());
    c.args(args).env("RMPI_BOOTSTRAP", mode).stdin(Stdio::null());
    c
}

#[test]
fn hello_under_both_bootstraps() {
    let hello = workspace_example("hello");
    for mode in ["directory", "table"] {
        let out = run(job(mode, &["-n", "6", hello.to_str().unwrap()]), LIMIT);
        assert_eq!(out.code(), 0, "{mode}: {}", out.stderr);
        for r in 0..6 {
            let want = format!("hello from rank {r} of 6 on ");
            assert_eq!(out.stdout.matches(&want).count(), 1, "{mode}: {}", out.stdout);
        }
    }
}

/// Two agents on this machine ("hosts" localhost and 127.0.0.1), interleaved ranks: under the
/// directory every rank learns the other agent's ranks by looking them up, and the allreduce
/// of `mesh_check` talks to every rank.
#[test]
fn allreduce_across_two_agents_under_both_bootstraps() {
    let mesh = mesh_check();
    for mode in ["directory", "table"] {
        for map in ["slot", "node"] {
            let args = [
                "-H",
                "localhost:3,127.0.0.1:3",
                "--map-by",
                map,
                "-n",
                "6",
                mesh.to_str().unwrap(),
            ];
            let out = run(job(mode, &args), LIMIT);
            assert_eq!(out.code(), 0, "{mode} {map}: {}", out.stderr);
            for r in 0..6 {
                let ok = out.stdout.lines().any(|l| {
                    l.starts_with(&format!("rank {r}/6 on ")) && l.ends_with(": sum 15 ok")
                });
                assert!(ok, "{mode} {map}: rank {r} missing: {}", out.stdout);
            }
        }
    }
}

#[test]
fn a_rank_that_never_registers_is_named_with_its_host() {
    let hello = workspace_example("hello");
    let script = format!("if [ $RMPI_RANK = 2 ]; then sleep 30; fi; exec {}", hello.display());
    let args = ["-n", "3", "--boot-timeout", "2", "sh", "-c", &script];
    let out = run(job("directory", &args), LIMIT);
    assert_ne!(out.code(), 0, "{}", out.stdout);
    assert!(
        out.stderr.contains("1 of 3 ranks on localhost never registered with its agent: 2"),
        "{}",
        out.stderr
    );
}
