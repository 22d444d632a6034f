//! rmpi ranks started by other MPI launchers: MPICH's Hydra `mpiexec` (PMI-1 and PMI-2, on
//! `PMI_FD` and with `-pmi-port`, on this machine and over the ssh test hosts) and Open MPI's
//! `mpirun` (no PMI: rank 0 serves the rendezvous named by `-x RMPI_RENDEZVOUS -x RMPI_TOKEN`).

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::netns::{self, Cluster, Options};
use support::{run, workspace_example};

const LIMIT: Duration = Duration::from_secs(120);
const HYDRA: &str = "/usr/bin/mpiexec.hydra";
const OPEN_MPI: &str = "/usr/bin/mpirun.openmpi";

/// Whether `tool` is installed; a missing tool fails the test under `RMPI_REQUIRE_NETNS=1` (CI,
/// where scripts/test.sh installs it).
fn have(tool: &str) -> bool {
    if Path::new(tool).exists() {
        return true;
    }
    let required = std::env::var("RMPI_REQUIRE_NETNS").is_ok_and(|v| v == "1");
    assert!(!required, "RMPI_REQUIRE_NETNS=1 but {tool} is missing (install mpich, openmpi-bin)");
    eprintln!("skipping: {tool} missing (install mpich / openmpi-bin)");
    false
}

/// The `(rank, size, host)` triples of `hello` output, checked to be one world of `size`.
fn world(stdout: &str, size: usize) -> BTreeSet<String> {
    let mut ranks = BTreeSet::new();
    let mut hosts = BTreeSet::new();
    for l in stdout.lines() {
        let Some(rest) = l.strip_prefix("hello from rank ") else { continue };
        let (r, rest) = rest.split_once(" of ").expect("hello line");
        let (n, host) = rest.split_once(" on ").expect("hello line");
        assert_eq!(n.parse::<usize>().unwrap(), size, "{stdout}");
        assert!(ranks.insert(r.parse::<usize>().unwrap()), "rank {r} twice: {stdout}");
        hosts.insert(host.to_string());
    }
    assert_eq!(ranks, (0..size).collect(), "{stdout}");
    hosts
}

fn clean(mut cmd: Command) -> Command {
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().to_string();
        if k.starts_with("SLURM_") || k.starts_with("PMI_") || k.starts_with("RMPI_") {
            cmd.env_remove(&k);
        }
    }
    cmd.stdin(Stdio::null());
    cmd
}

#[test]
fn hydra_pmi_fd_and_pmi_port_with_both_versions() {
    if !have(HYDRA) {
        return;
    }
    let hello = workspace_example("hello");
    let cpi = workspace_example("cpi");
    for port_mode in [false, true] {
        for version in ["1", "2"] {
            let what = format!("PMI-{version}, pmi-port {port_mode}");
            let mut cmd = clean(Command::new(HYDRA));
            if port_mode {
                cmd.arg("-pmi-port");
            }
            cmd.args(["-genv", "RMPI_PMI", version, "-n", "4"]).arg(&hello);
            let out = run(cmd, LIMIT);
            assert_eq!(out.code(), 0, "{what}: {}\n{}", out.stdout, out.stderr);
            world(&out.stdout, 4);

            let mut cmd = clean(Command::new(HYDRA));
            if port_mode {
                cmd.arg("-pmi-port");
            }
            cmd.args(["-genv", "RMPI_PMI", version, "-n", "4"]).arg(&cpi).arg("100000");
            let out = run(cmd, LIMIT);
            assert_eq!(out.code(), 0, "{what}: {}\n{}", out.stdout, out.stderr);
            assert!(
                out.stdout.contains("pi is approximately 3.14159265"),
                "{what}: {}",
                out.stdout
            );
        }
    }
}

