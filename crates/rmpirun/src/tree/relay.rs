//! `rmpirun --relay-agent`: the node agent of its own host (an in-process
//! [`run_agent`]) and the parent of the relays of its branch.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::child::{run_child, Child, HostSender};
use super::wire::{Branch, Down, HostEvent, Up, TREE_VERSION};
use crate::agent::run_agent;
use crate::link::SharedBinary;
use crate::protocol::{
    read_frame, write_frame, Command, Event, FrameError, AGENT_WATCHDOG, PING_INTERVAL,
};

/// How long the plan may take to come after the hello.
const PLAN_WITHIN: Duration = Duration::from_secs(60);

/// How long, once told to end, the relay waits for its ranks and its branch to report their end.
const END_WITHIN: Duration = Duration::from_secs(8);

/// Relay failure.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The control stream broke.
    #[error("control stream: {0}")]
    Frame(#[from] FrameError),
    /// The first frame was not the plan.
    #[error("expected the plan first, got {0}")]
    NoPlan(String),
    /// Nothing came from the parent for this long.
    #[error("no word from the parent for {0:?}; ended the branch")]
    Silent(Duration),
}

/// Runs a relay on a control stream until told to end or the stream ends (or goes silent);
/// when it returns its own ranks have ended and every child relay has ended or been cut off.
pub async fn run_relay<R, W>(
    mut input: R,
    output: W,
    ssh_client: Option<String>,
) -> Result<(), RelayError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (up_tx, up_rx) = mpsc::unbounded_channel::<Up>();
    let writer = tokio::spawn(write_up(up_rx, output));
    let pid = std::process::id();
    let _ = up_tx.send(Up::Hello { version: TREE_VERSION, pid, ssh_client });
    let keepalive = {
        let tx = up_tx.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(PING_INTERVAL);
            loop {
                tick.tick().await;
                if tx.send(Up::Alive).is_err() {
                    return;
                }
            }
        })
    };
    let first = tokio::time::timeout(PLAN_WITHIN, read_frame::<_, Down>(&mut input)).await;
    let (branch, ssh) = match first {
        Ok(Ok(Some(Down::Plan { branch, ssh }))) => (branch, ssh),
        Ok(Ok(Some(other))) => return Err(RelayError::NoPlan(format!("{other:?}"))),
        Ok(Ok(None)) => return Ok(()),
        Ok(Err(e)) => return Err(e.into()),
        Err(_) => return Err(RelayError::Silent(PLAN_WITHIN)),
    };
    let (news_tx, mut news_rx) = mpsc::unbounded_channel::<(u32, HostEvent)>();
    let forward = {
        let up = up_tx.clone();
        tokio::spawn(async move {
            while let Some((host, event)) = news_rx.recv().await {
                let _ = up.send(Up::Host { host, event });
            }
        })
    };
    let own = start_own(&branch, news_tx.clone());
    let children = start_children(&branch, &ssh.settings(), &news_tx);
    drop(news_tx);

    let result = loop {
        let frame = match tokio::time::timeout(AGENT_WATCHDOG, read_frame(&mut input)).await {
            Ok(f) => f,
            Err(_) => break Err(RelayError::Silent(AGENT_WATCHDOG)),
        };
        match frame {
            Ok(Some(Down::Ping)) | Ok(Some(Down::Plan { .. })) => {}
            Ok(Some(Down::To { host, command })) if host == branch.index => {
                let _ = own.commands.send(command);
            }
            Ok(Some(Down::To { host, command })) => {
                if let Some(i) = branch.child_holding(host) {
                    let _ = children[i].0.send(Down::To { host, command });
                }
            }
            Ok(Some(Down::ToBranch { command })) => {
                for (tx, _) in &children {
                    let _ = tx.send(Down::ToBranch { command: command.clone() });
                }
                let _ = own.commands.send(command);
            }
            Ok(Some(Down::Kill)) | Ok(None) => break Ok(()),
            Err(e) => break Err(RelayError::Frame(e)),
        }
    };
    // End the branch: own ranks and every child; wait (bounded) for their last news.
    let _ = own.commands.send(Command::Kill);
    for (tx, _) in &children {
        let _ = tx.send(Down::Kill);
    }
    let deadline = tokio::time::Instant::now() + END_WITHIN;
    let _ = tokio::time::timeout_at(deadline, own.events).await;
    for (tx, task) in children {
        let abort = task.abort_handle();
        if tokio::time::timeout_at(deadline, task).await.is_err() {
            // Dropping the task kills its ssh client: that relay sees its stdin end.
            abort.abort();
        }
        drop(tx);
    }
    drop(own.commands);
    let _ = tokio::time::timeout_at(deadline, forward).await;
    keepalive.abort();
    drop(up_tx);
    let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
    result
}

