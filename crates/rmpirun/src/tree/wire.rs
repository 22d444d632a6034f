//! Frames between a parent (rmpirun or a relay) and a relay, framed like the agent protocol
//! ([`crate::protocol::read_frame`]): [`Down`] on the relay's stdin, [`Up`] on its stdout.
//! Hosts are named by their index in rmpirun's host list.

use serde::{Deserialize, Serialize};

use crate::hostfile::HostEntry;
use crate::protocol::{Command, Event, JobSpec};
use crate::ssh::SshSettings;

/// Version of these frames; a relay reports it in [`Up::Hello`].
pub const TREE_VERSION: u32 = 2;

/// How to reach a host over SSH.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Host {
    /// Name or address.
    pub name: String,
    /// Login name.
    pub user: Option<String>,
    /// Port.
    pub port: Option<u16>,
}

impl Host {
    /// From a hostfile entry.
    pub fn of(h: &HostEntry) -> Host {
        Host { name: h.name.clone(), user: h.user.clone(), port: h.port }
    }

    /// As a hostfile entry (for [`SshSettings::argv`]).
    pub fn entry(&self) -> HostEntry {
        HostEntry {
            name: self.name.clone(),
            user: self.user.clone(),
            port: self.port,
            slots: 1,
            max_slots: None,
        }
    }
}

/// A host's place in the tree: its job and the hosts its relay starts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Branch {
    /// Index in rmpirun's host list.
    pub index: u32,
    /// How to reach it.
    pub host: Host,
    /// Its ranks (with `RMPI_RENDEZVOUS` set).
    pub job: JobSpec,
    /// The branches its relay starts.
    pub children: Vec<Branch>,
}

impl Branch {
    /// Indices of this branch's hosts, its own first.
    pub fn indices(&self) -> Vec<u32> {
        let mut out = vec![self.index];
        for c in &self.children {
            out.extend(c.indices());
        }
        out
    }

    /// The child branch whose subtree holds `host`.
    pub fn child_holding(&self, host: u32) -> Option<usize> {
        self.children.iter().position(|c| c.index == host || c.indices().contains(&host))
    }
}

/// SSH settings as a relay gets them (the same client command as rmpirun's).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ssh {
    /// Client command and leading options.
    pub command: Vec<String>,
    /// `ConnectTimeout` in seconds.
    pub connect_timeout: u64,
    /// Remote cache directory of the agent binary.
    pub cache_dir: Option<String>,
}

impl Ssh {
    /// From rmpirun's settings.
    pub fn of(s: &SshSettings) -> Ssh {
        Ssh {
            command: s.command.clone(),
            connect_timeout: s.connect_timeout,
            cache_dir: s.cache_dir.clone(),
        }
    }

    /// Back to settings.
    pub fn settings(&self) -> SshSettings {
        SshSettings {
            command: self.command.clone(),
            connect_timeout: self.connect_timeout,
            cache_dir: self.cache_dir.clone(),
        }
    }
}

/// Parent → relay.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Down {
    /// First frame: this relay's branch and how to reach its children.
    Plan { branch: Branch, ssh: Ssh },
    /// A command for one host of the subtree ([`Command::Stdin`], [`Command::StdinEof`],
    /// [`Command::Directory`]).
    To { host: u32, command: Command },
    /// A command for every host of the subtree, sent once per branch and passed down once per
    /// child: the job's placement ([`Command::Directory`]), which is the same for every host.
    ToBranch { command: Command },
    /// End every rank of the subtree.
    Kill,
    /// Keep-alive, every [`crate::protocol::PING_INTERVAL`].
    Ping,
}

/// What happened to one host of a subtree: the tree's form of [`crate::link::LinkEvent`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum HostEvent {
    /// Its agent runs and has its job.
    Up,
    /// An event of its agent.
    Agent(Event),
    /// A line from the ssh client that reaches it.
    Stderr(String),
    /// Its link is gone, and why.
    Down { reason: String },
}

/// Relay → parent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Up {
    /// First frame. `ssh_client` as in [`Event::Hello`].
    Hello { version: u32, pid: u32, ssh_client: Option<String> },
    /// Keep-alive, every [`crate::protocol::PING_INTERVAL`].
    Alive,
    /// News of one host of the subtree.
    Host { host: u32, event: HostEvent },
}
