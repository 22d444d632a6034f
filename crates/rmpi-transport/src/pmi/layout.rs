//! Where every rank of a PMI job runs, learned without reading every rank's key: the server's
//! `PMI_process_mapping`, checked against the launcher's own variables for this node, and the
//! node names (Slurm's `SLURM_STEP_NODELIST`, or a key each node's first rank puts).

use super::mapping;

/// What the launcher says about this rank's node, and the mapping the server gave; read at
/// init (`launch/pmi.rs`), used by the exchange.
#[derive(Clone, Debug, Default)]
pub struct Layout {
    /// `PMI_process_mapping` as the server gave it, if it did.
    pub mapping: Option<String>,
    /// The world ranks on this node (Slurm's `SLURM_GTIDS`).
    pub local_ranks: Option<Vec<usize>>,
    /// This rank's local rank and the number of ranks on its node, from the launcher's
    /// variables (`SLURM_LOCALID`, `MPI_LOCALRANKID`/`MPI_LOCALNRANKS`).
    pub local: Option<(usize, usize)>,
    /// The step's nodes in node-index order (Slurm's `SLURM_STEP_NODELIST`, compressed).
    pub nodelist: Option<String>,
    /// This node's name as the launcher calls it (`SLURMD_NODENAME`).
    pub node_name: Option<String>,
    /// Read every rank's endpoint at start, as before (`RMPI_BOOTSTRAP=table`).
    pub table: bool,
}

/// Which node every rank is on, as far as this rank needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// The node index of every rank.
    pub node_of: Vec<u16>,
    /// This rank's node.
    pub mine: u16,
    /// Every node's name, when the launcher told them (else each node's first rank puts its
    /// own under [`node_key`](super::node_key)).
    pub labels: Option<Vec<String>>,
}

impl Placement {
    /// The number of nodes.
    pub fn nodes(&self) -> usize {
        self.node_of.iter().map(|n| *n as usize + 1).max().unwrap_or(0)
    }

    /// The lowest rank on `node` (the one that puts its name when no list names the nodes).
    pub fn first_on(&self, node: u16) -> Option<usize> {
        self.node_of.iter().position(|n| *n == node)
    }
}

impl Layout {
    /// The placement of `rank` in a job of `size`, or why the whole table must be read instead
    /// (no mapping, or one that contradicts the launcher's variables for this node, as Slurm's
    /// for `--distribution=arbitrary` does).
    pub fn placement(&self, rank: usize, size: usize) -> Result<Placement, String> {
        let text = self.mapping.as_deref().ok_or("the server gave no PMI_process_mapping")?;
        let nodes = mapping::nodes(text, size)
            .ok_or_else(|| format!("PMI_process_mapping {:?} is not a mapping", preview(text)))?;
        if nodes.iter().any(|n| *n > u16::MAX as usize) {
            return Err("PMI_process_mapping names more than 65536 nodes".into());
        }
        let mine = nodes[rank];
        let here: Vec<usize> = (0..size).filter(|r| nodes[*r] == mine).collect();
        let disagree =
            |what: String| format!("PMI_process_mapping {:?} disagrees with {what}", preview(text));
        if let Some(gtids) = &self.local_ranks {
            let mut g = gtids.clone();
            g.sort_unstable();
            if g != here {
                return Err(disagree(format!("SLURM_GTIDS (ranks {g:?} on this node)")));
            }
        } else if let Some((lr, ls)) = self.local {
            let index = here.iter().position(|r| *r == rank);
            if here.len() != ls || index != Some(lr) {
                return Err(disagree(format!("local rank {lr} of {ls}")));
            }
        }
        let node_of: Vec<u16> = nodes.iter().map(|n| *n as u16).collect();
        let mut p = Placement { node_of, mine: mine as u16, labels: None };
        if let (Some(list), Some(me)) = (&self.nodelist, &self.node_name) {
            // Node indices are positions in the step's node list; trust it only if it puts this
            // node where the mapping does.
            if let Ok(names) = expand_nodelist(list) {
                if names.len() >= p.nodes() && names.get(mine) == Some(me) {
                    p.labels = Some(names[..p.nodes()].to_vec());
                }
            }
        }
        Ok(p)
    }
}

fn preview(s: &str) -> String {
    super::msg::preview(s)
}

