//! Point-to-point timing loops (ping-pong latency, windowed streaming bandwidth) over any
//! [`Link`], and the latency/bandwidth tables built from them.

use std::time::{Duration, Instant};

use crate::error::{BenchError, Result};
use crate::link::Link;
use crate::options::Options;
use crate::table;

/// Messages in flight per bandwidth iteration (OSU's window).
pub const WINDOW: usize = 64;

/// Which side of a two-party test this process is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Sends first, measures, prints (rank 0).
    Initiator,
    /// Answers (rank 1).
    Responder,
}

/// Runs `warmup + iters` round trips of `buf` and returns the time of the last `iters`.
/// One-way latency is half of that per iteration.
pub fn pingpong<L: Link>(
    link: &mut L,
    role: Role,
    buf: &mut [u8],
    warmup: usize,
    iters: usize,
) -> Result<Duration> {
    let mut t0 = Instant::now();
    for i in 0..warmup + iters {
        if i == warmup {
            t0 = Instant::now();
        }
        match role {
            Role::Initiator => {
                link.send(buf)?;
                link.recv(buf)?;
            }
            Role::Responder => {
                link.recv(buf)?;
                link.send(buf)?;
            }
        }
    }
    Ok(t0.elapsed())
}

/// Runs `warmup + iters` windows of `window` messages of `size` bytes, each window acknowledged
/// by the receiver, and returns the time of the last `iters`. The initiator sends
/// `buf[..size]` `window` times; the responder receives every message into `buf[..size]`.
pub fn stream<L: Link>(
    link: &mut L,
    role: Role,
    buf: &mut [u8],
    (size, window): (usize, usize),
    warmup: usize,
    iters: usize,
) -> Result<Duration> {
    let len = buf.len();
    if len < size {
        return Err(BenchError::Usage(format!("buffer of {len} bytes is too small for {size}")));
    }
    let buf = &mut buf[..size];
    let mut t0 = Instant::now();
    for i in 0..warmup + iters {
        if i == warmup {
            t0 = Instant::now();
        }
        match role {
            Role::Initiator => link.send_window(buf, window)?,
            Role::Responder => link.recv_window(buf, window)?,
        }
    }
    Ok(t0.elapsed())
}

/// One-way latency in microseconds of `iters` round trips that took `elapsed`.
pub fn one_way_us(elapsed: Duration, iters: usize) -> f64 {
    elapsed.as_secs_f64() * 1e6 / (2.0 * iters as f64)
}

/// Bandwidth in MB/s (10^6 bytes per second) of `iters` windows of [`WINDOW`] messages of
/// `size` bytes.
pub fn mb_per_s(elapsed: Duration, size: usize, iters: usize) -> f64 {
    (size * WINDOW * iters) as f64 / 1e6 / elapsed.as_secs_f64()
}

/// The ping-pong latency sweep; the initiator prints `impl_name`'s table.
pub fn latency_table<L: Link>(
    link: &mut L,
    role: Role,
    opts: &Options,
    impl_name: &str,
) -> Result<()> {
    let mut buf = vec![1u8; opts.max_size];
    if role == Role::Initiator {
        table::header(impl_name, "Latency Test", 2, table::LATENCY_COLUMNS);
    }
    for size in opts.sizes() {
        let iters = opts.iters_for(size);
        link.sync()?;
        let t = pingpong(link, role, &mut buf[..size], opts.warmup_for(iters), iters)?;
        if role == Role::Initiator {
            table::emit(&table::row(size, one_way_us(t, iters)));
        }
    }
    Ok(())
}

/// The streaming bandwidth sweep; the initiator prints `impl_name`'s table.
pub fn bandwidth_table<L: Link>(
    link: &mut L,
    role: Role,
    opts: &Options,
    impl_name: &str,
) -> Result<()> {
    // Written once, so neither side reads the shared zero page or faults pages in while timed.
    let mut buf = vec![1u8; opts.max_size];
    if role == Role::Initiator {
        table::header(impl_name, "Bandwidth Test", 2, table::BANDWIDTH_COLUMNS);
    }
    for size in opts.sizes() {
        let iters = opts.iters_for(size);
        link.sync()?;
        let t = stream(link, role, &mut buf, (size, WINDOW), opts.warmup_for(iters), iters)?;
        if role == Role::Initiator {
            table::emit(&table::row(size, mb_per_s(t, size, iters)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::{RmpiLink, TcpLink};

    /// Streams 3 windows of 100-byte messages, then ping-pongs 200 bytes (which only lines up
    /// if the windows left nothing behind), and returns what the responder's buffer holds.
    fn stream_pattern<L: Link>(link: &mut L, role: Role) -> Result<Vec<u8>> {
        let mut buf = match role {
            Role::Initiator => (0..200u8).collect(),
            Role::Responder => vec![0u8; 200],
        };
        stream(link, role, &mut buf, (100, WINDOW), 1, 2)?;
        if role == Role::Responder {
            assert!(buf[..100].iter().enumerate().all(|(i, b)| *b == i as u8));
            assert!(buf[100..].iter().all(|b| *b == 0), "stream wrote past its size");
        }
        pingpong(link, role, &mut buf, 1, 3)?;
        Ok(buf)
    }

    fn check_received(buf: &[u8]) {
        assert!(buf.iter().enumerate().all(|(i, b)| *b == i as u8));
    }

    #[test]
    fn rmpi_link_delivers_every_window_message() {
        let out = rmpi::local::run(2, |world| {
            let role = if world.rank() == 0 { Role::Initiator } else { Role::Responder };
            let mut link = RmpiLink::new(world.clone(), 1 - world.rank());
            Ok(stream_pattern(&mut link, role).map_err(|e| e.to_string()))
        })
        .unwrap();
        check_received(out[1].as_ref().unwrap());
    }

    #[test]
    fn tcp_link_delivers_every_window_message() {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = std::thread::spawn(move || {
            let stream = std::net::TcpStream::connect(addr).unwrap();
            stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            stream_pattern(&mut TcpLink::new(stream).unwrap(), Role::Initiator).unwrap()
        });
        let (stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let buf = stream_pattern(&mut TcpLink::new(stream).unwrap(), Role::Responder).unwrap();
        peer.join().unwrap();
        check_received(&buf);
    }

    #[test]
    fn unit_conversions() {
        assert!((one_way_us(Duration::from_millis(2), 1000) - 1.0).abs() < 1e-9);
        // 64 messages of 1 MB in 64 ms: 1000 MB/s.
        assert!((mb_per_s(Duration::from_millis(64), 1_000_000, 1) - 1000.0).abs() < 1e-6);
    }
}
