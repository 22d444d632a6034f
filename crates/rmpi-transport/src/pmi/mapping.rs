//! `PMI_process_mapping`: which node each rank runs on.
//!
//! The value is `(vector,(N,C,R),...)`: each block says "starting at node N, C nodes, R ranks on
//! each", ranks numbered in order; the list repeats until every rank is placed (a cyclic
//! distribution is `(vector,(0,4,1))`). Slurm writes it from the step layout, Hydra from its
//! hosts; the launcher's own variables for this node win, and the exchange uses a mapping only
//! when it agrees with them (`layout.rs`).

/// The node of every rank of a job of `size`, or `None` when `text` is no valid mapping.
///
/// ```
/// use rmpi_transport::pmi::mapping::nodes;
/// assert_eq!(nodes("(vector,(0,2,2))", 4), Some(vec![0, 0, 1, 1]));
/// assert_eq!(nodes("(vector,(0,2,1))", 4), Some(vec![0, 1, 0, 1]));
/// assert_eq!(nodes("(vector,(0,1,3),(1,1,1))", 4), Some(vec![0, 0, 0, 1]));
/// assert_eq!(nodes("garbage", 4), None);
/// ```
pub fn nodes(text: &str, size: usize) -> Option<Vec<usize>> {
    let inner = text.trim().strip_prefix("(vector,")?.strip_suffix(')')?;
    let mut blocks = Vec::new();
    for part in inner.split("),") {
        let t = part.trim().trim_start_matches('(').trim_end_matches(')');
        let nums: Vec<usize> =
            t.split(',').map(|n| n.trim().parse().ok()).collect::<Option<_>>()?;
        let [start, count, per] = nums[..] else { return None };
        blocks.push((start, count, per));
    }
    if blocks.is_empty() || blocks.iter().all(|&(_, c, p)| c == 0 || p == 0) {
        return None;
    }
    let mut out = Vec::with_capacity(size);
    'fill: loop {
        for &(start, count, per) in &blocks {
            for node in start..start.checked_add(count)? {
                for _ in 0..per {
                    if out.len() == size {
                        break 'fill;
                    }
                    out.push(node);
                }
            }
        }
    }
    Some(out)
}

/// `(local rank, local size)` of `rank` under `mapping`.
///
/// ```
/// use rmpi_transport::pmi::mapping::local;
/// assert_eq!(local("(vector,(0,4,2))", 8, 5), Some((1, 2)));
/// ```
pub fn local(text: &str, size: usize, rank: usize) -> Option<(usize, usize)> {
    let n = nodes(text, size)?;
    let mine = *n.get(rank)?;
    let local_rank = n[..rank].iter().filter(|x| **x == mine).count();
    let local_size = n.iter().filter(|x| **x == mine).count();
    Some((local_rank, local_size))
}
