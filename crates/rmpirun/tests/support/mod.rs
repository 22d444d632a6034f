//! Helpers shared by rmpirun's integration tests: running the binary with a time limit, finding
//! the test rank program, and finding leftover processes.

#![allow(dead_code)]

pub mod netns;
pub mod slurm;

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The rmpirun binary under test.
pub fn rmpirun() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rmpirun"))
}

/// The `mesh_check` example (a real rmpi rank program), built on demand.
pub fn mesh_check() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            // tests live in target/<profile>/deps; examples in target/<profile>/examples.
            let exe = std::env::current_exe().expect("test exe");
            let profile_dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
            let mut cmd = Command::new(env!("CARGO"));
            cmd.args(["build", "--quiet", "--example", "mesh_check", "--manifest-path"])
                .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"));
            if profile_dir.file_name().is_some_and(|n| n == "release") {
                cmd.arg("--release");
            }
            assert!(cargo_build(cmd), "building the mesh_check example failed");
            let path = profile_dir.join("examples").join("mesh_check");
            assert!(path.exists(), "{} missing", path.display());
            path
        })
        .clone()
}

/// A program of the workspace's `rmpi-examples` package (`hello`, `cpi`, ...), built on demand
/// with the same profile as this test.
pub fn workspace_example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    let profile_dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["build", "--quiet", "-p", "rmpi-examples", "--bin", name, "--manifest-path"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.toml"));
    if release {
        cmd.arg("--release");
    }
    assert!(cargo_build(cmd), "building rmpi-examples {name} failed");
    let path = profile_dir.join(name);
    assert!(path.exists(), "{} missing", path.display());
    path
}

/// Builds example `name` of workspace package `package` in this test's profile; its path.
pub fn package_example(package: &str, name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    let profile_dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["build", "--quiet", "-p", package, "--example", name, "--manifest-path"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.toml"));
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    assert!(cargo_build(cmd), "building {package} example {name} failed");
    let path = profile_dir.join("examples").join(name);
    assert!(path.exists(), "{} missing", path.display());
    path
}

/// Runs a `cargo build` command, for at most 15 minutes (a cold build on a small machine).
fn cargo_build(mut cmd: Command) -> bool {
    let mut child = cmd.spawn().expect("run cargo");
    let t0 = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait for cargo") {
            return status.success();
        }
        if t0.elapsed() > Duration::from_secs(900) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("cargo build did not finish within 15 minutes");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What a finished process printed.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Finished {
    /// Exit code (or 128+signal).
    pub fn code(&self) -> i32 {
        use std::os::unix::process::ExitStatusExt;
        self.status.code().unwrap_or_else(|| 128 + self.status.signal().unwrap_or(0))
    }
}

/// A started process whose output is collected in the background.
pub struct Running {
    pub child: Child,
    out: std::thread::JoinHandle<String>,
    err: std::thread::JoinHandle<String>,
    started: Instant,
    /// Lines of stdout seen so far (shared with the reader thread).
    pub lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

/// Starts `cmd` with piped output (stdin from /dev/null unless set by the caller).
pub fn start(mut cmd: Command) -> Running {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd.spawn().expect("spawn");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let shared = lines.clone();
    let out = std::thread::spawn(move || {
        let mut all = String::new();
        let mut buf = [0u8; 8192];
        let mut partial = String::new();
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            let text = String::from_utf8_lossy(&buf[..n]);
            all.push_str(&text);
            partial.push_str(&text);
            while let Some(pos) = partial.find('\n') {
                let line: String = partial.drain(..=pos).collect();
                shared.lock().unwrap().push(line.trim_end().to_string());
            }
        }
        all
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    Running { child, out, err, started, lines }
}

impl Running {
    /// Waits until `pred` holds for the stdout lines seen so far, or panics after `limit`.
    pub fn wait_for_lines(&self, limit: Duration, pred: impl Fn(&[String]) -> bool) {
        let t0 = Instant::now();
        while !pred(&self.lines.lock().unwrap()) {
            assert!(t0.elapsed() < limit, "expected output did not come: {:?}", self.lines);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the exit (killing the process after `limit`, which fails the test).
    pub fn finish(mut self, limit: Duration) -> Finished {
        let t0 = Instant::now();
        let status = loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                break st;
            }
            if t0.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("process did not exit within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let elapsed = self.started.elapsed();
        let stdout = self.out.join().unwrap_or_default();
        let stderr = self.err.join().unwrap_or_default();
        Finished { status, stdout, stderr, elapsed }
    }
}

/// Runs `cmd` to its end within `limit`.
pub fn run(cmd: Command, limit: Duration) -> Finished {
    start(cmd).finish(limit)
}

/// PIDs of live processes whose environment holds `needle` (e.g. `MARKER=unique`).
pub fn pids_with_env(needle: &str) -> Vec<i32> {
    let mut found = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else { return found };
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid == std::process::id() as i32 || !is_running(pid) {
            continue;
        }
        if let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) {
            if env.split(|&b| b == 0).any(|v| v == needle.as_bytes()) {
                found.push(pid);
            }
        }
    }
    found
}

pub use rmpirun::procs::is_running;

/// The command name of `pid` (`/proc/PID/comm`), empty when gone.
pub fn comm_of(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim().to_string()
}

/// Polls `f` until it returns an empty list or `limit` passes; returns the last list.
pub fn wait_until_empty<T>(limit: Duration, mut f: impl FnMut() -> Vec<T>) -> Vec<T> {
    let t0 = Instant::now();
    loop {
        let v = f();
        if v.is_empty() || t0.elapsed() > limit {
            return v;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A variable name unique to this test run, for `-x NAME` and `pids_with_env("NAME=1")`.
pub fn unique_marker(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{name}_{}_{nanos}", std::process::id())
}

/// Sends `sig` to `pid`.
pub fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) on a pid this test started (or found as its job's process).
    unsafe {
        libc::kill(pid, sig);
    }
}

/// A CPU list in the kernel's format (`0-3,6`).
pub fn parse_cpu_list(s: &str) -> Vec<usize> {
    let mut out = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => out.extend(a.parse::<usize>().unwrap()..=b.parse::<usize>().unwrap()),
            None => out.push(part.parse().unwrap()),
        }
    }
    out
}

/// The rank program that prints where it may run, for binding tests.
pub const PRINT_CPUS: &str = "grep Cpus_allowed_list /proc/self/status";

/// The CPU list each rank printed with [`PRINT_CPUS`] under `--tag-output`, by rank.
pub fn cpus_by_rank(stdout: &str, ranks: usize) -> Vec<Vec<usize>> {
    let mut out = vec![None; ranks];
    for line in stdout.lines() {
        let (tag, rest) = line.split_once("] ").unwrap_or_else(|| panic!("untagged: {line}"));
        let rank: usize = tag.trim_start_matches('[').parse().unwrap();
        let list = rest.strip_prefix("Cpus_allowed_list:").unwrap_or_else(|| panic!("{line}"));
        out[rank] = Some(parse_cpu_list(list));
    }
    out.into_iter().enumerate().map(|(r, c)| c.unwrap_or_else(|| panic!("rank {r}"))).collect()
}
