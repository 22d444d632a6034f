//! The launch tree (`--launch-tree F`) over real sshd in network namespaces: rmpirun sshes to F
//! hosts, whose relays ssh to the rest. A job through a tree of fan-out 2 over 8 hosts (three
//! levels) gives every rank's output and the right status; a relay killed mid-job, an unreachable
//! host deep in the tree, SIGINT and SIGKILL of rmpirun end everything, name the host and leave
//! nothing behind. Needs root, iproute2 and openssh, like `cluster.rs`.
//!
//! With 8 hosts and fan-out 2 the tree is: rmpirun → h1, h2; h1 → h3, h4; h3 → h5;
//! h2 → h6, h7; h6 → h8 (see `rmpirun::tree::shape::arrange`).

mod support;

use std::io::Write;
use std::path::PathBuf;
use std::sync::MutexGuard;
use std::time::{Duration, Instant};

use support::netns::{unavailable, Cluster, Options, SERIAL};
use support::{mesh_check, run, start, workspace_example};

const LIMIT: Duration = Duration::from_secs(90);

fn cluster(tag: u8, hosts: usize) -> Option<(MutexGuard<'static, ()>, Cluster)> {
    if let Some(why) = unavailable() {
        let _ = writeln!(std::io::stderr(), "SKIPPED rmpirun tree test (tag {tag}): {why}");
        return None;
    }
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    Some((guard, Cluster::new(tag, Options::hosts(hosts))))
}

fn hostfile(c: &Cluster, hosts: usize, slots: usize) -> String {
    let text: String = (1..=hosts).map(|i| format!("h{i} slots={slots}\n")).collect();
    c.hostfile(&text).to_str().unwrap().to_string()
}

/// Processes in host `hN`'s namespace whose command line contains `needle`.
fn on_host(c: &Cluster, host: usize, needle: &str) -> Vec<(i32, String)> {
    let ns = &c.hosts[host - 1].ns;
    c.job_processes()
        .into_iter()
        .filter(|(n, _, cmd)| n == ns && cmd.contains(needle))
        .map(|(_, pid, cmd)| (pid, cmd))
        .collect()
}

/// Starts 16 hanging ranks (2 per host) through a tree of fan-out 2 and waits until all are
/// ready; returns the job and the ranks' pids.
fn hanging_tree_job(c: &Cluster) -> (support::Running, Vec<i32>) {
    let hf = hostfile(c, 8, 2);
    let mesh = mesh_check();
    let job = start(c.rmpirun(&[
        "--launch-tree",
        "2",
        "-n",
        "16",
        "--hostfile",
        &hf,
        mesh.to_str().unwrap(),
        "--hang",
    ]));
    job.wait_for_lines(LIMIT, |l| l.iter().filter(|l| l.starts_with("ready ")).count() == 16);
    let pids = job
        .lines
        .lock()
        .unwrap()
        .iter()
        .filter_map(|l| l.strip_prefix("ready "))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
        .collect::<Vec<i32>>();
    assert_eq!(pids.len(), 16);
    (job, pids)
}

/// Waits for the job's end: `code`, each of `needles` on stderr, within `within` of `t0`, and
/// no rank pid and no job process left anywhere.
fn expect_end(
    c: &Cluster,
    job: support::Running,
    pids: &[i32],
    t0: Instant,
    (code, needles): (i32, &[&str]),
    within: Duration,
) -> String {
    let out = job.finish(LIMIT);
    eprintln!("rmpirun said:\n{}", out.stderr);
    assert_eq!(out.code(), code, "stderr: {}", out.stderr);
    for needle in needles {
        assert!(out.stderr.contains(needle), "no `{needle}` in: {}", out.stderr);
    }
    assert!(t0.elapsed() < within, "took {:?}", t0.elapsed());
    let left = support::wait_until_empty(Duration::from_secs(5), || {
        pids.iter().copied().filter(|&p| support::is_running(p)).collect()
    });
    assert!(left.is_empty(), "ranks left running: {left:?}");
    c.assert_no_orphans(Duration::from_secs(5));
    out.stderr
}

