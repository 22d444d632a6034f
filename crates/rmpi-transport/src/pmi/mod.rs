//! Joining a job through the launcher's PMI server, in pure Rust (no libpmi).
//!
//! * [`pmi2`]: PMI-2, spoken by Slurm's `srun --mpi=pmi2` and by MPICH's Hydra;
//! * [`pmi1`]: PMI-1 "simple", spoken by Hydra (`PMI_FD` or `PMI_PORT`) and by Slurm;
//! * [`mapping`]: `PMI_process_mapping`, which gives each rank's node;
//! * `exchange` (this module): the endpoint exchange over the key-value store.
//!
//! Every rank puts its [`Endpoint`], in its wire encoding as hex, under
//! `rmpi-ep-<rank>`; rank 0 also puts a fresh job token under `rmpi-token`. One fence, then every
//! rank reads all keys and finalizes its PMI session at once (Hydra kills a job whose rank exits
//! without finalizing; the mesh no longer needs the server). The format is in `docs/pmi.md`.

pub mod conn;
pub mod mapping;
pub mod msg;
pub mod pmi1;
pub mod pmi2;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::error::{Error, Result};
use crate::token::JobToken;
use crate::wire::Endpoint;

/// The key of rank `r`'s endpoint.
pub fn endpoint_key(r: usize) -> String {
    format!("rmpi-ep-{r}")
}

/// The key of the job token (put by rank 0).
pub const TOKEN_KEY: &str = "rmpi-token";

/// Largest value put: Hydra truncates values beyond 1023 bytes, and Slurm's PMI-1 loses a
/// request of 1024 bytes or more.
pub const MAX_VALUE: usize = 900;

/// Why a PMI exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum PmiFail {
    /// The connection failed or timed out while waiting for `.0`.
    #[error("waiting for the reply to {0}: {1}")]
    Conn(String, conn::ConnError),
    /// The server sent bytes that are no PMI message.
    #[error("the PMI server sent a malformed message: {0}")]
    Codec(msg::CodecError),
    /// The server sent a well-formed but unexpected message.
    #[error("unexpected reply from the PMI server: {0}")]
    Reply(String),
    /// The server answered with an error code.
    #[error("the PMI server refused {cmd} (rc={rc}{})", msg.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Refused {
        /// The request.
        cmd: String,
        /// Its return code.
        rc: i64,
        /// The server's message, if any.
        msg: Option<String>,
    },
}

/// A PMI key-value store session (either protocol).
pub trait Kvs: Send + std::fmt::Debug {
    /// Puts `key=value`; visible to the others after the next fence.
    fn put(&mut self, key: &str, value: &str, deadline: Instant) -> Result<(), PmiFail>;
    /// Waits until every rank of the job has called it.
    fn fence(&mut self, deadline: Instant) -> Result<(), PmiFail>;
    /// Reads a key; `None` when it does not exist.
    fn get(&mut self, key: &str, deadline: Instant) -> Result<Option<String>, PmiFail>;
    /// Ends the session.
    fn finalize(&mut self, deadline: Instant) -> Result<(), PmiFail>;
    /// `PMI-1` or `PMI-2`, for messages.
    fn protocol(&self) -> &'static str;
}

/// A PMI session shared by the clones of a [`BootConfig`](crate::BootConfig); used once.
#[derive(Clone)]
pub struct Session {
    inner: Arc<Mutex<Option<Box<dyn Kvs>>>>,
    /// Where the server is, for messages (`PMI_FD=5`, `PMI_PORT=vm:4000`).
    pub origin: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Session({})", self.origin)
    }
}

impl Session {
    /// Wraps an initialised client.
    pub fn new(kvs: Box<dyn Kvs>, origin: String) -> Session {
        Session { inner: Arc::new(Mutex::new(Some(kvs))), origin }
    }

    fn take(&self) -> Option<Box<dyn Kvs>> {
        match self.inner.lock() {
            Ok(mut g) => g.take(),
            Err(p) => p.into_inner().take(),
        }
    }
}

