//! A flood nobody receives, for the flow-control campaign (`scripts/flood.sh`): rank 0 sends
//! `GIB` GiB in `MSG`-byte messages on tag 1; rank 1 first waits `HOLD` seconds for a message on
//! tag 2 (which rank 0 sends last), then tells rank 0 the hold is over and takes the flood.
//! Rank 1 prints the most memory it held; rank 0 prints how much of the flood its sends got
//! through during the hold (with flow control, about the credit: the sender blocks).
//!
//! `rmpirun -n 2 target/release/flood [GIB] [MSG] [HOLD]`

use std::time::{Duration, Instant};

fn status_kib(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn main() -> Result<(), rmpi::Error> {
    let world = rmpi::init()?;
    let arg = |i: usize, d: f64| std::env::args().nth(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let total = (arg(1, 8.0) * f64::from(1u32 << 30)) as u64;
    let msg = arg(2, f64::from(1u32 << 20)) as usize;
    let hold = Duration::from_secs_f64(arg(3, 10.0));
    let count = total.div_ceil(msg as u64);
    let start = Instant::now();
    if world.rank() == 0 {
        let buf = vec![7u8; msg];
        let mut during_hold = None;
        for i in 0..count {
            world.send(&buf, 1, 1)?;
            if during_hold.is_none() && world.iprobe(Some(1), Some(3))?.is_some() {
                during_hold = Some(i + 1);
            }
        }
        world.send(&[1u8], 1, 2)?;
        world.recv::<u8>(1, 3)?;
        let mib = |n: u64| (n * msg as u64) >> 20;
        let held = during_hold.map_or(count, |n| n);
        println!(
            "sender: {} MiB of {} MiB sent during the hold, all in {:.1} s",
            mib(held),
            mib(count),
            start.elapsed().as_secs_f64()
        );
    } else {
        let last = world.irecv::<u8>(0, 2)?;
        let last = match last.wait_timeout(hold)? {
            Ok(_) => {
                println!("receiver: the flood went through without blocking its sender");
                return world.finalize();
            }
            Err(pending) => pending,
        };
        let held = status_kib("VmHWM");
        world.send(&[1u8], 0, 3)?;
        let mut buf = vec![0u8; msg];
        for _ in 0..count {
            world.recv_into(&mut buf, 0, 1)?;
        }
        last.wait()?;
        println!(
            "receiver: peak RSS {} MiB during the hold, {} MiB at the end (flood of {} MiB)",
            held >> 10,
            status_kib("VmHWM") >> 10,
            (count * msg as u64) >> 20
        );
    }
    world.finalize()
}
