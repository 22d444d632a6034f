//! Joining a job through the launcher's PMI server, in pure Rust (no libpmi).
//!
//! * [`pmi2`]: PMI-2, spoken by Slurm's `srun --mpi=pmi2` and by MPICH's Hydra;
//! * [`pmi1`]: PMI-1 "simple", spoken by Hydra (`PMI_FD` or `PMI_PORT`) and by Slurm;
//! * [`mapping`]: `PMI_process_mapping`, which gives each rank's node;
//! * [`layout`]: that mapping checked against the launcher's variables, and the node names;
//! * `lazy`: other nodes' endpoints read at first dial, on a thread that owns the session;
//! * `exchange` (this module): the endpoint exchange over the key-value store.
//!
//! Every rank puts its [`Endpoint`], in its wire encoding as hex, under `rmpi-ep-<rank>`; rank 0
//! also puts a fresh job token under `rmpi-token`. One fence. Then each rank reads the token and
//! the endpoints of its own node's ranks only (shared memory needs them); another node's rank's
//! endpoint is read when this rank first dials it, through the same session, which stays open
//! until the engine ends. Without a usable placement, with `RMPI_CONNECT=eager` or
//! `RMPI_BOOTSTRAP=table`, every rank reads every key at start, as before, and finalizes at once.
//! The format and the costs are in `docs/pmi.md`.

pub mod conn;
pub mod layout;
pub(crate) mod lazy;
pub mod mapping;
pub mod msg;
pub mod pmi1;
pub mod pmi2;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::directory::wire::HostInfo;
use crate::directory::Remote;
use crate::error::{Error, Result};
use crate::token::JobToken;
use crate::wire::Endpoint;

/// The key of rank `r`'s endpoint.
pub fn endpoint_key(r: usize) -> String {
    format!("rmpi-ep-{r}")
}

/// The key under which the first rank of node `n` puts the node's name (hex), when the launcher
/// names no nodes.
pub fn node_key(n: usize) -> String {
    format!("rmpi-nd-{n}")
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
    /// What the launcher and the server said about where the ranks run.
    pub layout: layout::Layout,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Session({})", self.origin)
    }
}

impl Session {
    /// Wraps an initialised client.
    pub fn new(kvs: Box<dyn Kvs>, origin: String) -> Session {
        Session { inner: Arc::new(Mutex::new(Some(kvs))), origin, layout: Default::default() }
    }

