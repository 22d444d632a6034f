//! Every example, run the way a user runs it: through `rmpirun` on this machine.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// `rmpirun`, built in this test's profile and target directory (once per test process).
fn rmpirun() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        // .../target/<profile>/deps/examples-xxxx
        let exe = std::env::current_exe().expect("test executable path");
        let profile_dir = exe.parent().and_then(|d| d.parent()).expect("target/<profile>");
        let target_dir = profile_dir.parent().expect("target dir");
        let mut build = Command::new(env!("CARGO"));
        build.args(["build", "-q", "-p", "rmpirun", "--target-dir"]).arg(target_dir);
        if !cfg!(debug_assertions) {
            build.arg("--release");
        }
        let status = build.status().expect("running cargo build -p rmpirun");
        assert!(status.success(), "building rmpirun failed");
        profile_dir.join("rmpirun")
    })
    .clone()
}

fn run(n: usize, example: &str, args: &[&str]) -> String {
    let start = Instant::now();
    let out: Output = Command::new(rmpirun())
        .args(["--oversubscribe", "--timeout", "120", "-n", &n.to_string()])
        .arg(example_path(example))
        .args(args)
        .output()
        .expect("running rmpirun");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{example} on {n} ranks failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    eprintln!("{example} on {n} ranks: {:?}", start.elapsed());
    stdout
}

fn example_path(name: &str) -> PathBuf {
    PathBuf::from(match name {
        "hello" => env!("CARGO_BIN_EXE_hello"),
        "cpi" => env!("CARGO_BIN_EXE_cpi"),
        "mcpi" => env!("CARGO_BIN_EXE_mcpi"),
        "rowstats" => env!("CARGO_BIN_EXE_rowstats"),
        "ring" => env!("CARGO_BIN_EXE_ring"),
        "pingpong" => env!("CARGO_BIN_EXE_pingpong"),
        "particles" => env!("CARGO_BIN_EXE_particles"),
        "lifecycle" => env!("CARGO_BIN_EXE_lifecycle"),
        other => panic!("no example {other}"),
    })
}

/// The number after `key` in `text`.
fn number_after(text: &str, key: &str) -> f64 {
    let at = text.find(key).unwrap_or_else(|| panic!("{key:?} not in output:\n{text}")) + key.len();
    let num: String = text[at..]
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || ".-e".contains(*c))
        .collect();
    num.parse().unwrap_or_else(|_| panic!("no number after {key:?} in:\n{text}"))
}

#[test]
fn hello_names_every_rank_once() {
    let out = run(5, "hello", &[]);
    let mut ranks: Vec<usize> = out
        .lines()
        .filter_map(|l| l.strip_prefix("hello from rank "))
        .map(|rest| rest.split(' ').next().unwrap().parse().unwrap())
        .collect();
    ranks.sort();
    assert_eq!(ranks, (0..5).collect::<Vec<_>>(), "{out}");
    assert!(out.lines().all(|l| l.contains("of 5 on ")), "{out}");
}

#[test]
fn cpi_finds_pi() {
    for n in [1, 3, 4] {
        let out = run(n, "cpi", &["2000000"]);
        let pi = number_after(&out, "pi is approximately");
        assert!((pi - std::f64::consts::PI).abs() < 1e-10, "{out}");
        assert!(out.contains(&format!("2000000 intervals on {n} ranks")), "{out}");
    }
}

#[test]
fn monte_carlo_pi_is_close_and_reproducible() {
    let a = run(4, "mcpi", &["200000", "11"]);
    let pi = number_after(&a, "pi ~");
    assert!((pi - std::f64::consts::PI).abs() < 0.01, "{a}");
    assert!(a.contains("from 800000 darts on 4 ranks"), "{a}");
    // Same seed, same ranks: the same estimate.
    assert_eq!(a, run(4, "mcpi", &["200000", "11"]));
}

#[test]
fn rowstats_matches_the_serial_computation() {
    for n in [1, 3, 4] {
        let out = run(n, "rowstats", &["301", "512"]);
        assert!(out.contains("matches serial: yes"), "{out}");
        assert!(out.contains(&format!("301 rows x 512 columns over {n} ranks")), "{out}");
    }
}

#[test]
fn ring_token_adds_every_rank() {
    let out = run(6, "ring", &["25"]);
    assert!(out.contains("token after 25 laps of 6 ranks: 375 (expected 375)"), "{out}");
}

#[test]
fn pingpong_verifies_every_size() {
    let out = run(2, "pingpong", &[]);
    assert!(out.contains("all sizes verified"), "{out}");
    assert_eq!(out.lines().filter(|l| l.contains(" MB/s")).count(), 12, "{out}");
}

#[test]
fn derived_pod_structs_travel_with_rmpi_as_the_only_dependency() {
    let out = run(4, "particles", &["500"]);
    assert!(out.contains("rank 0 got 1500 particles of 40 bytes from 3 ranks, 0 wrong"), "{out}");
}

#[test]
fn examples_run_bare_as_singletons() {
    let out = Command::new(example_path("cpi")).arg("1000").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("1000 intervals on 1 ranks"));
    let t = Instant::now();
    let out = Command::new(example_path("hello")).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("hello from rank 0 of 1"));
    assert!(t.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_second_init_and_use_after_finalize_fail_alike_bare_and_launched() {
    let out = run(3, "lifecycle", &[]);
    assert_eq!(out.matches("lifecycle ok on a world of 3").count(), 3, "{out}");
    let out = Command::new(example_path("lifecycle")).output().unwrap();
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "bare: {stdout}{stderr}");
    assert!(stdout.contains("lifecycle ok on a world of 1"), "{stdout}");
}
