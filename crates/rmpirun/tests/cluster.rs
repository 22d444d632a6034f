//! Multi-host tests: real `sshd`s in network namespaces, the real `ssh` client, real rank
//! programs. They need root, iproute2 and openssh; without them each test prints SKIPPED.

mod support;

use std::io::Write;
use std::sync::MutexGuard;
use std::time::Duration;

use support::netns::{unavailable, Cluster, Options, SERIAL};
use support::{mesh_check, run, start};

/// The cluster for a test, or `None` (after printing why) when it cannot be built here.
fn cluster(tag: u8, opts: Options) -> Option<(MutexGuard<'static, ()>, Cluster)> {
    if let Some(why) = unavailable() {
        // Written to the real stderr (not the captured one) so it shows in every test run.
        let _ = writeln!(std::io::stderr(), "SKIPPED rmpirun cluster test (tag {tag}): {why}");
        return None;
    }
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    Some((guard, Cluster::new(tag, opts)))
}

const LIMIT: Duration = Duration::from_secs(60);

/// Runs rmpirun with `args` in the cluster and checks that it fails with `code` within `within`,
/// saying each of `needles` on stderr, and that nothing is left running anywhere.
fn expect_failure(c: &Cluster, args: &[&str], code: i32, needles: &[&str], within: Duration) {
    let out = run(c.rmpirun(args), LIMIT);
    eprintln!("rmpirun said:\n{}", out.stderr);
    assert_eq!(out.code(), code, "stderr: {}", out.stderr);
    for needle in needles {
        assert!(out.stderr.contains(needle), "no `{needle}` in: {}", out.stderr);
    }
    assert!(out.elapsed < within, "took {:?}", out.elapsed);
    c.assert_no_orphans(Duration::from_secs(3));
}

