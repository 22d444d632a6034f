//! Small process helpers based on `/proc`.

/// Whether `pid` names a live process (a zombie does not count).
pub fn is_running(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name, which may itself hold `)`.
        Ok(stat) => match stat.rfind(')') {
            Some(pos) => !matches!(stat[pos + 1..].trim_start().chars().next(), Some('Z' | 'X')),
            None => false,
        },
        Err(_) => false,
    }
}

/// Whether any process of process group `pgid` is still alive (zombies do not count: they have
/// exited and only wait to be reaped).
///
/// `kill(-pgid, 0)` alone cannot answer this: it succeeds while a zombie member is unreaped,
/// and an orphaned member is reaped by init at init's own pace.
pub fn group_has_live_members(pgid: i32) -> bool {
    // SAFETY: kill(2) with signal 0 only checks for existence; no memory involved.
    if unsafe { libc::kill(-pgid, 0) } != 0 {
        return false;
    }
    let Ok(dir) = std::fs::read_dir("/proc") else { return false };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .any(|stat| {
            // After the parenthesised name: state, ppid, pgrp, ...
            let Some(pos) = stat.rfind(')') else { return false };
            let mut fields = stat[pos + 1..].split_whitespace();
            let state = fields.next();
            let pgrp = fields.nth(1).and_then(|f| f.parse::<i32>().ok());
            pgrp == Some(pgid) && !matches!(state, Some("Z" | "X"))
        })
}

/// One read(2) of `fd` (which should be non-blocking): what the kernel holds now, without
/// going through an async reactor.
pub fn read_now(fd: std::os::fd::BorrowedFd<'_>, buf: &mut [u8]) -> std::io::Result<usize> {
    use std::os::fd::AsRawFd;
    // SAFETY: `fd` is open for the borrow's lifetime and `buf` is valid for `buf.len()` bytes.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// Conventional short name of a signal number (`SIGKILL`), or `signal N`.
pub fn signal_name(sig: i32) -> String {
    let name = match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGSYS => "SIGSYS",
        _ => return format!("signal {sig}"),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_runs_and_names_are_known() {
        assert!(is_running(std::process::id() as i32));
        assert!(!is_running(i32::MAX));
        assert_eq!(signal_name(9), "SIGKILL");
        assert_eq!(signal_name(64), "signal 64");
    }

    #[test]
    fn group_liveness_follows_its_members() {
        use std::os::unix::process::CommandExt;
        // A leader with a child in its group; the leader exits at once, the child sleeps on.
        let mut leader = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & echo $!"])
            .stdout(std::process::Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let pgid = leader.id() as i32;
        // One line (the child's pid): the child holds the pipe open, so no read to the end.
        let mut line = String::new();
        let mut out = std::io::BufReader::new(leader.stdout.take().unwrap());
        std::io::BufRead::read_line(&mut out, &mut line).unwrap();
        leader.wait().unwrap();
        assert!(group_has_live_members(pgid), "the orphaned child still runs");
        // SAFETY: signals the group this test created.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let t0 = std::time::Instant::now();
        while group_has_live_members(pgid) {
            assert!(t0.elapsed() < std::time::Duration::from_secs(10), "group never died");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(!group_has_live_members(i32::MAX));
    }
}