/// Hex of `bytes` (lowercase): safe in both protocols' values.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes of a hex string, or `None` if it is not hex.
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 || !s.is_ascii() {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok()).collect()
}

/// The endpoint as a KVS value: the hex of its wire encoding.
pub fn encode_endpoint(ep: &Endpoint) -> String {
    let mut b = Vec::new();
    ep.encode_into(&mut b);
    to_hex(&b)
}

/// Decodes a KVS value made by [`encode_endpoint`].
pub fn decode_endpoint(s: &str) -> std::result::Result<Endpoint, String> {
    let b = from_hex(s).ok_or_else(|| format!("not hex: {:?}", msg::preview(s)))?;
    let (ep, used) = Endpoint::decode(&b).map_err(|e| e.to_string())?;
    if used != b.len() {
        return Err(format!("{} bytes after the endpoint", b.len() - used));
    }
    Ok(ep)
}

/// The whole exchange: put our endpoint (and, on rank 0, the token), fence, read everyone's,
/// finalize. Returns the job token and the endpoint table.
pub(crate) fn exchange(
    session: &Session,
    rank: usize,
    size: usize,
    me: &Endpoint,
    deadline: Instant,
) -> Result<(JobToken, Vec<Endpoint>)> {
    let mut kvs = session.take().ok_or_else(|| Error::Bootstrap {
        rank,
        msg: format!("the PMI session ({}) was already used", session.origin),
    })?;
    let proto = kvs.protocol();
    let fail = |what: &str, e: PmiFail| Error::Bootstrap {
        rank,
        msg: format!("{proto} via {} ({what}): {e}", session.origin),
    };
    let value = encode_endpoint(me);
    if value.len() > MAX_VALUE {
        return Err(Error::Bootstrap {
            rank,
            msg: format!("endpoint record of {} hex bytes exceeds {MAX_VALUE}", value.len()),
        });
    }
    kvs.put(&endpoint_key(rank), &value, deadline).map_err(|e| fail("put", e))?;
    if rank == 0 {
        kvs.put(TOKEN_KEY, &JobToken::generate().to_hex(), deadline).map_err(|e| fail("put", e))?;
    }
    kvs.fence(deadline).map_err(|e| match e {
        PmiFail::Conn(_, conn::ConnError::Timeout) => Error::Bootstrap {
            rank,
            msg: format!(
                "{proto} via {}: not every one of the {size} ranks reached the key-value fence \
                 before the boot deadline (RMPI_BOOT_TIMEOUT); a rank died or never started, and \
                 the PMI server does not say which",
                session.origin
            ),
        },
        e => fail("fence", e),
    })?;
    let tok = kvs.get(TOKEN_KEY, deadline).map_err(|e| fail("get token", e))?;
    let token =
        tok.as_deref().map(JobToken::from_hex).transpose().ok().flatten().ok_or_else(|| {
            Error::Bootstrap {
                rank,
                msg: format!("{proto}: rank 0's {TOKEN_KEY} is missing or not a token: {tok:?}"),
            }
        })?;
    let mut table = Vec::with_capacity(size);
    let mut missing = Vec::new();
    for r in 0..size {
        if r == rank {
            table.push(me.clone());
            continue;
        }
        match kvs.get(&endpoint_key(r), deadline).map_err(|e| fail("get", e))? {
            Some(v) => table.push(decode_endpoint(&v).map_err(|e| Error::Bootstrap {
                rank,
                msg: format!("{proto}: rank {r}'s endpoint: {e}"),
            })?),
            None => {
                missing.push(r);
                table.push(me.clone());
            }
        }
    }
    if !missing.is_empty() {
        return Err(Error::Bootstrap {
            rank,
            msg: format!(
                "{proto}: ranks {} put no endpoint before the fence (not rmpi programs, or \
                 another job's store?)",
                crate::rendezvous::list(&missing)
            ),
        });
    }
    kvs.finalize(deadline).map_err(|e| fail("finalize", e))?;
    Ok((token, table))
}
