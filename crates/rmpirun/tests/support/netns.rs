//! A throw-away cluster on this machine: network namespaces joined by veth pairs to a bridge that
//! sits in its own namespace, one real `sshd` per host namespace, a generated client key and a
//! pre-filled known_hosts, and an ssh client config (`ssh -F`) that touches no user file.
//!
//! Layout for tag `T` (each test uses its own tag, so its own names and subnet) in the test process
//! `PID`:
//! * `rmpirun-PID-tT-br`: the bridge `br0`;
//! * `rmpirun-PID-tT-head` (10.213.T.1, fd00:213:T::1): where `rmpirun` runs;
//! * `rmpirun-PID-tT-hN` (10.213.T.(10+N), fd00:213:T::(10+N)): test host `hN`, sshd on port 22
//!   (or 2222 when asked).
//!
//! Inside every namespace `/etc/hosts` (bind-mounted by `ip netns exec` from
//! `/etc/netns/NS/hosts`) maps all names, and maps the namespace's own name to 127.0.0.1, like a
//! Debian machine whose hostname resolves to loopback. Logins on the test hosts do not run this
//! machine's `~/.bashrc` ([`Cluster::stock_login`]). Everything is removed on drop.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Serializes cluster tests: they are timing-sensitive and heavy for a small machine.
pub static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Options of a cluster.
#[derive(Debug, Clone)]
pub struct Options {
    /// Number of hosts `h1..hN`.
    pub hosts: usize,
    /// Hosts (1-based) whose sshd listens on 2222 instead of 22.
    pub port_2222: Vec<usize>,
    /// Hosts whose host key is left out of known_hosts.
    pub unknown_key: Vec<usize>,
    /// Run an sshd in the head namespace too (reachable as `head`, which resolves to 127.0.0.1
    /// there).
    pub head_sshd: bool,
}

impl Options {
    /// `n` plain hosts.
    pub fn hosts(n: usize) -> Self {
        Options { hosts: n, port_2222: Vec::new(), unknown_key: Vec::new(), head_sshd: false }
    }
}

/// One test host.
#[derive(Debug, Clone)]
pub struct TestHost {
    /// `hN`.
    pub name: String,
    /// Its namespace.
    pub ns: String,
    /// Its address.
    pub addr: Ipv4Addr,
    /// Its sshd port.
    pub port: u16,
    /// Its sshd's pid (0 when stopped).
    pub sshd_pid: u32,
}

/// The cluster.
pub struct Cluster {
    /// Temporary directory with keys, configs, logs and the agent cache.
    pub dir: tempfile::TempDir,
    /// Subnet tag.
    pub tag: u8,
    /// Bridge namespace.
    pub bridge_ns: String,
    /// Namespace rmpirun runs in.
    pub head_ns: String,
    /// The hosts.
    pub hosts: Vec<TestHost>,
    /// sshd of the head namespace, if any.
    pub head_sshd: Option<TestHost>,
    /// ssh client config file.
    pub ssh_config: PathBuf,
    sshds: Vec<Child>,
    namespaces: Vec<String>,
}

/// Why a cluster cannot be built here, or `None` when it can. With `RMPI_REQUIRE_NETNS=1` in the
/// environment (CI), a reason is a test failure instead of a skip.
pub fn unavailable() -> Option<String> {
    let why = missing_requirement()?;
    let required = std::env::var("RMPI_REQUIRE_NETNS").is_ok_and(|v| v == "1");
    assert!(!required, "RMPI_REQUIRE_NETNS=1 but the cluster tests cannot run: {why}");
    Some(why)
}

fn missing_requirement() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root (network namespaces, sshd)".into());
    }
    for tool in ["/usr/sbin/sshd", "/usr/bin/ssh", "/usr/bin/ssh-keygen"] {
        if !Path::new(tool).exists() {
            return Some(format!("{tool} missing (install openssh-server and openssh-client)"));
        }
    }
    // Creating a namespace is the real test (an unprivileged container cannot).
    // Tests probe from parallel threads: each probe needs its own name.
    static PROBES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = PROBES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let probe = format!("rmpirun-{}-probe{n}", std::process::id());
    match Command::new("ip").args(["netns", "add", &probe]).output() {
        Ok(o) if o.status.success() => {
            let _ = Command::new("ip").args(["netns", "del", &probe]).status();
            None
        }
        Ok(o) => Some(format!(
            "cannot create a network namespace: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Some(format!("`ip` unavailable ({e}); install iproute2")),
    }
}

/// Runs a setup command, panicking with its stderr when it fails.
/// The home directory sshd logs this process's user into (its passwd entry, not `$HOME`).
fn login_home() -> Option<PathBuf> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uid = status.lines().find_map(|l| l.strip_prefix("Uid:"))?.split_whitespace().nth(1)?;
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 7 && f[2] == uid).then(|| PathBuf::from(f[5]))
    })
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().expect("run setup command");
    assert!(out.status.success(), "{:?} failed: {}", args, String::from_utf8_lossy(&out.stderr));
}

