//! The error type of the benchmark programs.

use std::io;

/// What can stop a benchmark.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The rmpi library failed (its message names the rank, peer and operation).
    #[error(transparent)]
    Rmpi(#[from] rmpi::Error),
    /// A system call of the benchmark itself failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: io::Error,
    },
    /// The peer did something the benchmark protocol does not allow.
    #[error("benchmark protocol: {0}")]
    Protocol(String),
    /// The job is not shaped as the test needs (e.g. latency with 3 ranks).
    #[error("{0}")]
    Usage(String),
}

impl BenchError {
    /// An I/O error with what was being done.
    pub fn io(what: impl Into<String>, source: io::Error) -> BenchError {
        BenchError::Io { what: what.into(), source }
    }
}

/// Result of benchmark code.
pub type Result<T, E = BenchError> = std::result::Result<T, E>;
