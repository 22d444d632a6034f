//! Point-to-point timing loops (ping-pong latency, windowed streaming bandwidth) over any
//! [`Link`], and the latency/bandwidth tables built from them.

use std::time::{Duration, Instant};

use crate::error::{BenchError, Result};
use crate::link::{split_window, Link};
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
/// `arena[..size]`; the responder receives into `window` disjoint slices of `arena`.
pub fn stream<L: Link>(
    link: &mut L,
    role: Role,
    arena: &mut [u8],
    (size, window): (usize, usize),
    warmup: usize,
    iters: usize,
) -> Result<Duration> {
    let len = arena.len();
    let short = || BenchError::Usage(format!("buffer of {len} bytes is too small"));
    if len < size {
        return Err(short());
    }
    let mut t0 = Instant::now();
    for i in 0..warmup + iters {
        if i == warmup {
            t0 = Instant::now();
        }
        match role {
            Role::Initiator => link.send_window(&arena[..size], window)?,
            Role::Responder => {
                link.recv_window(split_window(arena, size, window).ok_or_else(short)?)?
            }
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
    // The sender's bytes are written once (not the shared zero page); the receiver needs a
    // distinct buffer per message in flight, faulted in by the warm-up.
    let mut arena = match role {
        Role::Initiator => vec![1u8; opts.max_size],
        Role::Responder => vec![0u8; opts.max_size * WINDOW],
    };
    if role == Role::Initiator {
        table::header(impl_name, "Bandwidth Test", 2, table::BANDWIDTH_COLUMNS);
    }
    for size in opts.sizes() {
        let iters = opts.iters_for(size);
        link.sync()?;
        let t = stream(link, role, &mut arena, (size, WINDOW), opts.warmup_for(iters), iters)?;
        if role == Role::Initiator {
            table::emit(&table::row(size, mb_per_s(t, size, iters)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_conversions() {
        assert!((one_way_us(Duration::from_millis(2), 1000) - 1.0).abs() < 1e-9);
        // 64 messages of 1 MB in 64 ms: 1000 MB/s.
        assert!((mb_per_s(Duration::from_millis(64), 1_000_000, 1) - 1000.0).abs() < 1e-6);
    }
}
