//! Endpoints learned at first dial under the directory bootstrap: which host a rank is on, the
//! look-ups under way, and what they found (kept for the life of the engine). Under PMI the same
//! path reads one rank's endpoint at a time from the launcher's key-value store (`pmi/lazy.rs`).

use std::net::SocketAddr;
use std::time::Duration;

use mio::{Interest, Registry, Token};

use crate::directory::client::Resolver;
use crate::directory::Remote;
use crate::pmi::lazy::Lookups;
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

/// Where other hosts' endpoints come from.
#[derive(Debug)]
enum Source {
    /// Each host's directory, all of a host's ranks per look-up.
    Directory(Resolver),
    /// The PMI key-value store, one rank per look-up; the ranks asked, with the failure of
    /// those whose look-up failed.
    Pmi(Lookups, std::collections::HashMap<usize, Option<String>>),
}

/// The directory side of a connector.
#[derive(Debug)]
pub(super) struct Hosts {
    remote: Remote,
    source: Source,
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
        mut remote: Remote,
        timeout: Duration,
    ) -> std::io::Result<Hosts> {
        let (source, ear) = match remote.pmi.take() {
            Some(session) => {
                let mut l = Lookups::start(session, timeout)?;
                let ear = l.take_ear()?;
                (Source::Pmi(l, Default::default()), ear)
            }
            None => {
                let mut resolver = Resolver::new(job, me, remote.host_of.clone(), timeout)?;
                let ear = resolver.take_ear()?;
                (Source::Directory(resolver), ear)
            }
        };
        let mut ear = mio::net::UnixStream::from_std(ear);
        registry.register(&mut ear, token, Interest::READABLE)?;
        let n = remote.hosts.len();
        Ok(Hosts {
            remote,
            source,
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
        let resolver = match &mut self.source {
            Source::Directory(resolver) => &*resolver,
            Source::Pmi(lookups, asked) => {
                match asked.get(&r) {
                    Some(Some(why)) => return Reach::Failed(why.clone()),
                    Some(None) => {}
                    None => {
                        asked.insert(r, None);
                        lookups.ask(r);
                    }
                }
                if !self.pending.contains(&r) {
                    self.pending.push(r);
                }
                return Reach::Asked;
            }
        };
        if let Some(why) = &self.failed[h] {
            return Reach::Failed(why.clone());
        }
        if !self.pending.contains(&r) {
            self.pending.push(r);
        }
        if !self.asked[h] {
            self.asked[h] = true;
            resolver.ask(h as u16, self.remote.hosts[h].directory);
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
        let resolver = match &mut self.source {
            Source::Directory(resolver) => resolver,
            Source::Pmi(lookups, failed) => {
                for (r, got) in lookups.answers() {
                    let waited = self.pending.contains(&r);
                    self.pending.retain(|p| *p != r);
                    let label =
                        self.remote.host_of.get(r).and_then(|h| self.remote.hosts.get(*h as usize));
                    let label = label.map_or("?", |h| h.label.as_str());
                    let reach = match got {
                        Ok(e) => {
                            learned.push((r, e.addr));
                            Reach::At(e.addr)
                        }
                        Err(why) => {
                            let why = format!("on {label}: {why}");
                            failed.insert(r, Some(why.clone()));
                            Reach::Failed(why)
                        }
                    };
                    if waited {
                        ready.push((r, reach));
                    }
                }
                return (learned, ready);
            }
        };
        for (h, got) in resolver.answers() {
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
