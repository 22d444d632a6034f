//! A hasher for tables keyed by small integers the engine hands out itself (request ids, ranks):
//! such keys come from no adversary, so they need no keyed hash (SipHash, the standard
//! library's default, costs several times more per lookup). One multiplication by an odd
//! constant spreads consecutive ids over both the low bits (the bucket) and the high bits (the
//! tag the table compares first).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` keyed by engine-made integers.
pub(crate) type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// The hasher of [`IdMap`]: integer keys only (other keys still hash, byte by byte).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct IdHasher(u64);

/// An odd constant with its bits spread evenly (2^64 divided by the golden ratio).
const SPREAD: u64 = 0x9E37_79B9_7F4A_7C15;

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(26) ^ n).wrapping_mul(SPREAD);
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn consecutive_ids_get_distinct_hashes_spread_over_high_and_low_bits() {
        let b = BuildHasherDefault::<IdHasher>::default();
        let hashes: Vec<u64> = (1u64..=4096).map(|i| b.hash_one(i)).collect();
        let distinct: std::collections::HashSet<u64> = hashes.iter().copied().collect();
        assert_eq!(distinct.len(), hashes.len());
        // The low 7 bits (a small table's buckets) and the high 7 bits both take every value.
        let low: std::collections::HashSet<u64> = hashes.iter().map(|h| h & 0x7f).collect();
        let high: std::collections::HashSet<u64> = hashes.iter().map(|h| h >> 57).collect();
        assert_eq!(low.len(), 128);
        assert_eq!(high.len(), 128);
    }

    #[test]
    fn a_map_keyed_by_ids_finds_what_it_holds() {
        let mut m: IdMap<u64, u64> = IdMap::default();
        for i in 0..10_000u64 {
            m.insert(i * 3, i);
        }
        for i in 0..10_000u64 {
            assert_eq!(m.get(&(i * 3)), Some(&i));
            assert_eq!(m.get(&(i * 3 + 1)), None);
        }
        let mut r: IdMap<usize, u8> = IdMap::default();
        r.insert(7, 1);
        assert_eq!(r.remove(&7), Some(1));
        assert!(r.is_empty());
    }
}
