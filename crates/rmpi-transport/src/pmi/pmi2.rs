//! PMI-2 (Slurm `srun --mpi=pmi2`, MPICH Hydra): codec and client.
//!
//! After the PMI-1 style init line, every message is a 6-byte decimal length (left-justified,
//! space-padded) followed by that many bytes of `cmd=NAME;key=value;...;`. The wire format and
//! the servers' quirks are in `docs/pmi.md`.

use std::time::Instant;

use super::conn::Conn;
use super::msg::{check_token, CodecError, Msg};
use super::{pmi1, Kvs, PmiFail};

/// Largest message this client accepts (MPICH caps commands at 64 KiB).
pub const MAX_MESSAGE: usize = 64 * 1024;

/// Encodes one framed request: `"%-6d"` length, then `cmd=NAME;k=v;...;`.
///
/// ```
/// use rmpi_transport::pmi::pmi2;
/// let b = pmi2::encode("kvs-get", &[("key", "rmpi-ep-0")]).unwrap();
/// assert_eq!(b, b"26    cmd=kvs-get;key=rmpi-ep-0;");
/// ```
pub fn encode(cmd: &str, fields: &[(&str, &str)]) -> Result<Vec<u8>, CodecError> {
    let mut body = format!("cmd={cmd};");
    for (k, v) in fields {
        check_token("key", k)?;
        check_token("value", v)?;
        body.push_str(k);
        body.push('=');
        body.push_str(v);
        body.push(';');
    }
    if body.len() > 999_999 {
        return Err(CodecError::TooLong { len: body.len(), max: 999_999 });
    }
    let mut out = format!("{:<6}", body.len()).into_bytes();
    out.extend_from_slice(body.as_bytes());
    Ok(out)
}

/// Parses a 6-byte length prefix (space padding on either side is accepted).
pub fn decode_len(prefix: &[u8]) -> Result<usize, CodecError> {
    let text = std::str::from_utf8(prefix).map_err(|_| CodecError::NotUtf8)?;
    let len: usize =
        text.trim().parse().map_err(|_| CodecError::BadLength(super::msg::preview(text)))?;
    if len > MAX_MESSAGE {
        return Err(CodecError::TooLong { len, max: MAX_MESSAGE });
    }
    Ok(len)
}

/// Parses a message body `cmd=NAME;k=v;...;` (the length prefix already removed).
///
/// ```
/// use rmpi_transport::pmi::pmi2;
/// let m = pmi2::decode(b"cmd=kvs-get-response;rc=0;found=TRUE;value=ab=c;").unwrap();
/// assert_eq!((m.cmd.as_str(), m.rc(), m.get("value")), ("kvs-get-response", 0, Some("ab=c")));
/// ```
pub fn decode(body: &[u8]) -> Result<Msg, CodecError> {
    let text = std::str::from_utf8(body).map_err(|_| CodecError::NotUtf8)?;
    Msg::from_fields(text, text.split(';'))
}

/// A PMI-2 session after `fullinit`.
#[derive(Debug)]
pub struct Client {
    conn: Conn,
    jobid: Option<String>,
    /// This rank, as the server numbers it.
    pub rank: usize,
    /// The job size.
    pub size: usize,
}

