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

/// `ln(df + 1)` for the document frequencies most features have (a table, not a `ln` a
/// feature).
static LN_1P: std::sync::LazyLock<Box<[f32]>> =
    std::sync::LazyLock::new(|| (0..4_096).map(|df| (df as f32 + 1.0).ln()).collect());

/// `ln(df + 1)` for the common features (`df` of 4,096 and more), by sixteens: at the middle
/// of each, within 0.002 nats of the exact value.
static LN_1P_BY_16: std::sync::LazyLock<Box<[f32]>> = std::sync::LazyLock::new(|| {
    (0..4_096)
        .map(|i| ((16 * i + 8) as f32 + 1.0).ln())
        .collect()
});

/// The weight in nats of a feature that `df` of `e^ln_texts - 1` texts carried:
/// `ln((texts + 1) / (df + 1))`, at least 0.
pub fn idf(ln_texts: f32, df: u16) -> f32 {
    let ln_df = match LN_1P.get(usize::from(df)) {
        Some(&ln) => ln,
        None => LN_1P_BY_16[usize::from(df >> 4)],
    };
    (ln_texts - ln_df).max(0.0)
}

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
        idf(self.ln_texts(), df)
    }

    /// `ln(texts + 1)`: what [`idf`] takes, computed once a text.
    pub fn ln_texts(&self) -> f32 {
        (self.texts as f32 + 1.0).ln()
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

/// Byte `j` of `SPREAD[v]` is bit `j` of `v`: a byte of a feature spread over 8 lanes.
const SPREAD: [u64; 256] = {
    let mut t = [0u64; 256];
    let mut v = 0;
    while v < 256 {
        let mut j = 0;
        while j < 8 {
            t[v] |= ((v as u64 >> j) & 1) << (8 * j);
            j += 1;
        }
        v += 1;
    }
    t
};

/// Features added to the 8-bit lanes before they are folded into the sums (no lane can
/// pass 255).
const FOLD_EVERY: u8 = (255 / MAX_WEIGHT) as u8;

/// The 64 running sums of a SimHash, and the XOR of the features added (it breaks ties:
/// a short chunk of equally weighted features sums to exactly zero on many bits, and
/// zeros all read as 0 would crowd fingerprints into a few index buckets).
///
/// Features go first into 64 byte lanes (eight `u64`s: lane `i` counts the weight of the
/// features with bit `i` set), eight table lookups and adds a feature instead of 64; the
/// lanes are folded into the signed sums before they could overflow and when read.
#[derive(Debug, Clone, Copy)]
pub struct SimHash {
    sums: [i32; 64],
    xor: u64,
    lanes: [u64; 8],
    /// Weight and features in the lanes, not yet folded.
    lane_weight: i32,
    lane_features: u8,
}

impl Default for SimHash {
    fn default() -> Self {
        SimHash {
            sums: [0; 64],
            xor: 0,
            lanes: [0; 8],
            lane_weight: 0,
            lane_features: 0,
        }
    }
}

impl SimHash {
    /// Add a feature with an integer weight (1 to [`MAX_WEIGHT`]).
    pub fn add(&mut self, feature: u64, weight: i32) {
        debug_assert!((1..=MAX_WEIGHT).contains(&weight), "weight {weight}");
        let w = weight as u64;
        for (byte, lane) in self.lanes.iter_mut().enumerate() {
            *lane += SPREAD[((feature >> (8 * byte)) & 0xFF) as usize] * w;
        }
        self.lane_weight += weight;
        self.lane_features += 1;
        self.xor ^= feature;
        if self.lane_features == FOLD_EVERY {
            self.fold();
        }
    }

    /// Move the lanes into the sums: `+w` for a set bit, `-w` for a clear one. Done once
    /// a chunk is complete ([`SimHash::fold`] is cheap on folded sums).
    pub fn fold(&mut self) {
        if self.lane_features == 0 {
            return;
        }
        for (sums, lane) in self.sums.chunks_exact_mut(8).zip(self.lanes) {
            for (sum, set) in sums.iter_mut().zip(lane.to_le_bytes()) {
                *sum += 2 * i32::from(set) - self.lane_weight;
            }
        }
        self.lanes = [0; 8];
        self.lane_weight = 0;
        self.lane_features = 0;
    }

    /// Add another SimHash's sums (a clause's into its text's).
    pub fn merge(&mut self, other: &SimHash) {
        if other.lane_features != 0 {
            let mut other = *other;
            other.fold();
            return self.merge(&other);
        }
        self.fold();
        for (a, b) in self.sums.iter_mut().zip(other.sums) {
            *a += b;
        }
        self.xor ^= other.xor;
    }

    /// The fingerprint: bit `i` is set when sum `i` is positive (on a tie, as in the XOR).
    /// Folded sums (a finished chunk's) are read in place, not copied (336 bytes).
    pub fn fingerprint(&self) -> u64 {
        if self.lane_features != 0 {
            let mut folded = *self;
            folded.fold();
            return folded.fingerprint();
        }
        let (mut positive, mut zero) = (0u64, 0u64);
        for (bit, &sum) in self.sums.iter().enumerate() {
            positive |= u64::from(sum > 0) << bit;
            zero |= u64::from(sum == 0) << bit;
        }
        positive | (zero & self.xor)
    }
}

/// The integer weight a feature adds to a fingerprint: `idf` (never negative) to the
/// nearest whole nat, halves up (an add and a truncation, not a libm `roundf` call).
pub fn weight(idf: f32) -> i32 {
    debug_assert!(idf >= 0.0);
    ((idf + 0.5) as i32).clamp(1, MAX_WEIGHT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idf_is_within_a_small_error_of_its_definition() {
        let ln_texts = (1_000_000f32 + 1.0).ln();
        for df in (0..=u16::MAX).step_by(7) {
            let exact = (ln_texts - (f32::from(df) + 1.0).ln()).max(0.0);
            let err = (idf(ln_texts, df) - exact).abs();
            assert!(err < 0.002, "df {df}: {} vs {exact}", idf(ln_texts, df));
        }
    }

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
    fn the_lanes_give_the_sums_of_the_definition() {
        // Charikar's sums bit by bit, against the lanes, past several folds.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut plain = [0i32; 64];
        let mut xor = 0;
        let mut s = SimHash::default();
        for i in 0..500 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let w = 1 + (i % MAX_WEIGHT);
            for (bit, sum) in plain.iter_mut().enumerate() {
                *sum += if (x >> bit) & 1 == 1 { w } else { -w };
            }
            xor ^= x;
            s.add(x, w);
            if i % 37 == 0 {
                let mut folded = s;
                folded.fold();
                assert_eq!(folded.sums, plain, "after {i} features");
                let want = (0..64).fold(0u64, |fp, bit| {
                    let set = plain[bit] > 0 || (plain[bit] == 0 && (xor >> bit) & 1 == 1);
                    fp | (u64::from(set) << bit)
                });
                assert_eq!(s.fingerprint(), want);
            }
        }
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
