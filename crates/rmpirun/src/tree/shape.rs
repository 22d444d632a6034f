//! The shape of the launch tree: which relay starts which hosts.

/// How rmpirun reaches the remote hosts (`--launch-tree`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaunchTree {
    /// Flat up to [`AUTO_FLAT_MAX`] remote hosts, a tree of fan-out [`AUTO_FANOUT`] above.
    Auto,
    /// One SSH session from rmpirun to every host (the star).
    Flat,
    /// A tree of this fan-out (at least 1).
    Fanout(usize),
}

/// With [`LaunchTree::Auto`], the most remote hosts started flat (see docs/scale.md).
pub const AUTO_FLAT_MAX: usize = 64;

/// With [`LaunchTree::Auto`], the fan-out above [`AUTO_FLAT_MAX`] hosts.
pub const AUTO_FANOUT: usize = 32;

/// Largest fan-out accepted.
pub const MAX_FANOUT: usize = 4096;

impl LaunchTree {
    /// Parses `flat`, `auto`, `0` (= flat) or a fan-out.
    pub fn parse(text: &str) -> Result<LaunchTree, String> {
        match text.trim() {
            "flat" | "0" => Ok(LaunchTree::Flat),
            "auto" => Ok(LaunchTree::Auto),
            n => match n.parse::<usize>() {
                Ok(f) if (1..=MAX_FANOUT).contains(&f) => Ok(LaunchTree::Fanout(f)),
                _ => Err(format!(
                    "--launch-tree {text}: expected `flat`, `auto` or a fan-out from 1 to {MAX_FANOUT}"
                )),
            },
        }
    }

    /// The fan-out to use for `remote` remote hosts; `None`: flat.
    pub fn fanout(self, remote: usize) -> Option<usize> {
        match self {
            LaunchTree::Flat => None,
            LaunchTree::Auto if remote <= AUTO_FLAT_MAX => None,
            LaunchTree::Auto => Some(AUTO_FANOUT),
            // A tree no wider than its fan-out is the star.
            LaunchTree::Fanout(f) if remote <= f => None,
            LaunchTree::Fanout(f) => Some(f),
        }
    }
}

/// One node of the tree: an item and the subtrees its relay starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node<T> {
    /// The host (or whatever stands for it).
    pub item: T,
    /// What its relay starts.
    pub children: Vec<Node<T>>,
}

/// Arranges `items` in a tree of fan-out `fanout` (at least 1): the first `fanout` are the roots,
/// the rest are dealt out to them in contiguous, near-equal blocks, each arranged the same way
/// below its root. Order is kept (depth first), and no relay starts more than `fanout` hosts.
pub fn arrange<T>(items: Vec<T>, fanout: usize) -> Vec<Node<T>> {
    let fanout = fanout.max(1);
    let mut items = items.into_iter();
    let roots: Vec<T> = items.by_ref().take(fanout).collect();
    let rest: Vec<T> = items.collect();
    let n = roots.len();
    if n == 0 {
        return Vec::new();
    }
    let mut rest = rest.into_iter();
    let (each, extra) = (rest.len() / n, rest.len() % n);
    roots
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let block: Vec<T> = rest.by_ref().take(each + usize::from(i < extra)).collect();
            Node { item, children: arrange(block, fanout) }
        })
        .collect()
}

impl<T> Node<T> {
    /// Every item of this subtree, this node's first (depth first).
    pub fn items(&self) -> Vec<&T> {
        let mut out = vec![&self.item];
        for c in &self.children {
            out.extend(c.items());
        }
        out
    }

    /// Levels below and including this node.
    pub fn depth(&self) -> usize {
        1 + self.children.iter().map(Node::depth).max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn widest<T>(nodes: &[Node<T>]) -> usize {
        nodes.iter().map(|n| widest(&n.children)).max().unwrap_or(0).max(nodes.len())
    }

    #[test]
    fn every_host_once_no_relay_wider_than_the_fanout() {
        for fanout in 1..6 {
            for n in 0..80usize {
                let tree = arrange((0..n).collect(), fanout);
                let mut seen: Vec<usize> = tree.iter().flat_map(|t| t.items()).copied().collect();
                seen.sort_unstable();
                assert_eq!(seen, (0..n).collect::<Vec<_>>(), "fanout {fanout}, {n} hosts");
                assert!(widest(&tree) <= fanout, "fanout {fanout}, {n} hosts");
            }
        }
    }

    #[test]
    fn depth_grows_like_the_logarithm() {
        let depth = |n: usize, f: usize| arrange((0..n).collect(), f).iter().map(Node::depth).max();
        assert_eq!(depth(8, 2), Some(3));
        assert_eq!(depth(64, 8), Some(2));
        assert_eq!(depth(1000, 32), Some(2));
        assert_eq!(depth(2, 2), Some(1));
        assert_eq!(depth(0, 2), None);
        // Fan-out 1 is a chain.
        assert_eq!(depth(5, 1), Some(5));
    }

    #[test]
    fn parse_and_default() {
        assert_eq!(LaunchTree::parse("flat"), Ok(LaunchTree::Flat));
        assert_eq!(LaunchTree::parse("0"), Ok(LaunchTree::Flat));
        assert_eq!(LaunchTree::parse("8"), Ok(LaunchTree::Fanout(8)));
        assert!(LaunchTree::parse("-1").is_err());
        assert!(LaunchTree::parse("many").is_err());
        assert_eq!(LaunchTree::Auto.fanout(AUTO_FLAT_MAX), None);
        assert_eq!(LaunchTree::Auto.fanout(AUTO_FLAT_MAX + 1), Some(AUTO_FANOUT));
        assert_eq!(LaunchTree::Fanout(4).fanout(4), None);
        assert_eq!(LaunchTree::Fanout(4).fanout(5), Some(4));
        assert_eq!(LaunchTree::Flat.fanout(10_000), None);
    }
}
