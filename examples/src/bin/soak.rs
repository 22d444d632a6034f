//! A soak, for the campaign (`scripts/flood.sh soak`): for `SECS` seconds every rank exchanges
//! messages of changing sizes (1 B to 1 MiB, eager and announced) with its ring neighbours and
//! takes part in an allreduce every round. Each rank reports its RSS and open descriptors after
//! the first tenth of the time and at the end; rank 0 prints the largest growth of either.
//!
//! `rmpirun -n 64 target/release/soak [SECS]`

use std::time::{Duration, Instant};

use rmpi::prelude::*;

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64)
}

fn main() -> Result<(), rmpi::Error> {
    let world = rmpi::init()?;
    let secs: f64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(180.0);
    let (me, p) = (world.rank(), world.size());
    let (next, prev) = ((me + 1) % p, (me + p - 1) % p);
    let end = Duration::from_secs_f64(secs);
    let start = Instant::now();
    let mut early = None;
    let mut rounds = 0u64;
    loop {
        // Every rank decides together whether to go on, so all stop in the same round.
        let mut go = [u64::from(start.elapsed() < end)];
        world.allreduce_in_place(&mut go, Min)?;
        if go[0] == 0 {
            break;
        }
        let len = 1usize << (rounds % 21);
        let out = vec![(rounds % 251) as u8; len];
        let (v, _) = world.sendrecv::<u8, u8>(&out, next, rounds, prev, rounds)?;
        assert!(v.len() == len && v.first() == out.first(), "round {rounds}: a wrong message");
        rounds += 1;
        if early.is_none() && start.elapsed() >= end / 10 {
            early = Some((rss_kib(), fds()));
        }
    }
    let (rss0, fd0) = early.unwrap_or((rss_kib(), fds()));
    let mine = [rss_kib().saturating_sub(rss0), fds().saturating_sub(fd0), rss_kib()];
    let mut worst = mine;
    world.allreduce_in_place(&mut worst, Max)?;
    if me == 0 {
        println!(
            "soak: {p} ranks, {rounds} rounds in {:.0} s; largest growth after the first tenth: \
             RSS {} KiB, descriptors {}; largest RSS {} KiB",
            start.elapsed().as_secs_f64(),
            worst[0],
            worst[1],
            worst[2]
        );
    }
    world.finalize()
}
