//! Failure propagation: a lost peer fails every operation that depends on it, naming for each
//! the member of its group that failed first.

use super::framing::{Dest, Link, Rx, TxOp};
use super::matching::{ReqId, Watch};
use super::state::State;
use crate::error::Error;

/// The cause given for a peer that said goodbye.
pub(crate) const FINISHED: &str = "it has finalized";

/// The failure notice of a rank that called `abort(code)`, and the cause its peers give.
pub(crate) fn aborted(code: i32) -> String {
    format!("{ABORTED}{code})")
}

/// How an abort's notice starts: [`crate::Error::PeerLost`] shows such a cause as what the
/// peer did ("rank 2 on h aborted (code 7)") rather than as why it is unreachable.
pub(crate) const ABORTED: &str = "aborted (code ";

impl State {
    pub(super) fn peer_error(&self, r: usize) -> Option<Error> {
        // A peer that failed because it lost another rank: the error names that rank, the cause.
        if let Some(&first) = self.passed_on.get(&r) {
            if let Some(Some(c)) = self.conns.get(first) {
                if let Link::Dead(cause) = &c.link {
                    return Some(self.lost(first, cause));
                }
            }
        }
        match self.conns.get(r).and_then(|c| c.as_ref()).map(|c| &c.link) {
            Some(Link::Dead(cause)) => Some(self.lost(r, cause)),
            _ => None,
        }
    }

    pub(super) fn after_finalize(&self) -> Error {
        Error::Finalized { rank: self.me }
    }

    pub(super) fn lost(&self, r: usize, cause: &str) -> Error {
        Error::PeerLost {
            rank: r,
            host: self.hosts.get(r).cloned().unwrap_or_else(|| "?".into()),
            cause: cause.to_owned(),
        }
    }

    /// The first dead peer among `watch`, as an error.
    pub(crate) fn watch_error(&self, watch: &Watch) -> Option<Error> {
        self.watch_error_on(watch, None)
    }

    /// The error of an operation with `peer` (its source or destination, `None` for any source)
    /// that watches `watch`: a member of the group that failed fails it, and so does `peer`
    /// itself finishing; another member that merely finalized does not (it did its part of the
    /// collective before it said goodbye, and owes this operation nothing).
    pub(crate) fn watch_error_on(&self, watch: &Watch, peer: Option<usize>) -> Option<Error> {
        match watch {
            Watch::One(r) => self.peer_error(*r),
            // The member lost first, and one that failed before one that merely finalized: that
            // is the rank every survivor should name.
            Watch::Group(g) => {
                let in_group = |r: &&usize| g.contains(r);
                let failed = |r: &&usize| !self.finished_normally(**r);
                let matters = |r: &&usize| peer.is_none_or(|p| **r == p);
                self.lost
                    .iter()
                    .filter(in_group)
                    .find(failed)
                    .or_else(|| self.lost.iter().filter(in_group).find(matters))
                    .and_then(|r| self.peer_error(*r))
            }
        }
    }

    /// The first peer lost to a failure rather than a goodbye, with its cause.
    pub(super) fn first_failure(&self) -> Option<(usize, String)> {
        let r = *self.lost.iter().find(|r| !self.finished_normally(**r))?;
        match self.conns.get(r) {
            Some(Some(c)) => match &c.link {
                Link::Dead(cause) => Some((r, cause.clone())),
                _ => None,
            },
            _ => None,
        }
    }

    /// A peer's failure notice named `blamed` as the rank it lost: unless this rank already knows,
    /// that rank is lost here too, before the peer that reported it.
    pub(super) fn reported_lost(&mut self, by: usize, blamed: usize, why: &str) {
        if blamed == self.me || blamed == by {
            return;
        }
        self.passed_on.insert(by, blamed);
        // A rank that aborted is said to have aborted, whoever passes it on (its own notice
        // and a peer's can reach this rank in either order).
        let cause = match why.find(ABORTED) {
            Some(at) => why[at..].to_string(),
            None => format!("lost, as rank {by} reported ({why})"),
        };
        match self.conns.get(blamed) {
            Some(Some(c)) if !matches!(c.link, Link::Dead(_)) => self.kill(blamed, cause),
            Some(None) => self.lost_unconnected(blamed, cause),
            _ => {}
        }
    }

    fn finished_normally(&self, r: usize) -> bool {
        matches!(self.conns.get(r), Some(Some(c)) if c.link == Link::Dead(FINISHED.into()))
    }

