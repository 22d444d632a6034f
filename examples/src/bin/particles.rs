//! Ranks send rank 0 their particles, a `#[derive(rmpi::Pod)]` struct sent as its bytes (no
//! encoding, no dependency but rmpi); rank 0 checks every field it got.
//!
//! `rmpirun -n 4 target/release/particles [PER_RANK]`

#[derive(Clone, Copy, Debug, PartialEq, rmpi::Pod)]
#[repr(C)]
struct Particle {
    pos: [f64; 3],
    vel: [f32; 2],
    owner: u32,
    id: u32,
}

fn particle(owner: usize, i: usize) -> Particle {
    let x = (owner * 1000 + i) as f64;
    Particle {
        pos: [x, x * 0.5, -x],
        vel: [i as f32, -(owner as f32)],
        owner: owner as u32,
        id: i as u32,
    }
}

fn main() -> Result<(), rmpi::Error> {
    let world = rmpi::init()?;
    let n: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let (me, p) = (world.rank(), world.size());
    let mine: Vec<Particle> = (0..n).map(|i| particle(me, i)).collect();
    if me != 0 {
        world.send(&mine, 0, 0)?;
        return world.finalize();
    }
    let mut bad = 0;
    for src in 1..p {
        let (got, _) = world.recv::<Particle>(src, 0)?;
        bad += (0..n).filter(|&i| got.get(i) != Some(&particle(src, i))).count();
        bad += got.len().abs_diff(n);
    }
    println!(
        "rank 0 got {} particles of {} bytes from {} ranks, {bad} wrong",
        n * (p - 1),
        std::mem::size_of::<Particle>(),
        p - 1
    );
    world.finalize()
}
