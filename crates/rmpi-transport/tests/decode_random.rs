//! A stable-toolchain stand-in for the fuzz target (`fuzz/`, run with `cargo fuzz run decode`):
//! random and mutated inputs through every decoder. None may panic; what decodes re-encodes to
//! the same bytes.

use rand::{Rng, SeedableRng};
use rmpi_transport::wire::{Endpoint, FrameHeader, FrameKind, Hello, HelloKind, RendezvousReply};

#[path = "../fuzz/check.rs"]
mod check;
use check::check;

#[test]
fn decoders_survive_random_and_mutated_input() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    // Valid seeds to mutate.
    let mut seeds: Vec<Vec<u8>> = vec![
        FrameHeader { kind: FrameKind::Data, context: 1, tag: 2, len: 3 }.encode().to_vec(),
        Hello { kind: HelloKind::Peer, token: [9; 16], size: 4, rank: 1, grant: 1 << 20 }
            .encode()
            .to_vec(),
    ];
    let table = RendezvousReply::Table(vec![
        Endpoint { addr: "10.1.2.3:4000".parse().unwrap(), host: "a".into(), shm: None },
        Endpoint { addr: "[::1]:5".parse().unwrap(), host: "bb".into(), shm: None },
    ])
    .encode();
    let mut t = vec![2u8];
    t.extend_from_slice(&table[4..]);
    seeds.push(t);
    for _ in 0..200_000 {
        let mut d = if rng.random_bool(0.5) {
            let n = rng.random_range(0..80);
            (0..n).map(|_| rng.random()).collect::<Vec<u8>>()
        } else {
            seeds[rng.random_range(0..seeds.len())].clone()
        };
        for _ in 0..rng.random_range(0..4) {
            if d.is_empty() {
                break;
            }
            let i = rng.random_range(0..d.len());
            match rng.random_range(0..3) {
                0 => d[i] = rng.random(),
                1 => d.truncate(i),
                _ => d.insert(i, rng.random()),
            }
        }
        check(&d);
    }
}
