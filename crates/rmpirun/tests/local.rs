//! Local launches (no hostfile: no SSH): output forwarding, stdin, exit statuses, signals,
//! timeouts, per-rank files, and that nothing is left running. These need no privileges.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use support::{mesh_check, pids_with_env, rmpirun, run, start, unique_marker, wait_until_empty};

const LIMIT: Duration = Duration::from_secs(60);

fn rmpirun_cmd(args: &[&str]) -> Command {
    let mut cmd = Command::new(rmpirun());
    cmd.args(args).stdin(Stdio::null());
    cmd
}

fn rmpirun_env(args: &[&str], key: &str, value: &str) -> Command {
    let mut cmd = rmpirun_cmd(args);
    cmd.env(key, value);
    cmd
}

#[test]
fn real_ranks_join_the_mesh_and_finish() {
    let mesh = mesh_check();
    // More ranks than cores, and no --oversubscribe: on this machine alone that is allowed.
    let out = run(rmpirun_cmd(&["-n", "8", mesh.to_str().unwrap()]), LIMIT);
    assert_eq!(out.code(), 0, "stderr: {}", out.stderr);
    // Ranks on this machine report its real name, not "localhost".
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    for r in 0..8 {
        let want = format!("rank {r}/8 on {}: sum 28 ok", host.trim());
        assert!(out.stdout.lines().any(|l| l == want), "missing {want}: {}", out.stdout);
    }
}

#[test]
fn lines_are_whole_tagged_and_unterminated_lines_flushed() {
    // Each rank writes 200 long lines in small pieces; no line may be mixed with another.
    let script = "i=0; while [ $i -lt 200 ]; do printf 'r%s-' $RMPI_RANK; printf 'x%.0s' \
                  1 2 3 4 5 6 7 8 9 10; printf '%s\\n' \"-$i\"; i=$((i+1)); done; printf tail";
    let out = run(
        rmpirun_cmd(&["-n", "4", "--oversubscribe", "--tag-output", "sh", "-c", script]),
        LIMIT,
    );
    assert_eq!(out.code(), 0, "stderr: {}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 4 * 201);
    for line in &lines {
        let (tag, rest) = line.split_once(' ').expect("tag");
        let rank = tag.trim_start_matches('[').trim_end_matches(']');
        if rest == "tail" {
            continue;
        }
        let want_prefix = format!("r{rank}-xxxxxxxxxx-");
        assert!(rest.starts_with(&want_prefix), "mixed line: {line}");
    }
    for r in 0..4 {
        assert!(lines.contains(&format!("[{r}] tail").as_str()));
    }
}

#[test]
fn stdin_goes_to_rank_0_only() {
    let mut cmd = Command::new(rmpirun());
    cmd.args(["-n", "2", "--oversubscribe", "--tag-output", "sh", "-c", "wc -l"])
        .stdin(Stdio::piped());
    let mut job = start(cmd);
    {
        use std::io::Write;
        let mut stdin = job.child.stdin.take().unwrap();
        stdin.write_all(b"one\ntwo\nthree\n").unwrap();
    }
    let out = job.finish(LIMIT);
    assert_eq!(out.code(), 0, "stderr: {}", out.stderr);
    let mut lines: Vec<&str> = out.stdout.lines().collect();
    lines.sort_unstable();
    assert_eq!(lines, vec!["[0] 3", "[1] 0"]);
}

#[test]
fn stdin_to_a_slow_rank_is_flow_controlled() {
    // Rank 0 reads nothing for a second; rmpirun must not swallow its stdin meanwhile.
    let mut cmd = Command::new(rmpirun());
    cmd.args(["-n", "1", "sh", "-c", "sleep 1; wc -c"]).stdin(Stdio::piped());
    let mut job = start(cmd);
    let mut stdin = job.child.stdin.take().unwrap();
    let written = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = written.clone();
    let total = 64usize << 20;
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..total / chunk.len() {
            if stdin.write_all(&chunk).is_err() {
                return;
            }
            counter.fetch_add(chunk.len(), std::sync::atomic::Ordering::SeqCst);
        }
    });
    std::thread::sleep(Duration::from_millis(700));
    let early = written.load(std::sync::atomic::Ordering::SeqCst);
    assert!(early < 8 << 20, "{early} bytes taken while rank 0 was not reading");
    writer.join().unwrap();
    let out = job.finish(LIMIT);
    assert_eq!(out.code(), 0, "stderr: {}", out.stderr);
    assert_eq!(out.stdout.trim(), total.to_string());
}

