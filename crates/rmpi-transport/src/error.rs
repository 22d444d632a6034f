//! The error type of the transport.

use std::io;
use std::time::Duration;

/// Everything that can go wrong in the transport.
///
/// Each variant names what it can: the peer's rank and host, the environment variable, the
/// operation that timed out.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A launcher-provided environment variable is missing or malformed.
    #[error("environment variable {var}: {msg}")]
    Env {
        /// The variable's name.
        var: &'static str,
        /// What is wrong with it.
        msg: String,
    },
    /// The job could not be assembled (rendezvous or mesh set-up failed).
    #[error("bootstrap of rank {rank}: {msg}")]
    Bootstrap {
        /// The rank that failed to join.
        rank: usize,
        /// Why.
        msg: String,
    },
    /// A peer is gone: its connection closed without a goodbye or failed, or it aborted (then
    /// the message says so: "rank 2 on h aborted (code 7)").
    #[error("rank {rank} on {host} {}", peer_lost_text(cause))]
    PeerLost {
        /// World rank of the lost peer.
        rank: usize,
        /// Its host name, as it reported it.
        host: String,
        /// The cause (EOF, connection reset, protocol error, ...).
        cause: String,
    },
    /// A message is larger than the buffer it was received into. As in MPI, the failed receive
    /// has consumed the message.
    #[error("message of {len} bytes from rank {source_rank} (tag {tag}) does not fit a {capacity}-byte receive buffer")]
    Truncated {
        /// Rank the message came from.
        source_rank: usize,
        /// Its tag.
        tag: u64,
        /// Its length in bytes.
        len: usize,
        /// The receive buffer's size in bytes.
        capacity: usize,
    },
    /// A message's length is not a whole number of elements of the requested type. The failed
    /// receive has consumed the message.
    #[error("message of {len} bytes from rank {source_rank} is not a whole number of {elem_size}-byte elements")]
    ElementSize {
        /// Rank the message came from.
        source_rank: usize,
        /// Its length in bytes.
        len: usize,
        /// Element size of the requested type.
        elem_size: usize,
    },
    /// A serde value could not be encoded.
    #[error("encoding a message: {0}")]
    Encode(String),
    /// A received object message could not be decoded as the requested type: it was sent as
    /// another type (the message names both), or its bytes are malformed. The failed receive has
    /// consumed the message.
    #[error("decoding a message from rank {source_rank}: {msg}")]
    Decode {
        /// Rank the message came from.
        source_rank: usize,
        /// The decoder's complaint.
        msg: String,
    },
    /// A rank argument is out of range for the communicator.
    #[error("rank {rank} is out of range for a communicator of size {size}")]
    InvalidRank {
        /// The rank passed.
        rank: usize,
        /// The communicator's size.
        size: usize,
    },
    /// An operation did not complete before its deadline.
    #[error("timed out after {after:?} {what}")]
    Timeout {
        /// The time waited.
        after: Duration,
        /// What was being waited for.
        what: String,
    },
    /// An argument is unusable (a buffer of the wrong length, a missing root buffer, ...).
    #[error("invalid argument on rank {rank}: {msg}")]
    InvalidArgument {
        /// The rank that was called with it (communicator rank).
        rank: usize,
        /// What is wrong.
        msg: String,
    },
    /// A collective was called inconsistently across ranks.
    #[error("collective mismatch on rank {rank}: {msg}")]
    Mismatch {
        /// The rank that noticed (communicator rank).
        rank: usize,
        /// What did not match.
        msg: String,
    },
    /// The operation came after this rank finalized: every operation, point-to-point or
    /// collective, fails so after [`Communicator::finalize`](crate::Communicator::finalize).
    #[error("rank {rank} has already finalized")]
    Finalized {
        /// This rank.
        rank: usize,
    },
    /// [`Communicator::init`](crate::Communicator::init) (`rmpi::init`) was called a second time
    /// in this process. A process joins its job once, as with `MPI_Init`: clone the communicator
    /// the first call returned instead.
    #[error("rmpi::init was already called in this process (rank {rank}): a process joins its job once; clone the world communicator instead")]
    AlreadyInitialized {
        /// This process's world rank, from the first call.
        rank: usize,
    },
    /// A system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        source: io::Error,
    },
}

/// What [`Error::PeerLost`] says of its cause: an abort as what the peer did, anything else as
/// why it is unreachable.
fn peer_lost_text(cause: &str) -> std::borrow::Cow<'_, str> {
    if cause.starts_with(crate::engine::ABORTED) {
        cause.into()
    } else {
        format!("is unreachable: {cause}").into()
    }
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io { context: context.into(), source }
    }
}

/// The transport's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
