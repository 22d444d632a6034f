//! rmpi: MPI-style message passing in pure Rust, over TCP.
//!
//! A job is a set of processes (ranks) started by a launcher (`rmpirun`, Slurm's
//! `srun --mpi=pmi2`, MPICH's `mpiexec`, Open MPI's `mpirun` as in `docs/slurm.md`, or anything
//! that follows `docs/launch-contract.md`). Each calls [`init`] and gets the world [`Communicator`]: its rank,
//! the world size, tagged point-to-point messages, and (through [`prelude`]) the collective
//! operations.
//!
//! ```
//! use rmpi::prelude::*;
//!
//! // Run bare, a program is a world of one rank (like an MPI singleton); started by
//! // `rmpirun -n 4 ./app`, the same call joins a four-rank job.
//! let world = rmpi::init()?;
//! let mut x = vec![world.rank() as f64 + 1.0; 3];
//! world.allreduce_in_place(&mut x, Sum)?;
//! assert_eq!(x, vec![1.0; 3]);
//! # Ok::<(), rmpi::Error>(())
//! ```
//!
//! Several ranks inside one test, over the real transports:
//!
//! ```
//! use rmpi::prelude::*;
//! let sums = rmpi::local::run(4, |world| {
//!     let mine = [world.rank() as u64];
//!     let mut total = [0u64];
//!     world.allreduce(&mine, &mut total, Sum)?;
//!     if world.rank() == 0 {
//!         world.send(&[42u32], 1, 7)?;
//!     } else if world.rank() == 1 {
//!         let (v, status) = world.recv::<u32>(0, 7)?;
//!         assert_eq!((v[0], status.source), (42, 0));
//!     }
//!     Ok(total[0])
//! })?;
//! assert_eq!(sums, vec![6; 4]);
//! # Ok::<(), rmpi::Error>(())
//! ```
//!
//! The crates behind this facade: `rmpi-transport` (bootstrap, wire format, point-to-point) and
//! `rmpi-collectives` (collective algorithms). Neither the launcher nor the EC2 tooling is a
//! dependency of this crate.

/// The collective operations: the [`Collectives`](collectives::Collectives) trait, the operators,
/// [`Settings`](collectives::Settings) and the algorithm enums.
#[doc(inline)]
pub use rmpi_collectives as collectives;
pub use rmpi_transport::{
    addr, env, local, rendezvous, token, wire, wtick, wtime, Any, BootConfig, Communicator, Error,
    Pod, Request, Result, Scope, Source, Status, Tag, TagMatch,
};

/// Derives [`Pod`](trait@Pod) for a plain-data struct, so that slices of it travel as their bytes, with
/// `rmpi` as the only dependency.
///
/// The struct must be `#[repr(C)]` (or `#[repr(transparent)]`), `Clone + Copy`, not generic,
/// with `Pod` fields and no padding; each rule is checked when the program compiles.
///
/// ```
/// #[derive(Clone, Copy, Debug, PartialEq, rmpi::Pod)]
/// #[repr(C)]
/// struct Particle {
///     pos: [f64; 3],
///     id: u32,
///     charge: f32,
/// }
///
/// let got = rmpi::local::run(2, |world| {
///     if world.rank() == 0 {
///         world.send(&[Particle { pos: [1.0, 2.0, 3.0], id: 7, charge: -1.0 }], 1, 0)?;
///         Ok(None)
///     } else {
///         Ok(Some(world.recv::<Particle>(0, 0)?.0))
///     }
/// })?;
/// assert_eq!(got[1].as_ref().map(|v| v[0].id), Some(7));
/// # Ok::<(), rmpi::Error>(())
/// ```
///
/// Padding is refused (here 4 bytes after `id`):
///
/// ```compile_fail
/// #[derive(Clone, Copy, rmpi::Pod)]
/// #[repr(C)]
/// struct Padded { x: f64, id: u32 }
/// ```
///
/// So is Rust's own layout, which may change between compilations:
///
/// ```compile_fail
/// #[derive(Clone, Copy, rmpi::Pod)]
/// struct NoRepr { x: f64, y: f64 }
/// ```
///
/// And a field that is not itself plain data:
///
/// ```compile_fail
/// #[derive(Clone, Copy, rmpi::Pod)]
/// #[repr(C)]
/// struct WithRef { x: &'static u64 }
/// ```
pub use rmpi_derive::Pod;

/// The trait every value of a [`Pod`](trait@Pod) type satisfies: all-zero bytes are a valid value.
pub use bytemuck::Zeroable;

/// Every Rust example of README.md and docs/*.md, collected by build.rs, so that each compiles
/// and runs as a doc test.
#[cfg(doctest)]
#[doc = include_str!(concat!(env!("OUT_DIR"), "/doc_examples.md"))]
pub mod doc_examples {}

/// What the [`Pod`](derive@Pod) derive expands to; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use bytemuck;
}

/// Everything a typical program needs: the [`Collectives`](rmpi_collectives::Collectives)
/// trait (so `world.allreduce(..)` works), the operators, [`Settings`](rmpi_collectives::Settings)
/// for choosing algorithms (`world.with_settings(..)`), and the core types. The algorithm enums
/// and thresholds are in [`collectives`].
pub mod prelude {
    pub use rmpi_collectives::{
        BAnd, BOr, BXor, Collectives, LAnd, LOr, LXor, Loc, Max, MaxLoc, Min, MinLoc, Op, Prod,
        Settings, Sum, UserOp,
    };
    pub use rmpi_transport::{Any, Communicator, Error, Pod, Request, Status, Tag};
}

/// Joins the job this process was started in, through whichever launcher started it (rmpirun,
/// Slurm's PMI-2, Hydra's PMI-1/PMI-2, Open MPI's mpirun with a rendezvous: see
/// `docs/launch-contract.md`), or returns a world of size 1 when it was started without one. A
/// launcher that started several processes but gave them no way to meet (`srun` without
/// `--mpi=pmi2`) is an error saying what to pass.
pub fn init() -> Result<Communicator> {
    Communicator::init()
}
