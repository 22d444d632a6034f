//! End-to-end runs of the OSU-style programs: real processes joined through the launch
//! contract (`docs/launch-contract.md`: a rendezvous server and `RMPI_*` variables), and the
//! raw-TCP baselines on their own. Each run has a deadline; a rank still running past it is
//! killed (by its process id).

use std::io::Read;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rmpi::rendezvous::RendezvousServer;
use rmpi::token::JobToken;

const DEADLINE: Duration = Duration::from_secs(60);

/// What a run printed and how it ended.
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Waits for `child` until `deadline`, killing it when it is late; returns its output.
fn finish(mut child: Child, deadline: Instant) -> Run {
    let ok = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status.success(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break false;
            }
        }
    };
    let (mut stdout, mut stderr) = (String::new(), String::new());
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut stdout);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    Run { ok, stdout, stderr }
}

/// Starts `n` ranks of `exe args` as a job; returns every rank's run, in rank order.
fn launch(n: usize, exe: &str, args: &[&str]) -> Vec<Run> {
    let token = JobToken::generate();
    let server =
        RendezvousServer::bind(SocketAddr::from(([127, 0, 0, 1], 0)), n, token, DEADLINE).unwrap();
    let addr = server.local_addr();
    let server = server.spawn();
    let deadline = Instant::now() + DEADLINE;
    let children: Vec<Child> = (0..n)
        .map(|rank| {
            Command::new(exe)
                .args(args)
                .env("RMPI_SIZE", n.to_string())
                .env("RMPI_RANK", rank.to_string())
                .env("RMPI_RENDEZVOUS", addr.to_string())
                .env("RMPI_TOKEN", token.to_hex())
                .env("RMPI_LOCAL_SIZE", n.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    // Ranks print little (rank 0 a short table), so the pipes cannot fill before exit.
    let runs: Vec<Run> = children.into_iter().map(|c| finish(c, deadline)).collect();
    let _ = server.join();
    runs
}

/// The rows of a table: (size, first value), after checking the `#` header lines.
fn rows(out: &str, columns: &str) -> Vec<(usize, f64)> {
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.len() >= 2, "no table in {out:?}");
    assert!(lines[0].starts_with("# ") && lines[0].contains("OSU-style"), "{out}");
    assert_eq!(lines[1], columns, "{out}");
    lines[2..]
        .iter()
        .map(|l| {
            let mut f = l.split_whitespace();
            let size = f.next().unwrap().parse().unwrap();
            let value: f64 = f.next().unwrap().parse().unwrap();
            assert!(value.is_finite() && value >= 0.0, "{l}");
            (size, value)
        })
        .collect()
}

fn check_job(runs: &[Run]) {
    for (rank, r) in runs.iter().enumerate() {
        assert!(r.ok, "rank {rank} failed: {}", r.stderr);
        if rank > 0 {
            assert!(r.stdout.is_empty(), "rank {rank} printed {:?}", r.stdout);
        }
    }
}

#[test]
fn latency_and_bandwidth_tables_over_two_processes() {
    let runs = launch(2, env!("CARGO_BIN_EXE_osu_latency"), &["-m", "0:4096", "-i", "50"]);
    check_job(&runs);
    let lat = rows(&runs[0].stdout, "# Size          Latency (us)");
    let sizes: Vec<usize> = lat.iter().map(|r| r.0).collect();
    assert_eq!(sizes, vec![0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096]);
    assert!(lat.iter().all(|r| r.1 > 0.0));

    let runs = launch(2, env!("CARGO_BIN_EXE_osu_bw"), &["-m", "1024:65536", "-i", "5"]);
    check_job(&runs);
    let bw = rows(&runs[0].stdout, "# Size      Bandwidth (MB/s)");
    assert_eq!(bw.len(), 7);
    assert!(bw.iter().all(|r| r.1 > 0.0));
}

#[test]
fn p2p_tests_refuse_three_ranks() {
    let runs = launch(3, env!("CARGO_BIN_EXE_osu_latency"), &["-m", "8:8", "-i", "5"]);
    assert!(runs.iter().all(|r| !r.ok));
    assert!(runs[0].stderr.contains("exactly 2 ranks"), "{}", runs[0].stderr);
}

#[test]
fn collective_tables_over_three_processes() {
    let programs = [
        env!("CARGO_BIN_EXE_osu_bcast"),
        env!("CARGO_BIN_EXE_osu_reduce"),
        env!("CARGO_BIN_EXE_osu_allreduce"),
        env!("CARGO_BIN_EXE_osu_gather"),
        env!("CARGO_BIN_EXE_osu_scatter"),
        env!("CARGO_BIN_EXE_osu_allgather"),
        env!("CARGO_BIN_EXE_osu_alltoall"),
        env!("CARGO_BIN_EXE_osu_reduce_scatter"),
        env!("CARGO_BIN_EXE_osu_scan"),
    ];
    for exe in programs {
        let runs = launch(3, exe, &["-m", "8:1024", "-i", "20", "-f"]);
        check_job(&runs);
        let out = &runs[0].stdout;
        assert!(out.lines().next().unwrap().ends_with("(3 ranks)"), "{out}");
        let table = rows(
            out,
            "# Size       Avg Latency(us)   Min Latency(us)   Max Latency(us)  Iterations",
        );
        let sizes: Vec<usize> = table.iter().map(|r| r.0).collect();
        assert_eq!(sizes, vec![8, 16, 32, 64, 128, 256, 512, 1024], "{exe}");
        for line in out.lines().skip(2) {
            let v: Vec<f64> = line.split_whitespace().map(|x| x.parse().unwrap()).collect();
            // avg between min and max, 20 iterations.
            assert!(v[2] <= v[1] + 1e-9 && v[1] <= v[3] + 1e-9, "{exe}: {line}");
            assert_eq!(v[4], 20.0);
        }
    }
    let runs = launch(3, env!("CARGO_BIN_EXE_osu_barrier"), &["-i", "50"]);
    check_job(&runs);
    let table = rows(&runs[0].stdout, "# Size       Avg Latency(us)");
    assert_eq!(table.len(), 1);
    assert!(table[0].1 > 0.0);
}

#[test]
fn raw_tcp_baselines_run_alone() {
    for (exe, columns) in [
        (env!("CARGO_BIN_EXE_osu_tcp_latency"), "# Size          Latency (us)"),
        (env!("CARGO_BIN_EXE_osu_tcp_bw"), "# Size      Bandwidth (MB/s)"),
    ] {
        let child = Command::new(exe)
            .args(["-m", "0:65536", "-i", "10"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let run = finish(child, Instant::now() + DEADLINE);
        assert!(run.ok, "{exe}: {}", run.stderr);
        let table = rows(&run.stdout, columns);
        // Size 0 is skipped: a socket has no empty messages.
        assert_eq!(table.first().map(|r| r.0), Some(1), "{}", run.stdout);
        assert_eq!(table.len(), 17);
        assert!(table.iter().all(|r| r.1 > 0.0));
    }
}

#[test]
fn bad_options_fail_before_joining() {
    let out =
        Command::new(env!("CARGO_BIN_EXE_osu_allreduce")).args(["-m", "64:8"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("larger than MAX"));
}