    /// Marks a peer dead and fails everything that depends on it.
    pub(super) fn kill(&mut self, r: usize, cause: String) {
        let Some(Some(c)) = self.conns.get_mut(r) else { return };
        if matches!(c.link, Link::Dead(_)) {
            return;
        }
        let cause = if c.link == Link::Closed {
            // It said goodbye; a reset afterwards is its socket closing, not a failure.
            tracing::debug!(rank = r, "connection closed after goodbye: {cause}");
            FINISHED.to_string()
        } else {
            tracing::warn!(rank = r, "peer lost: {cause}");
            crate::agent_note::peer_lost(r);
            cause
        };
        c.link = Link::Dead(cause.clone());
        self.lost.push(r);
        let Some(Some(c)) = self.conns.get_mut(r) else { return };
        c.readable = false;
        c.writable = false;
        c.stream.close();
        let tx: Vec<TxOp> = c.tx.drain(..).collect();
        let rx = std::mem::replace(&mut c.rx, Rx::Header);
        // What depends on `r` alone fails naming `r`, or the rank whose loss `r` passed on.
        let (er, ecause) = match self.passed_on.get(&r).map(|&f| (f, self.conns.get(f))) {
            Some((f, Some(Some(fc)))) => match &fc.link {
                Link::Dead(fcause) => (f, fcause.clone()),
                _ => (r, cause.clone()),
            },
            _ => (r, cause.clone()),
        };
        let host = self.hosts.get(er).cloned().unwrap_or_else(|| "?".into());
        let err = || Error::PeerLost { rank: er, host: host.clone(), cause: ecause.clone() };
        let mut failed: Vec<(ReqId, Error)> = Vec::new();
        for op in tx {
            match (op.req, op.watch) {
                // Collective sends name the member their group lost first: settled below.
                (Some(id), Some(w)) => self.deferred.push((id, w)),
                (Some(id), None) => failed.push((id, err())),
                (None, _) => {}
            }
        }
        if let Rx::Payload { dest, .. } = rx {
            match dest {
                Dest::User { req, .. } | Dest::Owned { req: Some((req, _)), .. } => {
                    failed.push((req, err()))
                }
                Dest::Owned { req: None, .. }
                | Dest::Unclaimed { .. }
                | Dest::Ahead { .. }
                | Dest::AheadBuffered { .. } => {}
            }
        }
        let (lost_flow, deferred) = self.drop_flow(r, &err);
        failed.extend(lost_flow);
        self.deferred.extend(deferred);
        for (id, e) in failed {
            self.m.complete(id, Err(e));
        }
        // Everything else that depends on `r` (receives watching it, collective sends to other
        // members) fails in `settle`, at the end of this progress pass: by then every connection
        // has been read, so if several members were lost the error names the one that failed
        // first rather than one that merely finished.
        self.unsettled = true;
    }

    /// Fails every pending operation that depends on a lost peer, naming for each the member of
    /// its group that failed first.
    pub(super) fn settle(&mut self) {
        if !std::mem::take(&mut self.unsettled) {
            return;
        }
        let mut failed: Vec<(ReqId, Error)> = Vec::new();
        for (id, w) in std::mem::take(&mut self.deferred) {
            if let Some(e) = self.watch_error(&w) {
                failed.push((id, e));
            }
        }
        let mut m = std::mem::take(&mut self.m);
        m.fail_posted(|p| self.watch_error_on(&p.watch, p.src));
        self.m = m;
        // A frame already on its way cannot be taken back without corrupting that stream, so a
        // failed collective send is finished from a copy; the caller's buffer is released.
        let mut sends: Vec<(usize, ReqId, Watch)> = Vec::new();
        for (q, c) in self.conns.iter_mut().enumerate() {
            let Some(c) = c else { continue };
            for op in c.tx.iter_mut().chain(c.flow.held_mut()) {
                if let (Some(id), Some(w)) = (op.req, &op.watch) {
                    sends.push((q, id, w.clone()));
                }
            }
        }
        for (q, id, w) in sends {
            let Some(e) = self.watch_error_on(&w, Some(q)) else { continue };
            if let Some(Some(c)) = self.conns.get_mut(q) {
                if c.tx.front().is_some_and(|op| op.req == Some(id)) {
                    c.stream.payload_moving();
                }
                if let Some(op) =
                    c.tx.iter_mut().chain(c.flow.held_mut()).find(|op| op.req == Some(id))
                {
                    op.req = None;
                    op.own_payload();
                    failed.push((id, e));
                }
            }
        }
        for (id, e) in failed {
            self.m.complete(id, Err(e));
        }
    }

    /// Fails receives that name `r` as their source: `r` said goodbye and sends no new message
    /// (one it announced before matched any such receive on arrival). A receive that also
    /// depends on a member that failed reports that failure instead.
    pub(super) fn fail_posted_from(&mut self, r: usize) {
        // What it holds for this rank to clear stays (it answers CTSs until each is cleared,
        // see `Engine::finalize`), and so do the payloads cleared already; what this rank holds
        // for it to clear never will be.
        let host = self.hosts.get(r).cloned().unwrap_or_else(|| "?".into());
        let finished = || Error::PeerLost { rank: r, host: host.clone(), cause: FINISHED.into() };
        let (failed, deferred) = self.drop_held(r, &finished);
        if !deferred.is_empty() {
            self.deferred.extend(deferred);
            self.unsettled = true;
        }
        for (id, e) in failed {
            self.m.complete(id, Err(e));
        }
        let mut m = std::mem::take(&mut self.m);
        m.fail_posted(|p| {
            (p.src == Some(r))
                .then(|| self.watch_error(&p.watch).unwrap_or_else(|| self.lost(r, FINISHED)))
        });
        self.m = m;
    }
}
