//! Chunks: a text cut into clauses and content-defined chunks, each weighed by rarity and
//! fingerprinted; the ones that carry enough information are the text's evidence.
//!
//! A clause is first cut at its gaps (white space next to CJK text, see [`Token::Gap`])
//! unless it has more than [`MAX_GAPS`] (text spaced out character by character), then
//! after a feature whose hash is 0 modulo [`CHUNK_EVERY`] once the chunk holds
//! [`CHUNK_MIN`] features (at most [`CHUNK_MAX`]): the cuts depend on content, not
//! position, so a cut tail, an edit or words put in front change one chunk and leave the
//! others as they were.

use super::fingerprint::{idf, weight, Rarity, SimHash};
use super::text::{tokens, Strip, Token};

/// Chunks kept per text; later ones are folded into the last.
pub const MAX_CHUNKS: usize = 16;
/// Chunk bounds in features, and the expected run between content-defined cuts.
const CHUNK_MIN: usize = 4;
const CHUNK_MAX: usize = 24;
const CHUNK_EVERY: u64 = 8;
/// A clause with more gaps than this is not cut at them.
const MAX_GAPS: usize = 2;

/// One chunk that carries evidence.
#[derive(Debug, Clone, Copy)]
pub struct Chunk {
    pub sums: SimHash,
    /// Its distinct features (coverage and link shares count them).
    pub feats: u16,
    /// Its information in whole nats (rounded down).
    pub info: u16,
}

/// Reads texts into evidence chunks; its buffers are kept between texts.
#[derive(Debug, Default)]
pub struct Chunker {
    feats: Vec<u64>,
    ends: Vec<usize>,
    /// Where the gaps are, as feature positions.
    gaps: Vec<usize>,
    chunk: Vec<u64>,
    /// The text's distinct features (sorted) and their weights: each feature is looked up
    /// in the sketch once, however many chunks carry it.
    distinct: Vec<u64>,
    idf: Vec<f32>,
    /// The evidence chunks of the last text read, in text order.
    pub evidence: Vec<Chunk>,
    /// Features of the text's first chunk when it is `evidence[0]` (else 0).
    lead: usize,
}

impl Chunker {
    /// Tokenize `text`; when `weigh`, keep its chunks that carry `min_info` nats in
    /// [`Chunker::evidence`]; then count its distinct features into `rarity`. Returns the
    /// information of the evidence (0 when not weighed).
    pub fn read(
        &mut self,
        text: &str,
        strip: Strip,
        rarity: &mut Rarity,
        weigh: bool,
        min_info: f64,
    ) -> f64 {
        self.feats.clear();
        self.ends.clear();
        self.gaps.clear();
        self.evidence.clear();
        self.lead = 0;
        let (feats, ends, gaps) = (&mut self.feats, &mut self.ends, &mut self.gaps);
        tokens(text, strip, |t| match t {
            Token::Break => ends.push(feats.len()),
            Token::Gap => gaps.push(feats.len()),
            t => feats.push(t.hash()),
        });
        ends.push(feats.len());
        self.distinct.clear();
        self.distinct.extend_from_slice(&self.feats);
        self.distinct.sort_unstable();
        self.distinct.dedup();
        let mut info = 0.0;
        if weigh {
            let ln_texts = rarity.ln_texts();
            // One pass over the sketch in feature order: its cache misses overlap, and the
            // chunks below find the lines cached (kept for the first-chunk variants, which
            // are weighed after this text is counted).
            self.idf.clear();
            self.idf
                .extend(self.distinct.iter().map(|&f| idf(ln_texts, rarity.df(f))));
            let known = Known { rarity, ln_texts };
            let mut start = 0;
            for &end in &self.ends {
                let inside = || self.gaps.iter().filter(|&&g| start < g && g < end);
                let mut cuts = [end; MAX_GAPS + 1];
                if inside().count() <= MAX_GAPS {
                    for (cut, &g) in cuts.iter_mut().zip(inside()) {
                        *cut = g;
                    }
                }
                let mut at = start;
                for &cut in &cuts {
                    while at < cut {
                        let len = chunk_len(&self.feats[at..cut]);
                        self.chunk.clear();
                        self.chunk.extend_from_slice(&self.feats[at..at + len]);
                        let first = at == 0;
                        at += len;
                        info += unit(&known, min_info, &mut self.chunk, &mut self.evidence);
                        if first && self.evidence.len() == 1 {
                            self.lead = len;
                        }
                    }
                }
                start = end;
            }
        }
        rarity.count(&self.distinct);
        info
    }

