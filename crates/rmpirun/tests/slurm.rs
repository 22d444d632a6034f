//! rmpi ranks started by a real Slurm cluster (slurmctld + one slurmd per network namespace):
//! `srun --mpi=pmi2` (PMI-2 over PMI_FD), srun without PMI, and rmpirun inside an allocation.

mod support;

use std::collections::BTreeSet;
use std::sync::MutexGuard;
use std::time::Duration;

use support::slurm::{self, SlurmCluster};
use support::{mesh_check, run, workspace_example};

const LIMIT: Duration = Duration::from_secs(120);

fn cluster(tag: u8, nodes: usize, cpus: usize) -> Option<(MutexGuard<'static, ()>, SlurmCluster)> {
    if let Some(why) = slurm::unavailable() {
        eprintln!("skipping: {why}");
        return None;
    }
    let guard = slurm::SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    Some((guard, SlurmCluster::up(tag, nodes, cpus)))
}

/// `(rank, size, host)` of every `hello from rank R of N on HOST` line.
fn hellos(stdout: &str) -> Vec<(usize, usize, String)> {
    stdout
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("hello from rank ")?;
            let (r, rest) = rest.split_once(" of ")?;
            let (n, host) = rest.split_once(" on ")?;
            Some((r.parse().ok()?, n.parse().ok()?, host.to_string()))
        })
        .collect()
}

fn check_world(stdout: &str, size: usize, hosts: usize) -> Vec<(usize, usize, String)> {
    let mut h = hellos(stdout);
    h.sort();
    assert_eq!(h.len(), size, "{stdout}");
    for (i, (r, n, _)) in h.iter().enumerate() {
        assert_eq!((*r, *n), (i, size), "{stdout}");
    }
    let seen: BTreeSet<&str> = h.iter().map(|x| x.2.as_str()).collect();
    assert_eq!(seen.len(), hosts, "hosts seen: {seen:?}");
    h
}