#[test]
fn collective_32_ranks_over_4_hosts_and_per_host_port() {
    let mut opts = Options::hosts(4);
    opts.port_2222 = vec![4];
    let Some((_g, c)) = cluster(1, opts) else { return };
    let hostfile = c.hostfile(
        "# four hosts, four spellings\nh1 slots=8\nroot@h2:8\n\nh3 slots=8 max_slots=8\n\
         h4 slots=8 port=2222 # sshd on 2222 only\n",
    );
    let mesh = mesh_check();
    let out = run(
        c.rmpirun(&["-n", "32", "--hostfile", hostfile.to_str().unwrap(), mesh.to_str().unwrap()]),
        LIMIT,
    );
    assert_eq!(out.code(), 0, "stderr: {}", out.stderr);
    for r in 0..32 {
        let want = format!("rank {r}/32 on h{}: sum 496 ok", r / 8 + 1);
        assert!(out.stdout.lines().any(|l| l == want), "missing `{want}` in {}", out.stdout);
    }
    assert_eq!(out.stdout.lines().count(), 32);
    c.assert_no_orphans(Duration::from_secs(3));
    eprintln!("32 ranks over 4 hosts: {:?}", out.elapsed);

    // The workspace's `cpi` example: broadcast and reduce from rmpi's collectives.
    let cpi = support::workspace_example("cpi");
    let out = run(
        c.rmpirun(&[
            "-n",
            "32",
            "--map-by",
            "node",
            "--hostfile",
            hostfile.to_str().unwrap(),
            cpi.to_str().unwrap(),
            "100000",
        ]),
        LIMIT,
    );
    assert_eq!(out.code(), 0, "stderr: {}", out.stderr);
    assert!(out.stdout.starts_with("pi is approximately 3.14159"), "{}", out.stdout);
    assert!(out.stdout.contains("100000 intervals on 32 ranks"), "{}", out.stdout);
    c.assert_no_orphans(Duration::from_secs(3));

    // 32 ranks on one host go through one SSH connection, so a stock sshd (MaxStartups 10,
    // MaxSessions 10) is no limit.
    let one = c.hostfile("h2 slots=32\n");
    let out = run(
        c.rmpirun(&["-np", "32", "-f", one.to_str().unwrap(), "sh", "-c", "echo $RMPI_LOCAL_RANK"]),
        LIMIT,
    );
    assert_eq!(out.code(), 0, "stderr: {}", out.stderr);
    let mut locals: Vec<u32> = out.stdout.lines().map(|l| l.parse().unwrap()).collect();
    locals.sort_unstable();
    assert_eq!(locals, (0..32).collect::<Vec<_>>());
    c.assert_no_orphans(Duration::from_secs(3));

    // The remote agent binds its host's ranks: two ranks on h2 with --bind-to hwthread each get
    // one CPU, and not the same one when the host has two.
    let args = ["-np", "2", "-f", one.to_str().unwrap(), "--tag-output", "--bind-to", "hwthread"];
    let out = run(c.rmpirun(&[&args[..], &["sh", "-c", support::PRINT_CPUS]].concat()), LIMIT);
    assert_eq!(out.code(), 0, "stderr: {}", out.stderr);
    let cpus = support::cpus_by_rank(&out.stdout, 2);
    assert!(cpus.iter().all(|c| c.len() == 1), "{cpus:?}");
    let usable = std::thread::available_parallelism().map_or(1, |n| n.get());
    if usable >= 2 {
        assert_ne!(cpus[0], cpus[1]);
    }

    // Three ranks on each of three hosts: each reaches exactly the ranks of its own host through
    // shared memory (the namespace hosts of this one machine never share it), the others by TCP.
    let three = c.hostfile("h1 slots=3\nh2 slots=3\nh3 slots=3\n");
    let out = run(
        c.rmpirun(&[
            "-n",
            "9",
            "--hostfile",
            three.to_str().unwrap(),
            mesh.to_str().unwrap(),
            "--transports",
        ]),
        LIMIT,
    );
    assert_eq!(out.code(), 0, "stderr: {}", out.stderr);
    let shm_on = std::env::var("RMPI_SHM").map_or(true, |v| v != "0");
    for r in 0..9 {
        let local: Vec<String> =
            (0..9).filter(|p| shm_on && *p != r && p / 3 == r / 3).map(|p| p.to_string()).collect();
        let want = format!("rank {r} shm: {}", local.join(","));
        assert!(out.stdout.lines().any(|l| l == want), "missing `{want}` in {}", out.stdout);
    }
    c.assert_no_orphans(Duration::from_secs(3));
}