    /// Fingerprints of the last text's first chunk (when it is `evidence[0]`) without its
    /// first one, two or three features, while [`CHUNK_MIN`] remain: the chunk as it reads
    /// without a few words put in front of it. Weighed as the chunk was.
    pub fn lead_variants(&mut self) -> ([u64; 3], usize) {
        let mut out = ([0u64; 3], 0);
        for drop in 1..=3 {
            if self.lead < drop + CHUNK_MIN {
                break;
            }
            self.chunk.clear();
            self.chunk.extend_from_slice(&self.feats[drop..self.lead]);
            let (distinct, idf) = (&self.distinct, &self.idf);
            let (mut sums, _) = weigh(&mut self.chunk, |f| {
                let i = distinct.binary_search(&f);
                debug_assert!(i.is_ok(), "a feature of the text");
                i.map_or(0.0, |i| idf[i])
            });
            sums.fold();
            out.0[out.1] = sums.fingerprint();
            out.1 += 1;
        }
        out
    }
}

/// The sketch as of the text being read (before it is counted).
struct Known<'a> {
    rarity: &'a Rarity,
    ln_texts: f32,
}

impl Known<'_> {
    fn idf(&self, feature: u64) -> f32 {
        idf(self.ln_texts, self.rarity.df(feature))
    }
}

/// Weigh and fingerprint one chunk's features; keep it in `evidence` if it carries
/// `min_info`. Returns its information if kept.
fn unit(known: &Known<'_>, min_info: f64, feats: &mut Vec<u64>, evidence: &mut Vec<Chunk>) -> f64 {
    let (mut sums, info) = weigh(feats, |f| known.idf(f));
    if info < min_info {
        return 0.0;
    }
    sums.fold();
    let n = feats.len().min(usize::from(u16::MAX)) as u16;
    let nats = info.min(f64::from(u16::MAX)) as u16;
    if evidence.len() < MAX_CHUNKS {
        evidence.push(Chunk {
            sums,
            feats: n,
            info: nats,
        });
    } else if let Some(last) = evidence.last_mut() {
        last.sums.merge(&sums);
        last.feats = last.feats.saturating_add(n);
        last.info = last.info.saturating_add(nats);
    }
    info
}

/// The SimHash sums (not yet folded) and the information of `feats`, made distinct in
/// place, each weighed by `idf`.
fn weigh(feats: &mut Vec<u64>, idf: impl Fn(u64) -> f32) -> (SimHash, f64) {
    feats.sort_unstable();
    feats.dedup();
    let mut sums = SimHash::default();
    let mut info = 0.0;
    for &f in feats.iter() {
        let idf = idf(f);
        info += f64::from(idf);
        sums.add(f, weight(idf));
    }
    (sums, info)
}

/// The chunks of `evidence` in `mask`.
fn masked(evidence: &[Chunk], mask: u16) -> impl Iterator<Item = &Chunk> {
    evidence
        .iter()
        .enumerate()
        .filter(move |(i, _)| mask & (1 << i) != 0)
        .map(|(_, c)| c)
}

/// Features of the chunks of `evidence` in `mask`.
pub fn masked_feats(evidence: &[Chunk], mask: u16) -> u64 {
    masked(evidence, mask).map(|c| u64::from(c.feats)).sum()
}

/// Information (whole nats) of the chunks of `evidence` in `mask`.
pub fn masked_info(evidence: &[Chunk], mask: u16) -> u32 {
    masked(evidence, mask).map(|c| u32::from(c.info)).sum()
}

/// A configured information bound in whole nats (rounded up), as chunks carry theirs
/// (rounded down): a chunk meets it only if its information does.
pub fn nats(bound: f64) -> u32 {
    bound.ceil().clamp(0.0, f64::from(u32::MAX)) as u32
}