#[test]
fn eight_hosts_through_a_tree_of_fanout_two() {
    let Some((_g, c)) = cluster(171, 8) else { return };
    let hf = hostfile(&c, 8, 2);
    let mesh = mesh_check();
    let args = ["-v", "--launch-tree", "2", "-n", "16", "--hostfile", &hf];
    let out = run(c.rmpirun(&[&args[..], &[mesh.to_str().unwrap()]].concat()), LIMIT);
    assert_eq!(out.code(), 0, "stderr: {}", out.stderr);
    assert!(out.stderr.contains("launch tree: fan-out 2, 3 level(s)"), "{}", out.stderr);
    for r in 0..16 {
        let want = format!("rank {r}/16 on h{}: sum 120 ok", r / 2 + 1);
        assert!(out.stdout.lines().any(|l| l == want), "missing `{want}` in {}", out.stdout);
    }
    assert_eq!(out.stdout.lines().count(), 16, "{}", out.stdout);
    c.assert_no_orphans(Duration::from_secs(5));

    // A rank failing on the deepest host: its status and name come up three levels, and
    // every other rank is ended.
    let script = "[ \"$RMPI_RANK\" = 15 ] && { echo deep failure >&2; exit 3; }; exec sleep 300";
    let args = ["--launch-tree", "2", "-n", "16", "--hostfile", &hf, "sh", "-c", script];
    let out = run(c.rmpirun(&args), LIMIT);
    assert_eq!(out.code(), 3, "stderr: {}", out.stderr);
    assert!(out.stderr.contains("deep failure"), "{}", out.stderr);
    assert!(out.stderr.contains("rank 15 on h8"), "{}", out.stderr);
    assert!(out.stderr.contains("exited with status 3"), "{}", out.stderr);
    c.assert_no_orphans(Duration::from_secs(5));
}

#[test]
fn killed_relay_ends_everything_and_is_named() {
    let Some((_g, c)) = cluster(172, 8) else { return };
    let (job, pids) = hanging_tree_job(&c);
    // The tree is real: two ssh clients at rmpirun, relays that ssh on (h6 to h8).
    let head_ssh = c
        .job_processes()
        .into_iter()
        .filter(|(ns, _, cmd)| *ns == c.head_ns && cmd.starts_with("ssh "))
        .count();
    assert_eq!(head_ssh, 2, "{:#?}", c.job_processes());
    assert!(on_host(&c, 6, "ssh ").iter().any(|(_, cmd)| cmd.contains(" h8 ")));
    let relay: Vec<_> = on_host(&c, 6, "--relay-agent")
        .into_iter()
        .filter(|(_, cmd)| !cmd.starts_with("ssh "))
        .collect();
    assert_eq!(relay.len(), 1, "{relay:?}");
    let t0 = Instant::now();
    support::signal(relay[0].0, libc::SIGKILL);
    expect_end(&c, job, &pids, t0, (1, &["lost the connection to h6"]), Duration::from_secs(15));

    // SIGINT to rmpirun ends the whole tree in order.
    let (job, pids) = hanging_tree_job(&c);
    let t0 = Instant::now();
    support::signal(job.child.id() as i32, libc::SIGINT);
    expect_end(&c, job, &pids, t0, (130, &["interrupted (SIGINT)"]), Duration::from_secs(10));

    // SIGKILL to rmpirun: its ssh clients see their stdin close, and so on down the tree.
    let (job, pids) = hanging_tree_job(&c);
    let t0 = Instant::now();
    support::signal(job.child.id() as i32, libc::SIGKILL);
    expect_end(&c, job, &pids, t0, (137, &[]), Duration::from_secs(15));
}

