//! A hasher for maps keyed by integers the node hands out or bounds (task ids, stream ids):
//! one multiply instead of SipHash on the protocol server's per-request path.
//!
//! It gives no protection against chosen collisions, so it is only for maps whose size is
//! bounded per connection (`net.max_inflight`, `net.max_waiting`): a client that picks
//! colliding stream ids slows only its own connection, and only up to that bound.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A map keyed by integers, hashed with [`IdHasher`].
pub type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// Mixes integer keys with a multiply by the golden ratio and a shift, so both the high bits
/// (the table's control bytes) and the low bits (the bucket) depend on every input bit.
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher {
    state: u64,
}

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.state ^ (self.state >> 32)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u32(&mut self, value: u32) {
        self.write_u64(u64::from(value));
    }

    fn write_u64(&mut self, value: u64) {
        self.state = (self.state.rotate_left(5) ^ value).wrapping_mul(GOLDEN);
    }

    fn write_usize(&mut self, value: usize) {
        self.write_u64(value as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    fn hash(value: u64) -> u64 {
        BuildHasherDefault::<IdHasher>::default().hash_one(value)
    }

    #[test]
    fn sequential_ids_spread_over_buckets_and_control_bytes() {
        // A table of 1,024 buckets indexes by the low bits and tags by the top 7: sequential
        // ids (how task and stream ids arrive) must fill both evenly, not pile up.
        let mut buckets = vec![0u32; 1024];
        let mut tags = [0u32; 128];
        for id in 0..65_536u64 {
            let h = hash(id << 16 | 7);
            buckets[(h & 1023) as usize] += 1;
            tags[(h >> 57) as usize] += 1;
        }
        let fullest = buckets.iter().max().copied().unwrap_or(0);
        assert!(fullest <= 64 * 2, "a bucket got {fullest} of 64 expected");
        let fullest_tag = tags.iter().max().copied().unwrap_or(0);
        assert!(
            fullest_tag <= 512 * 2,
            "a tag got {fullest_tag} of 512 expected"
        );
    }

    #[test]
    fn maps_keyed_by_ids_find_what_they_hold() {
        let mut map: IdMap<u64, u64> = IdMap::default();
        for id in 0..10_000u64 {
            map.insert(id * 3, id);
        }
        assert_eq!(map.len(), 10_000);
        assert!((0..10_000u64).all(|id| map.get(&(id * 3)) == Some(&id)));
        assert_eq!(map.get(&1), None);
    }
}