/// Index hits `(earlier text, its chunk, my chunk)`, sorted by earlier text, grouped: for
/// each earlier text, the masks of my chunks and of its chunks that matched.
pub fn shared_chunks(hits: &[(usize, u8, u8)]) -> impl Iterator<Item = (usize, u16, u16)> + '_ {
    debug_assert!(hits.windows(2).all(|w| w[0].0 <= w[1].0), "sorted by text");
    hits.chunk_by(|a, b| a.0 == b.0).map(|group| {
        let (mut mine, mut theirs) = (0u16, 0u16);
        for &(_, their, my) in group {
            theirs |= 1 << their;
            mine |= 1 << my;
        }
        (group[0].0, mine, theirs)
    })
}

/// Chunks of two texts (fingerprints `x`, `y`) within `bound` bits of a chunk of the other,
/// as masks of `x`'s and `y`'s chunks: what `loose_hamming` lets count as shared.
pub fn loose_masks(x: &[u64], y: &[u64], bound: u32) -> (u16, u16) {
    let (mut mx, mut my) = (0u16, 0u16);
    for (i, a) in x.iter().enumerate() {
        for (j, b) in y.iter().enumerate() {
            if (a ^ b).count_ones() <= bound {
                mx |= 1 << i;
                my |= 1 << j;
            }
        }
    }
    (mx, my)
}

/// Two texts are linked when the chunks they share hold `link_share` of either one's
/// evidence features: `(shared, total)` of each. A chance repeat of one phrase between
/// long texts is not a link; a cut copy (short) of a long one is.
pub fn linked(a: (u64, u64), b: (u64, u64), link_share: f64) -> bool {
    let share = |(shared, total): (u64, u64)| shared as f64 / total.max(1) as f64;
    share(a).max(share(b)) >= link_share
}

/// Features of the chunk that starts `feats`: it ends after a feature whose hash is 0
/// modulo [`CHUNK_EVERY`] once it holds [`CHUNK_MIN`], at [`CHUNK_MAX`], or with the clause.
fn chunk_len(feats: &[u64]) -> usize {
    let mut n = 0;
    for &f in feats {
        n += 1;
        if n >= CHUNK_MAX || (n >= CHUNK_MIN && f % CHUNK_EVERY == 0) {
            break;
        }
    }
    n
}

/// The heaviest features of a sample text (rarest first), for the alert's evidence.
pub fn template_features(rarity: &Rarity, strip: Strip, sample: &str) -> Vec<Box<str>> {
    let mut feats: Vec<(u32, String)> = Vec::new();
    tokens(sample, strip, |t| {
        if t.is_feature() {
            feats.push(((rarity.idf(t.hash()) * 100.0) as u32, t.display()));
        }
    });
    feats.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    feats.dedup_by(|a, b| a.1 == b.1);
    feats.into_iter().take(8).map(|(_, s)| s.into()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The chunk fingerprints of `text` (everything weighed as new).
    fn chunks(text: &str) -> Vec<u64> {
        let strip = Strip {
            urls: true,
            mentions: true,
            hashtags: true,
        };
        let mut c = Chunker::default();
        c.read(text, strip, &mut Rarity::new(16, 1 << 20), true, 0.0);
        c.evidence.iter().map(|e| e.sums.fingerprint()).collect()
    }

    #[test]
    fn words_set_off_in_front_of_a_chinese_clause_stay_out_of_its_chunks() {
        let plain = chunks("这款精华确实好用，用了七天皮肤嫩了很多");
        let behind = chunks("手机 这款精华确实好用，用了七天皮肤嫩了很多");
        assert_eq!(plain.len() + 1, behind.len(), "{plain:x?} {behind:x?}");
        assert_eq!(plain[..], behind[1..], "the filler is a chunk of its own");
        // Glued on, it is part of the first clause's chunk.
        let glued = chunks("手机这款精华确实好用，用了七天皮肤嫩了很多");
        assert_ne!(plain[0], glued[0]);
        // Spaced out character by character, the gaps are not cuts.
        assert_eq!(
            chunks("这 款 精 华 确 实 好 用"),
            chunks("这款精华确实好用")
        );
    }

    #[test]
    fn loose_masks_pair_chunks_within_the_bound_only() {
        let a = 0x0123_4567_89AB_CDEFu64;
        let near = a ^ 0xFF; // 8 bits off
        let far = !a; // 64 bits off
        assert_eq!(loose_masks(&[a, far], &[far ^ 1, near], 8), (0b11, 0b11));
        assert_eq!(loose_masks(&[a], &[near], 7), (0, 0));
        assert_eq!(loose_masks(&[a, a], &[far], 8), (0, 0));
    }
}