#[test]
fn arguments_environment_and_paths_are_quoted() {
    let mut opts = Options::hosts(2);
    opts.port_2222 = vec![2];
    let Some((_g, c)) = cluster(2, opts) else { return };
    let hostfile = c.hostfile("h1\nh2 port=2222\n");
    let pwned = c.dir.path().join("pwned");
    let inject = format!("$(touch {})", pwned.display());
    let backtick = format!("`touch {}`", pwned.display());
    let wdir = c.dir.path().join("work dir; $(x)");
    std::fs::create_dir(&wdir).unwrap();
    let out = run(
        c.rmpirun(&[
            "-n",
            "2",
            "--tag-output",
            "--hostfile",
            hostfile.to_str().unwrap(),
            "-x",
            "RMPIRUN_T=v a'l $(id)",
            "--wdir",
            wdir.to_str().unwrap(),
            "sh",
            "-c",
            "printf '<%s>\\n' \"$@\" \"$RMPIRUN_T\" \"$PWD\" \"$RMPI_HOST\"",
            "sh",
            "a b",
            &inject,
            &backtick,
            "it's",
            "; echo no",
        ]),
        LIMIT,
    );
    assert_eq!(out.code(), 0, "stderr: {}", out.stderr);
    for (rank, host) in [(0, "h1"), (1, "h2")] {
        let lines: Vec<&str> =
            out.stdout.lines().filter_map(|l| l.strip_prefix(&format!("[{rank}] "))).collect();
        let want = [
            "<a b>".to_string(),
            format!("<{inject}>"),
            format!("<{backtick}>"),
            "<it's>".into(),
            "<; echo no>".into(),
            "<v a'l $(id)>".into(),
            format!("<{}>", wdir.display()),
            format!("<{host}>"),
        ];
        assert_eq!(lines, want, "rank {rank}: {}", out.stdout);
    }
    assert!(!pwned.exists(), "an argument was run by a shell");
    c.assert_no_orphans(Duration::from_secs(3));

    // stdin reaches rank 0 (on h2 here) through its SSH link; rank 1 gets /dev/null.
    let hostfile = c.hostfile("h2 port=2222\nh1\n");
    let mut cmd = c.rmpirun(&[
        "-n",
        "2",
        "--tag-output",
        "--hostfile",
        hostfile.to_str().unwrap(),
        "sh",
        "-c",
        "echo $(wc -l) $RMPI_HOST",
    ]);
    cmd.stdin(std::process::Stdio::piped());
    let mut job = start(cmd);
    {
        let mut stdin = job.child.stdin.take().unwrap();
        let text: String = (0..1000).map(|i| format!("line {i}\n")).collect();
        stdin.write_all(text.as_bytes()).unwrap();
    }
    let out = job.finish(LIMIT);
    assert_eq!(out.code(), 0, "stderr: {}", out.stderr);
    let mut lines: Vec<&str> = out.stdout.lines().collect();
    lines.sort_unstable();
    assert_eq!(lines, vec!["[0] 1000 h2", "[1] 0 h1"]);
}

