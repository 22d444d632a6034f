//! Where a communicator's ranks run: its hosts (ranks grouped by [`Communicator::host_of`]),
//! each host's leader, and whether every host's ranks are consecutive. Built once per
//! communicator from what every rank already knows locally (the host names of the bootstrap
//! table), so every rank computes the same layout without communicating, and kept in the
//! communicator's [`collective_state`](Communicator::collective_state).
//!
//! Hosts are told apart by name, not by shared memory: with `RMPI_SHM=0`, or beyond the
//! shared-memory group limit, ranks of one host still talk over loopback TCP, which is cheaper
//! than the network between hosts, and the two-level algorithms still send one message per host
//! across the network where the flat ones send one per rank.

use std::collections::HashMap;
use std::sync::Arc;

use rmpi_transport::Communicator;

use crate::algo::Placement;

/// A communicator's hosts.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    /// The members of each host in rank order; hosts ordered by their lowest rank.
    pub(crate) hosts: Vec<Vec<usize>>,
    /// Each host's leader (its lowest rank), by host index.
    pub(crate) leaders: Vec<usize>,
    /// The host index of each rank.
    pub(crate) host_of: Vec<usize>,
    /// The index of each rank among its host's members.
    pub(crate) local: Vec<usize>,
    /// Whether every host's ranks are consecutive (`--map-by slot`): then host order, then
    /// rank order inside a host, is rank order, and non-commutative operators may go in two
    /// levels.
    pub(crate) contiguous: bool,
}

impl Layout {
    /// The layout of ranks whose host names are `names` (by rank).
    pub(crate) fn from_names<S: AsRef<str>>(names: &[S]) -> Layout {
        let mut index: HashMap<&str, usize> = HashMap::new();
        let mut hosts: Vec<Vec<usize>> = Vec::new();
        let mut host_of = Vec::with_capacity(names.len());
        let mut local = Vec::with_capacity(names.len());
        for (r, name) in names.iter().enumerate() {
            let h = *index.entry(name.as_ref()).or_insert_with(|| {
                hosts.push(Vec::new());
                hosts.len() - 1
            });
            host_of.push(h);
            local.push(hosts[h].len());
            hosts[h].push(r);
        }
        let leaders = hosts.iter().map(|m| m[0]).collect();
        let contiguous = hosts.iter().all(|m| m[m.len() - 1] - m[0] + 1 == m.len());
        Layout { hosts, leaders, host_of, local, contiguous }
    }

    /// The layout of `comm`, built on first use and cached in it.
    pub(crate) fn of(comm: &Communicator) -> Arc<Layout> {
        let build = || {
            // A rank's host is always known for r < size; a failure would only make it a host
            // of its own, which is still a correct layout.
            let names: Vec<String> = (0..comm.size())
                .map(|r| comm.host_of(r).unwrap_or_else(|_| format!("rank {r}")))
                .collect();
            Layout::from_names(&names)
        };
        comm.collective_state(build).unwrap_or_else(|| Arc::new(build()))
    }

    /// The most ranks on one host.
    pub(crate) fn widest(&self) -> usize {
        self.hosts.iter().map(Vec::len).max().unwrap_or(0)
    }

    /// What the algorithm choice needs to know.
    pub(crate) fn placement(&self) -> Placement {
        Placement { hosts: self.hosts.len(), widest: self.widest(), contiguous: self.contiguous }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_and_node_placements() {
        let slot = Layout::from_names(&["a", "a", "a", "b", "b", "c"]);
        assert_eq!(slot.hosts, vec![vec![0, 1, 2], vec![3, 4], vec![5]]);
        assert_eq!(slot.leaders, vec![0, 3, 5]);
        assert_eq!(slot.local, vec![0, 1, 2, 0, 1, 0]);
        assert!(slot.contiguous && slot.placement().two_level());
        assert_eq!(slot.widest(), 3);
        let node = Layout::from_names(&["a", "b", "a", "b", "a"]);
        assert_eq!(node.hosts, vec![vec![0, 2, 4], vec![1, 3]]);
        assert_eq!(node.host_of, vec![0, 1, 0, 1, 0]);
        assert!(!node.contiguous && node.placement().two_level());
        assert!(!Layout::from_names(&["a", "b", "c"]).placement().two_level());
        assert!(!Layout::from_names(&["a", "a"]).placement().two_level());
    }
}