#[test]
fn failing_rank_status_is_rmpiruns_and_others_are_ended() {
    let marker = unique_marker("RMPIRUN_FAIL");
    let script = "if [ $RMPI_RANK = 2 ]; then sleep 0.3; exit 7; fi; sleep 300";
    let out = run(
        rmpirun_env(
            &["-n", "4", "--oversubscribe", "-x", &marker, "sh", "-c", script],
            &marker,
            "1",
        ),
        LIMIT,
    );
    assert_eq!(out.code(), 7, "stderr: {}", out.stderr);
    assert!(out.stderr.contains("rank 2 on localhost"), "{}", out.stderr);
    assert!(out.stderr.contains("exited with status 7"), "{}", out.stderr);
    assert!(out.elapsed < Duration::from_secs(3), "took {:?}", out.elapsed);
    assert!(wait_until_empty(Duration::from_secs(2), || pids_with_env(&format!("{marker}=1")))
        .is_empty());
}

#[test]
fn signal_death_gives_128_plus_signal() {
    let script = "if [ $RMPI_RANK = 1 ]; then kill -SEGV $$; fi; sleep 300";
    let out = run(rmpirun_cmd(&["-n", "3", "--oversubscribe", "sh", "-c", script]), LIMIT);
    assert_eq!(out.code(), 128 + 11, "stderr: {}", out.stderr);
    assert!(out.stderr.contains("rank 1 on localhost"), "{}", out.stderr);
    assert!(out.stderr.contains("killed by signal 11 (SIGSEGV)"), "{}", out.stderr);
}

#[test]
fn ctrl_c_and_sigterm_leave_no_process_behind() {
    // SIGKILL: rmpirun cannot do anything; its local agent sees its stdin close and cleans up.
    for (sig, code) in [(libc::SIGINT, 130), (libc::SIGTERM, 143), (libc::SIGKILL, 137)] {
        let marker = unique_marker("RMPIRUN_SIG");
        let name = marker.clone();
        // Each rank has a child that ignores SIGTERM, in the background.
        let script = "trap '' TERM; sleep 300 & echo ready; wait";
        let mut cmd = rmpirun_cmd(&["-n", "3", "--oversubscribe", "-x", &name, "sh", "-c", script]);
        cmd.env(&name, "1");
        let job = start(cmd);
        job.wait_for_lines(LIMIT, |l| l.len() == 3);
        let needle = format!("{marker}=1");
        let ranks = pids_with_env(&needle)
            .into_iter()
            .filter(|&p| matches!(support::comm_of(p).as_str(), "sh" | "sleep"))
            .count();
        assert_eq!(ranks, 6, "3 ranks and their 3 children");
        let t0 = std::time::Instant::now();
        support::signal(job.child.id() as i32, sig);
        let out = job.finish(LIMIT);
        assert_eq!(out.code(), code, "stderr: {}", out.stderr);
        assert!(t0.elapsed() < Duration::from_secs(3), "took {:?}", t0.elapsed());
        let left = wait_until_empty(Duration::from_secs(3), || pids_with_env(&needle));
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}

#[test]
fn background_children_of_successful_ranks_are_ended() {
    let marker = unique_marker("RMPIRUN_BG");
    let out = run(
        rmpirun_env(
            &["-n", "2", "--oversubscribe", "-x", &marker, "sh", "-c", "sleep 300 &"],
            &marker,
            "1",
        ),
        LIMIT,
    );
    assert_eq!(out.code(), 0, "stderr: {}", out.stderr);
    let left = wait_until_empty(Duration::from_secs(1), || pids_with_env(&format!("{marker}=1")));
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn timeout_is_reported() {
    let out =
        run(rmpirun_cmd(&["-n", "2", "--oversubscribe", "--timeout", "0.5", "sleep", "30"]), LIMIT);
    assert_eq!(out.code(), 124, "stderr: {}", out.stderr);
    assert!(out.stderr.contains("timed out after 0.5 s"), "{}", out.stderr);
    assert!(out.elapsed < Duration::from_secs(3));
}

#[test]
fn output_filename_writes_one_pair_per_rank() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let out = run(
        rmpirun_cmd(&[
            "-n",
            "3",
            "--oversubscribe",
            "--output-filename",
            out_dir.to_str().unwrap(),
            "sh",
            "-c",
            "echo out $RMPI_RANK; echo err $RMPI_RANK >&2",
        ]),
        LIMIT,
    );
    assert_eq!(out.code(), 0, "stderr: {}", out.stderr);
    assert_eq!(out.stdout, "");
    for r in 0..3 {
        let o = std::fs::read_to_string(out_dir.join(format!("rank.{r}/stdout"))).unwrap();
        let e = std::fs::read_to_string(out_dir.join(format!("rank.{r}/stderr"))).unwrap();
        assert_eq!(o, format!("out {r}\n"));
        assert_eq!(e, format!("err {r}\n"));
    }
}

#[test]
fn usage_errors_start_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, "localhost slots=2\nbad line here=\n").unwrap();
    let out = run(rmpirun_cmd(&["-n", "2", "--hostfile", hosts.to_str().unwrap(), "true"]), LIMIT);
    assert_eq!(out.code(), 1);
    assert!(out.stderr.contains(&format!("{}:2:", hosts.display())), "{}", out.stderr);

    std::fs::write(&hosts, "localhost slots=2\n").unwrap();
    let marker = dir.path().join("started");
    let touch = format!("touch {}", marker.display());
    let out = run(
        rmpirun_cmd(&["-n", "3", "--hostfile", hosts.to_str().unwrap(), "sh", "-c", &touch]),
        LIMIT,
    );
    assert_eq!(out.code(), 1);
    assert!(out.stderr.contains("--oversubscribe"), "{}", out.stderr);
    assert!(!marker.exists(), "a rank started");

    let out = run(rmpirun_cmd(&["--help"]), LIMIT);
    assert_eq!(out.code(), 0);
    for flag in ["--hostfile", "--oversubscribe", "--tag-output", "--timeout", "-x", "--wdir"] {
        assert!(out.stdout.contains(flag), "--help lacks {flag}");
    }
}

