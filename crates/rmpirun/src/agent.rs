//! The node agent: starts this host's ranks, forwards their output and exit status as
//! [`Event`]s, and ends them all when told to or when its control stream closes.
//!
//! It runs as `rmpirun --node-agent` with its control stream on stdin/stdout: the SSH session on
//! a remote host, pipes from `rmpirun` for this machine's ranks. (A separate process even locally:
//! if `rmpirun` is killed outright, the agent still sees its stdin close and cleans up.)
//! Each rank is the leader of its own process group (the group is what gets killed, so children
//! of a rank go too) and has `PR_SET_PDEATHSIG` = SIGKILL as a second safety net.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::binding::{allowed_cpus, cores, format_list, plan, BindTo, SYSFS_CPU};
use crate::notes::{NotePipe, Notes};
use crate::protocol::{
    read_frame, write_frame, Command, Event, ExitCause, ExitStatus, FrameError, JobSpec, Stream,
    PROTOCOL_VERSION,
};

/// Longest piece of a line forwarded as one event; longer lines are split.
pub const MAX_LINE: usize = 1 << 20;

/// Time ranks get between SIGTERM and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_millis(1000);

/// How long the agent waits, after SIGKILL, for its ranks' groups to be gone.
const GROUP_EXIT: Duration = Duration::from_secs(2);

/// How long a rank's output is still read after the rank itself exited (a child of the rank may
/// hold the pipe open).
const OUTPUT_DRAIN: Duration = Duration::from_millis(500);

/// Agent failure.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The control stream broke.
    #[error("control stream: {0}")]
    Frame(#[from] FrameError),
    /// Nothing came from the launcher for this long.
    #[error("no word from rmpirun for {0:?}; ended every rank")]
    Silent(Duration),
}

/// Runs an agent on a control stream until told to stop or the stream closes. Every rank it
/// started, and every process left in a rank's process group, has exited when this returns
/// (unless one survives SIGKILL for two seconds, e.g. stuck in uninterruptible I/O).
///
/// With a `watchdog`, hearing nothing from the launcher for that long counts as losing it.
pub async fn run_agent<R, W>(
    mut input: R,
    output: W,
    ssh_client: Option<String>,
    watchdog: Option<Duration>,
) -> Result<(), AgentError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel::<Event>();
    let writer = tokio::spawn(write_events(rx, output));
    let _ =
        tx.send(Event::Hello { version: PROTOCOL_VERSION, pid: std::process::id(), ssh_client });
    let keepalive = watchdog.map(|_| {
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(crate::protocol::PING_INTERVAL);
            loop {
                tick.tick().await;
                if tx.send(Event::Alive).is_err() {
                    return;
                }
            }
        })
    });

    let mut ranks = Ranks::default();
    let mut stdin_tx: Option<mpsc::UnboundedSender<Vec<u8>>> = None;
    let mut gatherer: Option<rmpi_transport::directory::gatherer::Gatherer> = None;
    let result = loop {
        let next = read_frame::<_, Command>(&mut input);
        let frame = match watchdog {
            Some(limit) => match tokio::time::timeout(limit, next).await {
                Ok(f) => f,
                Err(_) => break Err(AgentError::Silent(limit)),
            },
            None => next.await,
        };
        match frame {
            Ok(Some(Command::Ping)) => {}
            Ok(Some(Command::Start(mut spec))) => {
                if let Some(host) = spec.directory {
                    match crate::directory::start_gatherer(&spec, host, &tx) {
                        Ok((g, var)) => {
                            spec.env.push(var);
                            gatherer = Some(g);
                        }
                        Err(error) => {
                            for &rank in &spec.ranks {
                                let error = error.clone();
                                let _ =
                                    tx.send(Event::SpawnFailed { rank, error, not_found: false });
                            }
                            continue;
                        }
                    }
                }
                stdin_tx = ranks.start(&spec, &tx).await;
            }
            Ok(Some(Command::Directory(frame))) => {
                if let Some(g) = &gatherer {
                    g.handle.deliver(frame);
                }
            }
            Ok(Some(Command::Stdin(data))) => {
                if let Some(s) = &stdin_tx {
                    let _ = s.send(data);
                }
            }
            Ok(Some(Command::StdinEof)) => stdin_tx = None,
            Ok(Some(Command::Kill)) | Ok(None) => break Ok(()),
            Err(e) => break Err(AgentError::Frame(e)),
        }
    };
    drop(stdin_tx);
    if let Some(k) = keepalive {
        k.abort();
    }
    ranks.end_all().await;
    if let Some(g) = gatherer {
        g.handle.stop();
    }
    let _ = tx.send(Event::Done);
    drop(tx);
    let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
    result
}

