//! Ranks 0 and 1 bounce messages of growing size and check every byte; rank 0 prints the
//! one-way time (half the round trip) and bandwidth for each size. Other ranks just wait.
//!
//! `rmpirun -n 2 target/release/pingpong`

use std::time::Instant;

fn main() -> Result<(), rmpi::Error> {
    let world = rmpi::init()?;
    if world.size() < 2 {
        eprintln!("pingpong needs at least 2 ranks");
        std::process::exit(2);
    }
    let me = world.rank();
    if me > 1 {
        return world.finalize();
    }
    let peer = 1 - me;
    let mut size = 1usize;
    while size <= 4 << 20 {
        let reps = if size < 65536 { 1000 } else { 50 };
        let out: Vec<u8> = (0..size).map(|i| (i * 31 + size) as u8).collect();
        let mut back = vec![0u8; size];
        let start = Instant::now();
        for _ in 0..reps {
            if me == 0 {
                world.send(&out, peer, 0)?;
                world.recv_into(&mut back, peer, 0)?;
            } else {
                world.recv_into(&mut back, peer, 0)?;
                world.send(&back, peer, 0)?;
            }
        }
        let one_way = start.elapsed().as_secs_f64() / reps as f64 / 2.0;
        if me == 0 {
            if back != out {
                eprintln!("pingpong: data corrupted at {size} bytes");
                std::process::exit(1);
            }
            println!(
                "{size:>9} B  {:>10.2} us  {:>9.1} MB/s",
                one_way * 1e6,
                size as f64 / one_way / 1e6
            );
        }
        size *= 4;
    }
    if me == 0 {
        println!("all sizes verified");
    }
    world.finalize()
}