impl Cluster {
    /// Builds the cluster; `tag` must be unique per test.
    pub fn new(tag: u8, opts: Options) -> Cluster {
        let dir = tempfile::Builder::new().prefix("rmpirun-cluster").tempdir().expect("tempdir");
        // The test process's pid in the names: two test runs at once do not collide (the
        // subnets exist only inside each run's own namespaces).
        let prefix = format!("rmpirun-{}-t{tag}", std::process::id());
        let bridge_ns = format!("{prefix}-br");
        let head_ns = format!("{prefix}-head");
        remove_leftovers();
        let mut cluster = Cluster {
            dir,
            tag,
            bridge_ns: bridge_ns.clone(),
            head_ns: head_ns.clone(),
            hosts: Vec::new(),
            head_sshd: None,
            ssh_config: PathBuf::new(),
            sshds: Vec::new(),
            namespaces: Vec::new(),
        };
        cluster.add_ns(&bridge_ns);
        sh(&["ip", "-n", &bridge_ns, "link", "add", "br0", "type", "bridge"]);
        sh(&["ip", "-n", &bridge_ns, "link", "set", "br0", "up"]);
        cluster.add_member(&head_ns, "vhead", Ipv4Addr::new(10, 213, tag, 1));
        for i in 1..=opts.hosts {
            let ns = format!("{prefix}-h{i}");
            let addr = Ipv4Addr::new(10, 213, tag, 10 + i as u8);
            cluster.add_member(&ns, &format!("vh{i}"), addr);
            let port = if opts.port_2222.contains(&i) { 2222 } else { 22 };
            cluster.hosts.push(TestHost { name: format!("h{i}"), ns, addr, port, sshd_pid: 0 });
        }
        cluster.write_hosts_files();
        cluster.start_sshds(&opts);
        cluster
    }

    fn add_ns(&mut self, ns: &str) {
        sh(&["ip", "netns", "add", ns]);
        self.namespaces.push(ns.to_string());
        sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
    }

    fn add_member(&mut self, ns: &str, veth: &str, addr: Ipv4Addr) {
        self.add_ns(ns);
        let br = self.bridge_ns.clone();
        sh(&[
            "ip", "-n", &br, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns",
            ns,
        ]);
        sh(&["ip", "-n", &br, "link", "set", veth, "master", "br0", "up"]);
        sh(&["ip", "-n", ns, "addr", "add", &format!("{addr}/24"), "dev", "eth0"]);
        // The same host on IPv6 (no duplicate address detection: usable at once).
        let v6 = format!("{}/64", v6_of(addr));
        sh(&["ip", "-n", ns, "addr", "add", &v6, "dev", "eth0", "nodad"]);
        sh(&["ip", "-n", ns, "link", "set", "eth0", "up"]);
    }

    /// `/etc/netns/NS/hosts` for the head and every host.
    fn write_hosts_files(&self) {
        let head_addr = Ipv4Addr::new(10, 213, self.tag, 1);
        let mut members: Vec<(String, String, Ipv4Addr)> =
            vec![(self.head_ns.clone(), "head".into(), head_addr)];
        members.extend(self.hosts.iter().map(|h| (h.ns.clone(), h.name.clone(), h.addr)));
        for (ns, own, _) in &members {
            let mut text = format!("127.0.0.1 localhost {own}\n");
            for (_, name, addr) in &members {
                if name != own {
                    let _ = writeln!(text, "{addr} {name}");
                }
            }
            // Names that exist nowhere / are down, for the failure tests.
            let _ = writeln!(text, "10.213.{}.99 ghost", self.tag);
            let etc = Path::new("/etc/netns").join(ns);
            std::fs::create_dir_all(&etc).expect("create /etc/netns/NS");
            std::fs::write(etc.join("hosts"), text).expect("write hosts");
        }
    }