#[test]
fn hydra_over_ssh_hosts() {
    if !have(HYDRA) {
        return;
    }
    if let Some(why) = netns::unavailable() {
        eprintln!("skipping: {why}");
        return;
    }
    let _g = netns::SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let c = Cluster::new(214, Options::hosts(4));
    let ssh = c.dir.path().join("ssh-for-hydra");
    std::fs::write(&ssh, format!("#!/bin/sh\nexec ssh -F {} \"$@\"\n", c.ssh_config.display()))
        .unwrap();
    std::fs::set_permissions(&ssh, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let hydra = |extra: &[&str], prog: &[&str]| {
        let mut cmd = clean(Command::new("ip"));
        cmd.args(["netns", "exec", &c.head_ns, HYDRA, "-launcher", "ssh", "-launcher-exec"])
            .arg(&ssh)
            .args(["-iface", "eth0", "-hosts", "h1,h2,h3,h4"])
            .args(extra)
            // Each host's own name resolves to 127.0.0.1 there: name the network instead.
            .args(["-genv", "RMPI_IFACE", &format!("10.213.{}.0/24", c.tag), "-n", "8"])
            .args(prog);
        run(cmd, LIMIT)
    };
    // The hosts share this machine's host name: tell them apart by address.
    let out = hydra(&[], &["sh", "-c", "ip -4 -o addr show eth0 | awk '{print $4}'"]);
    let addrs: BTreeSet<&str> = out.stdout.lines().collect();
    assert_eq!(addrs.len(), 4, "Hydra did not spread over 4 hosts: {}", out.stdout);
    let hello = workspace_example("hello");
    let mesh = support::mesh_check();
    for extra in [&[][..], &["-pmi-port"][..], &["-genv", "RMPI_PMI", "2"][..]] {
        let mut logged = extra.to_vec();
        logged.extend(["-genv", "RMPI_LOG", "info"]);
        let out = hydra(&logged, &[hello.to_str().unwrap()]);
        assert_eq!(out.code(), 0, "{extra:?}: {}\n{}", out.stdout, out.stderr);
        world(&out.stdout, 8);
        // Hydra's mapping placed the ranks: other hosts' endpoints are read on demand.
        let fell_back = out.stderr.contains("reading every rank's endpoint at start");
        assert!(!fell_back, "{extra:?}: {}", out.stderr);
        let out = hydra(extra, &[mesh.to_str().unwrap()]);
        assert_eq!(out.code(), 0, "{extra:?}: {}\n{}", out.stdout, out.stderr);
        assert_eq!(out.stdout.matches("sum 28 ok").count(), 8, "{extra:?}: {}", out.stdout);
    }
    c.assert_no_orphans(Duration::from_secs(5));
}

#[test]
fn open_mpi_mpirun_with_a_rendezvous_served_by_rank_0() {
    if !have(OPEN_MPI) {
        return;
    }
    let hello = workspace_example("hello");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let token = rmpi_transport::token::JobToken::generate().to_hex();
    let mut cmd = clean(Command::new(OPEN_MPI));
    cmd.args(["--allow-run-as-root", "--oversubscribe", "-x", "RMPI_TOKEN", "-x"])
        .args(["RMPI_RENDEZVOUS", "-n", "4"])
        .arg(&hello)
        .env("RMPI_TOKEN", &token)
        .env("RMPI_RENDEZVOUS", format!("127.0.0.1:{port}"))
        .env("OMPI_MCA_plm_rsh_agent", "false");
    let out = run(cmd, LIMIT);
    assert_eq!(out.code(), 0, "{}\n{}", out.stdout, out.stderr);
    world(&out.stdout, 4);

    // Without the two variables: a clear error, not four worlds of one.
    let mut cmd = clean(Command::new(OPEN_MPI));
    cmd.args(["--allow-run-as-root", "--oversubscribe", "-n", "2"]).arg(&hello);
    let out = run(cmd, LIMIT);
    assert_ne!(out.code(), 0);
    assert!(!out.stdout.contains("hello from"), "{}", out.stdout);
    assert!(out.stderr.contains("-x RMPI_RENDEZVOUS"), "{}", out.stderr);
}