#[test]
fn srun_pmi2_16_ranks_over_4_nodes() {
    let Some((_g, c)) = cluster(1, 4, 4) else { return };
    let hello = workspace_example("hello");
    let out = run(c.srun(&["--mpi=pmi2", "-N", "4", "-n", "16", hello.to_str().unwrap()]), LIMIT);
    assert_eq!(out.code(), 0, "stdout:\n{}\nstderr:\n{}\n{}", out.stdout, out.stderr, c.logs());
    let h = check_world(&out.stdout, 16, 4);
    // Even layout (4 CPUs per node): ranks 4k..4k+3 on node h(k+1).
    for (r, _, host) in &h {
        assert_eq!(host, &format!("h{}", r / 4 + 1), "{}", out.stdout);
    }

    let cpi = workspace_example("cpi");
    let out =
        run(c.srun(&["--mpi=pmi2", "-N", "4", "-n", "16", cpi.to_str().unwrap(), "100000"]), LIMIT);
    assert_eq!(out.code(), 0, "stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("pi is approximately 3.14159265"), "{}", out.stdout);
    assert!(out.stdout.contains("100000 intervals on 16 ranks"), "{}", out.stdout);

    // Collectives: scatter and gather of uneven pieces, checked against a serial computation.
    let rowstats = workspace_example("rowstats");
    let out = run(
        c.srun(&["--mpi=pmi2", "-N", "4", "-n", "16", rowstats.to_str().unwrap(), "301", "512"]),
        LIMIT,
    );
    assert_eq!(out.code(), 0, "stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("matches serial: yes"), "{}", out.stdout);
    assert!(out.stdout.contains("301 rows x 512 columns over 16 ranks"), "{}", out.stdout);

    let mesh = mesh_check();
    let out = run(c.srun(&["--mpi=pmi2", "-N", "4", "-n", "16", mesh.to_str().unwrap()]), LIMIT);
    assert_eq!(out.code(), 0, "stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
    assert_eq!(out.stdout.matches("/16 on h").count(), 16, "{}", out.stdout);
    assert_eq!(out.stdout.matches("sum 120 ok").count(), 16, "{}", out.stdout);
    c.assert_nothing_left(Duration::from_secs(10));
}

#[test]
fn srun_pmi2_uneven_layout() {
    // 8 CPUs per node: Slurm's best fit packs -N 4 -n 16 unevenly (8/6/1/1 here).
    let Some((_g, c)) = cluster(2, 4, 8) else { return };
    let hello = workspace_example("hello");
    let out = run(c.srun(&["--mpi=pmi2", "-N", "4", "-n", "16", hello.to_str().unwrap()]), LIMIT);
    assert_eq!(out.code(), 0, "stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
    let h = check_world(&out.stdout, 16, 4);
    let mut per_host = std::collections::BTreeMap::<String, usize>::new();
    for (_, _, host) in &h {
        *per_host.entry(host.clone()).or_default() += 1;
    }
    let counts: BTreeSet<usize> = per_host.values().copied().collect();
    assert!(counts.len() > 1, "layout was even after all: {per_host:?}");

    let mesh = mesh_check();
    let out = run(c.srun(&["--mpi=pmi2", "-N", "4", "-n", "16", mesh.to_str().unwrap()]), LIMIT);
    assert_eq!(out.code(), 0, "stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
    assert_eq!(out.stdout.matches("sum 120 ok").count(), 16, "{}", out.stdout);

    // Slurm's pmi2 plugin speaks PMI-1 on the same descriptor.
    let out = run(
        c.srun(&[
            "--mpi=pmi2",
            "--export=ALL,RMPI_PMI=1",
            "-N",
            "4",
            "-n",
            "16",
            hello.to_str().unwrap(),
        ]),
        LIMIT,
    );
    assert_eq!(out.code(), 0, "stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
    check_world(&out.stdout, 16, 4);
    c.assert_nothing_left(Duration::from_secs(10));
}

#[test]
fn srun_rank_that_never_joins_fails_the_others_at_the_deadline() {
    let Some((_g, c)) = cluster(7, 2, 4) else { return };
    let hello = workspace_example("hello");
    // Task 3 is not an rmpi program: it never reaches the PMI fence.
    let conf = c.dir.path().join("multi.conf");
    std::fs::write(&conf, format!("0-2 {}\n3 /bin/true\n", hello.display())).unwrap();
    let out = run(
        c.srun(&[
            "--mpi=pmi2",
            "--export=ALL,RMPI_BOOT_TIMEOUT=3",
            "-N",
            "2",
            "-n",
            "4",
            "--multi-prog",
            conf.to_str().unwrap(),
        ]),
        LIMIT,
    );
    assert_ne!(out.code(), 0, "srun succeeded:\n{}", out.stdout);
    assert!(!out.stdout.contains("hello from"), "{}", out.stdout);
    let fence = "not every one of the 4 ranks reached the key-value fence";
    assert_eq!(out.stderr.matches(fence).count(), 3, "{}", out.stderr);
    c.assert_nothing_left(Duration::from_secs(10));
}

#[test]
fn srun_sigkilled_rank_ends_every_rank() {
    let Some((_g, c)) = cluster(3, 4, 4) else { return };
    let mesh = mesh_check();
    let job = support::start(c.srun(&[
        "--mpi=pmi2",
        "-N",
        "4",
        "-n",
        "16",
        mesh.to_str().unwrap(),
        "--kill",
        "5",
    ]));
    // Every survivor reports the loss of rank 5 (on h2: 4 ranks per node) on its own.
    let reports = |l: &[String]| l.iter().filter(|l| l.contains(" lost: ")).count();
    job.wait_for_lines(LIMIT, |l| l.iter().any(|l| l.starts_with("killing 5 ")));
    let killed = std::time::Instant::now();
    job.wait_for_lines(LIMIT, |l| reports(l) == 15);
    eprintln!("15 survivors reported the loss {:?} after the victim's last line", killed.elapsed());
    // SAFETY: kill(2) on the srun child we started.
    unsafe { libc::kill(job.child.id() as i32, libc::SIGTERM) };
    let out = job.finish(LIMIT);
    assert_ne!(out.code(), 0, "srun succeeded: {}", out.stderr);
    assert!(out.stdout.contains("killing 5 "), "{}", out.stdout);
    for r in (0..16).filter(|r| *r != 5) {
        let line = out
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("rank {r} lost: ")))
            .unwrap_or_else(|| panic!("no report from rank {r}: {}", out.stdout));
        assert!(line.contains("rank 5 on h2 is unreachable"), "rank {r}: {line}");
    }
    c.assert_nothing_left(Duration::from_secs(10));
}

#[test]
fn srun_without_pmi_is_a_clear_error() {
    let Some((_g, c)) = cluster(4, 2, 4) else { return };
    let hello = workspace_example("hello");
    let out = run(c.srun(&["-N", "2", "-n", "4", hello.to_str().unwrap()]), LIMIT);
    assert_ne!(out.code(), 0, "srun succeeded:\n{}", out.stdout);
    assert!(!out.stdout.contains("hello from"), "a rank ran alone:\n{}", out.stdout);
    assert_eq!(out.stderr.matches("srun --mpi=pmi2").count(), 4, "{}", out.stderr);
    assert!(out.stderr.contains("started 4 tasks with --mpi=none"), "{}", out.stderr);
    c.assert_nothing_left(Duration::from_secs(10));
}

#[test]
fn rmpirun_inside_salloc_uses_srun() {
    let Some((_g, c)) = cluster(5, 4, 4) else { return };
    let rmpirun = support::rmpirun();
    let hello = workspace_example("hello");
    let (r, h) = (rmpirun.to_str().unwrap(), hello.to_str().unwrap());
    // No hostfile and no ssh configured: the ranks can only get to h1..h4 through srun.
    let out = run(c.head(&["salloc", "-N", "4", "-n", "16", r, "-v", "-n", "16", h]), LIMIT);
    assert_eq!(out.code(), 0, "stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("inside Slurm allocation"), "{}", out.stderr);
    let hosts = check_world(&out.stdout, 16, 4);
    for (r, _, host) in &hosts {
        assert_eq!(host, &format!("h{}", r / 4 + 1), "{}", out.stdout);
    }
    // -n defaults to the allocation's tasks; cpi gives the same answer as under srun.
    let cpi = workspace_example("cpi");
    // An option srun does not take is named, and the job still runs.
    let args = ["salloc", "-N", "4", "-n", "8", r, "--bind-to", "core", cpi.to_str().unwrap()];
    let out = run(c.head(&[&args[..], &["100000"]].concat()), LIMIT);
    assert_eq!(out.code(), 0, "stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("which ignores --bind-to"), "{}", out.stderr);
    assert!(out.stdout.contains("pi is approximately 3.14159265"), "{}", out.stdout);
    assert!(out.stdout.contains("100000 intervals on 8 ranks"), "{}", out.stdout);
    // A failing rank ends the step and rmpirun's status says so.
    let mesh = mesh_check();
    let out = run(
        c.head(&["salloc", "-N", "4", "-n", "16", r, mesh.to_str().unwrap(), "--crash", "5"]),
        LIMIT,
    );
    assert_ne!(out.code(), 0, "stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
    c.assert_nothing_left(Duration::from_secs(10));
}

#[test]
fn open_mpi_mpirun_inside_salloc() {
    let mpirun = "/usr/bin/mpirun.openmpi";
    if !std::path::Path::new(mpirun).exists() {
        let required = std::env::var("RMPI_REQUIRE_NETNS").is_ok_and(|v| v == "1");
        assert!(!required, "RMPI_REQUIRE_NETNS=1 but {mpirun} is missing (install openmpi-bin)");
        eprintln!("skipping: {mpirun} missing");
        return;
    }
    let Some((_g, c)) = cluster(8, 4, 4) else { return };
    let hello = workspace_example("hello");
    // Open MPI starts its daemons on the allocation's nodes through srun; rank 0 (on h1) serves
    // the rendezvous named in the environment, which mpirun forwards with -x.
    let mut cmd = c.head(&["salloc", "-N", "4", "-n", "16", mpirun, "--allow-run-as-root"]);
    cmd.args(["-x", "RMPI_TOKEN", "-x", "RMPI_RENDEZVOUS", "-n", "16"])
        .arg(&hello)
        .env("RMPI_TOKEN", rmpi_transport::token::JobToken::generate().to_hex())
        .env("RMPI_RENDEZVOUS", "h1:47556");
    let out = run(cmd, LIMIT);
    assert_eq!(out.code(), 0, "stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
    check_world(&out.stdout, 16, 4);
    c.assert_nothing_left(Duration::from_secs(10));
}

/// Start-up-to-exit times of rmpi's `hello` under srun (PMI-2), under rmpirun inside an
/// allocation (its srun path) and under Open MPI's mpirun inside the same allocation (the
/// rendezvous route), 16 and 64 ranks on 4 nodes. Run with `--ignored --nocapture`;
/// docs/performance.md records a run.
#[test]
#[ignore]
fn measure_startup_under_slurm() {
    let Some((_g, c)) = cluster(6, 4, 16) else { return };
    let hello = workspace_example("hello");
    let rmpirun = support::rmpirun();
    let (h, r) = (hello.to_str().unwrap(), rmpirun.to_str().unwrap());
    let median = |what: &str, argv: &[&str], ranks: usize| {
        let mut times = Vec::new();
        for _ in 0..7 {
            let out = run(c.head(argv), LIMIT);
            assert_eq!(out.code(), 0, "{what}: {}\n{}", out.stdout, out.stderr);
            let h = hellos(&out.stdout);
            assert_eq!(h.len(), ranks, "{what}: {}", out.stdout);
            let hosts: BTreeSet<&str> = h.iter().map(|x| x.2.as_str()).collect();
            assert_eq!(hosts.len(), 4, "{what}: {}", out.stdout);
            times.push(out.elapsed.as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        println!("| {what} | {ranks} | {:.2} s | {:.2}-{:.2} s |", times[3], times[0], times[6]);
    };
    println!("| launcher | ranks | median | range |\n| --- | --- | --- | --- |");
    for n in [16usize, 64] {
        let ns = n.to_string();
        median("srun --mpi=pmi2", &["srun", "--mpi=pmi2", "-N", "4", "-n", &ns, h], n);
        median("salloc + rmpirun (one srun step)", &["salloc", "-N", "4", "-n", &ns, r, h], n);
        if std::path::Path::new("/usr/bin/mpirun.openmpi").exists() {
            let token = rmpi_transport::token::JobToken::generate().to_hex();
            let script = format!(
                "RMPI_TOKEN={token} RMPI_RENDEZVOUS=h1:47555 mpirun.openmpi --allow-run-as-root \
                 -x RMPI_TOKEN -x RMPI_RENDEZVOUS -n {n} {h}"
            );
            let argv = ["salloc", "-N", "4", "-n", &ns, "sh", "-c", &script];
            median("salloc + Open MPI mpirun (rendezvous)", &argv, n);
        }
    }
}

/// The PMI bootstrap before and after reading endpoints on demand: start-up-to-exit of `hello`
/// under `srun --mpi=pmi2` at 64 and 256 ranks on 4 nodes, `RMPI_BOOTSTRAP=table` (every rank
/// reads every endpoint at start, as before) and the default (its node's ranks at start, the
/// others at first dial) alternating in one run. Run with `--ignored --nocapture`; docs/slurm.md
/// records a run. `PMI_MEASURE_RUNS` rounds (default 7).
#[test]
#[ignore]
fn measure_pmi_bootstrap() {
    let Some((_g, c)) = cluster(7, 4, 64) else { return };
    let hello = workspace_example("hello");
    let h = hello.to_str().unwrap();
    let runs: usize =
        std::env::var("PMI_MEASURE_RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(7);
    let load = || std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim().to_string();
    println!("load before: {}", load());
    println!("| ranks | table (before) | on demand (after) | ratio after / before |");
    println!("| --- | --- | --- | --- |");
    for n in [64usize, 256] {
        let ns = n.to_string();
        let mut times: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
        for round in 0..=runs {
            for (i, mode) in ["table", "directory"].iter().enumerate() {
                let var = format!("RMPI_BOOTSTRAP={mode}");
                let argv =
                    ["env", &var, "RMPI_LOG=info", "srun", "--mpi=pmi2", "-N", "4", "-n", &ns, h];
                let out = run(c.head(&argv), LIMIT);
                assert_eq!(out.code(), 0, "{mode} {n}: {}\n{}", out.stdout, out.stderr);
                // The placement was accepted: no rank fell back to reading the whole table.
                let fell_back = out.stderr.contains("reading every rank's endpoint at start");
                assert!(!fell_back, "{mode} {n}: {}", out.stderr);
                assert_eq!(hellos(&out.stdout).len(), n, "{mode} {n}: {}", out.stdout);
                // Round 0 warms the caches.
                if round > 0 {
                    times[i].push(out.elapsed.as_secs_f64());
                }
            }
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (before, after) = (median(&mut times[0]), median(&mut times[1]));
        println!(
            "| {n} | {before:.2} s ({:.2}-{:.2}) | {after:.2} s ({:.2}-{:.2}) | {:.2} |",
            times[0][0],
            times[0][runs - 1],
            times[1][0],
            times[1][runs - 1],
            after / before
        );
        println!("load: {}", load());
    }
}
