//! The launcher's connection to one host's agent: an SSH session (remote hosts) or a child
//! process (this machine). A link starts the agent, sends it the job, relays [`Command`]s to it and
//! reports everything it hears as [`LinkEvent`]s.

use std::net::{IpAddr, SocketAddr};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

use crate::hostfile::HostEntry;
use crate::output::progress;
use crate::protocol::{
    read_frame, write_frame, Command, Event, JobSpec, AGENT_WATCHDOG, PING_INTERVAL,
    PROTOCOL_VERSION,
};
use crate::ssh::{SshSettings, HAVE_BINARY, NEED_BINARY};

/// What a link reports to the job.
#[derive(Debug)]
pub enum LinkEvent {
    /// The agent runs and has been sent the job.
    Up,
    /// An event from the agent.
    Agent(Event),
    /// A line from ssh's stderr (ssh's own messages, or output of the remote login).
    Stderr(String),
    /// The link is gone; `reason` says how it ended.
    Down { reason: String },
}

/// The agent binary, read and hashed once (off the runtime thread) by whichever link needs it
/// first, while the ssh clients are already connecting.
pub type SharedBinary = Arc<tokio::sync::OnceCell<Result<Arc<AgentBinary>, String>>>;

pub(crate) async fn agent_binary(cell: &SharedBinary) -> Result<Arc<AgentBinary>, String> {
    cell.get_or_init(|| async {
        match tokio::task::spawn_blocking(AgentBinary::current).await {
            Ok(Ok(b)) => Ok(Arc::new(b)),
            Ok(Err(e)) => Err(format!("cannot read the rmpirun executable: {e}")),
            Err(e) => Err(format!("cannot read the rmpirun executable: {e}")),
        }
    })
    .await
    .clone()
}

/// The agent binary shipped to remote hosts.
#[derive(Debug)]
pub struct AgentBinary {
    /// The bytes of this very `rmpirun` executable.
    pub bytes: Vec<u8>,
    /// Hex content id (truncated SHA-256).
    pub hash: String,
}

impl AgentBinary {
    /// Reads the running executable.
    pub fn current() -> std::io::Result<Self> {
        use sha2::Digest;
        let bytes = std::fs::read("/proc/self/exe")?;
        let digest = sha2::Sha256::digest(&bytes);
        let hash = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        Ok(AgentBinary { bytes, hash })
    }
}

/// Everything one link needs.
pub struct LinkSpec {
    /// Index of the host (used to tag events).
    pub index: usize,
    /// The host.
    pub host: HostEntry,
    /// The job part for this host; `RMPI_RENDEZVOUS` is added by the link.
    pub job: JobSpec,
    /// Port of the rendezvous server.
    pub rendezvous_port: u16,
    /// The launcher's address as reachable from this host, if known in advance.
    pub route: Option<IpAddr>,
    /// `None`: the agent is a local child process. `Some`: over SSH, shipping this binary.
    pub remote: Option<(Arc<SshSettings>, SharedBinary)>,
    /// Print the ssh command line.
    pub verbose: bool,
}

/// Tagged event sender shared by all links.
pub type EventSender = mpsc::UnboundedSender<(usize, LinkEvent)>;

/// A running link.
pub struct Link {
    /// Commands for the agent. Dropping this sender (or sending [`Command::Kill`]) ends the
    /// agent's ranks.
    pub commands: mpsc::UnboundedSender<Command>,
    /// The link's task. Aborting it kills its ssh client (if not already reaped), whose remote
    /// agent then ends its ranks by itself.
    pub task: tokio::task::JoinHandle<()>,
}

/// Starts a link.
/// Most SSH sessions set up at once, by default: each costs the launcher an ssh process doing
/// key exchange and authentication, and a site's bastion or a shared sshd drops connections
/// beyond its own limit (`MaxStartups`, 10 unauthenticated by default). Every host still gets
/// exactly one session; the rest wait their turn. `RMPI_SSH_HANDSHAKES` changes it.
pub const DEFAULT_SSH_HANDSHAKES: usize = 64;

/// The variable that overrides [`DEFAULT_SSH_HANDSHAKES`].
pub const SSH_HANDSHAKES: &str = "RMPI_SSH_HANDSHAKES";

/// Permits for SSH sessions being set up (held from starting ssh until the remote shell runs).
pub(crate) fn handshakes() -> &'static tokio::sync::Semaphore {
    static PERMITS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    PERMITS.get_or_init(|| {
        let n = std::env::var(SSH_HANDSHAKES)
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|n| (1..=4096).contains(n))
            .unwrap_or(DEFAULT_SSH_HANDSHAKES);
        tokio::sync::Semaphore::new(n)
    })
}

