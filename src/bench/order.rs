//! The order a step's points are measured in: shuffled, from a seed recorded with every point. Measured in
//! config order (length-major), any drift of the machine's speed during a sweep (heat, a neighbour's job) lines up
//! with the context length and bends the curve; shuffled, it spreads over all lengths as noise. The seed and each
//! point's position replay the order.

use serde::{Deserialize, Serialize};

/// Where a point stood in its run's order: position `position` of `of`, shuffled from `seed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeasureOrder {
    pub seed: u64,
    pub position: usize,
    pub of: usize,
}

/// A seed from any text (a run's id and a step's name): the first 8 bytes of its blake3.
pub fn seed_of(text: &str) -> u64 {
    let hash = blake3::hash(text.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&hash.as_bytes()[..8]);
    u64::from_le_bytes(bytes)
}

/// `SplitMix64`: a small, well-mixed generator, enough to shuffle a sweep.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce5_e9b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A permutation of `0..n` (Fisher–Yates): position `i` of the order measures the `shuffled(n, seed)[i]`-th point
/// of the config order.
pub fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut state = seed;
    for i in (1..n).rev() {
        let j = (next(&mut state) % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shuffle_is_a_permutation_replayed_by_its_seed() {
        for n in [0, 1, 2, 7, 100] {
            let mut p = shuffled(n, 42);
            assert_eq!(shuffled(n, 42), p, "the seed replays it");
            p.sort_unstable();
            assert_eq!(p, (0..n).collect::<Vec<_>>());
        }
        assert_ne!(shuffled(10, 1), shuffled(10, 2));
        // Over many seeds every length comes first about equally often (not the config's first).
        let mut first = [0usize; 4];
        for seed in 0..4000 {
            first[shuffled(4, seed_of(&seed.to_string()))[0]] += 1;
        }
        assert!(first.iter().all(|&c| (850..1150).contains(&c)), "{first:?}");
        assert_ne!(seed_of("run a"), seed_of("run b"));
    }
}