#[test]
fn host_down_or_unreachable_fails_fast_and_names_the_host() {
    let Some((_g, mut c)) = cluster(3, Options::hosts(2)) else { return };
    c.stop_sshd(2);
    let hostfile = c.hostfile("h1 slots=2\nh2 slots=2\n");
    let args = ["-n", "4", "--hostfile", hostfile.to_str().unwrap(), "sleep", "300"];
    let refused = ["cannot start on h2", "Connection refused"];
    expect_failure(&c, &args, 1, &refused, Duration::from_secs(6));

    // An address where nothing answers: ssh's own timeout (or the kernel's verdict), quoted.
    let hostfile = c.hostfile("h1 slots=2\nghost slots=2\n");
    let args = ["-n", "4", "--connect-timeout", "2", "--hostfile", hostfile.to_str().unwrap()];
    let out = run(c.rmpirun(&[&args[..], &["sleep", "300"]].concat()), LIMIT);
    eprintln!("rmpirun said:\n{}", out.stderr);
    assert_eq!(out.code(), 1, "stderr: {}", out.stderr);
    assert!(out.stderr.contains("cannot start on ghost"), "{}", out.stderr);
    assert!(
        out.stderr.contains("timed out") || out.stderr.contains("No route to host"),
        "{}",
        out.stderr
    );
    assert!(out.elapsed < Duration::from_secs(10), "took {:?}", out.elapsed);
    c.assert_no_orphans(Duration::from_secs(3));

    // A rank fails while the ssh client for another host still hangs (a wrapper that never
    // connects `stuck`): rmpirun does not wait for it, and kills it.
    let wrapper = c.dir.path().join("ssh-wrapper");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do [ \"$a\" = stuck ] && exec sleep 600; done\n\
             exec ssh -F {} \"$@\"\n",
            c.ssh_config.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .unwrap();
    let hostfile = c.hostfile("h1\nstuck\n");
    let ssh = wrapper.to_str().unwrap();
    let args = ["-n", "2", "--ssh", ssh, "--hostfile", hostfile.to_str().unwrap()];
    let args = [&args[..], &["sh", "-c", "exit 3"]].concat();
    expect_failure(&c, &args, 3, &["rank 0 on h1"], Duration::from_secs(8));
}

#[test]
fn unknown_host_key_and_missing_program_fail_without_prompt() {
    let mut opts = Options::hosts(2);
    opts.unknown_key = vec![2];
    let Some((_g, c)) = cluster(4, opts) else { return };
    let hostfile = c.hostfile("h1\nh2\n");
    let args = ["-n", "2", "--hostfile", hostfile.to_str().unwrap(), "sleep", "300"];
    let needles = ["cannot start on h2", "Host key verification failed"];
    expect_failure(&c, &args, 1, &needles, Duration::from_secs(6));

    let hostfile = c.hostfile("h1 slots=2\n");
    let args = ["-n", "2", "--hostfile", hostfile.to_str().unwrap(), "/nonexistent/app"];
    let needles = ["cannot start rank", "on h1", "/nonexistent/app"];
    expect_failure(&c, &args, 127, &needles, Duration::from_secs(10));
}

#[test]
fn crashing_rank_ends_every_rank_on_every_host() {
    let Some((_g, c)) = cluster(5, Options::hosts(4)) else { return };
    let hostfile = c.hostfile("h1 slots=4\nh2 slots=4\nh3 slots=4\nh4 slots=4\n");
    let mesh = mesh_check();
    let out = run(
        c.rmpirun(&[
            "-n",
            "16",
            "--hostfile",
            hostfile.to_str().unwrap(),
            mesh.to_str().unwrap(),
            "--crash",
            "5",
        ]),
        LIMIT,
    );
    eprintln!("rmpirun said:\n{}", out.stderr);
    assert_eq!(out.code(), 128 + 6, "stderr: {}", out.stderr);
    assert!(out.stderr.contains("rank 5 on h2"), "{}", out.stderr);
    assert!(out.stderr.contains("SIGABRT"), "{}", out.stderr);
    assert!(out.elapsed < Duration::from_secs(15), "took {:?}", out.elapsed);
    c.assert_no_orphans(Duration::from_secs(3));
}

#[test]
fn the_failed_rank_is_blamed_over_four_hosts() {
    // Rank 6 (on h2) fails while the others wait on it; its peers on every host fail at once
    // too, and their agents' reports race h2's. Twenty runs, so that a race shows; then two
    // ranks failing at once, where either may be the first.
    let Some((_g, c)) = cluster(13, Options::hosts(4)) else { return };
    let hostfile = c.hostfile("h1 slots=4\nh2 slots=4\nh3 slots=4\nh4 slots=4\n");
    let hostfile = hostfile.to_str().unwrap();
    let mesh = mesh_check();
    let mesh = mesh.to_str().unwrap();
    let cases = [
        ("kill", 137, "killed by signal 9"),
        ("exit", 3, "status 3"),
        ("panic", 101, "status 101 (panicked)"),
        ("abort", 7, "status 7 (abort(7))"),
    ];
    let blamed = |out: &support::Finished| -> String {
        let v: Vec<&str> = out.stderr.lines().filter(|l| l.ends_with("; ended the job")).collect();
        assert_eq!(v.len(), 1, "one verdict: {}", out.stderr);
        v[0].to_string()
    };
    for run_no in 0..20 {
        let (how, code, what) = cases[run_no % cases.len()];
        let args = ["-n", "16", "--hostfile", hostfile, mesh, "--victims-exit", "--fail", "6", how];
        let out = run(c.rmpirun(&args), LIMIT);
        let verdict = blamed(&out);
        assert!(
            verdict.starts_with("rmpirun: rank 6 on h2 ") && verdict.contains(what),
            "run {run_no} ({how}) blamed: {verdict}\n{}",
            out.stderr
        );
        assert_eq!(out.code(), code, "run {run_no} ({how}): {}", out.stderr);
    }
    for run_no in 0..6 {
        let args = ["-n", "16", "--hostfile", hostfile, mesh, "--victims-exit", "--fail", "6,13"];
        let out = run(c.rmpirun(&[&args[..], &["exit"]].concat()), LIMIT);
        let verdict = blamed(&out);
        assert!(
            ["rmpirun: rank 6 on h2 ", "rmpirun: rank 13 on h4 "]
                .iter()
                .any(|r| verdict.starts_with(r))
                && verdict.contains("status 3"),
            "double run {run_no} blamed: {verdict}\n{}",
            out.stderr
        );
        assert_eq!(out.code(), 3, "double run {run_no}: {}", out.stderr);
    }
    c.assert_no_orphans(Duration::from_secs(3));
}

/// Starts `ranks` hanging ranks over the cluster's hosts and waits until all joined.
fn hanging_job(c: &Cluster, ranks: usize, hostfile: &str) -> support::Running {
    let hostfile = c.hostfile(hostfile);
    let mesh = mesh_check();
    let n = ranks.to_string();
    let job = start(c.rmpirun(&[
        "-n",
        &n,
        "--hostfile",
        hostfile.to_str().unwrap(),
        mesh.to_str().unwrap(),
        "--hang",
    ]));
    job.wait_for_lines(LIMIT, |l| l.iter().filter(|l| l.starts_with("ready ")).count() == ranks);
    job
}

/// Waits for a job ended from outside at `t0`: it must exit with `code` within `within`, say
/// each of `needles`, and leave nothing running anywhere (after `settle` at most).
fn expect_end(
    c: &Cluster,
    job: support::Running,
    t0: std::time::Instant,
    (code, needles): (i32, &[&str]),
    within: Duration,
    settle: Duration,
) {
    let out = job.finish(LIMIT);
    eprintln!("rmpirun said:\n{}", out.stderr);
    assert_eq!(out.code(), code, "stderr: {}", out.stderr);
    for needle in needles {
        assert!(out.stderr.contains(needle), "no `{needle}` in: {}", out.stderr);
    }
    assert!(t0.elapsed() < within, "took {:?}", t0.elapsed());
    c.assert_no_orphans(settle);
}

fn pid_of_rank(job: &support::Running, rank: usize) -> i32 {
    let lines = job.lines.lock().unwrap();
    let prefix = format!("ready {rank} ");
    let line = lines.iter().find(|l| l.starts_with(&prefix)).expect("rank line");
    line[prefix.len()..].trim().parse().expect("pid")
}

#[test]
fn sigkilled_rank_ends_the_job_and_token_is_on_no_command_line() {
    let Some((_g, c)) = cluster(6, Options::hosts(2)) else { return };
    let job = hanging_job(&c, 8, "h1 slots=4\nh2 slots=4\n");
    let victim = pid_of_rank(&job, 3);
    let environ = std::fs::read(format!("/proc/{victim}/environ")).unwrap();
    let token = environ
        .split(|&b| b == 0)
        .find_map(|v| v.strip_prefix(b"RMPI_TOKEN="))
        .map(|t| String::from_utf8_lossy(t).into_owned())
        .expect("rank has RMPI_TOKEN");
    assert_eq!(token.len(), 32);
    let cmdlines = c.all_cmdlines();
    assert!(cmdlines.iter().any(|l| l.contains("--node-agent")), "{cmdlines:#?}");
    assert!(!cmdlines.iter().any(|l| l.contains(&token)), "token on a command line");

    let t0 = std::time::Instant::now();
    support::signal(victim, libc::SIGKILL);
    let said = format!("rank 3 on h1 (pid {victim}) killed by signal 9 (SIGKILL)");
    let (within, settle) = (Duration::from_secs(3), Duration::from_secs(2));
    expect_end(&c, job, t0, (137, &[&said]), within, settle);
}

#[test]
fn ctrl_c_ends_every_rank_everywhere() {
    let Some((_g, c)) = cluster(7, Options::hosts(3)) else { return };
    let job = hanging_job(&c, 12, "h1 slots=4\nh2 slots=4\nh3 slots=4\n");
    let t0 = std::time::Instant::now();
    support::signal(job.child.id() as i32, libc::SIGINT);
    let (within, settle) = (Duration::from_secs(3), Duration::from_secs(2));
    expect_end(&c, job, t0, (130, &["interrupted (SIGINT)"]), within, settle);

    // SIGKILL: rmpirun cannot react at all. Its ssh clients and its local agent see their stdin
    // close, the agents end their ranks.
    let job = hanging_job(&c, 12, "localhost slots=3\nh1 slots=3\nh2 slots=3\nh3 slots=3\n");
    let t0 = std::time::Instant::now();
    support::signal(job.child.id() as i32, libc::SIGKILL);
    let (within, settle) = (Duration::from_secs(1), Duration::from_secs(3));
    expect_end(&c, job, t0, (137, &[]), within, settle);
}

#[test]
fn dropped_ssh_link_ends_every_rank_everywhere() {
    let Some((_g, c)) = cluster(8, Options::hosts(2)) else { return };
    let job = hanging_job(&c, 4, "h1 slots=2\nh2 slots=2\n");
    let ssh_to_h2 = c
        .job_processes()
        .into_iter()
        .find(|(ns, _, cmd)| *ns == c.head_ns && cmd.starts_with("ssh ") && cmd.contains(" h2 "))
        .expect("ssh client for h2");
    let t0 = std::time::Instant::now();
    support::signal(ssh_to_h2.1, libc::SIGKILL);
    let (within, settle) = (Duration::from_secs(3), Duration::from_secs(2));
    expect_end(&c, job, t0, (1, &["lost the connection to h2"]), within, settle);
}

#[test]
fn launcher_name_resolving_to_loopback_and_timeout() {
    let mut opts = Options::hosts(1);
    opts.head_sshd = true;
    let Some((_g, c)) = cluster(9, opts) else { return };
    // `head` is the launching machine and resolves to 127.0.0.1 there; `h1` resolves to
    // 127.0.0.1 on h1. The mesh must still form.
    let hostfile = c.hostfile("head slots=2\nh1 slots=2\n");
    let mesh = mesh_check();
    let out = run(
        c.rmpirun(&["-n", "4", "--hostfile", hostfile.to_str().unwrap(), mesh.to_str().unwrap()]),
        LIMIT,
    );
    assert_eq!(out.code(), 0, "stderr: {}", out.stderr);
    assert_eq!(out.stdout.lines().filter(|l| l.ends_with("sum 6 ok")).count(), 4, "{}", out.stdout);
    c.assert_no_orphans(Duration::from_secs(3));

    // `localhost` is started in-process (no SSH), next to a remote host.
    let mixed = c.hostfile("localhost slots=2\nh1 slots=2\n");
    let out = run(
        c.rmpirun(&["-n", "4", "--hostfile", mixed.to_str().unwrap(), mesh.to_str().unwrap()]),
        LIMIT,
    );
    assert_eq!(out.code(), 0, "stderr: {}", out.stderr);
    assert_eq!(out.stdout.lines().filter(|l| l.ends_with("sum 6 ok")).count(), 4, "{}", out.stdout);
    // The local ranks report the launching machine's own name (rmpirun runs in the head
    // namespace, which shares this machine's UTS name).
    let me = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let want = format!("rank 0/4 on {}", me.trim());
    assert!(out.stdout.contains(&want), "{want}: {}", out.stdout);
    c.assert_no_orphans(Duration::from_secs(3));

    let out = run(
        c.rmpirun(&[
            "-n",
            "4",
            "--timeout",
            "1",
            "--hostfile",
            hostfile.to_str().unwrap(),
            mesh.to_str().unwrap(),
            "--hang",
        ]),
        LIMIT,
    );
    eprintln!("rmpirun said:\n{}", out.stderr);
    assert_eq!(out.code(), 124, "stderr: {}", out.stderr);
    assert!(out.stderr.contains("timed out"), "{}", out.stderr);
    assert!(out.elapsed < Duration::from_secs(5), "took {:?}", out.elapsed);
    c.assert_no_orphans(Duration::from_secs(2));
}

/// Cuts a host's link to the bridge: no FIN, no RST, just silence.
fn cut_off(c: &Cluster, link: &str) {
    let status = std::process::Command::new("ip")
        .args(["-n", &c.bridge_ns, "link", "set", link, "down"])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn network_partition_ends_the_job_on_both_sides() {
    let Some((_g, c)) = cluster(10, Options::hosts(2)) else { return };
    let job = hanging_job(&c, 4, "h1 slots=2\nh2 slots=2\n");
    // Cut h2 off the bridge: no FIN, no RST, just silence.
    let t0 = std::time::Instant::now();
    cut_off(&c, "vh2");
    // The agent on h2 hears no keep-alive either and ends its ranks by itself.
    let needles: &[&str] = &["lost the connection to h2", "no word from the agent"];
    expect_end(&c, job, t0, (1, needles), Duration::from_secs(10), Duration::from_secs(8));
    assert!(t0.elapsed() < Duration::from_secs(12), "took {:?}", t0.elapsed());
}

#[test]
fn a_silent_peer_host_is_noticed_by_the_library_alone() {
    // Rank 0 (h1) waits on rank 3 (h2); h2 is cut off without a FIN or RST. The transport's
    // keep-alive (RMPI_PEER_TIMEOUT=2) must fail the wait, naming rank 3, before rmpirun's own
    // watchdog (5 s) ends the job.
    let Some((_g, c)) = cluster(14, Options::hosts(2)) else { return };
    let hostfile = c.hostfile("h1 slots=2\nh2 slots=2\n");
    let mesh = mesh_check();
    let args = ["-n", "4", "-x", "RMPI_PEER_TIMEOUT=2", "--hostfile", hostfile.to_str().unwrap()];
    let job = start(c.rmpirun(&[&args[..], &[mesh.to_str().unwrap(), "--wait-peer"]].concat()));
    job.wait_for_lines(LIMIT, |l| l.iter().filter(|l| l.starts_with("ready ")).count() == 4);
    let t0 = std::time::Instant::now();
    cut_off(&c, "vh2");
    let lost = |l: &[String]| l.iter().any(|l| l.starts_with("rank 0: lost after"));
    job.wait_for_lines(Duration::from_secs(15), lost);
    let noticed = t0.elapsed();
    let line = job.lines.lock().unwrap().iter().find(|l| lost(&[l.to_string()])).cloned();
    let line = line.unwrap_or_default();
    assert!(line.contains("rank 3") && line.contains("h2"), "{line}");
    assert!(line.contains("timed out"), "{line}");
    eprintln!("noticed after {noticed:?}: {line}");
    assert!(noticed < Duration::from_millis(4500), "noticed after {noticed:?}: {line}");
    let needles: &[&str] = &["lost the connection to h2"];
    expect_end(&c, job, t0, (1, needles), Duration::from_secs(12), Duration::from_secs(8));
}

/// Startup-to-exit times, rmpirun next to Open MPI's mpirun on the same job shapes (run with
/// `--ignored --nocapture`, release build; needs hyperfine, and openmpi-bin + libopenmpi-dev for
/// the comparison). Prints hyperfine's markdown tables; docs/rmpirun.md records a run.
#[test]
#[ignore]
fn measure_startup() {
    let Some((_g, c)) = cluster(11, Options::hosts(4)) else { return };
    let have = |tool: &str| {
        std::process::Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    assert!(have("hyperfine"), "install hyperfine");
    let dir = c.dir.path();
    let hello_c = dir.join("hello.c");
    std::fs::write(
        &hello_c,
        "#include <mpi.h>\n#include <stdio.h>\nint main(int c, char **v) { int r, s;\n\
         MPI_Init(&c, &v); MPI_Comm_rank(MPI_COMM_WORLD, &r); MPI_Comm_size(MPI_COMM_WORLD, &s);\n\
         printf(\"hello from %d of %d\\n\", r, s); MPI_Finalize(); return 0; }\n",
    )
    .unwrap();
    let hello = dir.join("hello");
    let openmpi = have("mpicc")
        && have("mpirun")
        && std::process::Command::new("mpicc")
            .arg("-O2")
            .arg("-o")
            .arg(&hello)
            .arg(&hello_c)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
    let hostfile = c.hostfile("h1 slots=8\nh2 slots=8\nh3 slots=8\nh4 slots=8\n");
    let rmpirun = support::rmpirun();
    let mesh = mesh_check();
    // rmpi's own hello (init, rank, size, processor name, finalize) is the counterpart of the C
    // hello; mesh_check (plus ring and reduce/broadcast) is measured too.
    let rhello = support::workspace_example("hello");
    // Warm the agent cache on the hosts (the first launch ships the binary).
    let warm = run(
        c.rmpirun(&["-n", "32", "--hostfile", hostfile.to_str().unwrap(), mesh.to_str().unwrap()]),
        LIMIT,
    );
    assert_eq!(warm.code(), 0, "{}", warm.stderr);
    let mut commands = vec![
        format!("{} -n 8 --oversubscribe {}", rmpirun.display(), rhello.display()),
        format!("{} -n 8 --oversubscribe {}", rmpirun.display(), mesh.display()),
        format!(
            "{} -n 32 --hostfile {} {}",
            rmpirun.display(),
            hostfile.display(),
            rhello.display()
        ),
        format!("{} -n 32 --hostfile {} {}", rmpirun.display(), hostfile.display(), mesh.display()),
    ];
    if openmpi {
        let mpirun = "mpirun --allow-run-as-root --oversubscribe";
        commands.insert(2, format!("{mpirun} -n 8 {}", hello.display()));
        commands.push(format!(
            "{mpirun} -n 32 --hostfile {} --mca plm_rsh_agent \"ssh -F {}\" {}",
            hostfile.display(),
            c.ssh_config.display(),
            hello.display()
        ));
    } else {
        eprintln!("Open MPI (mpicc, mpirun) not installed: measuring rmpirun only");
    }
    let md = dir.join("results.md");
    let mut cmd = std::process::Command::new("ip");
    cmd.args(["netns", "exec", &c.head_ns, "hyperfine", "-N", "--warmup", "2", "--runs", "20"])
        .arg("--export-markdown")
        .arg(&md)
        .args(&commands)
        .env("RMPI_SSH", format!("ssh -F {}", c.ssh_config.display()))
        .env("RMPI_AGENT_CACHE", dir.join("agent-cache"))
        .current_dir(dir);
    let status = cmd.status().unwrap();
    assert!(status.success());
    println!("{}", std::fs::read_to_string(&md).unwrap());
    c.assert_no_orphans(Duration::from_secs(3));
}

#[test]
fn ipv6_hosts_in_brackets() {
    let mut opts = Options::hosts(2);
    opts.port_2222 = vec![2];
    let Some((_g, c)) = cluster(12, opts) else { return };
    let (a, b) = (support::netns::v6_of(c.hosts[0].addr), support::netns::v6_of(c.hosts[1].addr));
    let hostfile = c.hostfile(&format!("[{a}]:2\n[{b}] slots=2 port=2222\n"));
    let mesh = mesh_check();
    let out = run(
        c.rmpirun(&["-n", "4", "--hostfile", hostfile.to_str().unwrap(), mesh.to_str().unwrap()]),
        LIMIT,
    );
    assert_eq!(out.code(), 0, "stderr: {}", out.stderr);
    assert_eq!(out.stdout.lines().filter(|l| l.ends_with("sum 6 ok")).count(), 4, "{}", out.stdout);
    assert!(out.stdout.contains(&format!("on {a}: sum")), "{}", out.stdout);
    c.assert_no_orphans(Duration::from_secs(3));
}
