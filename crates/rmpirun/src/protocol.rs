//! The control protocol between `rmpirun` and a node agent.
//!
//! Both directions carry frames: a 4-byte little-endian length followed by that many bytes of a
//! bincode-2 encoded [`Command`] (launcher → agent, on the agent's stdin) or [`Event`]
//! (agent → launcher, on the agent's stdout). The job token travels inside [`JobSpec::env`], so it
//! never appears on a command line.

use serde::{Deserialize, Serialize};

use crate::binding::BindTo;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Version of this protocol; the agent reports it in [`Event::Hello`].
pub const PROTOCOL_VERSION: u32 = 4;

/// Largest frame accepted (an output line is split well below this).
pub const MAX_FRAME: usize = 16 << 20;

/// What one agent must start.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobSpec {
    /// Host name as the launcher knows it (for messages and `RMPI_HOST`).
    pub host: String,
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Working directory; `None` means the agent's own.
    pub cwd: Option<String>,
    /// Whether a missing `cwd` is an error (`--wdir`) or falls back to `$HOME`.
    pub cwd_required: bool,
    /// Variables set for every rank (on top of the agent's environment).
    pub env: Vec<(String, String)>,
    /// The ranks to start here, in local-rank order.
    pub ranks: Vec<u32>,
    /// Whether rank stdin is fed by [`Command::Stdin`] (only for the host of rank 0).
    pub forward_stdin_to: Option<u32>,
    /// How ranks are bound to this host's CPUs.
    pub bind: BindTo,
    /// Whether the agent reports each rank's binding on the rank's stderr.
    pub report_bindings: bool,
    /// Under the directory bootstrap, this host's index in the job's placement: the agent
    /// gathers its ranks (`None`: the ranks join the launcher's rendezvous).
    pub directory: Option<u16>,
}

/// Launcher → agent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Command {
    /// Start the job (sent once, first).
    Start(JobSpec),
    /// Bytes for the stdin of the rank named in [`JobSpec::forward_stdin_to`].
    Stdin(#[serde(with = "serde_bytes")] Vec<u8>),
    /// End of that stdin.
    StdinEof,
    /// End every rank now (SIGTERM, then SIGKILL), report, and exit.
    Kill,
    /// Keep-alive, sent every [`PING_INTERVAL`]: an agent that hears nothing for
    /// [`AGENT_WATCHDOG`] takes the launcher for lost and ends its ranks.
    Ping,
    /// A directory frame for the agent's gatherer (the placement, once every host reported).
    Directory(#[serde(with = "serde_bytes")] Vec<u8>),
}

/// How often the launcher pings each remote agent.
pub const PING_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Silence after which a remote agent ends its ranks, and after which the launcher takes a remote
/// agent for lost (the SSH link may be cut without the TCP connection closing, e.g. a partitioned
/// network).
pub const AGENT_WATCHDOG: std::time::Duration = std::time::Duration::from_secs(5);

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// How a rank ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExitStatus {
    /// Normal exit with this code.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
}

impl ExitStatus {
    /// Whether this counts as success.
    pub fn success(self) -> bool {
        self == ExitStatus::Code(0)
    }

    /// The shell-style status: the code, or 128 + signal.
    pub fn shell_code(self) -> i32 {
        match self {
            ExitStatus::Code(c) => c,
            ExitStatus::Signal(s) => 128 + s,
        }
    }
}

/// Agent → launcher.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Event {
    /// First frame: the agent runs. `ssh_client` is the launcher's address as seen by this node
    /// (first word of `SSH_CONNECTION`), when known.
    Hello { version: u32, pid: u32, ssh_client: Option<String> },
    /// A rank was started.
    Started { rank: u32, pid: u32 },
    /// A rank could not be started.
    SpawnFailed { rank: u32, error: String, not_found: bool },
    /// One line of output (with its newline), or a chunk of an over-long line.
    Output {
        rank: u32,
        stream: Stream,
        // As one byte string, not a sequence of numbers: encoding is a copy.
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// A rank ended (sent after its output), at `at_ms` (the agent's wall clock, milliseconds
    /// since the Unix epoch), for the reason its agent can tell.
    Exited { rank: u32, status: ExitStatus, cause: ExitCause, at_ms: u64 },
    /// The agent has ended every rank and is about to exit.
    Done,
    /// Keep-alive, sent every [`PING_INTERVAL`] by remote agents.
    Alive,
    /// This many bytes of [`Command::Stdin`] were written to the rank (or dropped because it
    /// closed its stdin): the launcher keeps at most [`STDIN_WINDOW`] bytes unacknowledged.
    StdinAck { bytes: u64 },
    /// A directory frame from the agent's gatherer: its host's report, or why it failed.
    Directory(#[serde(with = "serde_bytes")] Vec<u8>),
}

/// Why a rank ended, as far as its agent can tell: what lets the launcher name the first
/// failure of a job rather than the ranks that failed because of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExitCause {
    /// Nothing the agent knows of: the rank's own exit, crash or a signal from outside.
    Own,
    /// The rank said it was failing by itself, and how (`panicked`, `abort(7)`).
    Failed(String),
    /// The rank had told the agent it lost this peer (world rank) before it ended.
    LostPeer(u32),
    /// The agent had signalled it to end the job.
    EndedByAgent,
}