async fn write_events<W: AsyncWrite + Unpin>(mut rx: mpsc::UnboundedReceiver<Event>, mut out: W) {
    while let Some(ev) = rx.recv().await {
        if write_frame(&mut out, &ev).await.is_err() {
            // The launcher is gone; keep draining so senders never block, the control stream's
            // end will stop the agent.
            while rx.recv().await.is_some() {}
            return;
        }
    }
    let _ = out.shutdown().await;
}

/// The ranks this agent started.
#[derive(Default)]
struct Ranks {
    /// Process group ids (= leader pids) of started ranks.
    groups: Vec<i32>,
    tasks: JoinSet<()>,
    /// Which signals the agent has sent its ranks (to tell its own kills from others').
    sent: Arc<SentSignals>,
    /// What each rank (by process group) told the agent.
    notes: Vec<(i32, Arc<NotePipe>)>,
}

/// Ranks being forked at once (each fork waits for its child's exec).
const SPAWNERS: usize = 4;

/// A rank's process as the spawning thread hands it back.
struct Spawned {
    rank: u32,
    program: PathBuf,
    wants_stdin: bool,
    notes: Option<tokio::net::unix::pipe::Receiver>,
    spawned: std::io::Result<tokio::process::Child>,
}

/// The signals an agent has sent to end its ranks.
#[derive(Default)]
struct SentSignals {
    term: AtomicBool,
    kill: AtomicBool,
}

impl SentSignals {
    /// Why a rank that ended with `status` ended, given what it told the agent.
    fn cause(&self, status: ExitStatus, notes: &Notes) -> ExitCause {
        if let Some((how, _)) = &notes.failed {
            return ExitCause::Failed(how.clone());
        }
        let lost = &notes.lost;
        // Only the very signal the agent sent counts as the agent's doing: a SIGKILL before the
        // agent's own (it sends SIGTERM first) came from elsewhere, and so did any exit status.
        let ours = match status {
            ExitStatus::Signal(s) if s == libc::SIGTERM => self.term.load(Ordering::SeqCst),
            ExitStatus::Signal(s) if s == libc::SIGKILL => self.kill.load(Ordering::SeqCst),
            _ => false,
        };
        match lost.first() {
            _ if ours => ExitCause::EndedByAgent,
            Some(&peer) => ExitCause::LostPeer(peer),
            None => ExitCause::Own,
        }
    }
}