/// Expands a Slurm host list (`h[1-4]`, `node[01-03,07],login`, `r[1-2]n[1-2]`).
///
/// ```
/// use rmpi_transport::pmi::layout::expand_nodelist;
/// assert_eq!(expand_nodelist("n[08-10],x").unwrap(), ["n08", "n09", "n10", "x"]);
/// assert_eq!(expand_nodelist("r[1-2]n[1-2]").unwrap(), ["r1n1", "r1n2", "r2n1", "r2n2"]);
/// assert!(expand_nodelist("h[2-1]").is_err());
/// ```
pub fn expand_nodelist(list: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    let list = list.trim();
    let mut items = Vec::new();
    for (i, c) in list.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&list[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&list[start..]);
    for item in items.into_iter().filter(|i| !i.is_empty()) {
        expand_item(item, &mut out)?;
    }
    if out.is_empty() {
        return Err(format!("host list {list:?} names no host"));
    }
    Ok(out)
}

/// Most names one host list may expand to (a PMI job has at most 65536 ranks).
const MAX_NAMES: usize = 1 << 16;

fn expand_item(item: &str, out: &mut Vec<String>) -> Result<(), String> {
    let Some(open) = item.find('[') else {
        out.push(item.to_owned());
        return Ok(());
    };
    let close =
        item[open..].find(']').map(|c| open + c).ok_or_else(|| format!("{item:?}: no ]"))?;
    let (prefix, ranges, rest) = (&item[..open], &item[open + 1..close], &item[close + 1..]);
    let mut tails = Vec::new();
    expand_item(rest, &mut tails)?;
    for range in ranges.split(',') {
        let (lo, hi) = range.split_once('-').unwrap_or((range, range));
        let bad = || format!("{item:?}: bad range {range:?}");
        let (a, b): (u64, u64) = (lo.parse().map_err(|_| bad())?, hi.parse().map_err(|_| bad())?);
        if a > b || (b - a) as usize >= MAX_NAMES {
            return Err(bad());
        }
        for n in a..=b {
            let num = format!("{n:0width$}", width = lo.len());
            for t in &tails {
                out.push(format!("{prefix}{num}{t}"));
                if out.len() > MAX_NAMES {
                    return Err(format!("{item:?} names too many hosts"));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slurm(mapping: &str, gtids: &[usize], list: &str, me: &str) -> Layout {
        Layout {
            mapping: Some(mapping.into()),
            local_ranks: Some(gtids.to_vec()),
            local: None,
            nodelist: Some(list.into()),
            node_name: Some(me.into()),
            table: false,
        }
    }

    #[test]
    fn slurm_block_layout_with_names() {
        let p = slurm("(vector,(0,4,2))", &[2, 3], "h[1-4]", "h2").placement(3, 8).unwrap();
        assert_eq!(p.node_of, [0, 0, 1, 1, 2, 2, 3, 3]);
        assert_eq!(p.mine, 1);
        assert_eq!(p.labels.as_deref().unwrap(), ["h1", "h2", "h3", "h4"]);
        assert_eq!(p.first_on(2), Some(4));
    }

    #[test]
    fn a_mapping_that_contradicts_this_node_is_refused() {
        // Slurm's arbitrary distribution: every task on a node of its own.
        let e = slurm("(vector,(0,8,1))", &[2, 3], "h[1-4]", "h2").placement(3, 8).unwrap_err();
        assert!(e.contains("SLURM_GTIDS"), "{e}");
        let hydra = Layout {
            mapping: Some("(vector,(0,1,4))".into()),
            local: Some((1, 2)),
            ..Layout::default()
        };
        assert!(hydra.placement(1, 4).unwrap_err().contains("local rank 1 of 2"));
        assert!(Layout::default().placement(0, 2).is_err());
    }

    #[test]
    fn names_are_kept_only_when_the_list_agrees() {
        // This node is h3 but the list puts node 1 at h2: names come from the keys instead.
        let p = slurm("(vector,(0,4,2))", &[2, 3], "h[1-4]", "h3").placement(3, 8).unwrap();
        assert_eq!(p.labels, None);
        let p = slurm("(vector,(0,2,1))", &[1, 3], "a,b", "b").placement(1, 4).unwrap();
        assert_eq!(p.node_of, [0, 1, 0, 1]);
        assert_eq!(p.labels.as_deref().unwrap(), ["a", "b"]);
    }
}
