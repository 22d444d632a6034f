//! Collective operations for rmpi: broadcast, scatter, gather, reduce, allreduce, barrier,
//! allgather, alltoall, reduce-scatter, scans, their variable-count forms, and object forms for
//! any serde type, with algorithms chosen by message and communicator size.
//!
//! Import the [`Collectives`] trait and call the operations on a
//! [`Communicator`]:
//!
//! ```
//! use rmpi::collectives::{Collectives, Sum};
//! let out = rmpi::local::run(3, |world| {
//!     let mut v = vec![world.rank() as f64; 4];
//!     world.allreduce_in_place(&mut v, Sum)?;
//!     Ok(v)
//! })?;
//! assert!(out.iter().all(|v| v == &vec![3.0; 4]));
//! # Ok::<(), rmpi::Error>(())
//! ```
//!
//! Module layout:
//!
//! * [`ops`]: the [`Op`] trait, built-in operators ([`Sum`], [`Min`], [`MaxLoc`], ...) and
//!   [`UserOp`] for closures.
//! * [`algo`]: the algorithms of each family, the size thresholds and [`Settings`] (also read
//!   from `RMPI_ALGO_<OP>` environment variables) to force one.
//! * `call`: one collective call — sequence number, the tag that identifies the call on the
//!   wire, point-to-point helpers that check every received tag, and the sliced wait every
//!   collective wait goes through (stall detection: queries and notices on the control
//!   channel turn a wait on a rank in another call into `Error::Mismatch`).
//! * One module per family with its algorithms: `barrier` (also the optional consistency
//!   check), `bcast`, `reduce`, `allreduce`, `reduce_scatter`, `gather` (gather, gatherv,
//!   allgather, allgatherv), `scatter`, `alltoall`, `scan`, `object` (serde values).
//! * `shape`: the shapes the algorithms share (chunk spans, binomial tree positions, ring steps,
//!   the fold to a power of two, segment sizes); `scratch`: a call's scratch space, on the
//!   stack for short vectors.
//! * `dispatch`: where a picked algorithm becomes a call, for every family (the choice itself
//!   is [`Settings`]' `pick_*`, one exhaustive match per family).
//! * `layout` and `hier`: the hosts of a communicator (grouped by `host_of`, cached in the
//!   communicator) and the two-level barrier, bcast, reduce, allreduce and allgather run on
//!   them; see
//!   [`placement`].
//!
//! `examples/coll_tune.rs` times the algorithms of a family side by side (how the thresholds in
//! [`Thresholds`] were chosen).
//!
//! All traffic goes over the communicator's collective channel, a matching context that user
//! point-to-point messages never reach; consecutive calls are told apart by their sequence
//! number. `docs/collectives.md` describes the algorithms, their cost model and thresholds,
//! the reduction order and how mismatches and lost ranks are reported.

#![warn(missing_docs)]

pub mod algo;
mod allreduce;
mod alltoall;
mod barrier;
mod bcast;
mod call;
mod dispatch;
mod gather;
mod hier;
mod layout;
mod object;
pub mod ops;
mod reduce;
mod reduce_scatter;
mod scan;
mod scatter;
mod scratch;
mod shape;

use bytemuck::Pod;
use rmpi_transport::{Communicator, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use algo::{
    AllgatherAlgo, AllreduceAlgo, AlltoallAlgo, BarrierAlgo, BcastAlgo, GatherAlgo, Placement,
    ReduceAlgo, ReduceScatterAlgo, ScanAlgo, ScatterAlgo, Settings, Thresholds,
};
pub use call::OpKind;
pub use ops::{
    BAnd, BOr, BXor, LAnd, LOr, LXor, Loc, LocValue, Max, MaxLoc, Min, MinLoc, Op, Prod, Sum,
    UserOp,
};

use call::Call;
use layout::Layout;

/// A communicator with explicit [`Settings`] (algorithm choices, consistency check), made by
/// [`Collectives::with_settings`]. Every rank must use the same settings for a call.
#[derive(Clone, Copy, Debug)]
pub struct Tuned<'c> {
    comm: &'c Communicator,
    settings: Settings,
}

impl Collectives for Tuned<'_> {
    fn communicator(&self) -> &Communicator {
        self.comm
    }
    fn settings(&self) -> Result<Settings> {
        Ok(self.settings)
    }
}

