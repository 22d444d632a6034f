//! Two-level collectives across real hosts: network namespaces with real `sshd`s, ranks started
//! by `rmpirun` over real `ssh`, placed with `--map-by slot` and `node`, unevenly, with a host of
//! one rank, and without shared memory. Every rank runs `hier_check check` (from
//! `crates/rmpi-collectives/examples`), which compares the two-level algorithms with the flat
//! ones bit for bit. `--ignored` adds the benchmark of docs/collectives.md: 8 hosts × 4 ranks.

mod support;

use std::io::Write;
use std::sync::MutexGuard;
use std::time::Duration;

use support::netns::{unavailable, Cluster, Options, SERIAL};
use support::run;

fn cluster(tag: u8, hosts: usize) -> Option<(MutexGuard<'static, ()>, Cluster)> {
    if let Some(why) = unavailable() {
        let _ = writeln!(std::io::stderr(), "SKIPPED rmpirun hier test (tag {tag}): {why}");
        return None;
    }
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    Some((guard, Cluster::new(tag, Options::hosts(hosts))))
}

const LIMIT: Duration = Duration::from_secs(120);

/// Runs `hier_check check` with `args` before the program and asserts every rank's host and ok
/// line, with `hosts` hosts and `widest` ranks on the fullest one.
fn check(c: &Cluster, args: &[&str], ranks: &[&str], hosts: usize, widest: usize) {
    let prog = support::package_example("rmpi-collectives", "hier_check");
    let dir = c.dir.path().join("barrier-files");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let prog_args = [prog.to_str().unwrap(), "check", dir.to_str().unwrap()];
    let out = run(c.rmpirun(&[args, &prog_args[..]].concat()), LIMIT);
    assert_eq!(out.code(), 0, "{args:?}: stdout {} stderr {}", out.stdout, out.stderr);
    let contiguous = ranks.windows(2).filter(|w| w[0] != w[1]).count() + 1 == hosts;
    for (r, host) in ranks.iter().enumerate() {
        let want = format!(
            "hier_check rank {r} on {host}: ok, {hosts} hosts, widest {widest}, contiguous \
             {contiguous}, "
        );
        assert!(out.stdout.contains(&want), "{args:?}: no `{want}` in {}", out.stdout);
    }
    eprintln!("{args:?}: {} ranks in {:?}", ranks.len(), out.elapsed);
    c.assert_no_orphans(Duration::from_secs(3));
}

#[test]
fn two_level_matches_flat_on_every_placement() {
    let Some((_g, c)) = cluster(201, 4) else { return };
    let hf = c.hostfile("h1 slots=4\nh2 slots=4\nh3 slots=4\nh4 slots=4\n");
    let hf = hf.to_str().unwrap();
    // Slot: 4, 4, 4, 2.
    let slot = ["h1", "h1", "h1", "h1", "h2", "h2", "h2", "h2", "h3", "h3", "h3", "h3", "h4", "h4"];
    check(&c, &["-n", "14", "--map-by", "slot", "--hostfile", hf], &slot, 4, 4);
    // The same without shared memory: hosts are still told apart by name.
    check(&c, &["-n", "14", "-x", "RMPI_SHM=0", "--hostfile", hf], &slot, 4, 4);
    // Node: round robin, 3, 3, 2, 2.
    let node = ["h1", "h2", "h3", "h4", "h1", "h2", "h3", "h4", "h1", "h2"];
    check(&c, &["-n", "10", "--map-by", "node", "--hostfile", hf], &node, 4, 3);
    // Uneven, with a host of one rank.
    let hf = c.hostfile("h1 slots=5\nh2 slots=1\nh3 slots=3\n");
    let uneven = ["h1", "h1", "h1", "h1", "h1", "h2", "h3", "h3", "h3"];
    check(&c, &["-n", "9", "--hostfile", hf.to_str().unwrap()], &uneven, 3, 5);
}

/// `cargo test --release -p rmpirun --test hier -- --ignored --nocapture`: flat against
/// two-level at 8 hosts × 4 ranks, medians side by side (docs/collectives.md, "Measured").
#[test]
#[ignore = "a benchmark: run with --ignored --nocapture"]
fn bench_8_hosts_by_4_ranks() {
    let Some((_g, c)) = cluster(202, 8) else { return };
    let prog = support::package_example("rmpi-collectives", "hier_check");
    let hf = c.hostfile(&(1..=8).map(|i| format!("h{i} slots=4\n")).collect::<String>());
    let iters = std::env::var("HIER_BENCH_ITERS").unwrap_or_else(|_| "200".into());
    let rounds = std::env::var("HIER_BENCH_ROUNDS").unwrap_or_else(|_| "7".into());
    let args = ["-n", "32", "--hostfile", hf.to_str().unwrap(), prog.to_str().unwrap()];
    let out = run(c.rmpirun(&[&args[..], &["bench", &iters, &rounds]].concat()), LIMIT * 5);
    assert_eq!(out.code(), 0, "stdout {} stderr {}", out.stdout, out.stderr);
    println!("{}", out.stdout);
    assert!(out.stdout.contains("allreduce 1 MiB"), "{}", out.stdout);
    c.assert_no_orphans(Duration::from_secs(3));
}
