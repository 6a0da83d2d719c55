//! A fast, per-process seeded hasher for the node index and the interners.
//!
//! SipHash (std's default) cost about a quarter of the instructions of a
//! request: every request hashes each path component once or twice. This
//! folded-multiply hash (the wyhash/foldhash construction) is several
//! times cheaper on short names. Its seed comes from std's `RandomState`,
//! so a guest choosing node names cannot precompute collisions offline;
//! this is the same "minimal DoS resistance" trade-off hashbrown's default
//! hasher makes, and a collision only costs a longer probe in one table.

use std::hash::{BuildHasher, Hasher, RandomState};

const K1: u64 = 0x243f_6a88_85a3_08d3;
const K2: u64 = 0x1319_8a2e_0370_7344;

fn fold_mul(a: u64, b: u64) -> u64 {
    let full = u128::from(a) * u128::from(b);
    (full as u64) ^ ((full >> 64) as u64) // both halves, truncation intended
}

/// Builds [`FastHasher`]s sharing one random seed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FastState {
    seed: u64,
}

impl FastState {
    /// A state with a fresh random seed.
    pub(crate) fn new() -> FastState {
        FastState {
            seed: RandomState::new().hash_one(0x5eed_u64) | 1,
        }
    }
}

impl Default for FastState {
    fn default() -> FastState {
        FastState::new()
    }
}

impl BuildHasher for FastState {
    type Hasher = FastHasher;
    fn build_hasher(&self) -> FastHasher {
        FastHasher { acc: self.seed }
    }
}

/// The hasher: absorbs 8 bytes per folded multiply. Cloning it forks the
/// state (the watch index hashes every prefix of a path this way in one
/// pass).
#[derive(Debug, Clone, Copy)]
pub(crate) struct FastHasher {
    acc: u64,
}

impl FastHasher {
    fn mix(&mut self, word: u64) {
        self.acc = fold_mul(self.acc ^ word, K1);
    }
}

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.mix(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        // the length keeps "a" + "" apart from "" + "a"
        self.mix(u64::from_le_bytes(w) ^ ((bytes.len() as u64) << 56));
    }

    fn write_u8(&mut self, i: u8) {
        self.mix(u64::from(i));
    }

    fn write_u16(&mut self, i: u16) {
        self.mix(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.mix(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.mix(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.mix(i as u64);
    }

    fn finish(&self) -> u64 {
        fold_mul(self.acc, K2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn distinct_keys_hash_apart() {
        let s = FastState::new();
        let mut seen = HashSet::new();
        for parent in 0..50u32 {
            for i in 0..200 {
                seen.insert(s.hash_one((parent, format!("k{i}").as_str())));
            }
        }
        assert_eq!(seen.len(), 50 * 200);
        assert_ne!(s.hash_one((1u32, "ab")), s.hash_one((1u32, "ba")));
        assert_ne!(s.hash_one((1u32, "")), s.hash_one((1u32, "\0")));
        assert_eq!(s.hash_one((7u32, "x")), s.hash_one((7u32, "x")));
    }

    #[test]
    fn seeds_differ() {
        let (a, b) = (FastState::new(), FastState::new());
        assert_ne!(a.hash_one("name"), b.hash_one("name"));
    }
}
