//! rmpirun inside a Slurm allocation (`salloc`, `sbatch`): with no hostfile and no `-H`, the
//! ranks are started by one `srun` step over the allocation's nodes instead of over ssh.
//!
//! rmpirun still runs the job's rendezvous server; srun starts the ranks, numbers them
//! (`SLURM_PROCID`), forwards their output and ends the step when one fails
//! (`--kill-on-bad-exit`). The ranks read the usual `RMPI_*` contract, with rank, local rank and
//! host taken from srun's variables.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use crate::hostfile::HostEntry;
use crate::job::{exit_status, route_to, start_rendezvous, EXIT_TIMEOUT};
use crate::output::{message, progress};

/// The allocation this process runs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    /// Node names, expanded (`node[01-02]` is `node01`, `node02`).
    pub nodes: Vec<String>,
    /// Tasks allocated on each node, in the same order.
    pub tasks: Vec<usize>,
}

impl Allocation {
    /// The allocation named by `SLURM_JOB_NODELIST` and `SLURM_TASKS_PER_NODE` (or, without
    /// tasks, `SLURM_JOB_CPUS_PER_NODE`), read through `get`. `Ok(None)` outside an allocation.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, String> {
        let Some(list) = get("SLURM_JOB_NODELIST").filter(|l| !l.trim().is_empty()) else {
            return Ok(None);
        };
        let nodes = expand_nodelist(&list)?;
        let counts = get("SLURM_TASKS_PER_NODE")
            .or_else(|| get("SLURM_JOB_CPUS_PER_NODE"))
            .map(|c| expand_counts(&c))
            .transpose()?
            .unwrap_or_else(|| vec![1; nodes.len()]);
        if counts.len() != nodes.len() {
            return Err(format!(
                "SLURM_JOB_NODELIST names {} nodes but the task counts name {}",
                nodes.len(),
                counts.len()
            ));
        }
        Ok(Some(Allocation { nodes, tasks: counts }))
    }

    /// Tasks in the whole allocation.
    pub fn slots(&self) -> usize {
        self.tasks.iter().sum()
    }
}

/// Expands a Slurm host list (`h[1-4]`, `node[01-04,07]`, `r[1-2]n[1-2]`): the one
/// implementation, shared with the PMI bootstrap.
///
/// ```
/// use rmpirun::slurm::expand_nodelist;
/// assert_eq!(expand_nodelist("node[01-03,07]").unwrap(), ["node01", "node02", "node03", "node07"]);
/// assert_eq!(expand_nodelist("a,b[9-10]").unwrap(), ["a", "b9", "b10"]);
/// assert!(expand_nodelist("h[3-1]").is_err());
/// ```
pub use rmpi_transport::pmi::layout::expand_nodelist;

/// Expands Slurm's task counts: `4(x3),2` is `[4, 4, 4, 2]`.
pub fn expand_counts(s: &str) -> Result<Vec<usize>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || format!("task count {part:?} in {s:?} is not N or N(xM)");
        let (n, times) = match part.split_once("(x") {
            Some((n, m)) => (n, m.strip_suffix(')').ok_or_else(bad)?),
            None => (part, "1"),
        };
        let n: usize = n.parse().map_err(|_| bad())?;
        let times: usize = times.parse().map_err(|_| bad())?;
        if times > 1_000_000 {
            return Err(bad());
        }
        out.extend(std::iter::repeat_n(n, times));
    }
    Ok(out)
}

/// What the srun path needs from the command line.
pub struct SrunJob {
    /// The allocation.
    pub alloc: Allocation,
    /// `-n` (default: every task of the allocation).
    pub np: Option<usize>,
    /// Program and arguments.
    pub argv: Vec<String>,
    /// `-x` variables.
    pub exports: Vec<(String, String)>,
    /// `--wdir`.
    pub wdir: Option<String>,
    /// `--tag-output` (srun's `--label`).
    pub tag_output: bool,
    /// `--timeout`.
    pub timeout: Option<Duration>,
    /// `--boot-timeout`.
    pub boot_timeout: Duration,
    /// `-v`.
    pub verbose: bool,
}

/// Runs the job as one srun step; returns rmpirun's exit status.
pub async fn run(job: SrunJob) -> i32 {
    exit_status(run_inner(job).await)
}

