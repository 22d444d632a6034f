//! Supervision of a running job: starts one link per host, forwards output and stdin, watches
//! every rank, and ends the whole job on the first failure, a signal, a lost host or the timeout.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use crate::binding::BindTo;
use crate::blame::{first_cause, now_ms, Failure, Kind};
use crate::hostfile::HostEntry;
use crate::link::{Link, LinkEvent, LinkSpec, SharedBinary};
use crate::output::{message, progress, OutputSink};
use crate::procs::signal_name;
use crate::protocol::{Command, Event, ExitCause, ExitStatus, JobSpec, STDIN_WINDOW};
use crate::ssh::SshSettings;

/// Exit status when `--timeout` ends the job.
pub const EXIT_TIMEOUT: i32 = 124;
/// Exit status when the program cannot be found.
pub const EXIT_NOT_FOUND: i32 = 127;
/// Exit status for other launch failures.
pub const EXIT_LAUNCH: i32 = 1;

/// How long the job waits for agents to end their ranks before giving up on them.
const END_WAIT: Duration = Duration::from_millis(2500);

/// Everything needed to run a job.
pub struct JobConfig {
    /// The hosts (only those with ranks matter).
    pub hosts: Vec<HostEntry>,
    /// Host index of each rank.
    pub placement: Vec<usize>,
    /// Program and arguments.
    pub argv: Vec<String>,
    /// `-x` variables.
    pub exports: Vec<(String, String)>,
    /// Working directory for the ranks and whether it was given explicitly.
    pub cwd: Option<String>,
    /// Whether `cwd` came from `--wdir` (then it must exist everywhere).
    pub cwd_required: bool,
    /// `--tag-output`.
    pub tag_output: bool,
    /// `--output-filename`.
    pub output_dir: Option<PathBuf>,
    /// `--timeout`.
    pub timeout: Option<Duration>,
    /// `--boot-timeout`.
    pub boot_timeout: Duration,
    /// SSH settings (used only for remote hosts).
    pub ssh: SshSettings,
    /// `-v`.
    pub verbose: bool,
    /// `--bind-to`.
    pub bind: BindTo,
    /// `--report-bindings`.
    pub report_bindings: bool,
    /// `--launch-tree`.
    pub launch_tree: crate::tree::LaunchTree,
}

/// Per-host link state.
#[derive(Default)]
struct HostState {
    up: bool,
    finished: bool,
    stderr_tail: Vec<String>,
    ranks_left: usize,
}

/// Runs the job to its end; returns rmpirun's exit status.
pub async fn run_job(cfg: JobConfig) -> i32 {
    exit_status(run_job_inner(cfg).await)
}

/// Makes the job token and starts the job's rendezvous server on `bind_ip` (any port); returns
/// the token and the port. The server thread ends by itself at its deadline; nobody waits for it.
pub(crate) fn start_rendezvous(
    bind_ip: IpAddr,
    size: usize,
    boot_timeout: Duration,
) -> Result<(rmpi_transport::token::JobToken, u16), String> {
    let token = rmpi_transport::token::JobToken::generate();
    let server = rmpi_transport::rendezvous::RendezvousServer::bind(
        SocketAddr::new(bind_ip, 0),
        size,
        token,
        boot_timeout,
    )
    .map_err(|e| format!("cannot start the rendezvous server: {e}"))?;
    let port = server.local_addr().port();
    let _server = server.spawn();
    Ok((token, port))
}

/// The exit status of a job's outcome; a launch failure is reported first.
pub(crate) fn exit_status(outcome: Result<i32, String>) -> i32 {
    outcome.unwrap_or_else(|msg| {
        message(&msg);
        EXIT_LAUNCH
    })
}