#[test]
fn localhost_in_a_hostfile_runs_without_ssh() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, "localhost:2\n").unwrap();
    let out = run(
        rmpirun_env(
            &["--hostfile", hosts.to_str().unwrap(), "sh", "-c", "echo $RMPI_SIZE"],
            "RMPI_SSH",
            "/nonexistent/ssh",
        ),
        LIMIT,
    );
    assert_eq!(out.code(), 0, "stderr: {}", out.stderr);
    assert_eq!(out.stdout, "2\n2\n");
}

#[test]
fn ranks_get_a_core_each_when_they_fit_and_none_otherwise() {
    use support::{cpus_by_rank, parse_cpu_list, PRINT_CPUS};
    let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
    let allowed = parse_cpu_list(
        status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).expect("status line"),
    );
    let n = allowed.len();
    let job = |extra: &[&str], ranks: usize| {
        let np = ranks.to_string();
        let mut args = vec!["-n", &np, "--tag-output", "--report-bindings"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["sh", "-c", PRINT_CPUS]);
        let out = run(rmpirun_cmd(&args), LIMIT);
        assert_eq!(out.code(), 0, "stderr: {}", out.stderr);
        (cpus_by_rank(&out.stdout, ranks), out.stderr)
    };

    // The default: as many ranks as CPUs (one per core here, or a core's threads each), each
    // bound to CPUs no other rank has, all of them allowed to this process.
    let (cpus, stderr) = job(&[], n);
    for (r, c) in cpus.iter().enumerate() {
        assert!(!c.is_empty() && c.iter().all(|x| allowed.contains(x)), "rank {r}: {c:?}");
        for (q, d) in cpus.iter().enumerate().skip(r + 1) {
            assert!(c.iter().all(|x| !d.contains(x)), "ranks {r} and {q} share: {c:?} {d:?}");
        }
        assert!(stderr.contains(&format!("rank {r} on ")), "{stderr}");
    }
    assert!(stderr.contains("bound to CPU"), "{stderr}");

    // One rank more than CPUs: no binding by default; --bind-to hwthread wraps around.
    let (cpus, stderr) = job(&[], n + 1);
    assert!(cpus.iter().all(|c| c == &allowed), "{cpus:?}");
    assert!(stderr.contains("not bound"), "{stderr}");
    let (cpus, _) = job(&["--bind-to", "hwthread"], n + 1);
    assert_eq!(cpus[n], cpus[0]);
    assert!(cpus.iter().all(|c| c.len() == 1), "{cpus:?}");

    // --bind-to none (and mpirun's single-dash spelling).
    let (cpus, _) = job(&["-bind-to", "none"], n);
    assert!(cpus.iter().all(|c| c == &allowed), "{cpus:?}");
}

