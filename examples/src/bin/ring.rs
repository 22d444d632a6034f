//! A token goes around the ring of ranks `LAPS` times; each rank adds its rank to it on the way.
//!
//! `rmpirun -n 5 target/release/ring [LAPS]`

fn main() -> Result<(), rmpi::Error> {
    let world = rmpi::init()?;
    let laps: u64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(10);
    let (me, p) = (world.rank(), world.size());
    let (next, prev) = ((me + 1) % p, (me + p - 1) % p);
    let mut token = 0u64;
    for lap in 0..laps {
        if me == 0 {
            world.send(&[token], next, lap)?;
            token = world.recv::<u64>(prev, lap)?.0[0];
        } else {
            let (v, _) = world.recv::<u64>(prev, lap)?;
            world.send(&[v[0] + me as u64], next, lap)?;
        }
    }
    if me == 0 {
        let expected = laps * (p as u64 * (p as u64 - 1) / 2);
        println!("token after {laps} laps of {p} ranks: {token} (expected {expected})");
    }
    world.finalize()
}
