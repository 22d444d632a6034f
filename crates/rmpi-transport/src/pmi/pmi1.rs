//! PMI-1 "simple" (MPICH Hydra on `PMI_FD` or `PMI_PORT`, Slurm's pmi2 plugin): codec and client.
//!
//! One line per message, `cmd=NAME key=value ...\n`, strictly one request and one reply at a
//! time. The init line of PMI-2 uses this form too. The wire format and the servers' quirks are
//! in `docs/pmi.md`.

use std::time::Instant;

use super::conn::{Conn, LineError};
use super::msg::{check_token, CodecError, Msg};
use super::{Kvs, PmiFail};

/// Slurm reads each PMI-1 request with one `read` of at most 1024 bytes: a longer request is
/// split, acknowledged, and lost. Requests must stay below this.
pub const MAX_REQUEST: usize = 1024;
/// Longest reply line this client accepts.
pub const MAX_REPLY: usize = 4096;

/// Encodes one request line.
///
/// ```
/// use rmpi_transport::pmi::pmi1;
/// let line = pmi1::encode("get", &[("kvsname", "4.0"), ("key", "rmpi-ep-1")]).unwrap();
/// assert_eq!(line, "cmd=get kvsname=4.0 key=rmpi-ep-1\n");
/// ```
pub fn encode(cmd: &str, fields: &[(&str, &str)]) -> Result<String, CodecError> {
    let mut line = format!("cmd={cmd}");
    for (k, v) in fields {
        check_token("key", k)?;
        check_token("value", v)?;
        line.push(' ');
        line.push_str(k);
        line.push('=');
        line.push_str(v);
    }
    line.push('\n');
    if line.len() >= MAX_REQUEST {
        return Err(CodecError::TooLong { len: line.len(), max: MAX_REQUEST - 1 });
    }
    Ok(line)
}

/// Parses one reply line (without its newline).
///
/// ```
/// use rmpi_transport::pmi::pmi1;
/// let m = pmi1::decode(b"cmd=get_result rc=0 msg=success value=10.0.0.1:5").unwrap();
/// assert_eq!((m.cmd.as_str(), m.rc(), m.get("value")), ("get_result", 0, Some("10.0.0.1:5")));
/// ```
pub fn decode(line: &[u8]) -> Result<Msg, CodecError> {
    let text = std::str::from_utf8(line).map_err(|_| CodecError::NotUtf8)?;
    let text = text.trim_end_matches('\r');
    Msg::from_fields(text, text.split(' '))
}

/// Sends `line` and reads one reply line, checking its command is `want`.
fn exchange(conn: &mut Conn, line: &str, want: &str, deadline: Instant) -> Result<Msg, PmiFail> {
    conn.send(line.as_bytes()).map_err(|e| PmiFail::Conn(want.to_owned(), e))?;
    read_reply(conn, want, deadline)
}

fn read_reply(conn: &mut Conn, want: &str, deadline: Instant) -> Result<Msg, PmiFail> {
    let raw = conn.read_line(MAX_REPLY, deadline).map_err(|e| match e {
        LineError::Conn(c) => PmiFail::Conn(want.to_owned(), c),
        LineError::TooLong(n) => PmiFail::Codec(CodecError::TooLong { len: n, max: MAX_REPLY }),
    })?;
    let msg = decode(&raw).map_err(PmiFail::Codec)?;
    if msg.cmd != want {
        return Err(PmiFail::Reply(format!("expected {want}, got {}", msg.cmd)));
    }
    Ok(msg)
}

/// Sends the init line **alone** and waits for `response_to_init` (Slurm's stepd reads the first
/// request with one 64-byte `read` and dies if more arrives with it).
pub(crate) fn handshake(
    conn: &mut Conn,
    version: u32,
    subversion: u32,
    deadline: Instant,
) -> Result<(), PmiFail> {
    let line = format!("cmd=init pmi_version={version} pmi_subversion={subversion}\n");
    let r = exchange(conn, &line, "response_to_init", deadline)?;
    if r.rc() != 0 {
        let theirs = r.get("pmi_version").unwrap_or("?");
        return Err(PmiFail::Reply(format!(
            "the server refused PMI-{version} (rc={}, it speaks PMI-{theirs}; \
             every rank on a node must use the same PMI version)",
            r.rc()
        )));
    }
    Ok(())
}