async fn run_job_inner(cfg: JobConfig) -> Result<i32, String> {
    // Handlers first: from the first process started on, a signal ends the job in order.
    let mut sigint = signal(SignalKind::interrupt()).map_err(|e| format!("signals: {e}"))?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(|e| format!("signals: {e}"))?;
    let mut sighup = signal(SignalKind::hangup()).map_err(|e| format!("signals: {e}"))?;
    let size = cfg.placement.len();
    let mut ranks_of: Vec<Vec<u32>> = vec![Vec::new(); cfg.hosts.len()];
    for (rank, &h) in cfg.placement.iter().enumerate() {
        ranks_of[h].push(rank as u32);
    }
    let used: Vec<usize> = (0..cfg.hosts.len()).filter(|&h| !ranks_of[h].is_empty()).collect();

    let routes = plan_routes(&cfg.hosts, &used).await;
    let any_remote = used.iter().any(|&h| !cfg.hosts[h].is_local());
    let any_v6 = routes.values().flatten().any(|a| a.is_ipv6());
    let bind_ip: IpAddr = match (any_remote, any_v6) {
        (false, _) => Ipv4Addr::LOCALHOST.into(),
        (true, false) => Ipv4Addr::UNSPECIFIED.into(),
        (true, true) => Ipv6Addr::UNSPECIFIED.into(),
    };

    // The directory (node agents gather their ranks) needs no server here: the launcher hears
    // one report per host on the control streams. `RMPI_RENDEZVOUS` then only picks the route.
    let bootstrap = rmpi_transport::directory::Bootstrap::from_lookup(|k| std::env::var(k).ok())
        .map_err(|e| e.to_string())?;
    let mut directory = match bootstrap {
        rmpi_transport::directory::Bootstrap::Directory => {
            let names = cfg.hosts.iter().map(|h| h.display_name()).collect();
            Some(crate::directory::Directory::new(&used, &cfg.placement, names)?)
        }
        rmpi_transport::directory::Bootstrap::Table => None,
    };
    let (token, rendezvous_port) = match directory {
        Some(_) => (rmpi_transport::token::JobToken::generate(), 0),
        None => start_rendezvous(bind_ip, size, cfg.boot_timeout)?,
    };

    let binary: SharedBinary = Arc::new(tokio::sync::OnceCell::new());
    let ssh = Arc::new(cfg.ssh.clone());
    let mut base_env = rmpi_transport::env::job_vars(size, &token, cfg.boot_timeout);
    // Shared memory (and its single copy) on or off, and when connections open, are the job's
    // choice, on every host.
    for var in
        [rmpi_transport::env::SHM, rmpi_transport::env::SHM_CMA, rmpi_transport::env::CONNECT]
    {
        if let Ok(v) = std::env::var(var) {
            base_env.push((var.to_string(), v));
        }
    }
    base_env.extend(cfg.exports.iter().cloned());

    if cfg.verbose {
        progress(&format!(
            "starting {size} rank(s) on {} host(s); {}",
            used.len(),
            match rendezvous_port {
                0 => "their node agents gather them".to_string(),
                p => format!("rendezvous on port {p}"),
            }
        ));
    }

    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel::<(usize, LinkEvent)>();
    let mut sup = Supervisor::new(&cfg);
    sup.directory = directory.take();
    let mut specs = Vec::with_capacity(used.len());
    for &h in &used {
        let host = &cfg.hosts[h];
        let job = JobSpec {
            host: host.name.clone(),
            argv: cfg.argv.clone(),
            cwd: cfg.cwd.clone(),
            cwd_required: cfg.cwd_required,
            env: base_env.clone(),
            ranks: ranks_of[h].clone(),
            forward_stdin_to: (sup.rank0_host == Some(h)).then_some(0),
            bind: cfg.bind,
            report_bindings: cfg.report_bindings,
            directory: sup.directory.as_ref().and_then(|d| d.index(h)),
        };
        let remote = if host.is_local() { None } else { Some((ssh.clone(), binary.clone())) };
        let spec = LinkSpec {
            index: h,
            host: host.clone(),
            job,
            rendezvous_port,
            route: routes.get(&h).copied().flatten(),
            remote,
            verbose: cfg.verbose,
        };
        specs.push(spec);
        sup.hosts.insert(h, HostState { ranks_left: ranks_of[h].len(), ..Default::default() });
    }
    sup.links = crate::tree::spawn_links(specs, cfg.launch_tree, ev_tx.clone());
    drop(ev_tx);

    let mut stdin_rx = sup.rank0_host.map(|_| spawn_stdin_reader());
    let timeout = async {
        match cfg.timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(timeout);

    while sup.running() {
        let end_deadline = sup.end_deadline;
        let deadline = async {
            match end_deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        let failure = tokio::select! {
            ev = ev_rx.recv() => match ev {
                Some((h, ev)) => sup.on_link_event(h, ev),
                None => break,
            },
            data = recv_stdin(&mut stdin_rx), if sup.stdin_in_flight < STDIN_WINDOW => {
                if data.is_none() {
                    stdin_rx = None;
                }
                sup.on_stdin(data);
                None
            }
            _ = sigint.recv() => Some(Failure::launcher("interrupted (SIGINT)".into(), 128 + libc::SIGINT)),
            _ = sigterm.recv() => Some(Failure::launcher("terminated (SIGTERM)".into(), 128 + libc::SIGTERM)),
            _ = sighup.recv() => Some(Failure::launcher("hung up (SIGHUP)".into(), 128 + libc::SIGHUP)),
            _ = &mut timeout, if sup.ending.is_none() => {
                let secs = cfg.timeout.map(|t| t.as_secs_f64()).unwrap_or(0.0);
                Some(Failure::launcher(format!("job timed out after {secs} s"), EXIT_TIMEOUT))
            }
            _ = deadline => {
                if cfg.verbose {
                    progress("some agents did not finish in time; closing their links");
                }
                break;
            }
        };
        if let Some(f) = failure {
            sup.fail(f);
        }
    }

    if let Some(cause) = first_cause(&sup.failures) {
        message(&format!("{}; ended the job", cause.text));
    }
    if cfg.verbose {
        progress("every rank has exited");
    }
    if sup.ending.is_none() {
        sup.reap_after_success(&mut ev_rx).await;
    }
    sup.kill_stray_ssh_clients();
    if cfg.verbose {
        progress("done");
    }
    Ok(sup.ending.unwrap_or(0))
}

/// The job's state while it runs.
struct Supervisor<'a> {
    cfg: &'a JobConfig,
    /// The links, by host index.
    links: HashMap<usize, Link>,
    /// Link state, by host index.
    hosts: HashMap<usize, HostState>,
    sink: OutputSink,
    /// Pid of each started rank.
    pids: HashMap<u32, u32>,
    /// Exit status of the job's cause so far (see [`crate::blame`]); set at the first failure.
    ending: Option<i32>,
    /// Every failure, in the order reported.
    failures: Vec<Failure>,
    /// Ranks that have not ended yet.
    remaining: usize,
    /// Bytes of stdin sent to rank 0's agent and not yet acknowledged.
    stdin_in_flight: u64,
    /// After a failure: when to stop waiting for the agents.
    end_deadline: Option<tokio::time::Instant>,
    rank0_host: Option<usize>,
    /// The directory bootstrap's collector of host reports (`None` under the table).
    directory: Option<crate::directory::Directory>,
}

impl<'a> Supervisor<'a> {
    fn new(cfg: &'a JobConfig) -> Self {
        Supervisor {
            cfg,
            links: HashMap::new(),
            hosts: HashMap::new(),
            sink: OutputSink::new(cfg.tag_output, cfg.output_dir.clone()),
            pids: HashMap::new(),
            ending: None,
            failures: Vec::new(),
            remaining: cfg.placement.len(),
            stdin_in_flight: 0,
            end_deadline: None,
            rank0_host: cfg.placement.first().copied(),
            directory: None,
        }
    }

    /// Until every rank ended (normal end), or every agent finished (after a failure).
    fn running(&self) -> bool {
        match self.ending {
            None => self.remaining > 0,
            Some(_) => self.hosts.values().any(|s| !s.finished),
        }
    }

    fn host_name(&self, h: usize) -> String {
        self.cfg.hosts[h].display_name()
    }

    /// Records a failure; the first one ends the job. Which is the job's cause is decided at
    /// the end ([`crate::blame`]); with `-v` every failure is shown as it comes.
    fn fail(&mut self, failure: Failure) {
        if self.cfg.verbose {
            progress(&format!("failure: {}", failure.text));
        }
        let first = self.failures.is_empty();
        self.failures.push(failure);
        self.ending = first_cause(&self.failures).map(|f| f.code);
        if first {
            self.end_deadline = Some(tokio::time::Instant::now() + END_WAIT);
            for link in self.links.values() {
                let _ = link.commands.send(Command::Kill);
            }
        }
    }

    fn on_link_event(&mut self, h: usize, ev: LinkEvent) -> Option<Failure> {
        let verbose = self.cfg.verbose;
        let name = self.host_name(h);
        let st = self.hosts.get_mut(&h)?;
        match ev {
            LinkEvent::Up => {
                st.up = true;
                if verbose {
                    progress(&format!("{name}: agent running, job sent"));
                }
            }
            LinkEvent::Stderr(line) => {
                if st.up {
                    message(&format!("{name}: {line}"));
                } else {
                    // Kept for the message if the link never comes up.
                    st.stderr_tail.push(line);
                    if st.stderr_tail.len() > 8 {
                        st.stderr_tail.remove(0);
                    }
                }
            }
            LinkEvent::Agent(ev) => return self.on_agent_event(h, ev),
            LinkEvent::Down { reason } => return self.on_link_down(h, reason),
        }
        None
    }

    fn on_agent_event(&mut self, h: usize, ev: Event) -> Option<Failure> {
        match ev {
            Event::Output { rank, stream, data } => {
                if let Err(e) = self.sink.line(rank, stream, &data) {
                    return Some(Failure::launcher(e.to_string(), EXIT_LAUNCH));
                }
            }
            Event::Started { rank, pid } => {
                self.pids.insert(rank, pid);
            }
            Event::SpawnFailed { rank, error, not_found } => {
                self.rank_ended(h);
                let code = if not_found { EXIT_NOT_FOUND } else { EXIT_LAUNCH };
                let text = format!("cannot start rank {rank} on {}: {error}", self.host_name(h));
                return Some(Failure { text, code, kind: Kind::Cause { at_ms: now_ms() } });
            }
            Event::Exited { rank, status, cause, at_ms } => {
                self.rank_ended(h);
                if !status.success() {
                    let pid = self.pids.get(&rank).copied().unwrap_or(0);
                    let after = match &cause {
                        ExitCause::LostPeer(p) => format!(" after losing rank {p}"),
                        ExitCause::Failed(how) => format!(" ({how})"),
                        ExitCause::Own | ExitCause::EndedByAgent => String::new(),
                    };
                    let text = format!(
                        "rank {rank} on {} (pid {pid}) {}{after}",
                        self.host_name(h),
                        describe(status)
                    );
                    let kind = Kind::of_exit(&cause, at_ms);
                    return Some(Failure { text, code: status.shell_code(), kind });
                }
            }
            Event::Done => {
                if let Some(st) = self.hosts.get_mut(&h) {
                    st.finished = true;
                }
            }
            Event::StdinAck { bytes } => {
                self.stdin_in_flight = self.stdin_in_flight.saturating_sub(bytes);
            }
            Event::Directory(frame) => {
                let Some(d) = &mut self.directory else { return None };
                match d.on_frame(h, &frame) {
                    Ok(Some(placement)) => {
                        // The same frame for every host: a launch tree sends it once per
                        // branch (tree/launch.rs).
                        for link in self.links.values() {
                            let _ = link.commands.send(Command::Directory(placement.clone()));
                        }
                    }
                    Ok(None) => {}
                    Err(text) => {
                        let kind = Kind::Cause { at_ms: now_ms() };
                        return Some(Failure { text, code: EXIT_LAUNCH, kind });
                    }
                }
            }
            Event::Hello { .. } | Event::Alive => {}
        }
        None
    }

    fn rank_ended(&mut self, h: usize) {
        if let Some(st) = self.hosts.get_mut(&h) {
            st.ranks_left = st.ranks_left.saturating_sub(1);
        }
        self.remaining = self.remaining.saturating_sub(1);
    }

    /// A link ended: a failure unless its agent had finished or all its ranks had ended.
    fn on_link_down(&mut self, h: usize, reason: String) -> Option<Failure> {
        let name = self.host_name(h);
        let st = self.hosts.get_mut(&h)?;
        let was_finished = std::mem::replace(&mut st.finished, true);
        if was_finished || (st.up && st.ranks_left == 0) {
            return None;
        }
        let text = if st.up {
            format!("lost the connection to {name}: {reason}")
        } else if st.stderr_tail.is_empty() {
            format!("cannot start on {name}: {reason}")
        } else {
            // ssh's own words first: they say what went wrong.
            format!("cannot start on {name}: {} ({reason})", st.stderr_tail.join(" / "))
        };
        let lost = std::mem::take(&mut st.ranks_left);
        self.remaining = self.remaining.saturating_sub(lost);
        Some(Failure { text, code: EXIT_LAUNCH, kind: Kind::Cause { at_ms: now_ms() } })
    }

    /// Forwards a chunk of rmpirun's stdin (or its end) to rank 0's agent.
    fn on_stdin(&mut self, data: Option<Vec<u8>>) {
        let Some(link) = self.rank0_host.and_then(|h| self.links.get(&h)) else { return };
        let link = &link.commands;
        let cmd = match data {
            Some(d) => {
                self.stdin_in_flight += d.len() as u64;
                Command::Stdin(d)
            }
            None => Command::StdinEof,
        };
        let _ = link.send(cmd);
    }

    /// After a normal end: every agent ends what the ranks left behind and confirms.
    async fn reap_after_success(
        &mut self,
        ev_rx: &mut mpsc::UnboundedReceiver<(usize, LinkEvent)>,
    ) {
        for link in self.links.values() {
            let _ = link.commands.send(Command::Kill);
        }
        let deadline = tokio::time::Instant::now() + END_WAIT;
        while self.hosts.values().any(|s| !s.finished) {
            match tokio::time::timeout_at(deadline, ev_rx.recv()).await {
                Ok(Some((h, LinkEvent::Agent(Event::Done))))
                | Ok(Some((h, LinkEvent::Down { .. }))) => {
                    if let Some(s) = self.hosts.get_mut(&h) {
                        s.finished = true;
                    }
                }
                Ok(Some((_, LinkEvent::Agent(Event::Output { rank, stream, data })))) => {
                    let _ = self.sink.line(rank, stream, &data);
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }

    /// Stops the links that did not finish: aborting a link's task kills its ssh client, whose
    /// agent sees the end of its control stream and ends its ranks by itself.
    fn kill_stray_ssh_clients(&mut self) {
        for (h, link) in self.links.drain() {
            if self.hosts.get(&h).is_some_and(|s| !s.finished) {
                link.task.abort();
            }
        }
    }
}

/// This machine's address as seen by each used host (see [`route_to`] and
/// [`fix_loopback_routes`]). Name lookups may be slow: all at once, off the runtime thread.
async fn plan_routes(hosts: &[HostEntry], used: &[usize]) -> HashMap<usize, Option<IpAddr>> {
    let lookups: Vec<_> = used
        .iter()
        .map(|&h| {
            let host = hosts[h].clone();
            (h, tokio::task::spawn_blocking(move || route_to(&host)))
        })
        .collect();
    let mut routes = HashMap::new();
    for (h, lookup) in lookups {
        routes.insert(h, lookup.await.ok().flatten());
    }
    fix_loopback_routes(routes)
}

fn describe(status: ExitStatus) -> String {
    match status {
        ExitStatus::Code(c) => format!("exited with status {c}"),
        ExitStatus::Signal(s) => format!("killed by signal {s} ({})", signal_name(s)),
    }
}

/// The address of this machine's route to `host` (no packet is sent: connecting a UDP socket
/// only selects a route). `None` when the name does not resolve here (an ssh config alias, say).
pub(crate) fn route_to(host: &HostEntry) -> Option<IpAddr> {
    if host.is_local() {
        return Some(Ipv4Addr::LOCALHOST.into());
    }
    let target = (host.name.as_str(), host.port.unwrap_or(22)).to_socket_addrs().ok()?.next()?;
    let bind: SocketAddr = match target {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let sock = UdpSocket::bind(bind).ok()?;
    sock.connect(target).ok()?;
    Some(sock.local_addr().ok()?.ip())
}

/// A host reached over loopback is this machine; when the job also spans other hosts, its ranks
/// must reach the rendezvous through an address the other hosts can reach too (they advertise the
/// address they used), so loopback routes are replaced by a non-loopback one of the same family.
fn fix_loopback_routes(
    mut routes: HashMap<usize, Option<IpAddr>>,
) -> HashMap<usize, Option<IpAddr>> {
    let mut keys: Vec<usize> = routes.keys().copied().collect();
    keys.sort_unstable();
    let outside_v4 =
        keys.iter().filter_map(|k| routes[k]).find(|a| a.is_ipv4() && !a.is_loopback());
    let outside_v6 =
        keys.iter().filter_map(|k| routes[k]).find(|a| a.is_ipv6() && !a.is_loopback());
    for r in routes.values_mut() {
        if let Some(addr) = *r {
            if addr.is_loopback() {
                let other = if addr.is_ipv4() {
                    outside_v4.or(outside_v6)
                } else {
                    outside_v6.or(outside_v4)
                };
                if let Some(o) = other {
                    *r = Some(o);
                }
            }
        }
    }
    routes
}

/// Reads rmpirun's stdin on a plain thread (a blocked read must never hold up the exit) unless it
/// is a terminal this process does not own (a background job would be stopped by SIGTTIN).
fn spawn_stdin_reader() -> mpsc::Receiver<Option<Vec<u8>>> {
    // A short queue: the thread reads ahead by at most a few chunks.
    let (tx, rx) = mpsc::channel(2);
    // SAFETY: isatty/tcgetpgrp/getpgrp only inspect fd 0 and this process.
    let background_tty = unsafe { libc::isatty(0) == 1 && libc::tcgetpgrp(0) != libc::getpgrp() };
    if background_tty {
        let _ = tx.try_send(None);
        return rx;
    }
    std::thread::spawn(move || {
        use std::io::Read;
        let mut stdin = std::io::stdin().lock();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => {
                    let _ = tx.blocking_send(None);
                    return;
                }
                Ok(n) => {
                    if tx.blocking_send(Some(buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
            }
        }
    });
    rx
}

async fn recv_stdin(rx: &mut Option<mpsc::Receiver<Option<Vec<u8>>>>) -> Option<Vec<u8>> {
    match rx {
        Some(r) => r.recv().await.flatten(),
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_routes_are_replaced_when_other_hosts_exist() {
        let lo: IpAddr = Ipv4Addr::LOCALHOST.into();
        let out: IpAddr = "10.1.2.3".parse().unwrap();
        let r = fix_loopback_routes(HashMap::from([(0, Some(lo)), (1, Some(out)), (2, None)]));
        assert_eq!(r[&0], Some(out));
        assert_eq!(r[&1], Some(out));
        assert_eq!(r[&2], None);
        let r = fix_loopback_routes(HashMap::from([(0, Some(lo))]));
        assert_eq!(r[&0], Some(lo));
    }

    #[test]
    fn route_to_loopback_host() {
        let h = HostEntry {
            name: "127.0.0.1".into(),
            user: None,
            port: Some(22),
            slots: 1,
            max_slots: None,
        };
        assert_eq!(route_to(&h), Some(Ipv4Addr::LOCALHOST.into()));
    }
}
