//! A throw-away Slurm cluster on this machine, from Debian's slurmctld/slurmd packages.
//!
//! Layout for tag `T` in test process `PID` (each test its own tag, so its own names and subnet
//! 10.214.T.0/24, which no other test uses):
//! * `rpmi-PID-tT-br`: a namespace holding bridge `br0`;
//! * `rpmi-PID-tT-head` (10.214.T.1, host name `head`): slurmctld, and where `srun`/`salloc` run;
//! * `rpmi-PID-tT-hK` (10.214.T.(K+1), host name `hK`): one slurmd each.
//!
//! Every daemon runs in its own UTS and mount namespace (its host name, and `/etc/hosts`
//! bind-mounted from the cluster's own file), entered with `nsenter --net` (not `ip netns exec`,
//! which remounts /sys and breaks slurmd's cgroup set-up). Authentication is `auth/none`; all
//! state lives in a temporary directory. Dropping the cluster kills every process left in its
//! namespaces by PID, then removes the namespaces.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Serializes the Slurm tests of one test binary: each starts a cluster and 16 ranks.
pub static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Why a Slurm cluster cannot be built here, or `None` when it can. With `RMPI_REQUIRE_NETNS=1`
/// (CI) a reason is a test failure instead of a skip.
pub fn unavailable() -> Option<String> {
    // Root and network namespaces: the same needs as the ssh test hosts.
    if let Some(why) = super::netns::unavailable() {
        return Some(why);
    }
    let tools = ["/usr/sbin/slurmctld", "/usr/sbin/slurmd", "/usr/bin/srun", "/usr/bin/nsenter"];
    let missing = tools.iter().find(|t| !Path::new(t).exists())?;
    let why = format!("{missing} missing (install slurmctld, slurmd, slurm-client)");
    let required = std::env::var("RMPI_REQUIRE_NETNS").is_ok_and(|v| v == "1");
    assert!(!required, "RMPI_REQUIRE_NETNS=1 but the Slurm tests cannot run: {why}");
    Some(why)
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().expect("run setup command");
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// The cluster.
pub struct SlurmCluster {
    /// State directory: slurm.conf, logs, spool.
    pub dir: tempfile::TempDir,
    /// The head namespace (slurmctld, srun).
    pub head_ns: String,
    /// Node namespaces, `h1..hN` in order.
    pub node_ns: Vec<String>,
    /// Path of slurm.conf.
    pub conf: PathBuf,
    daemons: Vec<Child>,
    namespaces: Vec<String>,
}

impl SlurmCluster {
    /// Brings up `nodes` nodes with `cpus` CPUs each and waits until all are idle.
    pub fn up(tag: u8, nodes: usize, cpus: usize) -> SlurmCluster {
        let dir = tempfile::Builder::new().prefix("rmpi-slurm").tempdir().expect("tempdir");
        let prefix = format!("rpmi-{}-t{tag}", std::process::id());
        let mut c = SlurmCluster {
            dir,
            head_ns: format!("{prefix}-head"),
            node_ns: (1..=nodes).map(|k| format!("{prefix}-h{k}")).collect(),
            conf: PathBuf::new(),
            daemons: Vec::new(),
            namespaces: Vec::new(),
        };
        let bridge = format!("{prefix}-br");
        c.add_ns(&bridge);
        sh(&["ip", "-n", &bridge, "link", "add", "br0", "type", "bridge"]);
        sh(&["ip", "-n", &bridge, "link", "set", "br0", "up"]);
        let head = c.head_ns.clone();
        c.add_member(&bridge, &head, "head", &format!("10.214.{tag}.1"));
        for k in 1..=nodes {
            let ns = c.node_ns[k - 1].clone();
            c.add_member(&bridge, &ns, &format!("h{k}"), &format!("10.214.{tag}.{}", k + 1));
        }
        c.write_config(tag, nodes, cpus);
        let t0 = Instant::now();
        c.start_daemon(&head, "head", &["/usr/sbin/slurmctld", "-D", "-i", "-f"]);
        for k in 1..=nodes {
            let ns = c.node_ns[k - 1].clone();
            let name = format!("h{k}");
            c.start_daemon(&ns, &name, &["/usr/sbin/slurmd", "-D", "-N", &name, "-f"]);
        }
        c.wait_idle(nodes, Duration::from_secs(60));
        eprintln!("slurm cluster t{tag}: {nodes} nodes idle after {:?}", t0.elapsed());
        c
    }

    fn add_ns(&mut self, ns: &str) {
        sh(&["ip", "netns", "add", ns]);
        self.namespaces.push(ns.to_string());
        sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
    }

    /// Adds namespace `ns` with `eth0` at `addr`/24, plugged into the bridge as port `port`.
    fn add_member(&mut self, bridge: &str, ns: &str, port: &str, addr: &str) {
        self.add_ns(ns);
        sh(&[
            "ip", "-n", bridge, "link", "add", port, "type", "veth", "peer", "name", "eth0",
            "netns", ns,
        ]);
        sh(&["ip", "-n", bridge, "link", "set", port, "master", "br0", "up"]);
        sh(&["ip", "-n", ns, "addr", "add", &format!("{addr}/24"), "dev", "eth0"]);
        sh(&["ip", "-n", ns, "link", "set", "eth0", "up"]);
    }

    fn write_config(&mut self, tag: u8, nodes: usize, cpus: usize) {
        let d = self.dir.path().display().to_string();
        let mut hosts = String::from("127.0.0.1 localhost\n");
        let _ = writeln!(hosts, "10.214.{tag}.1 head");
        for k in 1..=nodes {
            let _ = writeln!(hosts, "10.214.{tag}.{} h{k}", k + 1);
        }
        std::fs::write(self.dir.path().join("hosts"), hosts).expect("write hosts");
        std::fs::write(self.dir.path().join("plugstack.conf"), "").expect("write plugstack");
        let mut conf = format!(
            "ClusterName=rmpitest\n\
             SlurmctldHost=head(10.214.{tag}.1)\n\
             AuthType=auth/none\nCredType=cred/none\n\
             SlurmUser=root\nSlurmdUser=root\n\
             SlurmctldPort=6817\nSlurmdPort=6818\n\
             StateSaveLocation={d}/ctld\nSlurmctldPidFile={d}/ctld/slurmctld.pid\n\
             SlurmctldLogFile={d}/ctld/slurmctld.log\n\
             SlurmdSpoolDir={d}/%n/spool\nSlurmdPidFile={d}/%n/slurmd.pid\n\
             SlurmdLogFile={d}/%n/slurmd.log\nTmpFS={d}/%n/tmp\n\
             PlugStackConfig={d}/plugstack.conf\n\
             ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\n\
             JobAcctGatherType=jobacct_gather/none\nAccountingStorageType=accounting_storage/none\n\
             JobContainerType=job_container/none\n\
             SelectType=select/cons_tres\nSelectTypeParameters=CR_CPU\n\
             SlurmdParameters=config_overrides\nSchedulerType=sched/builtin\n\
             MpiDefault=none\nReturnToService=2\nPropagateResourceLimits=NONE\n\
             MailProg=/bin/true\nMinJobAge=10\nKillWait=2\nMessageTimeout=10\n\
             SlurmctldTimeout=30\nSlurmdTimeout=30\n"
        );
        std::fs::create_dir_all(self.dir.path().join("ctld")).expect("mkdir ctld");
        for k in 1..=nodes {
            let _ = writeln!(
                conf,
                "NodeName=h{k} NodeHostname=h{k} NodeAddr=10.214.{tag}.{} CPUs={cpus} \
                 RealMemory=1000 State=UNKNOWN",
                k + 1
            );
            for sub in ["spool", "tmp"] {
                std::fs::create_dir_all(self.dir.path().join(format!("h{k}/{sub}")))
                    .expect("mkdir node dir");
            }
        }
        conf.push_str("PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n");
        self.conf = self.dir.path().join("slurm.conf");
        std::fs::write(&self.conf, conf).expect("write slurm.conf");
    }

    /// Starts `argv conf` in namespace `ns` under host name `name`, with this cluster's
    /// /etc/hosts; the child's pid is the daemon's (nsenter, unshare and sh all exec).
    fn start_daemon(&mut self, ns: &str, name: &str, argv: &[&str]) {
        let hosts = self.dir.path().join("hosts");
        let log = std::fs::File::create(self.dir.path().join(format!("{name}.out"))).expect("log");
        let script = format!(
            "hostname {name} && mount --bind {} /etc/hosts && exec \"$@\"",
            hosts.display()
        );
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{ns}"))
            .args(["--", "unshare", "--uts", "--mount", "--propagation", "private", "--"])
            .args(["sh", "-c", &script, "sh"])
            .args(argv)
            .arg(&self.conf)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start a Slurm daemon");
        self.daemons.push(child);
    }

    fn wait_idle(&mut self, nodes: usize, limit: Duration) {
        let t0 = Instant::now();
        loop {
            let out = self.head(&["sinfo", "-h", "-N", "-o", "%N %T"]).output().expect("sinfo");
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            let idle = text.lines().filter(|l| l.ends_with(" idle")).count();
            if idle == nodes {
                return;
            }
            for d in &mut self.daemons {
                if let Ok(Some(st)) = d.try_wait() {
                    panic!("a Slurm daemon exited during start-up ({st}); logs:\n{}", self.logs());
                }
            }
            assert!(
                t0.elapsed() < limit,
                "nodes not idle after {limit:?}: {text}\n{}\nlogs:\n{}",
                String::from_utf8_lossy(&out.stderr),
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The daemons' logs, for failure messages.
    pub fn logs(&self) -> String {
        let mut all = String::new();
        let mut files = vec![self.dir.path().join("ctld/slurmctld.log")];
        for k in 1..=self.node_ns.len() {
            files.push(self.dir.path().join(format!("h{k}/slurmd.log")));
        }
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            let _ = writeln!(all, "== {}", f.display());
            for l in tail.iter().rev() {
                let _ = writeln!(all, "{l}");
            }
        }
        all
    }

    /// A command run in the head namespace (with the cluster's /etc/hosts, as on a login node
    /// that resolves the node names), with `SLURM_CONF` set and no other Slurm variable.
    pub fn head(&self, argv: &[&str]) -> Command {
        let hosts = self.dir.path().join("hosts");
        let script = format!("mount --bind {} /etc/hosts && exec \"$@\"", hosts.display());
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", self.head_ns))
            .args(["--", "unshare", "--mount", "--propagation", "private", "--"])
            .args(["sh", "-c", &script, "sh"])
            .args(argv);
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().to_string();
            if k.starts_with("SLURM_") || k.starts_with("PMI_") || k.starts_with("RMPI_") {
                cmd.env_remove(&k);
            }
        }
        // Ranks run in the cluster's directory (a crashing test rank may leave a core file).
        cmd.env("SLURM_CONF", &self.conf).stdin(Stdio::null()).current_dir(self.dir.path());
        cmd
    }

    /// `srun` with `args`, in the head namespace.
    pub fn srun(&self, args: &[&str]) -> Command {
        let mut argv = vec!["srun"];
        argv.extend_from_slice(args);
        self.head(&argv)
    }

    /// Pids of processes in node namespaces other than the slurmd we started.
    pub fn leftovers(&self) -> Vec<(String, i32, String)> {
        let ours: Vec<i32> = self.daemons.iter().map(|d| d.id() as i32).collect();
        let mut out = Vec::new();
        for ns in &self.node_ns {
            for pid in pids_in(ns) {
                if !ours.contains(&pid) && !is_zombie(pid) {
                    out.push((ns.clone(), pid, cmdline_of(pid)));
                }
            }
        }
        out
    }

    /// Waits up to `limit` for every node to hold nothing but its slurmd.
    pub fn assert_nothing_left(&self, limit: Duration) {
        let t0 = Instant::now();
        loop {
            let left = self.leftovers();
            if left.is_empty() {
                return;
            }
            assert!(t0.elapsed() < limit, "processes left on the nodes after {limit:?}: {left:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn pids_in(ns: &str) -> Vec<i32> {
    let out = Command::new("ip").args(["netns", "pids", ns]).output();
    out.map(|o| {
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    })
    .unwrap_or_default()
}

fn is_zombie(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        || stat.is_empty()
}

fn cmdline_of(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " ").trim().to_string())
        .unwrap_or_default()
}

impl Drop for SlurmCluster {
    fn drop(&mut self) {
        for d in &mut self.daemons {
            let _ = d.kill();
            let _ = d.wait();
        }
        // Whatever is still in our namespaces (step daemons, ranks) was started by this cluster.
        for ns in self.namespaces.iter().rev() {
            for pid in pids_in(ns) {
                // SAFETY: kill(2) on a pid read from our own namespace; no memory is involved.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        for ns in self.namespaces.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}
