//! Rarity weights from a streaming document-frequency sketch, and the 64-bit SimHash over them.
//!
//! [`Rarity`] is a count-min sketch (two counters a feature, both in one cache-line block,
//! conservative update, 16-bit saturating counters) of how many texts carried each feature. A feature's weight is its inverse
//! document frequency, `ln((texts + 1) / (df + 1))`: a word every second text uses weighs
//! under 1 nat, a template's own phrase 5 to 10. The sketch only over-counts (collisions), so a
//! weight is never above the exact one: a rare feature can look common, never the reverse.
//! Every `half_life` texts all counts halve, so the weights follow the stream.
//!
//! [`SimHash`] is Charikar's fingerprint: each feature adds its integer weight to the bits its
//! hash sets and subtracts it from the others; the sign of each of the 64 sums is a bit.
//! Sums of clauses add up to the sum of the text, so one pass gives both.

use serde::{Deserialize, Serialize};

/// Counters in one block of the sketch: 32 of 16 bits, a 64-byte cache line.
const BLOCK: usize = 32;

/// Weights are rounded to whole nats for the fingerprint (at most this many), so that the
/// slow drift of document frequencies as a campaign repeats itself rarely moves a bit.
pub const MAX_WEIGHT: i32 = 6;

/// See the module docs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rarity {
    /// `2 << width_bits` counters in blocks of [`BLOCK`].
    counts: Vec<u16>,
    width_bits: u32,
    texts: u64,
    half_life: u64,
    since_halving: u64,
}

impl Rarity {
    pub fn new(width_bits: u32, half_life: u64) -> Self {
        debug_assert!((8..=28).contains(&width_bits) && half_life > 0);
        Rarity {
            counts: vec![0; 2 << width_bits],
            width_bits,
            texts: 0,
            half_life,
            since_halving: 0,
        }
    }

    /// Texts counted (after halvings: the effective population the weights refer to).
    pub fn texts(&self) -> u64 {
        self.texts
    }

    pub fn bytes(&self) -> u64 {
        (self.counts.len() * std::mem::size_of::<u16>()) as u64
    }

    /// A feature's two counters, in one block of [`BLOCK`] (one cache line, so a lookup
    /// costs one miss, not two): the block from the hash's low bits, the two places in it
    /// from its high bits.
    fn cells(&self, feature: u64) -> [usize; 2] {
        let blocks = self.counts.len() / BLOCK;
        let base = (feature as usize & (blocks - 1)) * BLOCK;
        let i = (feature >> 40) as usize % BLOCK;
        let mut j = (feature >> 52) as usize % BLOCK;
        if j == i {
            j ^= 1;
        }
        [base + i, base + j]
    }

    /// How many texts carried `feature` (an over-count at worst).
    pub fn df(&self, feature: u64) -> u16 {
        let [a, b] = self.cells(feature);
        self.counts[a].min(self.counts[b])
    }

    /// The weight of a feature in nats.
    pub fn idf(&self, feature: u64) -> f32 {
        self.idf_of(self.df(feature))
    }

    /// The weight of a feature that `df` texts carried.
    pub fn idf_of(&self, df: u16) -> f32 {
        ((self.texts as f32 + 1.0) / (f32::from(df) + 1.0))
            .ln()
            .max(0.0)
    }

    /// Count one text's distinct features (sorted, deduplicated by the caller).
    pub fn count(&mut self, distinct: &[u64]) {
        debug_assert!(distinct.windows(2).all(|w| w[0] < w[1]));
        for &f in distinct {
            let [a, b] = self.cells(f);
            let m = self.counts[a].min(self.counts[b]);
            if m == u16::MAX {
                continue;
            }
            // Conservative update: raise only the cells at the minimum.
            for c in [a, b] {
                if self.counts[c] == m {
                    self.counts[c] = m + 1;
                }
            }
        }
        self.texts += 1;
        self.since_halving += 1;
        if self.since_halving >= self.half_life {
            self.since_halving = 0;
            self.texts /= 2;
            for c in &mut self.counts {
                *c /= 2;
            }
        }
    }
}

/// The 64 running sums of a SimHash, and the XOR of the features added (it breaks ties:
/// a short chunk of equally weighted features sums to exactly zero on many bits, and
/// zeros all read as 0 would crowd fingerprints into a few index buckets).
#[derive(Debug, Clone, Copy)]
pub struct SimHash([i32; 64], u64);

impl Default for SimHash {
    fn default() -> Self {
        SimHash([0; 64], 0)
    }
}

impl SimHash {
    /// Add a feature with an integer weight.
    pub fn add(&mut self, feature: u64, weight: i32) {
        for (bit, sum) in self.0.iter_mut().enumerate() {
            let sign = ((feature >> bit) & 1) as i32 * 2 - 1;
            *sum += sign * weight;
        }
        self.1 ^= feature;
    }

    /// Add another SimHash's sums (a clause's into its text's).
    pub fn merge(&mut self, other: &SimHash) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a += b;
        }
        self.1 ^= other.1;
    }

    /// The fingerprint: bit `i` is set when sum `i` is positive (on a tie, as in the XOR).
    pub fn fingerprint(&self) -> u64 {
        self.0.iter().enumerate().fold(0, |fp, (bit, &sum)| {
            let set = sum > 0 || (sum == 0 && (self.1 >> bit) & 1 == 1);
            fp | (u64::from(set) << bit)
        })
    }
}

/// The integer weight a feature adds to a fingerprint.
pub fn weight(idf: f32) -> i32 {
    (idf.round() as i32).clamp(1, MAX_WEIGHT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_features_weigh_less_and_halving_keeps_the_ratio() {
        // Features are hashes in use: spread them the same way here.
        let f = |i: u64| super::super::text::Token::Word(&i.to_string()).hash();
        let text = |a: u64, b: u64| {
            let mut v = vec![f(a), f(b)];
            v.sort_unstable();
            v
        };
        let mut r = Rarity::new(16, 1_000);
        for i in 0..600u64 {
            r.count(&text(1, 1000 + i));
        }
        assert!(r.idf(f(1)) < 0.1, "in every text: {}", r.idf(f(1)));
        assert!(r.idf(f(1000)) > 5.0, "in one text: {}", r.idf(f(1000)));
        assert!(r.idf(f(7)) > r.idf(f(1000)), "never seen is rarest");
        for i in 0..600u64 {
            r.count(&text(1, 5000 + i));
        }
        // One halving at 1,000 texts: 600 + 600 counted, 700 left.
        assert_eq!(r.texts(), 700);
        assert!(r.idf(f(1)) < 0.1);
    }

    #[test]
    fn fingerprints_of_similar_feature_sets_are_close() {
        let fp = |feats: &[u64]| {
            let mut s = SimHash::default();
            for &f in feats {
                s.add(super::super::text::Token::Word(&f.to_string()).hash(), 5);
            }
            s.fingerprint()
        };
        let base: Vec<u64> = (0..200).collect();
        let mut near = base.clone();
        near[0] = 999;
        let far: Vec<u64> = (500..700).collect();
        let d_near = (fp(&base) ^ fp(&near)).count_ones();
        let d_far = (fp(&base) ^ fp(&far)).count_ones();
        assert!(d_near <= 3, "one feature in 200 changed: {d_near} bits");
        assert!(d_far > 16, "unrelated: {d_far} bits");
    }
}
