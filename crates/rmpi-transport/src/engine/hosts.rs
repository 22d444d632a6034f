//! Endpoints learned at first dial under the directory bootstrap: which host a rank is on, the
//! look-ups under way, and what they found (kept for the life of the engine).

use std::net::SocketAddr;
use std::time::Duration;

use mio::{Interest, Registry, Token};

use crate::directory::client::Resolver;
use crate::directory::Remote;
use crate::token::JobToken;

/// How a rank is reached.
pub(super) enum Reach {
    /// Not over TCP (this rank, or shared memory).
    No,
    /// At this address.
    At(SocketAddr),
    /// Its host's directory is being asked: wait.
    Asked,
    /// Its host's directory could not say: this cause.
    Failed(String),
}

/// What arrived: every rank learned, and each waiting rank with how it is now reached.
pub(super) type Answers = (Vec<(usize, SocketAddr)>, Vec<(usize, Reach)>);

/// The directory side of a connector.
#[derive(Debug)]
pub(super) struct Hosts {
    remote: Remote,
    resolver: Resolver,
    ear: mio::net::UnixStream,
    /// Per host: asked already, and the failure if it failed.
    asked: Vec<bool>,
    failed: Vec<Option<String>>,
    /// Ranks whose dial waits for their host's answer.
    pending: Vec<usize>,
}

impl Hosts {
    pub(super) fn new(
        registry: &Registry,
        token: Token,
        job: JobToken,
        me: usize,
        remote: Remote,
        timeout: Duration,
    ) -> std::io::Result<Hosts> {
        let mut resolver = Resolver::new(job, me, remote.host_of.clone(), timeout)?;
        let ear = resolver.take_ear()?;
        let mut ear = mio::net::UnixStream::from_std(ear);
        registry.register(&mut ear, token, Interest::READABLE)?;
        let n = remote.hosts.len();
        Ok(Hosts {
            remote,
            resolver,
            ear,
            asked: vec![false; n],
            failed: vec![None; n],
            pending: Vec::new(),
        })
    }

    /// Whether `r` is on another host (its endpoint comes from the directory).
    pub(super) fn is_remote(&self, r: usize) -> bool {
        self.remote.host_of.get(r).is_some_and(|h| *h != self.remote.mine)
    }

    /// The host name of rank `r`.
    pub(super) fn label(&self, r: usize) -> &str {
        let h = self.remote.host_of.get(r).copied().unwrap_or(u16::MAX);
        self.remote.hosts.get(h as usize).map_or("?", |h| h.label.as_str())
    }

    /// Asks `r`'s host (once per host) unless it already failed.
    pub(super) fn ask(&mut self, r: usize) -> Reach {
        let Some(&h) = self.remote.host_of.get(r) else { return Reach::No };
        let h = h as usize;
        if let Some(why) = &self.failed[h] {
            return Reach::Failed(why.clone());
        }
        if !self.pending.contains(&r) {
            self.pending.push(r);
        }
        if !self.asked[h] {
            self.asked[h] = true;
            self.resolver.ask(h as u16, self.remote.hosts[h].directory);
        }
        Reach::Asked
    }

    pub(super) fn waiting(&self, r: usize) -> bool {
        self.pending.contains(&r)
    }

    /// Forgets that `r` waits (its own connection reached us first).
    pub(super) fn forget(&mut self, r: usize) {
        self.pending.retain(|p| *p != r);
    }

    /// The answers that arrived: every rank learned (to record), and the waiting ranks now
    /// reachable at an address or failed.
    pub(super) fn answers(&mut self) -> Answers {
        let mut learned = Vec::new();
        let mut ready = Vec::new();
        let mut b = [0u8; 64];
        while matches!(std::io::Read::read(&mut (&self.ear), &mut b), Ok(n) if n > 0) {}
        for (h, got) in self.resolver.answers() {
            let hi = h as usize;
            match got {
                Ok(entries) => {
                    for (r, e) in entries {
                        learned.push((r as usize, e.addr));
                    }
                }
                Err(why) => {
                    let label = &self.remote.hosts[hi].label;
                    self.failed[hi] = Some(format!("on {label}: {why}"));
                }
            }
            let host_of = &self.remote.host_of;
            let (now, still): (Vec<usize>, Vec<usize>) =
                self.pending.iter().partition(|r| host_of[**r] == h);
            self.pending = still;
            for r in now {
                match (&self.failed[hi], learned.iter().find(|(x, _)| *x == r)) {
                    (Some(why), _) => ready.push((r, Reach::Failed(why.clone()))),
                    (None, Some((_, a))) => ready.push((r, Reach::At(*a))),
                    (None, None) => ready
                        .push((r, Reach::Failed("its host's directory did not list it".into()))),
                }
            }
        }
        (learned, ready)
    }
}
