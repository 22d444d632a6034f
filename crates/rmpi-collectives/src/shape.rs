//! The shapes the algorithms share: balanced chunk spans, binomial tree positions, the fold of
//! a rank count to a power of two, ring steps, and the segment sizes of the pipelined and
//! segmented algorithms. Every rank computes these from the same (n, p, root), so the messages
//! of one call match; nothing here communicates.

use std::ops::Range;

/// Segment length (bytes) of the pipelined chain broadcast.
pub(crate) const BCAST_SEGMENT: usize = 256 << 10;

/// Segment size of the binomial reduction's long messages (bytes): large enough that the
/// per-message cost is small against the bytes, small enough that a segment and its partner
/// stay in a core's cache while they are combined.
pub(crate) const REDUCE_SEGMENT: usize = 256 << 10;

/// Segment length (bytes) of the pipelined chain scan.
pub(crate) const SCAN_SEGMENT: usize = 128 << 10;

/// Elements of `T` in a segment of `bytes` bytes (at least one).
pub(crate) fn seg_elems<T>(bytes: usize) -> usize {
    (bytes / std::mem::size_of::<T>().max(1)).max(1)
}

/// The balanced split of `n` items into `p` parts: part `i` is `part(n, p, i)`.
pub(crate) fn part(n: usize, p: usize, i: usize) -> Range<usize> {
    let (q, r) = (n / p, n % p);
    let start = i * q + i.min(r);
    start..start + q + usize::from(i < r)
}

/// The span of elements of chunks `a..b` when `n` elements are split into `p` chunks.
pub(crate) fn span(n: usize, p: usize, a: usize, b: usize) -> Range<usize> {
    if a >= b {
        let s = part(n, p, a.min(p - 1)).start;
        return s..s;
    }
    part(n, p, a).start..part(n, p, b - 1).end
}

/// Where rank `r` sits in a binomial tree rooted at `root`: its relative rank, its parent (as a
/// real rank, `None` at the root) and the mask of its lowest set bit (p rounded up to a power of
/// two at the root).
pub(crate) fn tree_pos(r: usize, p: usize, root: usize) -> (usize, Option<usize>, usize) {
    let vr = (r + p - root) % p;
    let mut mask = 1;
    while mask < p {
        if vr & mask != 0 {
            return (vr, Some((r + p - mask) % p), mask);
        }
        mask <<= 1;
    }
    (vr, None, mask)
}

/// Children of relative rank `vr` (whose lowest set bit is `mask`), largest subtree first, as
/// `(relative rank, subtree size)`.
pub(crate) fn children(vr: usize, mask: usize, p: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut m = mask >> 1;
    while m > 0 {
        if vr + m < p {
            out.push((vr + m, m.min(p - vr - m)));
        }
        m >>= 1;
    }
    out
}

/// Step `s` of a ring reduce-scatter on ring position `me` of `p`: the chunk sent to the right
/// neighbour and the chunk received from the left one.
pub(crate) fn ring_reduce_step(me: usize, p: usize, s: usize) -> (usize, usize) {
    ((me + 2 * p - s - 1) % p, (me + 2 * p - s - 2) % p)
}

/// Step `s` of a ring allgather on ring position `me` of `p`: the chunk sent to the right
/// neighbour (the one received last) and the chunk received from the left one.
pub(crate) fn ring_gather_step(me: usize, p: usize, s: usize) -> (usize, usize) {
    ((me + p - s) % p, (me + 2 * p - s - 1) % p)
}

/// How ranks beyond the largest power of two take part in recursive doubling and halving: with
/// `rem = p - pof2`, ranks below `2 * rem` pair up (even, odd); the even one hands its vector to
/// the odd one and sits out.
pub(crate) struct Fold {
    /// The largest power of two not above p.
    pub(crate) pof2: usize,
    /// p − pof2.
    pub(crate) rem: usize,
}

impl Fold {
    pub(crate) fn new(p: usize) -> Self {
        let pof2 = if p.is_power_of_two() { p } else { p.next_power_of_two() / 2 };
        Fold { pof2, rem: p - pof2 }
    }

    /// The rank's index among the `pof2` active ranks, `None` if it sits out.
    pub(crate) fn new_rank(&self, r: usize) -> Option<usize> {
        if r < 2 * self.rem {
            (r % 2 == 1).then_some(r / 2)
        } else {
            Some(r - self.rem)
        }
    }

    /// The real rank of active index `nr`.
    pub(crate) fn real_rank(&self, nr: usize) -> usize {
        if nr < self.rem {
            nr * 2 + 1
        } else {
            nr + self.rem
        }
    }
}

/// Splits `buf` into consecutive pieces of the given lengths.
pub(crate) fn pieces_mut<'a, T>(mut buf: &'a mut [T], lens: &[usize]) -> Vec<&'a mut [T]> {
    let mut out = Vec::with_capacity(lens.len());
    for &l in lens {
        let l = l.min(buf.len());
        let (head, tail) = std::mem::take(&mut buf).split_at_mut(l);
        out.push(head);
        buf = tail;
    }
    out
}

/// Borrows `a` immutably and `b` mutably from one slice (the ranges must not overlap).
pub(crate) fn split_pair<T>(buf: &mut [T], a: Range<usize>, b: Range<usize>) -> (&[T], &mut [T]) {
    if a.is_empty() {
        return (&[], &mut buf[b]);
    }
    if b.is_empty() {
        return (&buf[a], &mut []);
    }
    if a.start >= b.end {
        let (lo, hi) = buf.split_at_mut(a.start);
        (&hi[..a.len()], &mut lo[b])
    } else {
        let (lo, hi) = buf.split_at_mut(b.start);
        (&lo[a], &mut hi[..b.len()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_cover_everything() {
        for n in [0usize, 1, 7, 100] {
            for p in 1..10 {
                let mut next = 0;
                for i in 0..p {
                    let r = part(n, p, i);
                    assert_eq!(r.start, next);
                    next = r.end;
                }
                assert_eq!(next, n);
            }
        }
    }

    #[test]
    fn split_pair_both_orders() {
        let mut v: Vec<u32> = (0..10).collect();
        let (a, b) = split_pair(&mut v, 6..8, 1..3);
        assert_eq!(a, &[6, 7]);
        b[0] = 100;
        let (a, b) = split_pair(&mut v, 0..2, 5..9);
        assert_eq!(a, &[0, 100]);
        assert_eq!(b.len(), 4);
        let (a, b) = split_pair(&mut v, 3..3, 0..10);
        assert!(a.is_empty());
        assert_eq!(b.len(), 10);
    }

    #[test]
    fn every_rank_but_the_root_has_one_parent() {
        for p in 1..20 {
            for root in 0..p {
                let mut seen = vec![0; p];
                for r in 0..p {
                    let (vr, _, mask) = tree_pos(r, p, root);
                    for (v, _) in children(vr, mask, p) {
                        seen[(v + root) % p] += 1;
                    }
                }
                seen[root] += 1;
                assert!(seen.iter().all(|n| *n == 1), "p {p} root {root}: {seen:?}");
            }
        }
    }

    #[test]
    fn fold_maps_active_ranks_both_ways() {
        for p in 1..20 {
            let f = Fold::new(p);
            let active: Vec<usize> = (0..p).filter_map(|r| f.new_rank(r)).collect();
            assert_eq!(active, (0..f.pof2).collect::<Vec<_>>());
            for nr in 0..f.pof2 {
                assert_eq!(f.new_rank(f.real_rank(nr)), Some(nr));
            }
        }
    }
}