async fn run_inner(job: SrunJob) -> Result<i32, String> {
    use tokio::signal::unix::{signal, SignalKind};
    let np = job.np.unwrap_or(job.alloc.slots());
    if np == 0 || np > 65_535 {
        return Err(format!("-n {np}: must be 1..=65535"));
    }
    // This machine's address as the first node sees it (no packet is sent).
    let first = HostEntry {
        name: job.alloc.nodes[0].clone(),
        user: None,
        port: Some(6818),
        slots: 1,
        max_slots: None,
    };
    let route = route_to(&first).ok_or_else(|| {
        format!("cannot find an address of this machine that node {} can reach", first.name)
    })?;
    let any: IpAddr =
        if route.is_ipv4() { Ipv4Addr::UNSPECIFIED.into() } else { Ipv6Addr::UNSPECIFIED.into() };
    let (token, port) = start_rendezvous(any, np, job.boot_timeout)?;
    let rendezvous = SocketAddr::new(route, port);

    let nodes = job.alloc.nodes.len().min(np);
    let mut cmd = tokio::process::Command::new("srun");
    cmd.args(["--mpi=none", "--kill-on-bad-exit=1", "--ntasks"])
        .arg(np.to_string())
        .arg("--nodes")
        .arg(nodes.to_string());
    if np > job.alloc.slots() {
        cmd.arg("--overcommit");
    }
    if job.tag_output {
        cmd.arg("--label");
    }
    if let Some(d) = &job.wdir {
        cmd.arg(format!("--chdir={d}"));
    }
    cmd.arg("--").args(&job.argv);
    // The contract travels in srun's environment (exported to every task), never on its
    // command line; srun numbers the ranks.
    cmd.envs(rmpi_transport::env::job_vars(np, &token, job.boot_timeout))
        .envs([rmpi_transport::env::rendezvous_var(rendezvous)])
        .envs(job.exports.iter().cloned())
        .env_remove(rmpi_transport::env::RANK)
        .kill_on_drop(true);
    if job.verbose {
        progress(&format!(
            "inside Slurm allocation {} ({} nodes): srun --ntasks {np} --nodes {nodes}; \
             rendezvous on {rendezvous}",
            std::env::var("SLURM_JOB_ID").unwrap_or_default(),
            job.alloc.nodes.len()
        ));
    }
    let mut child = cmd.spawn().map_err(|e| format!("cannot run srun: {e}"))?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(|e| format!("signals: {e}"))?;
    let mut sighup = signal(SignalKind::hangup()).map_err(|e| format!("signals: {e}"))?;
    let timeout = async {
        match job.timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(timeout);
    let mut ending: Option<i32> = None;
    loop {
        tokio::select! {
            st = child.wait() => {
                let st = st.map_err(|e| format!("waiting for srun: {e}"))?;
                use std::os::unix::process::ExitStatusExt;
                let code = st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0));
                return Ok(ending.unwrap_or(code));
            }
            _ = sigterm.recv() => ending = ending.or(Some(128 + libc::SIGTERM)),
            _ = sighup.recv() => ending = ending.or(Some(128 + libc::SIGHUP)),
            _ = &mut timeout, if ending.is_none() => {
                let secs = job.timeout.map(|t| t.as_secs_f64()).unwrap_or(0.0);
                message(&format!("job timed out after {secs} s; ending the job"));
                ending = Some(EXIT_TIMEOUT);
            }
        }
        // srun cancels the step on SIGTERM (a Ctrl-C reaches srun directly).
        if let Some(pid) = child.id() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_lists_and_counts() {
        assert_eq!(expand_nodelist("h[1-4]").unwrap(), ["h1", "h2", "h3", "h4"]);
        assert_eq!(
            expand_nodelist("r[1-2]n[01-02],login").unwrap(),
            ["r1n01", "r1n02", "r2n01", "r2n02", "login"]
        );
        assert!(expand_nodelist("h[1-").is_err());
        assert!(expand_nodelist("h[a-b]").is_err());
        assert!(expand_nodelist("").is_err());
        assert_eq!(expand_counts("4(x3),2").unwrap(), [4, 4, 4, 2]);
        assert!(expand_counts("4(x").is_err());
        let a = Allocation::from_lookup(|k| match k {
            "SLURM_JOB_NODELIST" => Some("node[01-04,07]".into()),
            "SLURM_TASKS_PER_NODE" => Some("2(x4),1".into()),
            _ => None,
        })
        .unwrap()
        .unwrap();
        assert_eq!(a.nodes.len(), 5);
        assert_eq!((a.nodes[4].as_str(), a.slots()), ("node07", 9));
        let e = Allocation::from_lookup(|k| match k {
            "SLURM_JOB_NODELIST" => Some("h[1-2]".into()),
            "SLURM_TASKS_PER_NODE" => Some("1".into()),
            _ => None,
        })
        .unwrap_err();
        assert!(e.contains("2 nodes"), "{e}");
        assert!(Allocation::from_lookup(|_| None).unwrap().is_none());
    }
}
