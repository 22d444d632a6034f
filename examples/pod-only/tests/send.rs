//! The derived type crosses between two ranks intact, and its size is its fields' sizes.

use rmpi_pod_only::{send_particles, Particle};

#[test]
fn a_derived_pod_struct_is_sent_as_its_bytes() {
    assert_eq!(std::mem::size_of::<Particle>(), 32);
    let out = rmpi::local::run(2, |w| send_particles(&w, 100)).unwrap();
    assert!(out[0].is_empty());
    assert_eq!(out[1].len(), 100);
    for (i, p) in out[1].iter().enumerate() {
        assert_eq!(*p, Particle { pos: [i as f64, 0.5, -1.0], id: i as u32, charge: -(i as f32) });
    }
}