    pub(crate) fn take(&self) -> Option<Box<dyn Kvs>> {
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

/// What the exchange gives the mesh: the job token, every rank's endpoint (other nodes' ranks
/// as placeholders holding their node's name when they are read at first dial), and then where
/// to read those.
pub(crate) type Exchanged = (JobToken, Vec<Endpoint>, Option<Remote>);

/// The exchange: put our endpoint (and, on rank 0, the token), fence, read the token and the
/// endpoints this rank needs now. `lazy`: other nodes' endpoints may wait for the first dial.
pub(crate) fn exchange(
    session: &Session,
    rank: usize,
    size: usize,
    me: &Endpoint,
    lazy: bool,
    deadline: Instant,
) -> Result<Exchanged> {
    let mut kvs = session.take().ok_or_else(|| Error::Bootstrap {
        rank,
        msg: format!("the PMI session ({}) was already used", session.origin),
    })?;
    let proto = kvs.protocol();
    let origin = session.origin.as_str();
    let fail = |what: &str, e: PmiFail| Error::Bootstrap {
        rank,
        msg: format!("{proto} via {origin} ({what}): {e}"),
    };
    let bad = |msg: String| Error::Bootstrap { rank, msg: format!("{proto} via {origin}: {msg}") };
    let place = if !lazy || session.layout.table || size < 2 {
        None
    } else {
        match session.layout.placement(rank, size) {
            Ok(p) => Some(p),
            Err(why) => {
                tracing::info!(rank, "PMI: reading every rank's endpoint at start: {why}");
                None
            }
        }
    };
    let value = encode_endpoint(me);
    if value.len() > MAX_VALUE {
        return Err(bad(format!(
            "endpoint record of {} hex bytes exceeds {MAX_VALUE}",
            value.len()
        )));
    }
    kvs.put(&endpoint_key(rank), &value, deadline).map_err(|e| fail("put", e))?;
    if rank == 0 {
        kvs.put(TOKEN_KEY, &JobToken::generate().to_hex(), deadline).map_err(|e| fail("put", e))?;
    }
    // Without names from the launcher, each node's first rank names its node.
    if let Some(p) = place.as_ref().filter(|p| p.labels.is_none()) {
        if p.first_on(p.mine) == Some(rank) {
            let name = to_hex(me.host.as_bytes());
            kvs.put(&node_key(p.mine as usize), &name, deadline).map_err(|e| fail("put", e))?;
        }
    }
    kvs.fence(deadline).map_err(|e| match e {
        PmiFail::Conn(_, conn::ConnError::Timeout) => bad(format!(
            "not every one of the {size} ranks reached the key-value fence before the boot \
             deadline (RMPI_BOOT_TIMEOUT); a rank died or never started, and the PMI server does \
             not say which"
        )),
        e => fail("fence", e),
    })?;
    let tok = kvs.get(TOKEN_KEY, deadline).map_err(|e| fail("get token", e))?;
    let token =
        tok.as_deref().map(JobToken::from_hex).transpose().ok().flatten().ok_or_else(|| {
            bad(format!("rank 0's {TOKEN_KEY} is missing or not a token: {tok:?}"))
        })?;
    let mut get_endpoint = |r: usize| -> Result<Option<Endpoint>> {
        let key = endpoint_key(r);
        match kvs.get(&key, deadline).map_err(|e| fail(&format!("get {key}"), e))? {
            Some(v) => decode_endpoint(&v)
                .map(Some)
                .map_err(|e| bad(format!("rank {r}'s endpoint {key}: {e}"))),
            None => Ok(None),
        }
    };
    let Some(place) = place else {
        // Every rank's endpoint now.
        let mut table = Vec::with_capacity(size);
        let mut missing = Vec::new();
        for r in 0..size {
            if r == rank {
                table.push(me.clone());
                continue;
            }
            match get_endpoint(r)? {
                Some(e) => table.push(e),
                None => {
                    missing.push(r);
                    table.push(me.clone());
                }
            }
        }
        if !missing.is_empty() {
            return Err(bad(format!(
                "ranks {} put no endpoint before the fence (not rmpi programs, or another job's \
                 store?)",
                crate::rendezvous::list(&missing)
            )));
        }
        kvs.finalize(deadline).map_err(|e| fail("finalize", e))?;
        return Ok((token, table, None));
    };
    // This node's ranks now; the others' names only.
    let mine = place.mine;
    let mut local = Vec::new();
    for r in (0..size).filter(|r| place.node_of[*r] == mine && *r != rank) {
        let e = get_endpoint(r)?.ok_or_else(|| {
            bad(format!(
                "rank {r}, on this node, put no endpoint {} before the fence",
                endpoint_key(r)
            ))
        })?;
        local.push((r, e));
    }
    let labels = match &place.labels {
        Some(l) => l.clone(),
        None => {
            let mut names = Vec::with_capacity(place.nodes());
            for n in 0..place.nodes() {
                if n == mine as usize {
                    names.push(me.host.clone());
                    continue;
                }
                let key = node_key(n);
                let v = kvs.get(&key, deadline).map_err(|e| fail(&format!("get {key}"), e))?;
                let name = v.as_deref().and_then(from_hex).and_then(|b| String::from_utf8(b).ok());
                let first = place.first_on(n as u16).unwrap_or(0);
                names.push(name.ok_or_else(|| {
                    bad(format!("rank {first}, the first of node {n}, put no name {key}: {v:?}"))
                })?);
            }
            names
        }
    };
    let nowhere = SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0);
    let mut table: Vec<Endpoint> = place
        .node_of
        .iter()
        .map(|n| Endpoint { addr: nowhere, host: labels[*n as usize].clone(), shm: None })
        .collect();
    table[rank] = me.clone();
    for (r, e) in local {
        table[r] = e;
    }
    if place.node_of.iter().all(|n| *n == mine) {
        kvs.finalize(deadline).map_err(|e| fail("finalize", e))?;
        return Ok((token, table, None));
    }
    let hosts = labels.into_iter().map(|label| HostInfo { label, directory: nowhere }).collect();
    let mut open = Session::new(kvs, session.origin.clone());
    open.layout = session.layout.clone();
    let remote = Remote { host_of: place.node_of.into(), hosts, mine, pmi: Some(open) };
    Ok((token, table, Some(remote)))
}
