//! Building the `ssh` command line that starts a node agent on a remote host.
//!
//! The system `ssh` client is used (so `~/.ssh/config`, agents, jump hosts work), always in batch
//! mode (it never prompts). The remote command is a short POSIX `sh` script, every variable part of
//! which is quoted with `shlex`: it finds `rmpirun` in a per-user cache by content hash, or
//! receives it on stdin (`head -c SIZE`), then `exec`s it as `--node-agent`. The first line it
//! prints tells the launcher which of the two happened ([`NEED_BINARY`] / [`HAVE_BINARY`]).

use std::ffi::OsString;

use crate::hostfile::HostEntry;

/// Printed by the bootstrap script when it waits for the binary on stdin.
pub const NEED_BINARY: &str = "rmpi-agent-need";
/// Printed by the bootstrap script when the cached binary is used.
pub const HAVE_BINARY: &str = "rmpi-agent-have";

/// SSH settings shared by every host.
#[derive(Debug, Clone)]
pub struct SshSettings {
    /// The client command and its leading options, e.g. `["ssh", "-F", "/cfg"]`.
    pub command: Vec<String>,
    /// `ConnectTimeout` in seconds.
    pub connect_timeout: u64,
    /// Remote directory caching the agent binary; `None` = `${XDG_CACHE_HOME:-$HOME/.cache}/rmpi`.
    pub cache_dir: Option<String>,
}

/// SSH configuration error.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    /// `--ssh` / `RMPI_SSH` could not be split into words.
    #[error("cannot split ssh command `{0}` into words")]
    BadCommand(String),
    /// A value cannot be quoted for the remote shell (it holds a NUL byte).
    #[error("cannot quote `{0}` for the remote shell")]
    Unquotable(String),
}

impl SshSettings {
    /// Settings from `--ssh` (else `$RMPI_SSH`, else `ssh`) and `$RMPI_AGENT_CACHE`.
    pub fn new(ssh: Option<&str>, connect_timeout: u64) -> Result<Self, SshError> {
        let from_env = std::env::var("RMPI_SSH").ok().filter(|s| !s.trim().is_empty());
        let text = ssh.map(str::to_string).or(from_env).unwrap_or_else(|| "ssh".into());
        let command = shlex::split(&text)
            .filter(|w| !w.is_empty())
            .ok_or_else(|| SshError::BadCommand(text.clone()))?;
        let cache_dir = std::env::var("RMPI_AGENT_CACHE").ok().filter(|s| !s.is_empty());
        Ok(SshSettings { command, connect_timeout, cache_dir })
    }

    /// The full argv of the ssh client that runs `remote` on `host`.
    pub fn argv(&self, host: &HostEntry, remote: &str) -> Vec<OsString> {
        let mut argv: Vec<OsString> = self.command.iter().map(OsString::from).collect();
        for opt in [
            "BatchMode=yes".to_string(),
            format!("ConnectTimeout={}", self.connect_timeout),
            "ServerAliveInterval=2".to_string(),
            "ServerAliveCountMax=3".to_string(),
        ] {
            argv.push("-o".into());
            argv.push(opt.into());
        }
        // No pty, no X11: the session only carries the agent's byte streams.
        argv.push("-T".into());
        argv.push("-x".into());
        if let Some(port) = host.port {
            argv.push("-p".into());
            argv.push(port.to_string().into());
        }
        if let Some(user) = &host.user {
            argv.push("-l".into());
            argv.push(user.into());
        }
        argv.push("--".into());
        argv.push(host.name.clone().into());
        argv.push(remote.into());
        argv
    }

    /// The remote command: a `sh` script that reads one line `SIZE HASH` from stdin (so ssh can
    /// start before the launcher has hashed its binary), then gets the agent binary of SIZE bytes
    /// with content id HASH (hex) from the cache or from stdin, and runs it.
    pub fn bootstrap_command(&self) -> Result<String, SshError> {
        self.bootstrap_command_for(crate::launcher::AGENT_FLAG)
    }

    /// [`SshSettings::bootstrap_command`] running the binary with `flag` (`--node-agent`, or
    /// `--relay-agent` in a launch tree).
    pub fn bootstrap_command_for(&self, flag: &str) -> Result<String, SshError> {
        let flag = quote(flag)?;
        let cache = match &self.cache_dir {
            Some(dir) => quote(dir)?,
            None => "\"${XDG_CACHE_HOME:-$HOME/.cache}/rmpi\"".to_string(),
        };
        // `read` takes its line byte by byte and `head -c` reads no more than it is asked for;
        // the launcher only sends the control protocol after the agent said hello, so nothing is
        // read by the wrong reader.
        let script = format!(
            "umask 077; read -r n h || exit 96; \
             case \"$n.$h\" in *[!0-9a-f.]* | .* | *.) exit 96;; esac; \
             c={cache}; mkdir -p \"$c\" 2>/dev/null || c=$(mktemp -d) || exit 97; \
             f=\"$c/rmpirun-$h\"; \
             if [ -x \"$f\" ] && [ \"$(wc -c < \"$f\")\" -eq \"$n\" ]; then echo {HAVE_BINARY}; \
             else echo {NEED_BINARY}; t=$(mktemp \"$c/.rmpirun.XXXXXX\") || exit 97; \
             head -c \"$n\" > \"$t\"; \
             if [ \"$(wc -c < \"$t\")\" -ne \"$n\" ]; then rm -f \"$t\"; \
             echo 'rmpirun: incomplete agent transfer' >&2; exit 98; fi; \
             chmod 700 \"$t\" && mv -f \"$t\" \"$f\" || exit 97; fi; \
             exec \"$f\" {flag}"
        );
        Ok(format!("exec /bin/sh -c {}", quote(&script)?))
    }

