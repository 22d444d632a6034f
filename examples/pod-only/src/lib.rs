//! A user's crate whose only dependency is `rmpi`: a plain-data struct derives `rmpi::Pod` and
//! travels as its bytes.

/// A particle as a user would declare it.
#[derive(Clone, Copy, Debug, PartialEq, rmpi::Pod)]
#[repr(C)]
pub struct Particle {
    /// Position.
    pub pos: [f64; 3],
    /// Identity.
    pub id: u32,
    /// Charge.
    pub charge: f32,
}

/// Rank 0 sends `n` particles to rank 1, which returns them (rank 0 returns none).
pub fn send_particles(world: &rmpi::Communicator, n: usize) -> rmpi::Result<Vec<Particle>> {
    if world.rank() == 0 {
        let ps: Vec<Particle> = (0..n)
            .map(|i| Particle { pos: [i as f64, 0.5, -1.0], id: i as u32, charge: -(i as f32) })
            .collect();
        world.send(&ps, 1, 3)?;
        Ok(Vec::new())
    } else {
        let (ps, status) = world.recv::<Particle>(0, 3)?;
        debug_assert_eq!(status.count::<Particle>(), Some(ps.len()));
        Ok(ps)
    }
}