/// This host's own ranks, under an agent in this process.
struct Own {
    /// Commands for the agent; dropping it ends the agent's ranks.
    commands: mpsc::UnboundedSender<Command>,
    /// Ends after the agent's last event was passed on.
    events: tokio::task::JoinHandle<()>,
}

fn start_own(branch: &Branch, news: HostSender) -> Own {
    let index = branch.index;
    let job = branch.job.clone();
    let (mut ctl, agent_in) = tokio::io::duplex(1 << 16);
    let (agent_out, mut from_agent) = tokio::io::duplex(1 << 16);
    tokio::spawn(run_agent(agent_in, agent_out, None, None));
    let (tx, mut rx) = mpsc::unbounded_channel::<Command>();
    let _ = tx.send(Command::Start(job));
    tokio::spawn(async move {
        while let Some(cmd) = rx.recv().await {
            if write_frame(&mut ctl, &cmd).await.is_err() {
                return;
            }
        }
        let _ = ctl.shutdown().await;
    });
    let events = tokio::spawn(async move {
        let mut said_up = false;
        while let Ok(Some(ev)) = read_frame::<_, Event>(&mut from_agent).await {
            let event = match ev {
                Event::Hello { .. } | Event::Alive => {
                    if !said_up {
                        said_up = true;
                        let _ = news.send((index, HostEvent::Up));
                    }
                    continue;
                }
                ev => HostEvent::Agent(ev),
            };
            let done = matches!(event, HostEvent::Agent(Event::Done));
            let _ = news.send((index, event));
            if done {
                return;
            }
        }
        let _ = news.send((index, HostEvent::Down { reason: "its agent ended".into() }));
    });
    Own { commands: tx, events }
}

type ChildLink = (mpsc::UnboundedSender<Down>, tokio::task::JoinHandle<()>);

fn start_children(
    branch: &Branch,
    ssh: &crate::ssh::SshSettings,
    news: &HostSender,
) -> Vec<ChildLink> {
    let ssh = Arc::new(ssh.clone());
    let bin: SharedBinary = Arc::new(tokio::sync::OnceCell::new());
    branch
        .children
        .iter()
        .map(|b| {
            let (tx, rx) = mpsc::unbounded_channel();
            let child =
                Child { branch: b.clone(), ssh: ssh.clone(), bin: bin.clone(), verbose: false };
            let task = tokio::spawn(run_child(child, rx, news.clone(), Box::new(|_, _| Ok(()))));
            (tx, task)
        })
        .collect()
}

async fn write_up<W: AsyncWrite + Unpin>(mut rx: mpsc::UnboundedReceiver<Up>, mut out: W) {
    while let Some(frame) = rx.recv().await {
        if write_frame(&mut out, &frame).await.is_err() {
            // The parent is gone; keep draining so senders never block.
            while rx.recv().await.is_some() {}
            return;
        }
    }
    let _ = out.shutdown().await;
}