#[test]
fn refused_connections_are_logged_on_stderr() {
    // Each rank knocks on the job's rendezvous with garbage before joining: rmpirun (which serves
    // the rendezvous, under the table bootstrap) must say so, with the address, and the job must
    // still run.
    let mesh = mesh_check();
    let script = format!(
        "printf 'not a hello at all, 48 bytes of it, and more....' > \
         /dev/tcp/${{RMPI_RENDEZVOUS%:*}}/${{RMPI_RENDEZVOUS##*:}}; exec {}",
        mesh.display()
    );
    let out =
        run(rmpirun_env(&["-n", "2", "bash", "-c", &script], "RMPI_BOOTSTRAP", "table"), LIMIT);
    assert_eq!(out.code(), 0, "stderr: {}", out.stderr);
    let refusals: Vec<&str> =
        out.stderr.lines().filter(|l| l.contains("rendezvous: refused connection")).collect();
    assert_eq!(refusals.len(), 2, "stderr: {}", out.stderr);
    assert!(refusals.iter().all(|l| l.contains("127.0.0.1:")), "{refusals:?}");
    // RMPI_LOG=off silences them.
    let mut quiet = rmpirun_env(&["-n", "2", "bash", "-c", &script], "RMPI_LOG", "off");
    quiet.env("RMPI_BOOTSTRAP", "table");
    let out = run(quiet, LIMIT);
    assert_eq!(out.code(), 0, "stderr: {}", out.stderr);
    assert!(!out.stderr.contains("refused"), "stderr: {}", out.stderr);
}

#[test]
fn the_failed_rank_is_blamed_not_the_peers_that_lost_it() {
    // Rank 2 fails while the others wait on it; they fail at once too ("victims"), and their
    // reports race rank 2's. Twenty runs, so that a race shows.
    let mesh = mesh_check();
    let cases = [
        ("kill", 137, "killed by signal 9"),
        ("exit", 3, "status 3"),
        ("panic", 101, "status 101"),
        ("abort", 7, "status 7"),
    ];
    for run_no in 0..20 {
        let (how, code, what) = cases[run_no % cases.len()];
        let args = ["-n", "4", mesh.to_str().unwrap(), "--victims-exit", "--fail", "2", how];
        let out = run(rmpirun_cmd(&args), LIMIT);
        let verdict: Vec<&str> =
            out.stderr.lines().filter(|l| l.ends_with("; ended the job")).collect();
        assert_eq!(verdict.len(), 1, "run {run_no} ({how}): {}", out.stderr);
        assert!(
            verdict[0].starts_with("rmpirun: rank 2 on ") && verdict[0].contains(what),
            "run {run_no} ({how}) blamed: {}\n{}",
            verdict[0],
            out.stderr
        );
        assert_eq!(out.code(), code, "run {run_no} ({how}): {}", out.stderr);
    }
}

#[test]
fn ssh_sessions_are_set_up_a_bounded_number_at_a_time() {
    // A stand-in for ssh that runs the remote command here, and counts how many of its kind are
    // in their "handshake" (the first 300 ms) at once. Six hosts, two handshakes allowed.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let wrapper = dir.path().join("fake-ssh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nfor a; do last=$a; done\n\
             ( flock 9; n=$(( $(cat {d}/n 2>/dev/null || echo 0) + 1 )); echo $n > {d}/n; \
               echo $n >> {d}/seen ) 9>{d}/lock\n\
             sleep 0.3\n\
             ( flock 9; echo $(( $(cat {d}/n) - 1 )) > {d}/n ) 9>{d}/lock\n\
             export SSH_CONNECTION='127.0.0.1 50000 127.0.0.1 22'\n\
             exec sh -c \"$last\"\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, "n1\nn2\nn3\nn4\nn5\nn6\n").unwrap();
    let args =
        ["-n", "6", "--hostfile", hosts.to_str().unwrap(), "--ssh", wrapper.to_str().unwrap()];
    let mut cmd = rmpirun_env(
        &[&args[..], &["sh", "-c", "echo $RMPI_RANK"]].concat(),
        "RMPI_SSH_HANDSHAKES",
        "2",
    );
    cmd.env("XDG_CACHE_HOME", dir.path().join("cache"));
    let out = run(cmd, LIMIT);
    assert_eq!(out.code(), 0, "stderr: {}", out.stderr);
    let mut ranks: Vec<u32> = out.stdout.lines().map(|l| l.trim().parse().unwrap()).collect();
    ranks.sort_unstable();
    assert_eq!(ranks, (0..6).collect::<Vec<_>>());
    let seen = std::fs::read_to_string(dir.path().join("seen")).unwrap();
    let most = seen.lines().map(|l| l.trim().parse::<u32>().unwrap()).max();
    assert_eq!(most, Some(2), "concurrent handshakes seen: {seen:?}");
}
