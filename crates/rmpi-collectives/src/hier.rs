//! Two-level (node-aware) barrier, broadcast, reduce, allreduce and allgather: one level inside each host,
//! one across hosts among one rank per host, each level run by the flat algorithm the cost
//! model picks for its size (see [`dispatch`](crate::dispatch)). Only one message per host
//! crosses the network in each inter-host step, where a flat algorithm sends one per rank.
//!
//! The levels are views of the call on subsets of the communicator ([`Call::within`]), taken
//! from the communicator's cached [`Layout`]; nothing is created collectively.
//!
//! Order of combination (reduce, allreduce): each host combines its ranks in rank order (the
//! flat algorithm's association on that host), then the host results are combined in the order
//! of the hosts' lowest ranks (the flat algorithm's association across hosts). When every host's
//! ranks are consecutive this is rank order, so non-commutative operators go in two levels only
//! then (the choice falls back to flat otherwise). The allreduce result is computed by the
//! leaders' allreduce, which gives every leader the same bits, and then copied inside each host,
//! so every rank holds the same bits.

use std::borrow::Cow;

use bytemuck::Pod;
use rmpi_transport::Result;

use crate::algo::Settings;
use crate::call::Call;
use crate::dispatch;
use crate::layout::Layout;
use crate::ops::{BOr, Op};
use crate::shape::pieces_mut;

/// The rank that represents each host across hosts: its leader, except that on `root`'s host
/// it is `root`, so the root's data never takes an extra hop.
fn reps(lay: &Layout, root: usize) -> Cow<'_, [usize]> {
    let h = lay.host_of[root];
    if lay.leaders[h] == root {
        Cow::Borrowed(&lay.leaders)
    } else {
        let mut v = lay.leaders.clone();
        v[h] = root;
        Cow::Owned(v)
    }
}

/// This rank's host: its members and this rank's index among them.
fn host<'l>(c: &Call, lay: &'l Layout) -> (&'l [usize], usize) {
    (&lay.hosts[lay.host_of[c.rank]], lay.local[c.rank])
}

/// Every host reports to its leader (an empty reduce), the leaders run a barrier, every leader
/// releases its host (an empty broadcast).
pub(crate) fn barrier(c: &Call, s: &Settings, lay: &Layout) -> Result<()> {
    let (members, me) = host(c, lay);
    let intra = c.within(members, me);
    let leader = me == 0;
    let mut nothing: [u8; 0] = [];
    dispatch::reduce(&intra, s, None, &[], leader.then_some(&mut nothing[..]), &BOr, 0)?;
    if leader {
        dispatch::barrier(&c.within(&lay.leaders, lay.host_of[c.rank]), s, None)?;
    }
    dispatch::bcast::<u8>(&intra, s, None, &mut [], 0)
}

/// Across hosts from `root` to one rank per host, then inside every host from that rank.
pub(crate) fn bcast<T: Pod>(
    c: &Call,
    s: &Settings,
    lay: &Layout,
    buf: &mut [T],
    root: usize,
) -> Result<()> {
    let reps = reps(lay, root);
    let h = lay.host_of[c.rank];
    if reps[h] == c.rank {
        dispatch::bcast(&c.within(&reps, h), s, None, buf, lay.host_of[root])?;
    }
    let (members, me) = host(c, lay);
    dispatch::bcast(&c.within(members, me), s, None, buf, lay.local[reps[h]])
}

/// Inside every host to one rank (`root` on its own host, the leader elsewhere), then across
/// hosts among those ranks to `root`.
pub(crate) fn reduce<T: Pod, O: Op<T>>(
    c: &Call,
    s: &Settings,
    lay: &Layout,
    send: &[T],
    recv: Option<&mut [T]>,
    op: &O,
    root: usize,
) -> Result<()> {
    let reps = reps(lay, root);
    let h = lay.host_of[c.rank];
    let (members, me) = host(c, lay);
    let rep = lay.local[reps[h]];
    let intra = c.within(members, me);
    if me != rep {
        return dispatch::reduce(&intra, s, None, send, None, op, rep);
    }
    let mut partial: Vec<T> = bytemuck::zeroed_vec(send.len());
    dispatch::reduce(&intra, s, None, send, Some(&mut partial), op, rep)?;
    let recv = if c.rank == root { recv } else { None };
    dispatch::reduce(&c.within(&reps, h), s, None, &partial, recv, op, lay.host_of[root])
}

/// Reduce inside every host to its leader, allreduce among the leaders, broadcast inside every
/// host.
pub(crate) fn allreduce<T: Pod, O: Op<T>>(
    c: &Call,
    s: &Settings,
    lay: &Layout,
    buf: &mut [T],
    op: &O,
) -> Result<()> {
    let (members, me) = host(c, lay);
    let intra = c.within(members, me);
    if me == 0 {
        let mut partial: Vec<T> = bytemuck::zeroed_vec(buf.len());
        dispatch::reduce(&intra, s, None, buf, Some(&mut partial), op, 0)?;
        let inter = c.within(&lay.leaders, lay.host_of[c.rank]);
        let bytes = std::mem::size_of_val(buf);
        let algo = dispatch::pick_allreduce(&inter, s, None, bytes, op.commutative());
        dispatch::allreduce(&inter, s, None, algo, &mut partial, op)?;
        buf.copy_from_slice(&partial);
    } else {
        dispatch::reduce(&intra, s, None, buf, None, op, 0)?;
    }
    dispatch::bcast(&intra, s, None, buf, 0)
}

/// Gather inside every host to its leader, allgather of the hosts' blocks among the leaders (in
/// host order; Bruck or ring as for any allgather when every host has as many ranks, the ring
/// otherwise), then broadcast of the whole result inside every host.
pub(crate) fn allgather<T: Pod>(
    c: &Call,
    s: &Settings,
    lay: &Layout,
    send: &[T],
    out: &mut [T],
) -> Result<()> {
    let k = send.len();
    let (members, me) = host(c, lay);
    let intra = c.within(members, me);
    if me != 0 {
        dispatch::gather(&intra, s, send, None, 0)?;
        return dispatch::bcast(&intra, s, None, out, 0);
    }
    let h = lay.host_of[c.rank];
    let inter = c.within(&lay.leaders, h);
    let lens: Vec<usize> = lay.hosts.iter().map(|m| m.len() * k).collect();
    let even = lens.iter().all(|l| *l == lens[0]);
    let mut mine: Vec<T> = bytemuck::zeroed_vec(lens[h]);
    dispatch::gather(&intra, s, send, Some(&mut mine), 0)?;
    // Host order is rank order when hosts are contiguous: the leaders' result is the output.
    let mut by_host: Vec<T> = Vec::new();
    let dest: &mut [T] = if lay.contiguous {
        out
    } else {
        by_host = bytemuck::zeroed_vec(out.len());
        &mut by_host
    };
    if even {
        dispatch::allgather(&inter, s, None, &mine, dest)?;
    } else {
        crate::gather::ring(&inter, &mine, dest, &lens)?;
    }
    if !lay.contiguous {
        for (m, block) in lay.hosts.iter().zip(pieces_mut(&mut by_host, &lens)) {
            for (r, piece) in m.iter().zip(block.chunks(k.max(1))) {
                out[r * k..(r + 1) * k].copy_from_slice(piece);
            }
        }
    }
    dispatch::bcast(&intra, s, None, out, 0)
}