impl Collectives for Communicator {
    fn communicator(&self) -> &Communicator {
        self
    }
    fn settings(&self) -> Result<Settings> {
        Settings::from_env()
    }
}

/// Where `comm`'s ranks run, as the algorithm choice sees it: hosts told apart by
/// [`Communicator::host_of`], built on first use and kept for the communicator's life.
///
/// ```
/// let at = rmpi::local::run(2, |w| Ok(rmpi::collectives::placement(&w)))?;
/// // The in-process harness names every rank's host after the rank: one level.
/// assert_eq!((at[0].hosts, at[0].widest, at[0].two_level()), (2, 1, false));
/// # Ok::<(), rmpi::Error>(())
/// ```
pub fn placement(comm: &Communicator) -> Placement {
    Layout::of(comm).placement()
}

fn bytes_of<T>(n: usize) -> u64 {
    (n as u64).saturating_mul(std::mem::size_of::<T>() as u64)
}

/// Starts a call: settings, sequence number, root check, optional consistency check.
fn begin<'c, C: Collectives + ?Sized>(
    this: &'c C,
    kind: OpKind,
    root: usize,
    bytes: u64,
) -> Result<(Call<'c>, Settings)> {
    let settings = this.settings()?;
    let c = Call::start(this.communicator(), kind, root, bytes, settings.stall_slice())?;
    if settings.check {
        barrier::consistency(&c)?;
    }
    Ok((c, settings))
}

/// The sum of `counts`, or an error if it overflows.
fn sum_counts(c: &Call, counts: &[usize]) -> Result<usize> {
    counts
        .iter()
        .try_fold(0usize, |a, &n| a.checked_add(n))
        .ok_or_else(|| c.invalid("the counts add up to more than usize::MAX"))
}

fn need_len(c: &Call, what: &str, have: usize, want: usize) -> Result<()> {
    if have == want {
        Ok(())
    } else {
        Err(c.invalid(format!("{what} holds {have} elements, {want} needed")))
    }
}

/// The collective operations, for [`Communicator`] (algorithms chosen automatically, or forced
/// with `RMPI_ALGO_<OP>`) and [`Tuned`] (explicit [`Settings`]).
///
/// Like MPI's, every member of the communicator must make the same calls in the same order.
/// Errors: [`Error::Mismatch`](rmpi_transport::Error::Mismatch) when ranks are in different
/// calls (found from a message's tag, or, when a wait stalls for longer than the stall slice
/// `RMPI_COLL_STALL_MS`, by asking the peer it waits for; see `docs/collectives.md`),
/// [`Error::InvalidArgument`](rmpi_transport::Error::InvalidArgument) for buffers that do not
/// fit the call, [`Error::PeerLost`](rmpi_transport::Error::PeerLost) naming a rank that died,
/// [`Error::InvalidRank`](rmpi_transport::Error::InvalidRank) for a root out of range.
pub trait Collectives {
    /// The communicator the operations run on.
    fn communicator(&self) -> &Communicator;

    /// The settings used for each call.
    fn settings(&self) -> Result<Settings>;