impl Client {
    /// Runs the init handshake and `fullinit` on `conn`. `pmi_id` is `PMI_RANK` or `PMI_ID`;
    /// `jobid` is `PMI_JOBID` (Slurm; Hydra has none).
    pub fn init(
        mut conn: Conn,
        pmi_id: Option<&str>,
        jobid: Option<&str>,
        deadline: Instant,
    ) -> Result<Client, PmiFail> {
        pmi1::handshake(&mut conn, 2, 0, deadline)?;
        let mut fields = Vec::new();
        if let Some(j) = jobid {
            fields.push(("pmijobid", j));
        }
        // Slurm requires all three fields (it answers rc=3 without one) but checks no value.
        fields.push(("pmirank", pmi_id.unwrap_or("0")));
        fields.push(("threaded", "FALSE"));
        let r = call(&mut conn, "fullinit", &fields, deadline)?;
        let num = |k: &str| -> Result<usize, PmiFail> {
            let v =
                r.get(k).ok_or_else(|| PmiFail::Reply(format!("fullinit-response has no {k}")))?;
            v.parse().map_err(|_| PmiFail::Reply(format!("fullinit-response {k}={v:?}")))
        };
        let (rank, size) = (num("rank")?, num("size")?);
        if size == 0 || rank >= size {
            return Err(PmiFail::Reply(format!("fullinit-response rank {rank} of size {size}")));
        }
        let mut c = Client { conn, jobid: None, rank, size };
        let id = call(&mut c.conn, "job-getid", &[], deadline)?;
        c.jobid = id.get("jobid").filter(|j| !j.is_empty()).map(str::to_owned);
        Ok(c)
    }

    /// `info-getjobattr`: a job attribute such as `PMI_process_mapping`, or `None`.
    ///
    /// Only ask for keys the server is known to answer: Slurm answers unknown commands with
    /// silence, and any key sorting after `PMI_netinfo_of_task` with the netinfo string.
    pub fn job_attr(&mut self, key: &str, deadline: Instant) -> Result<Option<String>, PmiFail> {
        let r = call(&mut self.conn, "info-getjobattr", &[("key", key)], deadline)?;
        Ok(found_value(&r))
    }
}

fn found_value(r: &Msg) -> Option<String> {
    (r.get("found") == Some("TRUE")).then(|| r.get("value").unwrap_or("").to_owned())
}

/// Sends one request and reads its `<cmd>-response`, failing on `rc != 0`.
fn call(
    conn: &mut Conn,
    cmd: &str,
    fields: &[(&str, &str)],
    deadline: Instant,
) -> Result<Msg, PmiFail> {
    let req = encode(cmd, fields).map_err(PmiFail::Codec)?;
    conn.send(&req).map_err(|e| PmiFail::Conn(cmd.to_owned(), e))?;
    let prefix = conn.read_exact(6, deadline).map_err(|e| PmiFail::Conn(cmd.to_owned(), e))?;
    let len = decode_len(&prefix).map_err(PmiFail::Codec)?;
    let body = conn.read_exact(len, deadline).map_err(|e| PmiFail::Conn(cmd.to_owned(), e))?;
    let msg = decode(&body).map_err(PmiFail::Codec)?;
    let want = format!("{cmd}-response");
    if msg.cmd != want {
        return Err(PmiFail::Reply(format!("expected {want}, got {}", msg.cmd)));
    }
    if msg.rc() != 0 {
        return Err(PmiFail::Refused {
            cmd: cmd.to_owned(),
            rc: msg.rc(),
            msg: msg.get("errmsg").map(str::to_owned),
        });
    }
    Ok(msg)
}

impl Kvs for Client {
    fn put(&mut self, key: &str, value: &str, deadline: Instant) -> Result<(), PmiFail> {
        call(&mut self.conn, "kvs-put", &[("key", key), ("value", value)], deadline).map(drop)
    }

    fn fence(&mut self, deadline: Instant) -> Result<(), PmiFail> {
        call(&mut self.conn, "kvs-fence", &[], deadline).map(drop)
    }

    fn get(&mut self, key: &str, deadline: Instant) -> Result<Option<String>, PmiFail> {
        let mut fields = Vec::new();
        if let Some(j) = &self.jobid {
            fields.push(("jobid", j.as_str()));
        }
        fields.push(("key", key));
        let r = call(&mut self.conn, "kvs-get", &fields, deadline)?;
        Ok(found_value(&r))
    }

    fn finalize(&mut self, deadline: Instant) -> Result<(), PmiFail> {
        call(&mut self.conn, "finalize", &[], deadline).map(drop)
    }

    fn protocol(&self) -> &'static str {
        "PMI-2"
    }
}