pub fn spawn_link(spec: LinkSpec, events: EventSender) -> Link {
    let (ctl_tx, ctl_rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let index = spec.index;
        let reason = match spec.remote.clone() {
            None => run_local(spec, ctl_rx, &events).await,
            Some((ssh, bin)) => run_remote(spec, &ssh, &bin, ctl_rx, &events).await,
        };
        let _ = events.send((index, LinkEvent::Down { reason }));
    });
    Link { commands: ctl_tx, task }
}

/// This machine's ranks: a child `rmpirun --node-agent` (the same executable), so that even if
/// rmpirun is killed outright, its agent sees its stdin close and ends every rank's process group.
async fn run_local(
    spec: LinkSpec,
    ctl_rx: mpsc::UnboundedReceiver<Command>,
    events: &EventSender,
) -> String {
    let mut cmd = tokio::process::Command::new("/proc/self/exe");
    cmd.arg(crate::launcher::AGENT_FLAG)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        // Own process group: a Ctrl-C on the terminal reaches rmpirun only.
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return format!("cannot start the local agent: {e}"),
    };
    let (Some(stdout), Some(stdin)) = (child.stdout.take(), child.stdin.take()) else {
        return "local agent pipes missing".into();
    };
    let reason = drive(spec, BufReader::new(stdout), stdin, ctl_rx, events).await;
    match tokio::time::timeout(Duration::from_secs(2), child.wait()).await {
        Ok(Ok(st)) if !st.success() => format!("{reason}; local agent ended with {st}"),
        Ok(_) => reason,
        Err(_) => {
            let _ = child.start_kill();
            let _ = child.wait().await;
            format!("{reason}; local agent did not exit")
        }
    }
}

async fn run_remote(
    spec: LinkSpec,
    ssh: &SshSettings,
    bin: &SharedBinary,
    ctl_rx: mpsc::UnboundedReceiver<Command>,
    events: &EventSender,
) -> String {
    let index = spec.index;
    let remote = match ssh.bootstrap_command() {
        Ok(r) => r,
        Err(e) => return e.to_string(),
    };
    let argv = ssh.argv(&spec.host, &remote);
    if spec.verbose {
        let mut shown: Vec<String> =
            argv.iter().map(|a| a.to_string_lossy().into_owned()).collect();
        if let Some(last) = shown.last_mut() {
            *last = "'<bootstrap script>'".into();
        }
        progress(&format!("{}: {}", spec.host.display_name(), shown.join(" ")));
    }
    // Held until the remote shell answers (or the set-up fails).
    let permit = handshakes().acquire().await.ok();
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Own process group: a Ctrl-C on the terminal reaches rmpirun only, which then ends the
        // job in order instead of losing every SSH link at once.
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return format!("cannot run {}: {e}", argv[0].to_string_lossy()),
    };
    let stderr_task = child.stderr.take().map(|err| {
        let events = events.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(err).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = events.send((index, LinkEvent::Stderr(line)));
            }
        })
    });
    let (Some(stdout), Some(mut stdin)) = (child.stdout.take(), child.stdin.take()) else {
        return "ssh pipes missing".into();
    };
    let bin = match agent_binary(bin).await {
        Ok(b) => b,
        Err(e) => return e,
    };
    let header = SshSettings::bootstrap_header(bin.bytes.len() as u64, &bin.hash);
    // A failed write means ssh already ended; its stderr and status say why, below.
    let _ = stdin.write_all(header.as_bytes()).await;
    let mut reader = BufReader::new(stdout);
    let boot_limit = Duration::from_secs(ssh.connect_timeout + 30);
    let shell_up = tokio::time::timeout(boot_limit, wait_for_marker(&mut reader, index, events));
    let shell_up = shell_up.await;
    drop(permit);
    let reason = match shell_up {
        Err(_) => Some(format!("no answer from the remote shell within {boot_limit:?}")),
        Ok(Err(e)) => Some(e),
        Ok(Ok(need)) => {
            if spec.verbose {
                let what = if need { "sending the agent binary" } else { "agent cached" };
                progress(&format!("{}: shell up, {what}", spec.host.display_name()));
            }
            if need {
                match stdin.write_all(&bin.bytes).await.and(stdin.flush().await) {
                    Ok(()) => None,
                    Err(e) => Some(format!("sending the agent binary: {e}")),
                }
            } else {
                None
            }
        }
    };
    let reason = match reason {
        Some(r) => r,
        None => drive(spec, reader, stdin, ctl_rx, events).await,
    };
    // The agent's stdout is closed: ssh is ending (or must be made to).
    crate::ssh::finish_session(child, stderr_task, reason).await
}

