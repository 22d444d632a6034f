//! Placement of ranks on hosts (`--map-by slot|node`) and the oversubscription check.

use crate::hostfile::HostEntry;

/// How consecutive ranks are spread over hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MapBy {
    /// Fill each host's slots before moving on to the next host (the default).
    Slot,
    /// Round-robin: one rank per host in turn.
    Node,
}

/// Placement failure.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MappingError {
    /// More ranks than slots, without `--oversubscribe`.
    #[error(
        "{ranks} ranks asked for but only {slots} slots available on {hosts} host(s); \
         use --oversubscribe to run more ranks than slots"
    )]
    NotEnoughSlots { ranks: usize, slots: usize, hosts: usize },
    /// More ranks than the sum of every host's `max_slots`.
    #[error("{ranks} ranks asked for but the hosts' max_slots allow only {max}")]
    AboveMaxSlots { ranks: usize, max: usize },
    /// No host to place anything on.
    #[error("no host to start ranks on")]
    NoHosts,
}

/// Returns, for each rank in order, the index of the host it runs on.
pub fn map_ranks(
    hosts: &[HostEntry],
    ranks: usize,
    map_by: MapBy,
    oversubscribe: bool,
) -> Result<Vec<usize>, MappingError> {
    if hosts.is_empty() {
        return Err(MappingError::NoHosts);
    }
    let slots: usize = hosts.iter().map(|h| h.slots).sum();
    if ranks > slots && !oversubscribe {
        return Err(MappingError::NotEnoughSlots { ranks, slots, hosts: hosts.len() });
    }
    if hosts.iter().all(|h| h.max_slots.is_some()) {
        let max: usize = hosts.iter().filter_map(|h| h.max_slots).sum();
        if ranks > max {
            return Err(MappingError::AboveMaxSlots { ranks, max });
        }
    }
    let mut used = vec![0usize; hosts.len()];
    let mut placement = Vec::with_capacity(ranks);
    // First pass: within slots.
    match map_by {
        MapBy::Slot => {
            for (i, h) in hosts.iter().enumerate() {
                while used[i] < h.slots && placement.len() < ranks {
                    used[i] += 1;
                    placement.push(i);
                }
            }
        }
        MapBy::Node => {
            while placement.len() < ranks {
                let before = placement.len();
                for (i, h) in hosts.iter().enumerate() {
                    if used[i] < h.slots && placement.len() < ranks {
                        used[i] += 1;
                        placement.push(i);
                    }
                }
                if placement.len() == before {
                    break;
                }
            }
        }
    }
    // Oversubscription: one more rank per host in turn, up to max_slots.
    while placement.len() < ranks {
        let before = placement.len();
        for (i, h) in hosts.iter().enumerate() {
            if placement.len() < ranks && !matches!(h.max_slots, Some(m) if used[i] >= m) {
                used[i] += 1;
                placement.push(i);
            }
        }
        if placement.len() == before {
            let max = hosts.iter().filter_map(|h| h.max_slots).sum();
            return Err(MappingError::AboveMaxSlots { ranks, max });
        }
    }
    if map_by == MapBy::Slot {
        // Keep ranks of one host contiguous even when oversubscribed.
        placement.sort_unstable();
    }
    Ok(placement)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(slots: usize, max: Option<usize>) -> HostEntry {
        HostEntry { name: "h".into(), user: None, port: None, slots, max_slots: max }
    }

    #[test]
    fn by_slot_fills_hosts_in_order() {
        let hosts = [h(2, None), h(3, None)];
        assert_eq!(map_ranks(&hosts, 4, MapBy::Slot, false).unwrap(), vec![0, 0, 1, 1]);
    }

    #[test]
    fn by_node_round_robins() {
        let hosts = [h(1, None), h(3, None)];
        assert_eq!(map_ranks(&hosts, 4, MapBy::Node, false).unwrap(), vec![0, 1, 1, 1]);
        let hosts = [h(2, None), h(2, None)];
        assert_eq!(map_ranks(&hosts, 4, MapBy::Node, false).unwrap(), vec![0, 1, 0, 1]);
    }

    #[test]
    fn too_many_ranks_fail_without_oversubscribe() {
        let hosts = [h(2, None), h(2, None)];
        let err = map_ranks(&hosts, 5, MapBy::Slot, false).unwrap_err();
        assert_eq!(err, MappingError::NotEnoughSlots { ranks: 5, slots: 4, hosts: 2 });
        assert!(err.to_string().contains("--oversubscribe"));
    }

    #[test]
    fn oversubscribe_spreads_extra_ranks() {
        let hosts = [h(1, None), h(1, None)];
        assert_eq!(map_ranks(&hosts, 5, MapBy::Slot, true).unwrap(), vec![0, 0, 0, 1, 1]);
        assert_eq!(map_ranks(&hosts, 5, MapBy::Node, true).unwrap(), vec![0, 1, 0, 1, 0]);
    }

    #[test]
    fn max_slots_is_a_hard_limit() {
        let hosts = [h(1, Some(2)), h(1, None)];
        assert_eq!(map_ranks(&hosts, 5, MapBy::Slot, true).unwrap(), vec![0, 0, 1, 1, 1]);
        let hosts = [h(1, Some(2)), h(1, Some(1))];
        let err = map_ranks(&hosts, 4, MapBy::Slot, true).unwrap_err();
        assert_eq!(err, MappingError::AboveMaxSlots { ranks: 4, max: 3 });
        assert_eq!(map_ranks(&[], 1, MapBy::Slot, true), Err(MappingError::NoHosts));
    }
}