impl Ranks {
    /// Starts every rank of `spec`; returns the stdin feed of the rank that gets stdin.
    async fn start(
        &mut self,
        spec: &JobSpec,
        tx: &mpsc::UnboundedSender<Event>,
    ) -> Option<mpsc::UnboundedSender<Vec<u8>>> {
        let mut stdin_feed = None;
        // Where the ranks run and on which CPUs: a failure here fails every rank.
        let (cwd, binding) = match resolve_cwd(spec).and_then(|c| Ok((c, plan_binding(spec)?))) {
            Ok(v) => v,
            Err(error) => {
                for &rank in &spec.ranks {
                    let _ = tx.send(Event::SpawnFailed {
                        rank,
                        error: error.clone(),
                        not_found: false,
                    });
                }
                return None;
            }
        };
        let local_size = spec.ranks.len();
        let mut spawning = JoinSet::new();
        let mut failed = false;
        for (local_rank, &rank) in spec.ranks.iter().enumerate() {
            let Some(program) = spec.argv.first() else {
                let _ = tx.send(Event::SpawnFailed {
                    rank,
                    error: "no program given".into(),
                    not_found: false,
                });
                return None;
            };
            let program = resolve_program(program, cwd.as_deref());
            let mut cmd = tokio::process::Command::new(&program);
            // A hostfile name is what the user calls the host; "localhost" says nothing, so then
            // the rank reports the machine's own name.
            let host = (!is_loopback_name(&spec.host)).then_some(spec.host.as_str());
            let vars = rmpi_transport::env::rank_vars(rank as usize, local_rank, local_size, host);
            cmd.args(&spec.argv[1..])
                .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .envs(vars);
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
            if let Some(dir) = &cwd {
                cmd.current_dir(dir);
            }
            let wants_stdin = spec.forward_stdin_to == Some(rank);
            cmd.stdin(if wants_stdin { Stdio::piped() } else { Stdio::null() });
            set_parent_death_signal(&mut cmd);
            // The pipe the rank's transport writes its "lost peer" notes to; without one (out of
            // descriptors) the rank runs all the same, its failures just all count as its own.
            let notes = tokio::net::unix::pipe::pipe()
                .and_then(|(tx, rx)| Ok((tx.into_blocking_fd()?, rx)))
                .ok();
            if let Some((note_fd, _)) = &notes {
                pass_note_pipe(&mut cmd, note_fd.as_raw_fd());
            }
            let cpus = binding.as_ref().and_then(|b| b.get(local_rank));
            if let Some(cpus) = cpus {
                crate::binding::bind_child(&mut cmd, cpus);
            }
            if spec.report_bindings {
                let what = match cpus {
                    Some(c) => format!("bound to CPU {}", format_list(c)),
                    None => "not bound".to_string(),
                };
                let line = format!("rmpirun: rank {rank} on {}: {what}\n", host_name(spec));
                let _ = tx.send(Event::Output { rank, stream: Stream::Stderr, data: line.into() });
            }
            // Forking waits for the child's exec; a few at once keep the cores busy.
            while spawning.len() >= SPAWNERS {
                if !self.started(spawning.join_next().await, tx, &mut stdin_feed) {
                    failed = true;
                }
            }
            if failed {
                break;
            }
            spawning.spawn_blocking(move || {
                let spawned = cmd.spawn();
                // Only the rank holds the write end now: the notes end when it (and its
                // children) are gone.
                let notes = notes.map(|(_, rx)| rx);
                Spawned { rank, program, wants_stdin, notes, spawned }
            });
        }
        while !spawning.is_empty() {
            self.started(spawning.join_next().await, tx, &mut stdin_feed);
        }
        stdin_feed
    }