/// Most bytes of stdin in flight to an agent, so a rank that reads slowly slows the reading of
/// rmpirun's stdin instead of filling memory.
pub const STDIN_WINDOW: u64 = 1 << 20;

/// Framing or encoding failure.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// Reading or writing the stream failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A frame announced more than [`MAX_FRAME`] bytes.
    #[error("frame of {0} bytes exceeds the limit")]
    TooLarge(usize),
    /// The payload did not decode.
    #[error("undecodable frame: {0}")]
    Decode(#[from] bincode::error::DecodeError),
    /// The payload did not encode.
    #[error("unencodable frame: {0}")]
    Encode(#[from] bincode::error::EncodeError),
}

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Encodes one frame (length prefix included).
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, FrameError> {
    let mut buf = vec![0u8; 4];
    bincode::serde::encode_into_std_write(msg, &mut buf, config())?;
    let len = u32::try_from(buf.len() - 4).map_err(|_| FrameError::TooLarge(buf.len()))?;
    buf[..4].copy_from_slice(&len.to_le_bytes());
    Ok(buf)
}

/// Writes one frame and flushes.
pub async fn write_frame<W, T>(w: &mut W, msg: &T) -> Result<(), FrameError>
where
    W: AsyncWrite + Unpin,
    T: Serialize,
{
    let buf = encode(msg)?;
    w.write_all(&buf).await?;
    w.flush().await?;
    Ok(())
}

/// Reads one frame; `Ok(None)` on a clean end of stream before a frame starts.
pub async fn read_frame<R, T>(r: &mut R) -> Result<Option<T>, FrameError>
where
    R: tokio::io::AsyncRead + Unpin,
    T: serde::de::DeserializeOwned,
{
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        let n = r.read(&mut len[got..]).await?;
        if n == 0 {
            if got == 0 {
                return Ok(None);
            }
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
        got += n;
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).await?;
    let (msg, _) = bincode::serde::decode_from_slice(&buf, config())?;
    Ok(Some(msg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_reject_garbage() {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        let ev = Event::Output { rank: 3, stream: Stream::Stderr, data: b"hi\n".to_vec() };
        write_frame(&mut a, &ev).await.unwrap();
        let exited = Event::Exited {
            rank: 3,
            status: ExitStatus::Signal(9),
            cause: ExitCause::Own,
            at_ms: 7,
        };
        write_frame(&mut a, &exited).await.unwrap();
        drop(a);
        match read_frame::<_, Event>(&mut b).await.unwrap() {
            Some(Event::Output { rank: 3, stream: Stream::Stderr, data }) => {
                assert_eq!(data, b"hi\n")
            }
            other => panic!("unexpected {other:?}"),
        }
        match read_frame::<_, Event>(&mut b).await.unwrap() {
            Some(Event::Exited { rank: 3, status, cause: ExitCause::Own, at_ms: 7 }) => {
                assert_eq!(status.shell_code(), 137)
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(read_frame::<_, Event>(&mut b).await.unwrap().is_none());

        let (mut a, mut b) = tokio::io::duplex(64);
        a.write_all(&u32::MAX.to_le_bytes()).await.unwrap();
        assert!(matches!(read_frame::<_, Event>(&mut b).await, Err(FrameError::TooLarge(_))));
        let (mut a, mut b) = tokio::io::duplex(64);
        a.write_all(&[2, 0, 0, 0, 0xff, 0xff]).await.unwrap();
        assert!(matches!(read_frame::<_, Event>(&mut b).await, Err(FrameError::Decode(_))));
    }
}
