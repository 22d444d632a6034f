//! Noticing a peer whose host went silent: TCP keep-alive with short timers on every connection.
//!
//! A peer process that exits or crashes closes its connections, and the engine sees that at
//! once. A peer whose host crashes, loses power or is cut off sends nothing at all; without
//! keep-alive a rank waiting on it would wait forever. Every connection between ranks therefore
//! has the kernel probe an idle peer and give up after `RMPI_PEER_TIMEOUT` (default
//! [`DEFAULT_PEER_TIMEOUT`]), and gives up on unacknowledged data after the same time
//! (`TCP_USER_TIMEOUT`). The connection then fails with "timed out", and every operation with
//! that peer fails naming it.
//!
//! The kernel answers probes, not the process: a peer that is stopped (SIGSTOP) or stuck in a
//! loop is alive to its host's kernel and is not detected here. The launcher's `--timeout` ends
//! such a job.

use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};

/// Default time after which a silent peer host is given up.
pub const DEFAULT_PEER_TIMEOUT: Duration = Duration::from_secs(10);

/// Keep-alive timers that give up on a silent peer after about `timeout` (whole seconds, at
/// least 2): idle for half of it, then probes every second until the rest has passed.
fn timers(timeout: Duration) -> (Duration, Duration, u32) {
    let total = timeout.as_secs().max(2);
    let idle = total / 2;
    let interval = 1;
    let probes = (total - idle).max(1) as u32;
    (Duration::from_secs(idle), Duration::from_secs(interval), probes)
}

/// Arms the keep-alive and user timeout of a connection to a peer.
pub(crate) fn watch(stream: &impl std::os::fd::AsFd, timeout: Duration) -> std::io::Result<()> {
    let (idle, interval, probes) = timers(timeout);
    let sock = SockRef::from(stream);
    let ka = TcpKeepalive::new().with_time(idle).with_interval(interval).with_retries(probes);
    sock.set_tcp_keepalive(&ka)?;
    sock.set_tcp_user_timeout(Some(Duration::from_secs(timeout.as_secs().max(2))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpStream;

    #[test]
    fn timers_add_up_to_the_timeout() {
        for secs in [2u64, 3, 10, 60, 3600] {
            let (idle, interval, probes) = timers(Duration::from_secs(secs));
            assert_eq!(idle.as_secs() + interval.as_secs() * u64::from(probes), secs, "{secs}");
        }
        assert_eq!(timers(Duration::from_millis(300)), timers(Duration::from_secs(2)));
    }

    #[test]
    fn a_real_socket_takes_the_options() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let s = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        watch(&s, Duration::from_secs(10)).unwrap();
        let sock = SockRef::from(&s);
        assert!(sock.keepalive().unwrap());
        assert_eq!(sock.tcp_keepalive_time().unwrap(), Duration::from_secs(5));
        assert_eq!(sock.tcp_user_timeout().unwrap(), Some(Duration::from_secs(10)));
    }
}