    /// Takes over a rank that was just spawned (its output, notes and exit); `false` when it
    /// could not be started (then the ranks after it are not started either).
    fn started(
        &mut self,
        joined: Option<Result<Spawned, tokio::task::JoinError>>,
        tx: &mpsc::UnboundedSender<Event>,
        stdin_feed: &mut Option<mpsc::UnboundedSender<Vec<u8>>>,
    ) -> bool {
        let Some(joined) = joined else { return true };
        let Ok(Spawned { rank, program, wants_stdin, notes, spawned }) = joined else {
            return false;
        };
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                let _ = tx.send(Event::SpawnFailed {
                    rank,
                    error: format!("cannot start {}: {e}", program.display()),
                    not_found: e.kind() == std::io::ErrorKind::NotFound,
                });
                return false;
            }
        };
        let pid = child.id().unwrap_or(0);
        if let Ok(p) = i32::try_from(pid) {
            if p > 0 {
                self.groups.push(p);
            }
        }
        let _ = tx.send(Event::Started { rank, pid });
        if let Some(stdin) = child.stdin.take().filter(|_| wants_stdin) {
            let (stx, srx) = mpsc::unbounded_channel();
            tokio::spawn(feed_stdin(stdin, srx, tx.clone()));
            *stdin_feed = Some(stx);
        }
        let out = child
            .stdout
            .take()
            .map(|s| tokio::spawn(forward_lines(s, rank, Stream::Stdout, tx.clone())));
        let err = child
            .stderr
            .take()
            .map(|s| tokio::spawn(forward_lines(s, rank, Stream::Stderr, tx.clone())));
        let said = NotePipe::new(notes);
        if let Ok(p) = i32::try_from(pid) {
            self.notes.push((p, said.clone()));
        }
        let notes = Some(tokio::spawn(said.clone().follow()));
        let tx = tx.clone();
        let sent = self.sent.clone();
        self.tasks.spawn(async move {
            let status = match child.wait().await {
                Ok(st) => status_of(st),
                Err(_) => ExitStatus::Code(255),
            };
            let at_ms = crate::blame::now_ms();
            for reader in [out, err, notes].into_iter().flatten() {
                let abort = reader.abort_handle();
                if tokio::time::timeout(OUTPUT_DRAIN, reader).await.is_err() {
                    abort.abort();
                }
            }
            // A rank that said it failed failed then, not when it was reaped.
            let (cause, at_ms) = said
                .with(|n| (sent.cause(status, n), n.failed.as_ref().map_or(at_ms, |f| f.1)))
                .unwrap_or((ExitCause::Own, at_ms));
            let _ = tx.send(Event::Exited { rank, status, cause, at_ms });
        });
        true
    }

    /// SIGTERM to every rank's group, SIGKILL after the grace period, and waits for the exits
    /// to be reported.
    async fn end_all(&mut self) {
        self.sent.term.store(true, Ordering::SeqCst);
        // A rank that said it is failing is on its way out (unwinding, printing its panic):
        // SIGTERM would only hide how it ended. SIGKILL after the grace period still applies.
        // What its pipe holds is read now: the note may have come a moment ago.
        let going = |g: &i32| {
            self.notes
                .iter()
                .any(|(p, n)| p == g && n.with(|n| n.failed.is_some()).unwrap_or(false))
        };
        let term: Vec<i32> = self.groups.iter().copied().filter(|g| !going(g)).collect();
        signal_groups(&term, libc::SIGTERM);
        let deadline = tokio::time::Instant::now() + KILL_GRACE;
        while !self.tasks.is_empty() {
            if tokio::time::timeout_at(deadline, self.tasks.join_next()).await.is_err() {
                break;
            }
        }
        // Children of ranks may outlive their leader: kill the groups in any case.
        self.sent.kill.store(true, Ordering::SeqCst);
        signal_groups(&self.groups, libc::SIGKILL);
        let deadline = tokio::time::Instant::now() + GROUP_EXIT;
        while !self.tasks.is_empty() {
            if tokio::time::timeout_at(deadline, self.tasks.join_next()).await.is_err() {
                break;
            }
        }
        // A leader's exit says nothing of the rest of its group: SIGKILL is only queued by
        // kill(2), and a loaded host may run the other members' exits much later. Wait until
        // every member has exited (again SIGKILL-ing, in case one forked meanwhile).
        let deadline = tokio::time::Instant::now() + GROUP_EXIT;
        let groups = std::mem::take(&mut self.groups);
        let mut alive = groups;
        loop {
            alive.retain(|&g| crate::procs::group_has_live_members(g));
            if alive.is_empty() || tokio::time::Instant::now() >= deadline {
                break;
            }
            signal_groups(&alive, libc::SIGKILL);
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

fn is_loopback_name(host: &str) -> bool {
    matches!(host, "localhost" | "127.0.0.1" | "::1")
}

/// The host's name for messages: the hostfile's, or the machine's own instead of "localhost".
fn host_name(spec: &JobSpec) -> String {
    let own = || std::fs::read_to_string("/proc/sys/kernel/hostname").ok();
    match is_loopback_name(&spec.host).then(own).flatten() {
        Some(name) if !name.trim().is_empty() => name.trim().to_string(),
        _ => spec.host.clone(),
    }
}

/// The CPUs of each local rank under `spec.bind`, on this host's CPUs; `None`: no binding.
fn plan_binding(spec: &JobSpec) -> Result<Option<Vec<Vec<usize>>>, String> {
    if spec.bind == BindTo::None {
        return Ok(None);
    }
    let cpus = match allowed_cpus() {
        Ok(c) => c,
        // Binding on our own initiative is best effort; a binding asked for is not.
        Err(_) if spec.bind == BindTo::Auto => return Ok(None),
        Err(e) => return Err(format!("cannot read the CPUs {} may use: {e}", spec.host)),
    };
    let cores = cores(&cpus, std::path::Path::new(SYSFS_CPU));
    Ok(plan(spec.bind, spec.ranks.len(), &cores))
}

fn signal_groups(groups: &[i32], sig: i32) {
    for &g in groups {
        // SAFETY: kill(2) with a negative pid signals that process group; no memory involved.
        unsafe {
            libc::kill(-g, sig);
        }
    }
}

fn resolve_cwd(spec: &JobSpec) -> Result<Option<PathBuf>, String> {
    let Some(dir) = &spec.cwd else { return Ok(None) };
    let path = PathBuf::from(dir);
    if path.is_dir() {
        return Ok(Some(path));
    }
    if spec.cwd_required {
        return Err(format!("working directory {dir} does not exist"));
    }
    Ok(std::env::var_os("HOME").map(PathBuf::from))
}

/// A relative program path with a `/` is taken relative to the rank's working directory.
fn resolve_program(program: &str, cwd: Option<&Path>) -> PathBuf {
    let p = PathBuf::from(program);
    match cwd {
        Some(dir) if p.is_relative() && program.contains('/') => dir.join(p),
        _ => p,
    }
}

/// Lets the rank inherit `fd` (the agent's copy is close-on-exec) and names it in
/// `RMPI_AGENT_FD`.
fn pass_note_pipe(cmd: &mut tokio::process::Command, fd: i32) {
    cmd.env(rmpi_transport::agent_note::AGENT_FD, fd.to_string());
    // SAFETY: the closure runs between fork and exec and only calls fcntl, which is
    // async-signal-safe; it changes the flags of the child's copy of `fd` alone.
    unsafe {
        cmd.pre_exec(move || {
            if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

fn set_parent_death_signal(cmd: &mut tokio::process::Command) {
    let parent = std::process::id();
    // SAFETY: the closure runs between fork and exec and only calls async-signal-safe
    // functions (prctl, getppid).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() as u32 != parent {
                return Err(std::io::Error::other("launcher exited during spawn"));
            }
            Ok(())
        });
    }
}

fn status_of(st: std::process::ExitStatus) -> ExitStatus {
    use std::os::unix::process::ExitStatusExt;
    match (st.code(), st.signal()) {
        (Some(c), _) => ExitStatus::Code(c),
        (None, Some(s)) => ExitStatus::Signal(s),
        (None, None) => ExitStatus::Code(255),
    }
}

/// Writes stdin chunks to the rank, acknowledging each (see [`Event::StdinAck`]).
async fn feed_stdin(
    mut stdin: tokio::process::ChildStdin,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
    tx: mpsc::UnboundedSender<Event>,
) {
    let mut open = true;
    while let Some(data) = rx.recv().await {
        // Once the rank closed its stdin, further input is dropped (and still acknowledged).
        open = open && stdin.write_all(&data).await.is_ok();
        let _ = tx.send(Event::StdinAck { bytes: data.len() as u64 });
    }
}

/// Reads a stream line by line and sends each complete line (a final unterminated line gets a
/// newline) as one event.
async fn forward_lines<S: AsyncRead + Unpin>(
    stream: S,
    rank: u32,
    which: Stream,
    tx: mpsc::UnboundedSender<Event>,
) {
    let mut reader = BufReader::with_capacity(64 * 1024, stream);
    let mut line = Vec::new();
    while let Ok(buf) = reader.fill_buf().await {
        if buf.is_empty() {
            break;
        }
        let room = MAX_LINE - line.len();
        let (take, complete) = match buf.iter().take(room).position(|&b| b == b'\n') {
            Some(pos) => (pos + 1, true),
            None => (buf.len().min(room), line.len() + buf.len() >= MAX_LINE),
        };
        line.extend_from_slice(&buf[..take]);
        reader.consume(take);
        if complete {
            let data = std::mem::take(&mut line);
            if tx.send(Event::Output { rank, stream: which, data }).is_err() {
                return;
            }
        }
    }
    if !line.is_empty() {
        line.push(b'\n');
        let _ = tx.send(Event::Output { rank, stream: which, data: line });
    }
}

/// Entry point of `rmpirun --node-agent`: the control stream is stdin/stdout.
pub fn agent_main() -> i32 {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rmpirun agent: cannot start runtime: {e}");
            return 1;
        }
    };
    let ssh_client = std::env::var("SSH_CONNECTION")
        .ok()
        .and_then(|c| c.split_whitespace().next().map(str::to_string));
    let code = rt.block_on(async {
        let watchdog = Some(crate::protocol::AGENT_WATCHDOG);
        match run_agent(tokio::io::stdin(), tokio::io::stdout(), ssh_client, watchdog).await {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("rmpirun agent: {e}");
                1
            }
        }
    });
    // stdin may still be read by a blocking thread; do not wait for it.
    std::process::exit(code);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The next event other than a keep-alive.
    async fn next(rx: &mut (impl AsyncRead + Unpin)) -> Event {
        loop {
            let ev = tokio::time::timeout(Duration::from_secs(10), read_frame::<_, Event>(rx))
                .await
                .expect("event in time")
                .expect("frame")
                .expect("not eof");
            if !matches!(ev, Event::Alive) {
                return ev;
            }
        }
    }

    type Duplex = tokio::io::DuplexStream;

    /// Starts an agent on in-memory streams; returns the control writer, the event reader (past
    /// the hello) and the agent task.
    async fn start_agent(
        watchdog: Option<Duration>,
    ) -> (Duplex, Duplex, tokio::task::JoinHandle<Result<(), AgentError>>) {
        let (ctl, agent_in) = tokio::io::duplex(1 << 16);
        let (agent_out, mut events) = tokio::io::duplex(1 << 16);
        let agent = tokio::spawn(run_agent(agent_in, agent_out, None, watchdog));
        let hello = next(&mut events).await;
        assert!(matches!(hello, Event::Hello { version: PROTOCOL_VERSION, .. }), "{hello:?}");
        (ctl, events, agent)
    }

    fn spec(argv: &[&str], ranks: Vec<u32>) -> JobSpec {
        JobSpec {
            host: "test".into(),
            argv: argv.iter().map(|s| s.to_string()).collect(),
            cwd: None,
            cwd_required: false,
            env: vec![("RMPI_SIZE".into(), "2".into())],
            ranks,
            forward_stdin_to: None,
            bind: BindTo::None,
            report_bindings: false,
            directory: None,
        }
    }

    #[tokio::test]
    async fn runs_ranks_forwards_lines_and_status() {
        let (mut ctl, mut events, agent) = start_agent(None).await;
        let script = "printf 'a%s\\n' $RMPI_RANK; printf 'partial'; echo err >&2; exit $RMPI_RANK";
        write_frame(&mut ctl, &Command::Start(spec(&["sh", "-c", script], vec![0, 1])))
            .await
            .unwrap();
        let mut out = std::collections::BTreeMap::new();
        let mut exits = std::collections::BTreeMap::new();
        while exits.len() < 2 {
            match next(&mut events).await {
                Event::Output { rank, stream, data } => {
                    out.entry((rank, stream)).or_insert_with(Vec::new).push(data)
                }
                Event::Exited { rank, status, .. } => {
                    exits.insert(rank, status);
                }
                Event::Started { .. } => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(out[&(1, Stream::Stdout)], vec![b"a1\n".to_vec(), b"partial\n".to_vec()]);
        assert_eq!(out[&(0, Stream::Stderr)], vec![b"err\n".to_vec()]);
        assert_eq!(exits[&0], ExitStatus::Code(0));
        assert_eq!(exits[&1], ExitStatus::Code(1));
        drop(ctl);
        assert!(matches!(next(&mut events).await, Event::Done));
        agent.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn closing_the_control_stream_kills_rank_groups() {
        let (mut ctl, mut events, agent) = start_agent(None).await;
        // The rank ignores SIGTERM and has a child: both must be gone after the agent returns.
        let script = "trap '' TERM; sleep 300 & echo $!; wait";
        write_frame(&mut ctl, &Command::Start(spec(&["sh", "-c", script], vec![0]))).await.unwrap();
        let mut pids = Vec::new();
        while pids.len() < 2 {
            match next(&mut events).await {
                Event::Started { pid, .. } => pids.push(pid as i32),
                Event::Output { data, .. } => {
                    pids.push(String::from_utf8_lossy(&data).trim().parse().unwrap())
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        let t0 = std::time::Instant::now();
        drop(ctl);
        loop {
            match next(&mut events).await {
                Event::Exited { status, .. } => assert_eq!(status, ExitStatus::Signal(9)),
                Event::Done => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        agent.await.unwrap().unwrap();
        assert!(t0.elapsed() < Duration::from_secs(3));
        for pid in pids {
            assert!(!crate::procs::is_running(pid), "pid {pid} survived");
        }
    }

    #[tokio::test]
    async fn silent_launcher_trips_the_watchdog() {
        let limit = Duration::from_millis(300);
        let (mut ctl, mut events, agent) = start_agent(Some(limit)).await;
        write_frame(&mut ctl, &Command::Start(spec(&["sleep", "300"], vec![0]))).await.unwrap();
        assert!(matches!(next(&mut events).await, Event::Started { .. }));
        // Pings keep it alive past the limit...
        for _ in 0..4 {
            tokio::time::sleep(limit / 2).await;
            write_frame(&mut ctl, &Command::Ping).await.unwrap();
        }
        // ...silence (with the stream still open) ends the ranks.
        let t0 = std::time::Instant::now();
        assert!(matches!(
            next(&mut events).await,
            Event::Exited { status: ExitStatus::Signal(15), .. }
        ));
        assert!(t0.elapsed() >= limit / 2);
        assert!(matches!(next(&mut events).await, Event::Done));
        assert!(matches!(agent.await.unwrap(), Err(AgentError::Silent(_))));
        drop(ctl);
    }

    #[tokio::test]
    async fn missing_program_is_reported() {
        let (mut ctl, mut events, agent) = start_agent(None).await;
        write_frame(&mut ctl, &Command::Start(spec(&["/nonexistent/app"], vec![0]))).await.unwrap();
        match next(&mut events).await {
            Event::SpawnFailed { rank: 0, error, not_found: true } => {
                assert!(error.contains("/nonexistent/app"), "{error}")
            }
            other => panic!("unexpected {other:?}"),
        }
        write_frame(&mut ctl, &Command::Kill).await.unwrap();
        assert!(matches!(next(&mut events).await, Event::Done));
        agent.await.unwrap().unwrap();
    }
}