    /// The first line the bootstrap script reads.
    pub fn bootstrap_header(size: u64, hash: &str) -> String {
        format!("{size} {hash}\n")
    }
}

/// Waits briefly for ssh to exit (killing it otherwise) and adds how it ended to `reason`.
pub async fn finish_session(
    mut child: tokio::process::Child,
    stderr: Option<tokio::task::JoinHandle<()>>,
    mut reason: String,
) -> String {
    match tokio::time::timeout(std::time::Duration::from_secs(2), child.wait()).await {
        Ok(Ok(st)) if !st.success() => {
            use std::os::unix::process::ExitStatusExt;
            let how = match (st.code(), st.signal()) {
                (Some(c), _) => format!("ssh exited with status {c}"),
                (None, Some(s)) => {
                    format!("ssh killed by signal {s} ({})", crate::procs::signal_name(s))
                }
                (None, None) => format!("ssh ended: {st}"),
            };
            reason = format!("{reason}; {how}");
        }
        Ok(_) => {}
        Err(_) => {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }
    // ssh's last words reach the caller before the reason does.
    if let Some(t) = stderr {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), t).await;
    }
    reason
}

/// Quotes one word for a POSIX shell.
pub fn quote(s: &str) -> Result<String, SshError> {
    shlex::try_quote(s).map(|c| c.into_owned()).map_err(|_| SshError::Unquotable(s.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str, user: Option<&str>, port: Option<u16>) -> HostEntry {
        HostEntry { name: name.into(), user: user.map(Into::into), port, slots: 1, max_slots: None }
    }

    #[test]
    fn argv_has_batch_mode_port_user_and_no_token() {
        let s = SshSettings {
            command: vec!["ssh".into(), "-F".into(), "/c fg".into()],
            connect_timeout: 7,
            cache_dir: None,
        };
        let argv: Vec<String> = s
            .argv(&host("node7", Some("alice"), Some(2222)), "REMOTE")
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        assert_eq!(&argv[..3], &["ssh", "-F", "/c fg"]);
        let joined = argv.join(" ");
        assert!(joined.contains("-o BatchMode=yes"), "{joined}");
        assert!(joined.contains("-o ConnectTimeout=7"), "{joined}");
        assert!(joined.ends_with("-p 2222 -l alice -- node7 REMOTE"), "{joined}");
    }

    #[test]
    fn bootstrap_script_runs_in_a_real_shell() {
        // Run the script with /bin/sh locally: first without a cached binary (it must ask for it
        // and read exactly `size` bytes), then with it.
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache dir; $(touch pwned)");
        let s = SshSettings {
            command: vec!["ssh".into()],
            connect_timeout: 5,
            cache_dir: Some(cache.to_str().unwrap().into()),
        };
        // A stand-in "binary": a shell script that prints its argument, then its stdin.
        let payload = b"#!/bin/sh\necho agent \"$1\"\ncat\n";
        let cmd = s.bootstrap_command().unwrap();
        let header = SshSettings::bootstrap_header(payload.len() as u64, "abc");
        let run = |input: &[u8]| {
            use std::io::Write;
            let mut child = std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(&cmd)
                .current_dir(dir.path())
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            child.stdin.take().unwrap().write_all(input).unwrap();
            let out = child.wait_with_output().unwrap();
            String::from_utf8(out.stdout).unwrap()
        };
        let mut input = header.as_bytes().to_vec();
        input.extend_from_slice(payload);
        input.extend_from_slice(b"TRAILING");
        // GNU head reads no more than asked: the bytes after the binary reach the agent.
        assert_eq!(run(&input), format!("{NEED_BINARY}\nagent --node-agent\nTRAILING"));
        assert_eq!(run(header.as_bytes()), format!("{HAVE_BINARY}\nagent --node-agent\n"));
        // A malformed header is refused before anything is written or run.
        assert_eq!(run(b"12 ../../x\n"), "");
        assert_eq!(run(b"\n"), "");
        assert!(cache.join("rmpirun-abc").exists());
        assert!(!dir.path().join("pwned").exists());
    }

    #[test]
    fn ssh_command_splitting() {
        let s = SshSettings::new(Some("ssh -F '/a b/config' -o X=1"), 3).unwrap();
        assert_eq!(s.command, vec!["ssh", "-F", "/a b/config", "-o", "X=1"]);
        assert!(SshSettings::new(Some("ssh 'unterminated"), 3).is_err());
    }
}
