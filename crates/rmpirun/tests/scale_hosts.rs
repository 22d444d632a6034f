//! Many hosts over real ssh: 64 network-namespace hosts, each with a real `sshd` keeping the stock
//! `MaxStartups 10:30:100`, 4 ranks each. Every host must be reached (none refused), the ranks
//! start, run an allreduce (`mcpi`) and finish, and nothing is left. Needs root, iproute2 and
//! openssh, like `cluster.rs`; the time is printed, not asserted.

mod support;

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use support::netns::{unavailable, Cluster, Options, SERIAL};
use support::{run, workspace_example};

const HOSTS: usize = 64;
const PER_HOST: usize = 4;

/// The kernel's neighbour table is one for all namespaces: 65 namespaces that each know a few
/// dozen neighbours pass its default limits (128/512/1024 entries). Raised for the test, put
/// back when it ends.
struct NeighbourLimits {
    old: Vec<(PathBuf, String)>,
}

impl NeighbourLimits {
    fn raise() -> NeighbourLimits {
        let mut old = Vec::new();
        for (n, value) in [(1, 8192), (2, 16384), (3, 32768)] {
            let path = PathBuf::from(format!("/proc/sys/net/ipv4/neigh/default/gc_thresh{n}"));
            let was = std::fs::read_to_string(&path).expect("neighbour limit");
            std::fs::write(&path, value.to_string()).expect("raising the neighbour limit");
            old.push((path, was.trim().to_string()));
        }
        NeighbourLimits { old }
    }
}

impl Drop for NeighbourLimits {
    fn drop(&mut self) {
        // Largest first back down: the kernel wants gc_thresh1 <= gc_thresh2 <= gc_thresh3.
        for (path, was) in self.old.iter().rev() {
            let _ = std::fs::write(path, was);
        }
    }
}

#[test]
fn sixty_four_hosts_of_four_ranks_start_allreduce_and_finish_over_ssh() {
    if let Some(why) = unavailable() {
        let _ = writeln!(std::io::stderr(), "SKIPPED rmpirun 64-host test: {why}");
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let _limits = NeighbourLimits::raise();
    let c = Cluster::new(60, Options::hosts(HOSTS));
    let hostfile: String = (1..=HOSTS).map(|i| format!("h{i} slots={PER_HOST}\n")).collect();
    let hostfile = c.hostfile(&hostfile);
    let mcpi = workspace_example("mcpi");
    let ranks = (HOSTS * PER_HOST).to_string();
    let args =
        ["-v", "-n", &ranks, "--hostfile", hostfile.to_str().unwrap(), mcpi.to_str().unwrap()];
    let out = run(c.rmpirun(&[&args[..], &["1000"]].concat()), Duration::from_secs(180));
    // rmpirun -v: when each host's shell came up, when its agent started, when the ranks ended.
    eprintln!("{ranks} ranks over {HOSTS} hosts: {:?}\n{}", out.elapsed, out.stderr);
    assert_eq!(out.code(), 0, "stderr: {}", out.stderr);
    let want = format!("from {} darts on {ranks} ranks", 1000 * HOSTS * PER_HOST);
    assert!(out.stdout.contains(&want), "no `{want}` in {}", out.stdout);
    c.assert_no_orphans(Duration::from_secs(5));
}