    fn keygen(&self, name: &str) -> (PathBuf, String) {
        let key = self.dir.path().join(name);
        sh(&[
            "ssh-keygen",
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            name,
            "-f",
            key.to_str().unwrap(),
        ]);
        let public = std::fs::read_to_string(key.with_extension("pub")).expect("read pub key");
        let mut parts = public.split_whitespace();
        let public = format!("{} {}", parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        (key, public)
    }

    fn start_sshds(&mut self, opts: &Options) {
        std::fs::create_dir_all("/run/sshd").expect("create /run/sshd");
        let d = self.dir.path().to_path_buf();
        let (client_key, client_pub) = self.keygen("client_key");
        std::fs::write(d.join("authorized_keys"), format!("{client_pub}\n")).unwrap();
        let mut known = String::new();
        let mut targets: Vec<(usize, String, String, u16, Vec<String>)> = self
            .hosts
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let addrs = vec![h.addr.to_string(), v6_of(h.addr).to_string()];
                (i + 1, h.name.clone(), h.ns.clone(), h.port, addrs)
            })
            .collect();
        if opts.head_sshd {
            targets.push((0, "head".into(), self.head_ns.clone(), 22, vec!["127.0.0.1".into()]));
        }
        let stock_rc = self.stock_login();
        for (i, name, ns, port, addrs) in targets {
            let (host_key, host_pub) = self.keygen(&format!("host_key_{name}"));
            if !opts.unknown_key.contains(&i) {
                let names: Vec<String> = std::iter::once(name.clone())
                    .chain(addrs)
                    .map(|n| if port == 22 { n } else { format!("[{n}]:{port}") })
                    .collect();
                let _ = writeln!(known, "{} {host_pub}", names.join(","));
            }
            let cfg = d.join(format!("sshd_config_{name}"));
            let text = format!(
                "Port {port}\nListenAddress 0.0.0.0\nListenAddress ::\nHostKey {}\nPidFile none\nUsePAM no\n\
                 StrictModes no\nPermitRootLogin yes\nPubkeyAuthentication yes\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 AuthorizedKeysFile {}\nMaxStartups 10:30:100\nMaxSessions 10\nPrintMotd no\n\
                 UseDNS no\nLogLevel INFO\n",
                host_key.display(),
                d.join("authorized_keys").display()
            );
            std::fs::write(&cfg, text).unwrap();
            let log = d.join(format!("sshd_{name}.log"));
            // `ip netns exec` and `unshare` exec what they run, so the pid is sshd's.
            let mut cmd = Command::new("ip");
            cmd.args(["netns", "exec", &ns]);
            if let Some((stock, rc)) = &stock_rc {
                cmd.args(["unshare", "--mount", "--propagation", "private", "sh", "-c"])
                    .arg("mount --bind \"$1\" \"$2\" && shift 2 && exec \"$@\"")
                    .args(["sh", stock.to_str().unwrap(), rc.to_str().unwrap()]);
            }
            let child = cmd
                .args(["/usr/sbin/sshd", "-D", "-e", "-f"])
                .arg(&cfg)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .expect("start sshd");
            let pid = child.id();
            self.sshds.push(child);
            wait_for_log(&log, "Server listening");
            let host =
                TestHost { name: name.clone(), ns, addr: Ipv4Addr::LOCALHOST, port, sshd_pid: pid };
            if i == 0 {
                self.head_sshd = Some(host);
            } else {
                self.hosts[i - 1].sshd_pid = pid;
            }
        }
        std::fs::write(d.join("known_hosts"), known).unwrap();
        let config = format!(
            "Host *\n  User root\n  IdentityFile {}\n  IdentitiesOnly yes\n  UserKnownHostsFile {}\n\
             GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n  BatchMode yes\n\
             LogLevel ERROR\n  ControlMaster no\n  ControlPath none\n  CheckHostIP no\n",
            client_key.display(),
            d.join("known_hosts").display()
        );
        self.ssh_config = d.join("ssh_config");
        std::fs::write(&self.ssh_config, config).unwrap();
    }

    /// What makes the test hosts' logins those of a stock machine: sshd runs every remote
    /// command through the user's shell, and bash reads `~/.bashrc` for it. A developer's or a
    /// CI image's `~/.bashrc` (this machine's starts pyenv, tens of processes per login) would
    /// make every ssh session of the tests pay for it, so each test sshd runs in its own mount
    /// namespace with an empty file bound over it. `None` when there is no `~/.bashrc`.
    fn stock_login(&self) -> Option<(PathBuf, PathBuf)> {
        let rc = login_home()?.join(".bashrc");
        if !rc.is_file() {
            return None;
        }
        let stock = self.dir.path().join("stock_bashrc");
        std::fs::write(&stock, "# test host: a stock login, no rc of the machine's user\n")
            .unwrap();
        Some((stock, rc))
    }

    /// Stops host `i`'s sshd (1-based): the host is "down" for SSH.
    pub fn stop_sshd(&mut self, i: usize) {
        let pid = self.hosts[i - 1].sshd_pid;
        if let Some(pos) = self.sshds.iter().position(|c| c.id() == pid) {
            let mut c = self.sshds.remove(pos);
            let _ = c.kill();
            let _ = c.wait();
        }
        self.hosts[i - 1].sshd_pid = 0;
    }

    /// Writes a hostfile into the cluster's directory.
    pub fn hostfile(&self, text: &str) -> PathBuf {
        let p = self.dir.path().join("hostfile");
        std::fs::write(&p, text).unwrap();
        p
    }

    /// A command running `rmpirun ARGS` in the head namespace with this cluster's ssh config.
    pub fn rmpirun(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.head_ns])
            .arg(super::rmpirun())
            .args(args)
            .env("RMPI_SSH", format!("ssh -F {}", self.ssh_config.display()))
            .env("RMPI_AGENT_CACHE", self.dir.path().join("agent-cache"))
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        cmd
    }

    /// Processes in the head and host namespaces other than sshd: `(namespace, pid, command)`.
    pub fn job_processes(&self) -> Vec<(String, i32, String)> {
        let mut found = Vec::new();
        let mut spaces = vec![self.head_ns.clone()];
        spaces.extend(self.hosts.iter().map(|h| h.ns.clone()));
        for ns in spaces {
            for pid in pids_in(&ns) {
                if !super::is_running(pid) {
                    continue;
                }
                if super::comm_of(pid).starts_with("sshd") {
                    continue;
                }
                found.push((ns.clone(), pid, cmdline_of(pid)));
            }
        }
        found
    }

    /// Asserts that no job process is left in any namespace within `limit`.
    pub fn assert_no_orphans(&self, limit: Duration) {
        let left = super::wait_until_empty(limit, || self.job_processes());
        assert!(left.is_empty(), "processes left behind: {left:#?}");
    }

    /// Command lines of every process in the cluster's namespaces (sshd included).
    pub fn all_cmdlines(&self) -> Vec<String> {
        self.namespaces.iter().flat_map(|ns| pids_in(ns)).map(cmdline_of).collect()
    }
}