/// Entry point of `rmpirun --relay-agent`: the control stream is stdin/stdout.
pub fn relay_main() -> i32 {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rmpirun relay: cannot start runtime: {e}");
            return 1;
        }
    };
    let ssh_client = std::env::var("SSH_CONNECTION")
        .ok()
        .and_then(|c| c.split_whitespace().next().map(str::to_string));
    let code = rt.block_on(async {
        match run_relay(tokio::io::stdin(), tokio::io::stdout(), ssh_client).await {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("rmpirun relay: {e}");
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
    use crate::binding::BindTo;
    use crate::protocol::{ExitStatus, JobSpec, Stream};
    use crate::tree::wire::{Host, Ssh};

    async fn next(rx: &mut (impl AsyncRead + Unpin)) -> Up {
        loop {
            let up = tokio::time::timeout(Duration::from_secs(10), read_frame::<_, Up>(rx))
                .await
                .expect("frame in time")
                .expect("frame")
                .expect("not eof");
            if !matches!(up, Up::Alive) {
                return up;
            }
        }
    }

    fn branch(script: &str) -> Branch {
        Branch {
            index: 7,
            host: Host { name: "h7".into(), user: None, port: None },
            job: JobSpec {
                host: "h7".into(),
                argv: vec!["sh".into(), "-c".into(), script.into()],
                cwd: None,
                cwd_required: false,
                env: Vec::new(),
                ranks: vec![3, 4],
                forward_stdin_to: Some(3),
                bind: BindTo::None,
                report_bindings: false,
                directory: None,
            },
            children: Vec::new(),
        }
    }

    #[tokio::test]
    async fn a_leaf_relay_runs_its_ranks_tags_their_news_and_takes_stdin() {
        let (mut down, relay_in) = tokio::io::duplex(1 << 16);
        let (relay_out, mut up) = tokio::io::duplex(1 << 16);
        let relay = tokio::spawn(run_relay(relay_in, relay_out, None));
        assert!(matches!(next(&mut up).await, Up::Hello { version: TREE_VERSION, .. }));
        // Rank 3 echoes its stdin; rank 4 says its rank and exits with status 2.
        let script = "if [ $RMPI_RANK = 3 ]; then cat; else echo r$RMPI_RANK; exit 2; fi";
        let ssh = Ssh { command: vec!["ssh".into()], connect_timeout: 1, cache_dir: None };
        write_frame(&mut down, &Down::Plan { branch: branch(script), ssh }).await.unwrap();
        let stdin = Command::Stdin(b"fed\n".to_vec());
        write_frame(&mut down, &Down::To { host: 7, command: stdin }).await.unwrap();
        write_frame(&mut down, &Down::To { host: 7, command: Command::StdinEof }).await.unwrap();
        let mut lines = Vec::new();
        let mut exits = Vec::new();
        let mut up_seen = false;
        while exits.len() < 2 {
            let Up::Host { host, event } = next(&mut up).await else { panic!("not host news") };
            assert_eq!(host, 7);
            match event {
                HostEvent::Up => up_seen = true,
                HostEvent::Agent(Event::Output { rank, stream: Stream::Stdout, data }) => {
                    lines.push((rank, String::from_utf8(data).unwrap()))
                }
                HostEvent::Agent(Event::Exited { rank, status, .. }) => exits.push((rank, status)),
                HostEvent::Agent(Event::Started { .. } | Event::StdinAck { .. }) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(up_seen);
        lines.sort();
        assert_eq!(lines, vec![(3, "fed\n".to_string()), (4, "r4\n".to_string())]);
        exits.sort_by_key(|e| e.0);
        assert_eq!(exits, vec![(3, ExitStatus::Code(0)), (4, ExitStatus::Code(2))]);
        write_frame(&mut down, &Down::Kill).await.unwrap();
        loop {
            match next(&mut up).await {
                Up::Host { event: HostEvent::Agent(Event::Done), .. } => break,
                Up::Host { event: HostEvent::Agent(Event::StdinAck { .. }), .. } => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        relay.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_relay_whose_parent_goes_silent_ends_its_ranks() {
        let (mut down, relay_in) = tokio::io::duplex(1 << 16);
        let (relay_out, mut up) = tokio::io::duplex(1 << 16);
        let relay = tokio::spawn(run_relay(relay_in, relay_out, None));
        assert!(matches!(next(&mut up).await, Up::Hello { .. }));
        let ssh = Ssh { command: vec!["ssh".into()], connect_timeout: 1, cache_dir: None };
        let plan = Down::Plan { branch: branch("exec sleep 300"), ssh };
        write_frame(&mut down, &plan).await.unwrap();
        // No pings: after the watchdog both ranks are ended by their agent.
        let mut ended = 0;
        while ended < 2 {
            if let Up::Host { event: HostEvent::Agent(Event::Exited { status, .. }), .. } =
                next(&mut up).await
            {
                assert_eq!(status, ExitStatus::Signal(libc::SIGTERM));
                ended += 1;
            }
        }
        assert!(matches!(relay.await.unwrap(), Err(RelayError::Silent(_))));
        drop(down);
    }
}