    /// This communicator with explicit settings, e.g. to force an algorithm:
    ///
    /// ```
    /// use rmpi::collectives::{AllreduceAlgo, Collectives, Settings, Sum};
    /// let s = Settings { allreduce: AllreduceAlgo::Ring, ..Settings::default() };
    /// let out = rmpi::local::run(3, |world| {
    ///     let mut v = [1u64, 2, 3, 4, 5];
    ///     world.with_settings(s).allreduce_in_place(&mut v, Sum)?;
    ///     Ok(v)
    /// })?;
    /// assert_eq!(out[2], [3, 6, 9, 12, 15]);
    /// # Ok::<(), rmpi::Error>(())
    /// ```
    fn with_settings(&self, settings: Settings) -> Tuned<'_> {
        Tuned { comm: self.communicator(), settings }
    }

    /// Waits until every rank has called `barrier`.
    ///
    /// ```
    /// use rmpi::collectives::Collectives;
    /// rmpi::local::run(5, |world| world.barrier())?;
    /// # Ok::<(), rmpi::Error>(())
    /// ```
    fn barrier(&self) -> Result<()> {
        let (c, s) = begin(self, OpKind::Barrier, 0, 0)?;
        dispatch::barrier(&c, &s, Some(&Layout::of(self.communicator())))
    }

    /// Copies `buf` of rank `root` into `buf` of every rank (all pass the same length).
    ///
    /// ```
    /// use rmpi::collectives::Collectives;
    /// let out = rmpi::local::run(4, |world| {
    ///     let mut v = if world.rank() == 2 { [7i32, 8, 9] } else { [0; 3] };
    ///     world.bcast(&mut v, 2)?;
    ///     Ok(v)
    /// })?;
    /// assert!(out.iter().all(|v| v == &[7, 8, 9]));
    /// # Ok::<(), rmpi::Error>(())
    /// ```
    fn bcast<T: Pod>(&self, buf: &mut [T], root: usize) -> Result<()> {
        let (c, s) = begin(self, OpKind::Bcast, root, bytes_of::<T>(buf.len()))?;
        dispatch::bcast(&c, &s, Some(&Layout::of(self.communicator())), buf, root)
    }

    /// Combines every rank's `send` with `op` into `recv` at `root` (which must pass
    /// `Some(buffer)` of the same length; other ranks' `recv` is ignored).
    ///
    /// ```
    /// use rmpi::collectives::{Collectives, Max};
    /// let out = rmpi::local::run(3, |world| {
    ///     let mine = [world.rank() as i64, -(world.rank() as i64)];
    ///     let mut res = [0i64; 2];
    ///     let root = world.rank() == 1;
    ///     world.reduce(&mine, root.then_some(&mut res[..]), Max, 1)?;
    ///     Ok(res)
    /// })?;
    /// assert_eq!(out[1], [2, 0]);
    /// # Ok::<(), rmpi::Error>(())
    /// ```
    fn reduce<T: Pod, O: Op<T>>(
        &self,
        send: &[T],
        recv: Option<&mut [T]>,
        op: O,
        root: usize,
    ) -> Result<()> {
        let (c, s) = begin(self, OpKind::Reduce, root, bytes_of::<T>(send.len()))?;
        let recv = if c.rank == root {
            match recv {
                Some(out) => {
                    need_len(&c, "the receive buffer", out.len(), send.len())?;
                    Some(out)
                }
                None => return Err(c.invalid("the root must pass a receive buffer")),
            }
        } else {
            None
        };
        dispatch::reduce(&c, &s, Some(&Layout::of(self.communicator())), send, recv, &op, root)
    }

    /// [`reduce`](Self::reduce) where the root's `buf` is both its contribution and the result
    /// (MPI_IN_PLACE); on other ranks `buf` is only read.
    ///
    /// ```
    /// use rmpi::collectives::{Collectives, Sum};
    /// let out = rmpi::local::run(3, |world| {
    ///     let mut v = [world.rank() as u32 + 1; 2];
    ///     world.reduce_in_place(&mut v, Sum, 0)?;
    ///     Ok(v)
    /// })?;
    /// assert_eq!(out, vec![[6, 6], [2, 2], [3, 3]]);
    /// # Ok::<(), rmpi::Error>(())
    /// ```
    fn reduce_in_place<T: Pod, O: Op<T>>(&self, buf: &mut [T], op: O, root: usize) -> Result<()> {
        if self.communicator().rank() == root {
            let mine = buf.to_vec();
            self.reduce(&mine, Some(buf), op, root)
        } else {
            self.reduce(buf, None, op, root)
        }
    }

    /// Combines every rank's `send` with `op` into `recv` on every rank. Every rank gets the
    /// same bits, and the same input on the same number of ranks gives the same bits every run.
    ///
    /// ```
    /// use rmpi::collectives::{Collectives, Sum};
    /// let out = rmpi::local::run(3, |world| {
    ///     let mut total = [0.0f32; 2];
    ///     world.allreduce(&[1.0, world.rank() as f32], &mut total, Sum)?;
    ///     Ok(total)
    /// })?;
    /// assert!(out.iter().all(|t| t == &[3.0, 3.0]));
    /// # Ok::<(), rmpi::Error>(())
    /// ```
    fn allreduce<T: Pod, O: Op<T>>(&self, send: &[T], recv: &mut [T], op: O) -> Result<()> {
        let (c, s) = begin(self, OpKind::Allreduce, 0, bytes_of::<T>(send.len()))?;
        need_len(&c, "the receive buffer", recv.len(), send.len())?;
        let lay = Layout::of(self.communicator());
        let bytes = std::mem::size_of_val(send);
        let algo = dispatch::pick_allreduce(&c, &s, Some(&lay), bytes, op.commutative());
        if c.size > 1 && algo == AllreduceAlgo::Ring {
            return allreduce::ring_out_of_place(&c, send, recv, &op);
        }
        recv.copy_from_slice(send);
        dispatch::allreduce(&c, &s, Some(&lay), algo, recv, &op)
    }

    /// [`allreduce`](Self::allreduce) that combines into `buf` itself.
    ///
    /// ```
    /// use rmpi::collectives::{Collectives, Loc, MinLoc};
    /// let out = rmpi::local::run(4, |world| {
    ///     let r = world.rank();
    ///     let mut v = [Loc::new((r as f64 - 1.5).abs(), r as u64)];
    ///     world.allreduce_in_place(&mut v, MinLoc)?;
    ///     Ok(v[0])
    /// })?;
    /// assert_eq!(out[0], Loc::new(0.5, 1)); // ranks 1 and 2 tie; the lower index wins
    /// # Ok::<(), rmpi::Error>(())
    /// ```
    fn allreduce_in_place<T: Pod, O: Op<T>>(&self, buf: &mut [T], op: O) -> Result<()> {
        let (c, s) = begin(self, OpKind::Allreduce, 0, bytes_of::<T>(buf.len()))?;
        let lay = Layout::of(self.communicator());
        let bytes = std::mem::size_of_val(buf);
        let algo = dispatch::pick_allreduce(&c, &s, Some(&lay), bytes, op.commutative());
        dispatch::allreduce(&c, &s, Some(&lay), algo, buf, &op)
    }

    /// Sends block i (of `recv.len()` elements) of the root's `send` to rank i. The root passes
    /// `Some(send)` with `size * recv.len()` elements; other ranks' `send` is ignored.
    ///
    /// ```
    /// use rmpi::collectives::Collectives;
    /// let out = rmpi::local::run(3, |world| {
    ///     let all: Vec<u32> = (0..6).collect();
    ///     let mut mine = [0u32; 2];
    ///     world.scatter((world.rank() == 0).then_some(&all[..]), &mut mine, 0)?;
    ///     Ok(mine)
    /// })?;
    /// assert_eq!(out, vec![[0, 1], [2, 3], [4, 5]]);
    /// # Ok::<(), rmpi::Error>(())
    /// ```
    fn scatter<T: Pod>(&self, send: Option<&[T]>, recv: &mut [T], root: usize) -> Result<()> {
        let (c, s) = begin(self, OpKind::Scatter, root, bytes_of::<T>(recv.len()))?;
        let send = if c.rank == root {
            let Some(all) = send else {
                return Err(c.invalid("the root must pass the data to scatter"));
            };
            need_len(&c, "the send buffer", all.len(), c.size * recv.len())?;
            Some(all)
        } else {
            None
        };
        dispatch::scatter(&c, &s, send, recv, root)
    }

    /// Like [`scatter`](Self::scatter) with blocks of different lengths: the root passes its
    /// data and every rank's count (rank i's block follows rank i-1's); rank i passes a
    /// `recv` of exactly its count.
    ///
    /// ```
    /// use rmpi::collectives::Collectives;
    /// let out = rmpi::local::run(3, |world| {
    ///     let all = [1u8, 2, 2, 3, 3, 3];
    ///     let counts = [1, 2, 3];
    ///     let mut mine = vec![0u8; counts[world.rank()]];
    ///     let send = (world.rank() == 0).then_some((&all[..], &counts[..]));
    ///     world.scatterv(send, &mut mine, 0)?;
    ///     Ok(mine)
    /// })?;
    /// assert_eq!(out[2], vec![3, 3, 3]);
    /// # Ok::<(), rmpi::Error>(())
    /// ```
    fn scatterv<T: Pod>(
        &self,
        send: Option<(&[T], &[usize])>,
        recv: &mut [T],
        root: usize,
    ) -> Result<()> {
        let (c, _) = begin(self, OpKind::Scatterv, root, 0)?;
        if c.rank == root {
            let Some((all, counts)) = send else {
                return Err(c.invalid("the root must pass the data and counts to scatter"));
            };
            need_len(&c, "the counts", counts.len(), c.size)?;
            need_len(&c, "the send buffer", all.len(), sum_counts(&c, counts)?)?;
            need_len(&c, "the receive buffer", recv.len(), counts[root])?;
            scatter::linear(&c, Some((all, counts)), recv, root)
        } else {
            scatter::linear(&c, None, recv, root)
        }
    }

    /// Collects every rank's `send` (all the same length) at `root`, in rank order. The root
    /// passes `Some(recv)` with `size * send.len()` elements; other ranks' `recv` is ignored.
    ///
    /// ```
    /// use rmpi::collectives::Collectives;
    /// let out = rmpi::local::run(3, |world| {
    ///     let mut all = [0u16; 3];
    ///     let root = world.rank() == 0;
    ///     world.gather(&[world.rank() as u16 * 10], root.then_some(&mut all[..]), 0)?;
    ///     Ok(all)
    /// })?;
    /// assert_eq!(out[0], [0, 10, 20]);
    /// # Ok::<(), rmpi::Error>(())
    /// ```
    fn gather<T: Pod>(&self, send: &[T], recv: Option<&mut [T]>, root: usize) -> Result<()> {
        let (c, s) = begin(self, OpKind::Gather, root, bytes_of::<T>(send.len()))?;
        let recv = if c.rank == root {
            let Some(out) = recv else {
                return Err(c.invalid("the root must pass a receive buffer"));
            };
            need_len(&c, "the receive buffer", out.len(), c.size * send.len())?;
            Some(out)
        } else {
            None
        };
        dispatch::gather(&c, &s, send, recv, root)
    }

    /// Like [`gather`](Self::gather) with pieces of different lengths: the root passes the
    /// receive buffer and every rank's count (rank i's piece follows rank i-1's).
    ///
    /// ```
    /// use rmpi::collectives::Collectives;
    /// let out = rmpi::local::run(3, |world| {
    ///     let r = world.rank();
    ///     let mine = vec![r as i32; r];
    ///     let counts = [0, 1, 2];
    ///     let mut all = [0i32; 3];
    ///     world.gatherv(&mine, (r == 2).then_some((&mut all[..], &counts[..])), 2)?;
    ///     Ok(all)
    /// })?;
    /// assert_eq!(out[2], [1, 2, 2]);
    /// # Ok::<(), rmpi::Error>(())
    /// ```
    fn gatherv<T: Pod>(
        &self,
        send: &[T],
        recv: Option<(&mut [T], &[usize])>,
        root: usize,
    ) -> Result<()> {
        let (c, _) = begin(self, OpKind::Gatherv, root, 0)?;
        if c.rank == root {
            let Some((out, counts)) = recv else {
                return Err(c.invalid("the root must pass a receive buffer and counts"));
            };
            need_len(&c, "the counts", counts.len(), c.size)?;
            need_len(&c, "the receive buffer", out.len(), sum_counts(&c, counts)?)?;
            need_len(&c, "the send buffer", send.len(), counts[root])?;
            gather::linear(&c, send, Some((out, counts)), root)
        } else {
            gather::linear(&c, send, None, root)
        }
    }

    /// Every rank gets every rank's `send` (all the same length) in rank order in `recv`
    /// (`size * send.len()` elements).
    ///
    /// ```
    /// use rmpi::collectives::Collectives;
    /// let out = rmpi::local::run(3, |world| {
    ///     let mut all = [0u8; 6];
    ///     world.allgather(&[world.rank() as u8; 2], &mut all)?;
    ///     Ok(all)
    /// })?;
    /// assert!(out.iter().all(|a| a == &[0, 0, 1, 1, 2, 2]));
    /// # Ok::<(), rmpi::Error>(())
    /// ```
    fn allgather<T: Pod>(&self, send: &[T], recv: &mut [T]) -> Result<()> {
        let (c, s) = begin(self, OpKind::Allgather, 0, bytes_of::<T>(send.len()))?;
        need_len(&c, "the receive buffer", recv.len(), c.size * send.len())?;
        dispatch::allgather(&c, &s, Some(&Layout::of(self.communicator())), send, recv)
    }

    /// Like [`allgather`](Self::allgather) with pieces of different lengths: every rank passes
    /// every rank's count; rank i's piece lands after rank i-1's.
    ///
    /// ```
    /// use rmpi::collectives::Collectives;
    /// let out = rmpi::local::run(3, |world| {
    ///     let r = world.rank();
    ///     let counts = [2, 0, 1];
    ///     let mut all = [0u64; 3];
    ///     world.allgatherv(&vec![r as u64 + 1; counts[r]], &mut all, &counts)?;
    ///     Ok(all)
    /// })?;
    /// assert!(out.iter().all(|a| a == &[1, 1, 3]));
    /// # Ok::<(), rmpi::Error>(())
    /// ```
    fn allgatherv<T: Pod>(&self, send: &[T], recv: &mut [T], counts: &[usize]) -> Result<()> {
        let total = counts.iter().try_fold(0usize, |a, &n| a.checked_add(n)).unwrap_or(usize::MAX);
        let (c, _) = begin(self, OpKind::Allgatherv, 0, bytes_of::<T>(total))?;
        let total = sum_counts(&c, counts)?;
        need_len(&c, "the counts", counts.len(), c.size)?;
        need_len(&c, "the send buffer", send.len(), counts[c.rank])?;
        need_len(&c, "the receive buffer", recv.len(), total)?;
        gather::ring(&c, send, recv, counts)
    }

    /// Block j of rank i's `send` becomes block i of rank j's `recv` (both `size * k`
    /// elements for a common block length k).
    ///
    /// ```
    /// use rmpi::collectives::Collectives;
    /// let out = rmpi::local::run(3, |world| {
    ///     let r = world.rank() as u32;
    ///     let send = [r * 10, r * 10 + 1, r * 10 + 2];
    ///     let mut recv = [0u32; 3];
    ///     world.alltoall(&send, &mut recv)?;
    ///     Ok(recv)
    /// })?;
    /// assert_eq!(out[1], [1, 11, 21]);
    /// # Ok::<(), rmpi::Error>(())
    /// ```
    fn alltoall<T: Pod>(&self, send: &[T], recv: &mut [T]) -> Result<()> {
        let (c, s) = begin(self, OpKind::Alltoall, 0, bytes_of::<T>(send.len()))?;
        need_len(&c, "the receive buffer", recv.len(), send.len())?;
        if send.len() % c.size != 0 {
            return Err(c.invalid(format!(
                "the send buffer's {} elements are not {} equal blocks",
                send.len(),
                c.size
            )));
        }
        let k = send.len() / c.size;
        dispatch::alltoall(&c, &s, send, recv, k)
    }

    /// Combines `send` (`size * recv.len()` elements) over all ranks with `op` and gives rank
    /// i block i of the result (MPI_Reduce_scatter_block).
    ///
    /// ```
    /// use rmpi::collectives::{Collectives, Sum};
    /// let out = rmpi::local::run(2, |world| {
    ///     let mut mine = [0i32; 2];
    ///     world.reduce_scatter_block(&[1, 2, 3, 4], &mut mine, Sum)?;
    ///     Ok(mine)
    /// })?;
    /// assert_eq!(out, vec![[2, 4], [6, 8]]);
    /// # Ok::<(), rmpi::Error>(())
    /// ```
    fn reduce_scatter_block<T: Pod, O: Op<T>>(
        &self,
        send: &[T],
        recv: &mut [T],
        op: O,
    ) -> Result<()> {
        let (c, s) = begin(self, OpKind::ReduceScatter, 0, bytes_of::<T>(send.len()))?;
        need_len(&c, "the send buffer", send.len(), c.size * recv.len())?;
        dispatch::reduce_scatter(&c, &s, send, recv, &op)
    }

    /// Inclusive prefix reduction: rank i gets `send(0) ∘ ... ∘ send(i)` in `recv`.
    ///
    /// ```
    /// use rmpi::collectives::{Collectives, Sum};
    /// let out = rmpi::local::run(4, |world| {
    ///     let mut s = [0u32];
    ///     world.scan(&[world.rank() as u32 + 1], &mut s, Sum)?;
    ///     Ok(s[0])
    /// })?;
    /// assert_eq!(out, vec![1, 3, 6, 10]);
    /// # Ok::<(), rmpi::Error>(())
    /// ```
    fn scan<T: Pod, O: Op<T>>(&self, send: &[T], recv: &mut [T], op: O) -> Result<()> {
        let (c, s) = begin(self, OpKind::Scan, 0, bytes_of::<T>(send.len()))?;
        need_len(&c, "the receive buffer", recv.len(), send.len())?;
        dispatch::scan(&c, &s, send, recv, &op, false)
    }

    /// Exclusive prefix reduction: rank i > 0 gets `send(0) ∘ ... ∘ send(i-1)`; rank 0's
    /// `recv` is left as it was.
    ///
    /// ```
    /// use rmpi::collectives::{Collectives, Sum};
    /// let out = rmpi::local::run(4, |world| {
    ///     let mut s = [0u32];
    ///     world.exscan(&[world.rank() as u32 + 1], &mut s, Sum)?;
    ///     Ok(s[0])
    /// })?;
    /// assert_eq!(out, vec![0, 1, 3, 6]);
    /// # Ok::<(), rmpi::Error>(())
    /// ```
    fn exscan<T: Pod, O: Op<T>>(&self, send: &[T], recv: &mut [T], op: O) -> Result<()> {
        let (c, s) = begin(self, OpKind::Exscan, 0, bytes_of::<T>(send.len()))?;
        need_len(&c, "the receive buffer", recv.len(), send.len())?;
        dispatch::scan(&c, &s, send, recv, &op, true)
    }

    /// Broadcasts any serde value: the root passes `Some(value)`, the others `None`; every
    /// rank returns the value.
    ///
    /// ```
    /// use rmpi::collectives::Collectives;
    /// let out = rmpi::local::run(3, |world| {
    ///     let v = (world.rank() == 1).then(|| vec!["a".to_string(), "bc".into()]);
    ///     world.bcast_obj(v, 1)
    /// })?;
    /// assert!(out.iter().all(|v| v == &["a", "bc"]));
    /// # Ok::<(), rmpi::Error>(())
    /// ```
    fn bcast_obj<T: Serialize + DeserializeOwned>(
        &self,
        value: Option<T>,
        root: usize,
    ) -> Result<T> {
        let (c, _) = begin(self, OpKind::BcastObj, root, 0)?;
        if c.rank == root {
            let Some(v) = value else {
                let why = "the root passed no value";
                object::bcast_bytes(&c, Some(object::root_error(why)), root)?;
                return Err(c.invalid(why));
            };
            object::bcast_bytes(&c, Some(object::encode(&v)?), root)?;
            Ok(v)
        } else {
            let bytes = object::bcast_bytes(&c, None, root)?;
            object::decode(&c, &bytes, root)
        }
    }

    /// Gathers any serde value at `root`: `Some(values in rank order)` there, `None` elsewhere.
    ///
    /// ```
    /// use rmpi::collectives::Collectives;
    /// let out = rmpi::local::run(3, |world| world.gather_obj(&format!("r{}", world.rank()), 0))?;
    /// assert_eq!(out[0].as_deref(), Some(&["r0".to_string(), "r1".into(), "r2".into()][..]));
    /// assert!(out[1].is_none());
    /// # Ok::<(), rmpi::Error>(())
    /// ```
    fn gather_obj<T: Serialize + DeserializeOwned>(
        &self,
        value: &T,
        root: usize,
    ) -> Result<Option<Vec<T>>> {
        let (c, _) = begin(self, OpKind::GatherObj, root, 0)?;
        let mine = object::encode(value)?;
        match object::gather_bytes(&c, mine, root)? {
            None => Ok(None),
            Some(all) => all
                .iter()
                .enumerate()
                .map(|(i, b)| object::decode(&c, b, i))
                .collect::<Result<Vec<T>>>()
                .map(Some),
        }
    }

    /// Scatters any serde values: the root passes `Some(values)` with one value per rank;
    /// rank i returns value i.
    ///
    /// ```
    /// use rmpi::collectives::Collectives;
    /// let out = rmpi::local::run(3, |world| {
    ///     let v = (world.rank() == 0).then(|| vec![(0, 'a'), (1, 'b'), (2, 'c')]);
    ///     world.scatter_obj(v, 0)
    /// })?;
    /// assert_eq!(out[2], (2, 'c'));
    /// # Ok::<(), rmpi::Error>(())
    /// ```
    fn scatter_obj<T: Serialize + DeserializeOwned>(
        &self,
        values: Option<Vec<T>>,
        root: usize,
    ) -> Result<T> {
        let (c, _) = begin(self, OpKind::ScatterObj, root, 0)?;
        if c.rank != root {
            let bytes = c.recv_bytes(root)?;
            return object::decode(&c, &bytes, root);
        }
        let values = match values {
            Some(v) if v.len() == c.size => v,
            other => {
                let why = match other {
                    None => "the root passed no values".to_string(),
                    Some(v) => format!("the root passed {} values for {} ranks", v.len(), c.size),
                };
                let msg = object::root_error(&why);
                let dests: Vec<usize> = (0..c.size).filter(|i| *i != root).collect();
                c.send_bytes_all(&msg, &dests)?;
                return Err(c.invalid(why));
            }
        };
        let mut encoded = Vec::with_capacity(c.size);
        for v in &values {
            encoded.push(object::encode(v)?);
        }
        let msgs: Vec<(&[u8], usize)> = encoded
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != root)
            .map(|(i, b)| (&b[..], i))
            .collect();
        c.send_bytes_each(&msgs)?;
        values.into_iter().nth(root).ok_or_else(|| c.invalid("no value for the root"))
    }

    /// Every rank gets every rank's value, in rank order.
    ///
    /// ```
    /// use rmpi::collectives::Collectives;
    /// let out = rmpi::local::run(3, |world| world.allgather_obj(&world.rank()))?;
    /// assert!(out.iter().all(|v| v == &[0, 1, 2]));
    /// # Ok::<(), rmpi::Error>(())
    /// ```
    fn allgather_obj<T: Serialize + DeserializeOwned>(&self, value: &T) -> Result<Vec<T>> {
        let (c, _) = begin(self, OpKind::AllgatherObj, 0, 0)?;
        let all = object::allgather_bytes(&c, object::encode(value)?)?;
        all.iter().enumerate().map(|(i, b)| object::decode(&c, b, i)).collect()
    }

    /// Folds every rank's value with `f` in rank order (`f(f(v0, v1), v2)...`) at `root`:
    /// `Some(result)` there, `None` elsewhere.
    ///
    /// ```
    /// use rmpi::collectives::Collectives;
    /// let out = rmpi::local::run(3, |world| {
    ///     world.reduce_obj(world.rank().to_string(), |a, b| a + &b, 0)
    /// })?;
    /// assert_eq!(out[0].as_deref(), Some("012"));
    /// # Ok::<(), rmpi::Error>(())
    /// ```
    fn reduce_obj<T, F>(&self, value: T, f: F, root: usize) -> Result<Option<T>>
    where
        T: Serialize + DeserializeOwned,
        F: Fn(T, T) -> T,
    {
        let (c, _) = begin(self, OpKind::ReduceObj, root, 0)?;
        fold_at(&c, value, &f, root)
    }

    /// Folds every rank's value with `f` in rank order and gives every rank the result.
    ///
    /// ```
    /// use rmpi::collectives::Collectives;
    /// let out = rmpi::local::run(3, |world| {
    ///     world.allreduce_obj(vec![world.rank()], |mut a, b| { a.extend(b); a })
    /// })?;
    /// assert!(out.iter().all(|v| v == &[0, 1, 2]));
    /// # Ok::<(), rmpi::Error>(())
    /// ```
    fn allreduce_obj<T, F>(&self, value: T, f: F) -> Result<T>
    where
        T: Serialize + DeserializeOwned,
        F: Fn(T, T) -> T,
    {
        let (c, _) = begin(self, OpKind::AllreduceObj, 0, 0)?;
        let folded = fold_at(&c, value, &f, 0)?;
        let bytes = match &folded {
            Some(v) => Some(object::encode(v)?),
            None => None,
        };
        let bytes = object::bcast_bytes(&c, bytes, 0)?;
        match folded {
            Some(v) => Ok(v),
            None => object::decode(&c, &bytes, 0),
        }
    }
}

/// Gathers the encoded values at `root` and folds them in rank order.
fn fold_at<T, F>(c: &Call, value: T, f: &F, root: usize) -> Result<Option<T>>
where
    T: Serialize + DeserializeOwned,
    F: Fn(T, T) -> T,
{
    let mine = object::encode(&value)?;
    let Some(all) = object::gather_bytes(c, mine, root)? else {
        return Ok(None);
    };
    let mut acc: Option<T> = None;
    let mut value = Some(value);
    for (i, b) in all.iter().enumerate() {
        let v = if i == root {
            match value.take() {
                Some(v) => v,
                None => object::decode(c, b, i)?,
            }
        } else {
            object::decode(c, b, i)?
        };
        acc = Some(match acc {
            None => v,
            Some(a) => f(a, v),
        });
    }
    Ok(acc)
}
