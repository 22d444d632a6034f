//! A parent's side of one relay (in rmpirun, or in a relay for its children): opens the session,
//! waits for the relay's hello, hands it its branch, relays [`Down`] frames to it (with a ping
//! every [`PING_INTERVAL`]) and its [`Up`] news back, and when the session ends reports every
//! host of the branch that had not finished as lost, the relay's own host first.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::session::{self, Session};
use super::wire::{Branch, Down, HostEvent, Ssh, Up, TREE_VERSION};
use crate::link::SharedBinary;
use crate::output::progress;
use crate::protocol::{read_frame, write_frame, Event, AGENT_WATCHDOG, PING_INTERVAL};
use crate::ssh::SshSettings;

/// Where a parent's news of its hosts go: `(host index, what happened)`.
pub type HostSender = mpsc::UnboundedSender<(u32, HostEvent)>;

/// Completes a branch once its relay said hello (rmpirun sets each job's `RMPI_RENDEZVOUS`,
/// knowing now how the relay reached it); an error is why the branch cannot start.
pub type Prepare = Box<dyn FnOnce(&mut Branch, Option<String>) -> Result<(), String> + Send>;

/// How long a relay may take to say hello once its session is up.
const HELLO_WITHIN: Duration = Duration::from_secs(60);

/// One relay to start.
pub struct Child {
    /// Its branch.
    pub branch: Branch,
    /// How to reach it (and how it reaches its own children).
    pub ssh: Arc<SshSettings>,
    /// The agent binary, read once per process.
    pub bin: SharedBinary,
    /// Print progress.
    pub verbose: bool,
}

/// Runs the relay of `child` to its end; every host of its branch has been reported finished
/// (its agent's [`Event::Done`]) or lost ([`HostEvent::Down`]) when this returns.
pub async fn run_child(
    child: Child,
    commands: mpsc::UnboundedReceiver<Down>,
    news: HostSender,
    prepare: Prepare,
) {
    let index = child.branch.index;
    let name = child.branch.host.entry().display_name();
    let hosts = child.branch.indices();
    let mut finished = HashSet::new();
    let on_stderr = {
        let news = news.clone();
        move |line: String| {
            let _ = news.send((index, HostEvent::Stderr(line)));
        }
    };
    let entry = child.branch.host.entry();
    let (reason, was_up) = match session::open(&entry, &child.ssh, &child.bin, on_stderr).await {
        Err(reason) => (reason, false),
        Ok(s) => {
            if child.verbose {
                progress(&format!(
                    "{name}: relay shell up ({} host(s) in its branch)",
                    hosts.len()
                ));
            }
            let mut up = false;
            let reason = drive(s, child, commands, &news, &mut finished, &mut up, prepare).await;
            (reason, up)
        }
    };
    for &h in &hosts {
        if finished.contains(&h) {
            continue;
        }
        let reason = match (h == index, was_up) {
            (true, _) => reason.clone(),
            (false, true) => format!("its relay {name} was lost ({reason})"),
            (false, false) => format!("its relay {name} did not start ({reason})"),
        };
        let _ = news.send((h, HostEvent::Down { reason }));
    }
}

/// Talks to a relay whose session is up; returns why the session ended.
async fn drive(
    s: Session,
    child: Child,
    mut commands: mpsc::UnboundedReceiver<Down>,
    news: &HostSender,
    finished: &mut HashSet<u32>,
    up: &mut bool,
    prepare: Prepare,
) -> String {
    let Session { child: ssh_child, mut from, mut to, stderr } = s;
    let reason = async {
        let hello = tokio::time::timeout(HELLO_WITHIN, read_frame::<_, Up>(&mut from)).await;
        let ssh_client = match hello {
            Ok(Ok(Some(Up::Hello { version, ssh_client, .. }))) if version == TREE_VERSION => {
                ssh_client
            }
            Ok(Ok(Some(Up::Hello { version, .. }))) => {
                return format!("relay speaks tree protocol {version}, expected {TREE_VERSION}")
            }
            Ok(Ok(Some(other))) => return format!("relay sent {other:?} before its hello"),
            Ok(Ok(None)) => return "relay ended before saying hello".into(),
            Ok(Err(e)) => return format!("relay: {e}"),
            Err(_) => return format!("relay did not say hello within {HELLO_WITHIN:?}"),
        };
        let mut branch = child.branch;
        if let Err(e) = prepare(&mut branch, ssh_client) {
            return e;
        }
        let hosts: HashSet<u32> = branch.indices().into_iter().collect();
        // Commands queued meanwhile: a Kill means the job ended already; start nothing.
        let mut queued = Vec::new();
        while let Ok(cmd) = commands.try_recv() {
            if matches!(cmd, Down::Kill) {
                return "ended before its ranks were started".into();
            }
            queued.push(cmd);
        }
        let plan = Down::Plan { branch, ssh: Ssh::of(&child.ssh) };
        for frame in std::iter::once(&plan).chain(queued.iter()) {
            if let Err(e) = write_frame(&mut to, frame).await {
                return format!("sending the job: {e}");
            }
        }
        *up = true;
        let writer = tokio::spawn(async move {
            let mut tick = tokio::time::interval(PING_INTERVAL);
            loop {
                let frame = tokio::select! {
                    cmd = commands.recv() => match cmd {
                        Some(c) => c,
                        None => break,
                    },
                    _ = tick.tick() => Down::Ping,
                };
                if write_frame(&mut to, &frame).await.is_err() {
                    break;
                }
            }
            // Dropping `to` ends the relay's control stream: it ends its branch.
        });
        let reason = loop {
            let next = read_frame::<_, Up>(&mut from);
            let frame = match tokio::time::timeout(AGENT_WATCHDOG, next).await {
                Ok(f) => f,
                Err(_) => break format!("no word from the relay for {AGENT_WATCHDOG:?}"),
            };
            match frame {
                Ok(Some(Up::Alive)) | Ok(Some(Up::Hello { .. })) => {}
                Ok(Some(Up::Host { host, event })) => {
                    if !hosts.contains(&host) {
                        continue;
                    }
                    if matches!(event, HostEvent::Agent(Event::Done) | HostEvent::Down { .. }) {
                        finished.insert(host);
                    }
                    let _ = news.send((host, event));
                }
                Ok(None) => break "connection closed".into(),
                Err(e) => break format!("connection broken: {e}"),
            }
        };
        writer.abort();
        reason
    }
    .await;
    session::finish(ssh_child, stderr, reason).await
}
