//! The directory bootstrap: O(1) per rank at start, O(hosts) at the launcher.
//!
//! Each host's node agent runs a [`gatherer`]: its ranks connect to it (`RMPI_DIRECTORY`) and
//! register their endpoint. Once all have, the agent sends the launcher one
//! [`Report`](wire::Report); once every host has, the launcher sends every agent the same
//! [`Placement`](wire::Placement) (which host each rank is on, as runs, and each host's
//! directory address), and each agent hands its ranks that placement plus its own host's
//! entries. A rank learns a remote peer's endpoint at its first dial by asking that peer's
//! agent ([`client::lookup`], run off the engine thread), and keeps the answer. The cost model
//! is in `docs/scale.md`, the frames in `docs/wire-protocol.md`.

pub mod client;
pub mod gatherer;
pub mod launcher;
#[cfg(test)]
mod sim;
pub mod wire;

use std::sync::Arc;

use crate::error::{Error, Result};
use wire::HostInfo;

/// The gatherer of this rank's host (set by the node agent).
pub const DIRECTORY: &str = "RMPI_DIRECTORY";

/// Which bootstrap rmpirun runs: `directory` (the default) or `table`.
pub const BOOTSTRAP: &str = "RMPI_BOOTSTRAP";

/// How rmpirun's ranks learn each other's endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bootstrap {
    /// Node agents gather their host's ranks; peers are looked up at first dial.
    Directory,
    /// The launcher's rendezvous sends every rank the whole table.
    Table,
}

impl Bootstrap {
    /// Reads [`BOOTSTRAP`] through `get`.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Bootstrap> {
        match get(BOOTSTRAP).as_deref().map(str::trim) {
            None | Some("") | Some("directory") => Ok(Bootstrap::Directory),
            Some("table") => Ok(Bootstrap::Table),
            Some(other) => Err(Error::Env {
                var: BOOTSTRAP,
                msg: format!("{other:?} is neither `directory` nor `table`"),
            }),
        }
    }
}

/// What a rank knows after its go about the hosts it has no endpoints of yet.
#[derive(Clone, Debug)]
pub(crate) struct Remote {
    /// The host index of every rank.
    pub(crate) host_of: Arc<[u16]>,
    /// The hosts.
    pub(crate) hosts: Vec<HostInfo>,
    /// This rank's host.
    pub(crate) mine: u16,
    /// Under PMI: the open session the endpoints are read from, one rank at a time (the hosts'
    /// `directory` addresses are then unused).
    pub(crate) pmi: Option<crate::pmi::Session>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_choice() {
        let get = |v: &'static str| move |_: &str| Some(v.to_string());
        assert_eq!(Bootstrap::from_lookup(|_| None).unwrap(), Bootstrap::Directory);
        assert_eq!(Bootstrap::from_lookup(get("table")).unwrap(), Bootstrap::Table);
        assert!(Bootstrap::from_lookup(get("tree")).unwrap_err().to_string().contains("tree"));
    }
}
