//! rmpi: MPI-style message passing in pure Rust, over TCP.
//!
//! A job is a set of processes (ranks) started by a launcher (`rmpirun`, or anything that follows
//! `docs/launch-contract.md`). Each calls [`init`] and gets the world [`Communicator`]: its rank,
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

pub use rmpi_collectives as collectives;
pub use rmpi_transport::{
    addr, env, local, rendezvous, token, wire, BootConfig, Channel, Communicator, Error, Pod,
    Request, Result, Scope, Status, Tag,
};

/// Everything a typical program needs: the [`Collectives`](rmpi_collectives::Collectives)
/// trait (so `world.allreduce(..)` works), the operators, [`Settings`](rmpi_collectives::Settings)
/// for choosing algorithms (`world.with_settings(..)`), and the core types. The algorithm enums
/// and thresholds are in [`collectives`].
pub mod prelude {
    pub use rmpi_collectives::{
        BAnd, BOr, BXor, Collectives, LAnd, LOr, LXor, Loc, Max, MaxLoc, Min, MinLoc, Op, Prod,
        Settings, Sum, UserOp,
    };
    pub use rmpi_transport::{Communicator, Error, Pod, Request, Status, Tag};
}

/// Joins the job this process was started in (see `docs/launch-contract.md`), or returns a world
/// of size 1 when it was started without a launcher.
pub fn init() -> Result<Communicator> {
    Communicator::init()
}
