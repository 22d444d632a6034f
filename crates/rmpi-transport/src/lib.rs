//! The TCP transport of rmpi: bootstrap, handshake and tagged point-to-point messaging.
//!
//! Most users want the `rmpi` facade crate, which re-exports this crate's public API next to the
//! collectives. This crate is organised as:
//!
//! * [`wire`]: every byte on the wire (handshake, rendezvous records, frame headers), as pure
//!   encode/decode functions; specified in `docs/wire-protocol.md`.
//! * [`env`](mod@env): the launcher/rank contract (environment variables) and [`BootConfig`].
//! * [`launch`]: which launcher started this rank, one reader per kind (rmpirun, PMI, Open MPI).
//! * [`pmi`]: PMI-1 and PMI-2 clients (Slurm's `srun`, MPICH's Hydra) and the endpoint exchange
//!   over their key-value store.
//! * [`token`]: the job token.
//! * [`rendezvous`]: the server a launcher runs so ranks can find each other.
//! * [`addr`]: choosing the address a rank advertises.
//! * `mesh`: building the full mesh of connections (`accept`: the bootstrap accept thread).
//! * `engine`: the progress engine (matching, framing, polling) shared by all communicators, over
//!   TCP between hosts and shared memory between the ranks of one host (`docs/shared-memory.md`;
//!   `RMPI_SHM=0` turns it off).
//! * [`Communicator`]: groups of ranks and their point-to-point operations; [`Request`] and
//!   [`Scope`] for nonblocking ones.
//! * [`local`]: run `n` ranks as threads of this process, for tests.
//!
//! Data moves in two ways: slices of plain numbers ([`bytemuck::Pod`]) are sent as their bytes,
//! with no per-element encoding and no copy on the send side; any `serde` type goes through
//! bincode (`send_obj`/`recv_obj`). All ranks of a job are assumed to share byte order.

#![warn(missing_docs)]

mod accept;
pub mod addr;
pub mod agent_note;
mod buf;
mod clock;
mod comm;
mod deadline;
pub mod directory;
mod engine;
pub mod env;
mod error;
pub mod launch;
pub mod limits;
pub mod liveness;
pub mod local;
pub mod log;
mod mesh;
pub mod pmi;
pub mod rendezvous;
mod request;
pub mod seconds;
mod select;
pub mod token;
#[doc(hidden)]
pub mod typed;
pub mod wire;

pub use bytemuck::Pod;
pub use clock::{wtick, wtime};
#[doc(hidden)]
pub use comm::Channel;
pub use comm::{Communicator, Status, Tag};
pub use env::BootConfig;
pub use error::{Error, Result};
pub use request::{Request, Scope};
pub use select::{Any, Source, TagMatch};
