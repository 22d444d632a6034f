//! Blocking socket reads bounded by a deadline for the whole read, not for each `read` call.
//!
//! A socket read timeout restarts with every byte that arrives, so a peer that sends one byte
//! every few seconds would keep a plain `read_exact` going forever. Bootstrap reads use this
//! instead: the time left until the deadline is set again before every `read`.

use std::io::{self, ErrorKind, Read};
use std::net::TcpStream;
use std::time::Instant;

/// Fills `buf` from `s`, failing with `TimedOut` once `deadline` has passed, or with
/// `UnexpectedEof` if the stream ends first. Leaves a read timeout set on `s`.
pub(crate) fn read_exact_by(s: &TcpStream, buf: &mut [u8], deadline: Instant) -> io::Result<()> {
    let mut reader = s;
    let mut filled = 0;
    while filled < buf.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                ErrorKind::TimedOut,
                format!("deadline passed with {filled} of {} bytes read", buf.len()),
            ));
        }
        s.set_read_timeout(Some(left))?;
        match reader.read(&mut buf[filled..]) {
            Ok(0) => {
                return Err(io::Error::new(
                    ErrorKind::UnexpectedEof,
                    format!("connection closed after {filled} of {} bytes", buf.len()),
                ))
            }
            Ok(n) => filled += n,
            Err(e) if matches!(e.kind(), ErrorKind::Interrupted) => {}
            // The per-call timeout fired: the loop head decides whether time is left.
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;
    use std::time::Duration;

    #[test]
    fn a_dripping_peer_cannot_stretch_the_deadline() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let dripper = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            // One byte every 50 ms: each read sees progress, the whole never completes in time.
            for _ in 0..40 {
                if s.write_all(b"x").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        let s = TcpStream::connect(addr).unwrap();
        let t0 = Instant::now();
        let mut buf = [0u8; 100];
        let e = read_exact_by(&s, &mut buf, t0 + Duration::from_millis(300)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
        let took = t0.elapsed();
        assert!(took >= Duration::from_millis(300) && took < Duration::from_secs(2), "{took:?}");
        drop(s);
        dripper.join().unwrap();
    }

    #[test]
    fn reads_everything_and_reports_early_close() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let writer = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            s.write_all(b"hello").unwrap();
        });
        let s = TcpStream::connect(addr).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 5];
        read_exact_by(&s, &mut buf, deadline).unwrap();
        assert_eq!(&buf, b"hello");
        writer.join().unwrap();
        let e = read_exact_by(&s, &mut buf, deadline).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UnexpectedEof);
    }
}
