//! Supervision of a running job: starts one link per host, forwards output and stdin, watches
//! every rank, and ends the whole job on the first failure, a signal, a lost host or the timeout.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use crate::hostfile::HostEntry;
use crate::link::{spawn_link, LinkEvent, LinkSpec, SharedBinary};
use crate::output::{message, progress, OutputSink};
use crate::procs::signal_name;
use crate::protocol::{Command, Event, ExitStatus, JobSpec, STDIN_WINDOW};
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
}

/// Per-host link state.
#[derive(Default)]
struct HostState {
    up: bool,
    finished: bool,
    ssh_pid: Option<u32>,
    stderr_tail: Vec<String>,
    ranks_left: usize,
}

/// Runs the job to its end; returns rmpirun's exit status.
pub async fn run_job(cfg: JobConfig) -> i32 {
    match run_job_inner(cfg).await {
        Ok(code) => code,
        Err(msg) => {
            message(&msg);
            EXIT_LAUNCH
        }
    }
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

    // Name lookups may be slow: all hosts at once, off the runtime thread.
    let lookups: Vec<_> = used
        .iter()
        .map(|&h| {
            let host = cfg.hosts[h].clone();
            (h, tokio::task::spawn_blocking(move || route_to(&host)))
        })
        .collect();
    let mut routes: HashMap<usize, Option<IpAddr>> = HashMap::new();
    for (h, lookup) in lookups {
        routes.insert(h, lookup.await.ok().flatten());
    }
    let routes = fix_loopback_routes(routes);
    let any_remote = used.iter().any(|&h| !cfg.hosts[h].is_local());
    let any_v6 = routes.values().flatten().any(|a| a.is_ipv6());
    let bind_ip: IpAddr = match (any_remote, any_v6) {
        (false, _) => Ipv4Addr::LOCALHOST.into(),
        (true, false) => Ipv4Addr::UNSPECIFIED.into(),
        (true, true) => Ipv6Addr::UNSPECIFIED.into(),
    };

    let token = rmpi_transport::token::JobToken::generate();
    let server = rmpi_transport::rendezvous::RendezvousServer::bind(
        SocketAddr::new(bind_ip, 0),
        size,
        token,
        cfg.boot_timeout,
    )
    .map_err(|e| format!("cannot start the rendezvous server: {e}"))?;
    let rendezvous_port = server.local_addr().port();
    // The server thread ends by itself at its deadline; the job never waits for it.
    let _server = server.spawn();

    let binary: SharedBinary = Arc::new(tokio::sync::OnceCell::new());
    let ssh = Arc::new(cfg.ssh.clone());
    let mut base_env = vec![
        ("RMPI_SIZE".to_string(), size.to_string()),
        ("RMPI_TOKEN".to_string(), token.to_hex()),
        ("RMPI_BOOT_TIMEOUT".to_string(), cfg.boot_timeout.as_secs().to_string()),
    ];
    base_env.extend(cfg.exports.iter().cloned());

    if cfg.verbose {
        progress(&format!(
            "starting {size} rank(s) on {} host(s); rendezvous on port {rendezvous_port}",
            used.len()
        ));
    }

    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel::<(usize, LinkEvent)>();
    let mut links: HashMap<usize, mpsc::UnboundedSender<Command>> = HashMap::new();
    let mut state: HashMap<usize, HostState> = HashMap::new();
    let rank0_host = cfg.placement.first().copied();
    for &h in &used {
        let host = &cfg.hosts[h];
        let job = JobSpec {
            host: host.name.clone(),
            argv: cfg.argv.clone(),
            cwd: cfg.cwd.clone(),
            cwd_required: cfg.cwd_required,
            env: base_env.clone(),
            ranks: ranks_of[h].clone(),
            forward_stdin_to: (rank0_host == Some(h)).then_some(0),
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
        links.insert(h, spawn_link(spec, ev_tx.clone()));
        state.insert(h, HostState { ranks_left: ranks_of[h].len(), ..Default::default() });
    }
    drop(ev_tx);

    let mut stdin_rx = rank0_host.map(|_| spawn_stdin_reader());
    let timeout = async {
        match cfg.timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(timeout);

    let mut sink = OutputSink::new(cfg.tag_output, cfg.output_dir.clone());
    let mut pids: HashMap<u32, u32> = HashMap::new();
    // Exit status decided by the first failure; set once.
    let mut ending: Option<i32> = None;
    let mut remaining = size;
    let mut stdin_in_flight: u64 = 0;
    let mut end_deadline: Option<tokio::time::Instant> = None;

    let host_name = |h: usize| cfg.hosts[h].display_name();

    loop {
        if ending.is_none() && remaining == 0 {
            break;
        }
        if ending.is_some() && state.values().all(|s| s.finished) {
            break;
        }
        let deadline = async {
            match end_deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        let mut fail: Option<(String, i32)> = None;
        tokio::select! {
            ev = ev_rx.recv() => {
                let Some((h, ev)) = ev else { break };
                let Some(st) = state.get_mut(&h) else { continue };
                match ev {
                    LinkEvent::Spawned { pid } => st.ssh_pid = Some(pid),
                    LinkEvent::Up => {
                        st.up = true;
                        if cfg.verbose {
                            progress(&format!("{}: agent running, job sent", host_name(h)));
                        }
                    }
                    LinkEvent::Stderr(line) => {
                        if st.up {
                            message(&format!("{}: {line}", host_name(h)));
                        } else {
                            st.stderr_tail.push(line);
                            if st.stderr_tail.len() > 8 {
                                st.stderr_tail.remove(0);
                            }
                        }
                    }
                    LinkEvent::Agent(ev) => match ev {
                        Event::Output { rank, stream, data } => {
                            if let Err(e) = sink.line(rank, stream, &data) {
                                fail = Some((e.to_string(), EXIT_LAUNCH));
                            }
                        }
                        Event::Started { rank, pid } => {
                            pids.insert(rank, pid);
                        }
                        Event::SpawnFailed { rank, error, not_found } => {
                            st.ranks_left = st.ranks_left.saturating_sub(1);
                            remaining = remaining.saturating_sub(1);
                            let code = if not_found { EXIT_NOT_FOUND } else { EXIT_LAUNCH };
                            fail = Some((
                                format!("cannot start rank {rank} on {}: {error}", host_name(h)),
                                code,
                            ));
                        }
                        Event::Exited { rank, status } => {
                            st.ranks_left = st.ranks_left.saturating_sub(1);
                            remaining = remaining.saturating_sub(1);
                            if !status.success() {
                                let pid = pids.get(&rank).copied().unwrap_or(0);
                                fail = Some((
                                    format!(
                                        "rank {rank} on {} (pid {pid}) {}",
                                        host_name(h),
                                        describe(status)
                                    ),
                                    status.shell_code(),
                                ));
                            }
                        }
                        Event::Done => st.finished = true,
                        Event::StdinAck { bytes } => {
                            stdin_in_flight = stdin_in_flight.saturating_sub(bytes);
                        }
                        Event::Hello { .. } | Event::Alive => {}
                    },
                    LinkEvent::Down { reason } => {
                        let was_finished = st.finished;
                        st.finished = true;
                        if !was_finished && (st.ranks_left > 0 || !st.up) {
                            let text = if st.up {
                                format!("lost the connection to {}: {reason}", host_name(h))
                            } else if st.stderr_tail.is_empty() {
                                format!("cannot start on {}: {reason}", host_name(h))
                            } else {
                                // ssh's own words first: they say what went wrong.
                                format!(
                                    "cannot start on {}: {} ({reason})",
                                    host_name(h),
                                    st.stderr_tail.join(" / ")
                                )
                            };
                            remaining = remaining.saturating_sub(st.ranks_left);
                            st.ranks_left = 0;
                            fail = Some((text, EXIT_LAUNCH));
                        }
                    }
                }
            }
            data = recv_stdin(&mut stdin_rx), if stdin_in_flight < STDIN_WINDOW => {
                let eof = data.is_none();
                stdin_in_flight += data.as_ref().map_or(0, |d| d.len() as u64);
                if let Some(link) = rank0_host.and_then(|h| links.get(&h)) {
                    let _ = link.send(match data {
                        Some(d) => Command::Stdin(d),
                        None => Command::StdinEof,
                    });
                }
                if eof {
                    stdin_rx = None;
                }
            }
            _ = sigint.recv() => fail = Some(("interrupted (SIGINT)".into(), 128 + libc::SIGINT)),
            _ = sigterm.recv() => fail = Some(("terminated (SIGTERM)".into(), 128 + libc::SIGTERM)),
            _ = sighup.recv() => fail = Some(("hung up (SIGHUP)".into(), 128 + libc::SIGHUP)),
            _ = &mut timeout, if ending.is_none() => {
                let secs = cfg.timeout.map(|t| t.as_secs_f64()).unwrap_or(0.0);
                fail = Some((format!("job timed out after {secs} s"), EXIT_TIMEOUT));
            }
            _ = deadline => {
                if cfg.verbose {
                    progress("some agents did not finish in time; closing their links");
                }
                break;
            }
        }
        if let Some((text, code)) = fail {
            match ending {
                None => {
                    message(&format!("{text}; ending the job"));
                    ending = Some(code);
                    end_deadline = Some(tokio::time::Instant::now() + END_WAIT);
                    for link in links.values() {
                        let _ = link.send(Command::Kill);
                    }
                }
                Some(_) => {
                    if cfg.verbose {
                        message(&text);
                    }
                }
            }
        }
    }

    if cfg.verbose {
        progress("every rank has exited");
    }
    // Normal end: every rank exited. Let the agents reap what the ranks left behind.
    if ending.is_none() {
        for link in links.values() {
            let _ = link.send(Command::Kill);
        }
        let deadline = tokio::time::Instant::now() + END_WAIT;
        while state.values().any(|s| !s.finished) {
            match tokio::time::timeout_at(deadline, ev_rx.recv()).await {
                Ok(Some((h, LinkEvent::Agent(Event::Done))))
                | Ok(Some((h, LinkEvent::Down { .. }))) => {
                    if let Some(s) = state.get_mut(&h) {
                        s.finished = true;
                    }
                }
                Ok(Some((_, LinkEvent::Agent(Event::Output { rank, stream, data })))) => {
                    let _ = sink.line(rank, stream, &data);
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }
    drop(links);
    // Any ssh client still running is killed: its remote agent sees the end of its control stream
    // and ends its ranks by itself.
    for s in state.values() {
        if let (false, Some(pid)) = (s.finished, s.ssh_pid) {
            if let Ok(pid) = i32::try_from(pid) {
                // SAFETY: kill(2) on our own unreaped child.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
    }
    if cfg.verbose {
        progress("done");
    }
    Ok(ending.unwrap_or(0))
}

fn describe(status: ExitStatus) -> String {
    match status {
        ExitStatus::Code(c) => format!("exited with status {c}"),
        ExitStatus::Signal(s) => format!("killed by signal {s} ({})", signal_name(s)),
    }
}

/// The address of this machine's route to `host` (no packet is sent: connecting a UDP socket
/// only selects a route). `None` when the name does not resolve here (an ssh config alias, say).
fn route_to(host: &HostEntry) -> Option<IpAddr> {
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