/// Reads the remote shell's stdout up to the bootstrap marker; other lines (printed by login
/// scripts) are reported as stderr lines. Returns whether the binary must be sent.
async fn wait_for_marker<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    index: usize,
    events: &EventSender,
) -> Result<bool, String> {
    loop {
        let mut line = Vec::new();
        let n = (&mut *reader)
            .take(64 * 1024)
            .read_until(b'\n', &mut line)
            .await
            .map_err(|e| format!("reading from ssh: {e}"))?;
        if n == 0 {
            return Err("the session ended before the agent started".into());
        }
        let text = String::from_utf8_lossy(&line);
        match text.trim_end() {
            NEED_BINARY => return Ok(true),
            HAVE_BINARY => return Ok(false),
            other => {
                let _ = events.send((index, LinkEvent::Stderr(other.to_string())));
            }
        }
    }
}

/// Talks to a running agent: waits for its hello, sends the job, relays commands and events.
/// Returns why the link ended.
async fn drive<R, W>(
    mut spec: LinkSpec,
    mut from_agent: R,
    mut to_agent: W,
    mut ctl_rx: mpsc::UnboundedReceiver<Command>,
    events: &EventSender,
) -> String
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let index = spec.index;
    let hello =
        tokio::time::timeout(Duration::from_secs(60), read_frame::<_, Event>(&mut from_agent))
            .await;
    let ssh_client = match hello {
        Ok(Ok(Some(Event::Hello { version, ssh_client, .. }))) if version == PROTOCOL_VERSION => {
            ssh_client
        }
        Ok(Ok(Some(Event::Hello { version, .. }))) => {
            return format!("agent speaks protocol {version}, expected {PROTOCOL_VERSION}")
        }
        Ok(Ok(Some(other))) => return format!("agent sent {other:?} before its hello"),
        Ok(Ok(None)) => return "agent ended before saying hello".into(),
        Ok(Err(e)) => return format!("agent: {e}"),
        Err(_) => return "agent did not say hello within 60 s".into(),
    };
    let route = spec.route.or_else(|| ssh_client.and_then(|c| c.parse::<IpAddr>().ok()));
    let Some(route) = route else {
        return "cannot find an address of this machine that the host can reach".into();
    };
    let rendezvous = SocketAddr::new(route, spec.rendezvous_port);
    spec.job.env.push(rmpi_transport::env::rendezvous_var(rendezvous));
    // Commands queued while this host was connecting (stdin for rank 0, or a Kill when the job
    // was ended meanwhile: then start nothing).
    let mut queued = Vec::new();
    while let Ok(cmd) = ctl_rx.try_recv() {
        if matches!(cmd, Command::Kill) {
            return "ended before its ranks were started".into();
        }
        queued.push(cmd);
    }
    if let Err(e) = write_frame(&mut to_agent, &Command::Start(spec.job)).await {
        return format!("sending the job: {e}");
    }
    for cmd in &queued {
        if let Err(e) = write_frame(&mut to_agent, cmd).await {
            return format!("sending to the agent: {e}");
        }
    }
    let _ = events.send((index, LinkEvent::Up));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PING_INTERVAL);
        loop {
            let cmd = tokio::select! {
                cmd = ctl_rx.recv() => match cmd {
                    Some(c) => c,
                    None => break,
                },
                // Every agent is a process with a watchdog: keep it alive.
                _ = tick.tick() => Command::Ping,
            };
            if write_frame(&mut to_agent, &cmd).await.is_err() {
                break;
            }
        }
        // Dropping `to_agent` closes the agent's control stream: it ends its ranks.
    });
    loop {
        let next = read_frame::<_, Event>(&mut from_agent);
        let frame = match tokio::time::timeout(AGENT_WATCHDOG, next).await {
            Ok(f) => f,
            Err(_) => return format!("no word from the agent for {AGENT_WATCHDOG:?}"),
        };
        match frame {
            Ok(Some(Event::Alive)) => {}
            Ok(Some(ev)) => {
                let done = matches!(ev, Event::Done);
                let _ = events.send((index, LinkEvent::Agent(ev)));
                if done {
                    return "agent finished".into();
                }
            }
            Ok(None) => return "connection closed".into(),
            Err(e) => return format!("connection broken: {e}"),
        }
    }
}
