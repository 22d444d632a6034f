//! rmpi: MPI-style message passing in pure Rust, over TCP.
//!
//! ```
//! // Run bare, a program is a world of one rank (like an MPI singleton).
//! let world = rmpi::init()?;
//! assert_eq!((world.rank(), world.size()), (0, 1));
//! # Ok::<(), rmpi::Error>(())
//! ```
//!
//! Started by `rmpirun -n 4 ./app`, the same call joins a four-rank job.

pub use rmpi_transport::{
    local, BootConfig, Channel, Communicator, Error, Pod, Request, Result, Scope, Status, Tag,
};

/// Joins the job this process was started in (see `docs/launch-contract.md`), or returns a world
/// of size 1 when it was started without a launcher.
pub fn init() -> Result<Communicator> {
    Communicator::init()
}