/// Removes the namespaces (and their processes, and `/etc/netns` entries) of earlier test runs
/// that were killed before they could clean up: those whose test process is gone.
fn remove_leftovers() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else { return };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(ns) = line.split_whitespace().next() else { continue };
        let Some(owner) = ns
            .strip_prefix("rmpirun-")
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<i32>().ok())
        else {
            continue;
        };
        if super::is_running(owner) {
            continue;
        }
        destroy_namespace(ns);
    }
}

/// Pids of the processes in namespace `ns`.
fn pids_in(ns: &str) -> Vec<i32> {
    match Command::new("ip").args(["netns", "pids", ns]).output() {
        Ok(out) => String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn cmdline_of(pid: i32) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    String::from_utf8_lossy(&raw).replace('\0', " ")
}

/// Kills everything in a namespace of this test (or a dead earlier run), removes it and its
/// `/etc/netns` entry.
fn destroy_namespace(ns: &str) {
    for pid in pids_in(ns) {
        super::signal(pid, libc::SIGKILL);
    }
    let _ = Command::new("ip").args(["netns", "del", ns]).status();
    let _ = std::fs::remove_dir_all(Path::new("/etc/netns").join(ns));
}

/// The IPv6 address of a member: `10.213.T.K` is also `fd00:213:T::K` (decimal digits).
pub fn v6_of(addr: Ipv4Addr) -> std::net::Ipv6Addr {
    let [_, _, t, k] = addr.octets();
    format!("fd00:213:{t}::{k}").parse().expect("valid IPv6 address")
}

fn wait_for_log(log: &Path, needle: &str) {
    let t0 = Instant::now();
    loop {
        if std::fs::read_to_string(log).unwrap_or_default().contains(needle) {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "sshd did not start: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in &mut self.sshds {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Anything still in a namespace was started by this test.
        for ns in &self.namespaces {
            destroy_namespace(ns);
        }
    }
}