#[test]
fn unreachable_host_in_a_subtree_is_named() {
    let Some((_g, mut c)) = cluster(173, 8) else { return };
    let hf = hostfile(&c, 8, 2);
    let args = ["--launch-tree", "2", "-n", "16", "--hostfile", &hf, "sleep", "300"];
    // A leaf two relays down.
    c.stop_sshd(8);
    let t0 = Instant::now();
    let out = run(c.rmpirun(&args), LIMIT);
    eprintln!("rmpirun said:\n{}", out.stderr);
    assert_eq!(out.code(), 1, "stderr: {}", out.stderr);
    assert!(out.stderr.contains("cannot start on h8"), "{}", out.stderr);
    assert!(t0.elapsed() < Duration::from_secs(20), "took {:?}", t0.elapsed());
    c.assert_no_orphans(Duration::from_secs(5));
    // A relay (h3 starts h5): it is the one named.
    c.stop_sshd(3);
    let out = run(c.rmpirun(&args), LIMIT);
    eprintln!("rmpirun said:\n{}", out.stderr);
    assert_eq!(out.code(), 1, "stderr: {}", out.stderr);
    let verdict = out.stderr.lines().find(|l| l.ends_with("ended the job")).unwrap_or("");
    assert!(
        verdict.contains("cannot start on h3") || verdict.contains("cannot start on h8"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("cannot start on h3"), "{}", out.stderr);
    c.assert_no_orphans(Duration::from_secs(5));
}

/// The kernel's neighbour table is shared by all namespaces: raised for 64 hosts, put back after.
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
        for (path, was) in self.old.iter().rev() {
            let _ = std::fs::write(path, was);
        }
    }
}

/// Start-to-finish of `hello` (4 ranks per host) flat and through trees, alternating, medians
/// printed (docs/scale.md). `cargo test --release -p rmpirun --test tree -- --ignored
/// --nocapture measure`; `TREE_MEASURE_HOSTS` (default 16), `TREE_MEASURE_RUNS` (default 5) and
/// `TREE_MEASURE_SHAPES` (default `flat,4,8,32`).
#[test]
#[ignore]
fn measure_flat_against_tree() {
    let hosts: usize =
        std::env::var("TREE_MEASURE_HOSTS").ok().and_then(|v| v.parse().ok()).unwrap_or(16);
    let runs: usize =
        std::env::var("TREE_MEASURE_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let Some((_g, c)) = cluster(174, hosts) else { return };
    let _limits = NeighbourLimits::raise();
    let hf = hostfile(&c, hosts, 4);
    let hello = workspace_example("hello");
    let n = (4 * hosts).to_string();
    let shapes: Vec<String> = std::env::var("TREE_MEASURE_SHAPES")
        .unwrap_or_else(|_| "flat,4,8,32".into())
        .split(',')
        .map(str::to_string)
        .collect();
    // One warm-up per shape: the agent binary is cached on every host after it.
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); shapes.len()];
    for round in 0..=runs {
        for (i, shape) in shapes.iter().enumerate() {
            let args =
                ["--launch-tree", shape, "-n", &n, "--hostfile", &hf, hello.to_str().unwrap()];
            let out = run(c.rmpirun(&args), Duration::from_secs(300));
            // A failed run is reported and left out of the medians (a measurement, not a test).
            if out.code() != 0 {
                eprintln!("round {round}, --launch-tree {shape} failed: {}", out.stderr);
            } else if round > 0 {
                times[i].push(out.elapsed.as_secs_f64());
            }
        }
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    for (shape, t) in shapes.iter().zip(&mut times) {
        t.sort_by(|a, b| a.total_cmp(b));
        let Some(&median) = t.get(t.len() / 2) else { continue };
        eprintln!("{hosts} hosts, {n} ranks, --launch-tree {shape}: median {median:.2} s of {t:?}");
    }
    eprintln!("load average at the end: {load}");
    c.assert_no_orphans(Duration::from_secs(5));
}
