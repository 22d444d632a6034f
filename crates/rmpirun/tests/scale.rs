//! Many ranks on one machine: `rmpirun -n 1024 hello` starts every rank, each answers once, the
//! job exits 0 and leaves no process behind (connections on demand: hello opens none; the
//! rendezvous and the node agent take a thousand ranks at once).

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{pids_with_env, rmpirun, run, unique_marker, wait_until_empty, workspace_example};

const RANKS: usize = 1024;

#[test]
fn a_thousand_ranks_say_hello_once_each_and_leave_nothing() {
    let hello = workspace_example("hello");
    let marker = unique_marker("RMPIRUN_SCALE");
    let mut cmd = Command::new(rmpirun());
    cmd.args(["-n", &RANKS.to_string()]).arg(&hello).env(&marker, "1").stdin(Stdio::null());
    let start = Instant::now();
    let out = run(cmd, Duration::from_secs(240));
    eprintln!("{RANKS} ranks of hello: {:?}", start.elapsed());
    assert_eq!(out.code(), 0, "stderr: {}", out.stderr);
    let mut seen = vec![0u32; RANKS];
    for line in out.stdout.lines() {
        let rest = line.strip_prefix("hello from rank ").expect(line);
        let (rank, rest) = rest.split_once(' ').expect(line);
        assert!(rest.starts_with(&format!("of {RANKS} on ")), "{line}");
        seen[rank.parse::<usize>().expect(line)] += 1;
    }
    let wrong: Vec<usize> = (0..RANKS).filter(|r| seen[*r] != 1).collect();
    assert!(wrong.is_empty(), "ranks not answering exactly once: {wrong:?}");
    let left = wait_until_empty(Duration::from_secs(5), || pids_with_env(&format!("{marker}=1")));
    assert!(left.is_empty(), "processes left behind: {left:?}");
}
