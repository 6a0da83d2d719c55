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

/// The last 0..=7 bytes of an input as one word, without a copy loop:
/// two overlapping 4-byte reads for 4..=7 bytes, three single bytes for
/// 1..=3 (the wyhash trick). Unique for a given length, which the caller
/// mixes in.
fn tail_word(b: &[u8]) -> u64 {
    let n = b.len();
    if n >= 4 {
        let lo = b[..4].try_into().map_or(0, u32::from_le_bytes);
        let hi = b[n - 4..].try_into().map_or(0, u32::from_le_bytes);
        (u64::from(lo) << 32) | u64::from(hi)
    } else if n > 0 {
        (u64::from(b[0]) << 16) | (u64::from(b[n / 2]) << 8) | u64::from(b[n - 1])
    } else {
        0
    }
}

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.mix(c.try_into().map_or(0, u64::from_le_bytes));
        }
        // the length keeps "a" + "" apart from "" + "a"
        self.mix(tail_word(chunks.remainder()) ^ ((bytes.len() as u64) << 56));
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
    fn short_tails_hash_apart() {
        let s = FastState::new();
        let mut seen = HashSet::new();
        let alphabet = [b'a', b'b', b'0'];
        // every string of length 0..=7 over a small alphabet
        let mut all: Vec<Vec<u8>> = vec![Vec::new()];
        for _ in 0..7 {
            let next: Vec<Vec<u8>> = all
                .iter()
                .filter(|v| v.len() == all.last().map_or(0, Vec::len))
                .flat_map(|v| {
                    alphabet.iter().map(move |&c| {
                        let mut w = v.clone();
                        w.push(c);
                        w
                    })
                })
                .collect();
            all.extend(next);
        }
        for v in &all {
            assert!(seen.insert(s.hash_one(v.as_slice())), "{v:?}");
        }
    }

    #[test]
    fn seeds_differ() {
        let (a, b) = (FastState::new(), FastState::new());
        assert_ne!(a.hash_one("name"), b.hash_one("name"));
    }
}