/// A PMI-1 session after init.
#[derive(Debug)]
pub struct Client {
    conn: Conn,
    kvsname: String,
    /// This rank.
    pub rank: usize,
    /// The job size.
    pub size: usize,
}

impl Client {
    /// Initialises a session. With `PMI_PORT`, `pmi_id` is `PMI_ID` and the server tells rank
    /// and size (`initack`); with `PMI_FD`, `rank_size` comes from `PMI_RANK`/`PMI_SIZE`.
    pub fn init(
        mut conn: Conn,
        pmi_id: Option<&str>,
        rank_size: Option<(usize, usize)>,
        deadline: Instant,
    ) -> Result<Client, PmiFail> {
        let (rank, size) = match (pmi_id, rank_size) {
            (_, Some(rs)) => rs,
            (Some(id), None) => initack(&mut conn, id, deadline)?,
            (None, None) => {
                return Err(PmiFail::Reply("neither PMI_RANK/PMI_SIZE nor PMI_ID is set".into()))
            }
        };
        if size == 0 || rank >= size {
            return Err(PmiFail::Reply(format!("rank {rank} of size {size}")));
        }
        handshake(&mut conn, 1, 1, deadline)?;
        let r = exchange(&mut conn, "cmd=get_my_kvsname\n", "my_kvsname", deadline)?;
        ok(&r, "get_my_kvsname")?;
        let kvsname = r
            .get("kvsname")
            .filter(|k| !k.is_empty())
            .ok_or_else(|| PmiFail::Reply("my_kvsname without kvsname".into()))?
            .to_owned();
        Ok(Client { conn, kvsname, rank, size })
    }
}

/// MPICH's `PMI_PORT` prefix: `initack pmiid=ID`, then the server's `initack` and `set` lines.
fn initack(conn: &mut Conn, id: &str, deadline: Instant) -> Result<(usize, usize), PmiFail> {
    let line = encode("initack", &[("pmiid", id)]).map_err(PmiFail::Codec)?;
    exchange(conn, &line, "initack", deadline)?;
    let (mut rank, mut size) = (None, None);
    for _ in 0..3 {
        let m = read_reply(conn, "set", deadline)?;
        let num = |k: &str| m.get(k).map(|v| v.parse::<usize>());
        if let Some(v) = num("size") {
            size = Some(v.map_err(|_| PmiFail::Reply("set size= is not a number".into()))?);
        }
        if let Some(v) = num("rank") {
            rank = Some(v.map_err(|_| PmiFail::Reply("set rank= is not a number".into()))?);
        }
    }
    match (rank, size) {
        (Some(r), Some(s)) => Ok((r, s)),
        _ => Err(PmiFail::Reply("initack did not set rank and size".into())),
    }
}

fn ok(r: &Msg, cmd: &str) -> Result<(), PmiFail> {
    if r.rc() != 0 {
        return Err(PmiFail::Refused {
            cmd: cmd.to_owned(),
            rc: r.rc(),
            msg: r.get("msg").map(str::to_owned),
        });
    }
    Ok(())
}

impl Kvs for Client {
    fn put(&mut self, key: &str, value: &str, deadline: Instant) -> Result<(), PmiFail> {
        let line = encode("put", &[("kvsname", &self.kvsname), ("key", key), ("value", value)])
            .map_err(PmiFail::Codec)?;
        let r = exchange(&mut self.conn, &line, "put_result", deadline)?;
        ok(&r, "put")
    }

    fn fence(&mut self, deadline: Instant) -> Result<(), PmiFail> {
        let r = exchange(&mut self.conn, "cmd=barrier_in\n", "barrier_out", deadline)?;
        ok(&r, "barrier_in")
    }

    fn get(&mut self, key: &str, deadline: Instant) -> Result<Option<String>, PmiFail> {
        let line =
            encode("get", &[("kvsname", &self.kvsname), ("key", key)]).map_err(PmiFail::Codec)?;
        let r = exchange(&mut self.conn, &line, "get_result", deadline)?;
        // A missing key: Slurm rc=1, Hydra rc=-1 value=unknown.
        Ok((r.rc() == 0).then(|| r.get("value").unwrap_or("").to_owned()))
    }

    fn finalize(&mut self, deadline: Instant) -> Result<(), PmiFail> {
        exchange(&mut self.conn, "cmd=finalize\n", "finalize_ack", deadline).map(drop)
    }

    fn protocol(&self) -> &'static str {
        "PMI-1"
    }
}
