//! Opening the SSH session that runs `rmpirun --relay-agent` on a host: the same client options,
//! bootstrap script, binary cache and handshake limit as a flat link (see [`crate::link`]).

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};

use crate::hostfile::HostEntry;
use crate::link::{agent_binary, handshakes, SharedBinary};
use crate::ssh::{SshSettings, HAVE_BINARY, NEED_BINARY};

/// A session whose remote shell has started the relay (the binary sent if it was not cached).
pub struct Session {
    /// The ssh client (killed when dropped).
    pub child: Child,
    /// The relay's stdout.
    pub from: BufReader<ChildStdout>,
    /// The relay's stdin.
    pub to: ChildStdin,
    /// Forwards ssh's stderr lines.
    pub stderr: Option<tokio::task::JoinHandle<()>>,
}

/// Starts ssh to `host` and waits for its remote shell to start the relay. `on_stderr` gets
/// ssh's stderr lines (and lines of login scripts before the marker). The error is the reason
/// the session did not come up, with ssh's exit status when it ended.
pub async fn open(
    host: &HostEntry,
    ssh: &SshSettings,
    bin: &SharedBinary,
    on_stderr: impl Fn(String) + Send + Clone + 'static,
) -> Result<Session, String> {
    let remote = ssh.bootstrap_command_for(super::RELAY_FLAG).map_err(|e| e.to_string())?;
    let argv = ssh.argv(host, &remote);
    let permit = handshakes().acquire().await.ok();
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Own process group: a Ctrl-C on the terminal reaches rmpirun only.
        .process_group(0)
        .kill_on_drop(true);
    let mut child =
        cmd.spawn().map_err(|e| format!("cannot run {}: {e}", argv[0].to_string_lossy()))?;
    let stderr = child.stderr.take().map(|err| {
        let on_stderr = on_stderr.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(err).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                on_stderr(line);
            }
        })
    });
    let (Some(stdout), Some(mut to)) = (child.stdout.take(), child.stdin.take()) else {
        return Err("ssh pipes missing".into());
    };
    let mut from = BufReader::new(stdout);
    let booted = boot(&mut from, &mut to, ssh, bin, &on_stderr).await;
    drop(permit);
    match booted {
        Ok(()) => Ok(Session { child, from, to, stderr }),
        Err(reason) => {
            drop(to);
            Err(finish(child, stderr, reason).await)
        }
    }
}

/// Sends the bootstrap header, waits for the marker and sends the binary when asked.
async fn boot(
    from: &mut BufReader<ChildStdout>,
    to: &mut ChildStdin,
    ssh: &SshSettings,
    bin: &SharedBinary,
    on_stderr: &impl Fn(String),
) -> Result<(), String> {
    let bin = agent_binary(bin).await?;
    let header = SshSettings::bootstrap_header(bin.bytes.len() as u64, &bin.hash);
    // A failed write means ssh already ended; its stderr and status say why.
    let _ = to.write_all(header.as_bytes()).await;
    let limit = Duration::from_secs(ssh.connect_timeout + 30);
    let need = match tokio::time::timeout(limit, marker(from, on_stderr)).await {
        Err(_) => return Err(format!("no answer from the remote shell within {limit:?}")),
        Ok(r) => r?,
    };
    if need {
        to.write_all(&bin.bytes)
            .await
            .and(to.flush().await)
            .map_err(|e| format!("sending the agent binary: {e}"))?;
    }
    Ok(())
}

/// Reads up to the bootstrap marker (other lines are login scripts' output: reported as
/// stderr); whether the binary must be sent.
async fn marker(
    from: &mut BufReader<ChildStdout>,
    on_stderr: &impl Fn(String),
) -> Result<bool, String> {
    loop {
        let mut line = Vec::new();
        let n = (&mut *from)
            .take(64 * 1024)
            .read_until(b'\n', &mut line)
            .await
            .map_err(|e| format!("reading from ssh: {e}"))?;
        if n == 0 {
            return Err("the session ended before the agent started".into());
        }
        let text = String::from_utf8_lossy(&line);
        match text.trim_end() {
            NEED_BINARY => return Ok(true),
            HAVE_BINARY => return Ok(false),
            other => on_stderr(other.to_string()),
        }
    }
}

pub use crate::ssh::finish_session as finish;
