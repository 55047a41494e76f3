//! The pair decision of `copies` on its own, for benches that compare it with other
//! near-duplicate methods on the same texts: the same normalisation, chunks, rarity weights,
//! fingerprints, index and link rule as the detector, without accounts, window or clusters.

use super::chunk::{linked, masked_feats, shared_chunks, Chunker};
use super::fingerprint::Rarity;
use super::index::Index;
use super::text::tokens;
use super::{CopiesConfig, MAX_MATCHES};

/// See the module docs.
#[derive(Debug)]
pub struct NearDuplicates {
    cfg: CopiesConfig,
    rarity: Rarity,
    chunker: Chunker,
    index: Index,
    /// Per filed text, its chunks' feature counts and fingerprints.
    texts: Vec<Vec<(u16, u64)>>,
    hits: Vec<(usize, u8, u8)>,
}

impl NearDuplicates {
    pub fn new(cfg: &CopiesConfig) -> Self {
        NearDuplicates {
            rarity: Rarity::new(cfg.sketch_width_bits, cfg.sketch_half_life_texts),
            chunker: Chunker::default(),
            index: Index::new(cfg.max_hamming, cfg.max_bucket),
            texts: Vec::new(),
            hits: Vec::new(),
            cfg: cfg.clone(),
        }
    }

    /// Count a text into the rarity sketch only, as the stream before a sample would.
    pub fn warm(&mut self, text: &str) {
        let strip = super::strip(&self.cfg);
        self.chunker.read(text, strip, &mut self.rarity, false, 0.0);
    }

    /// A text's distinct features, sorted: the shingles other methods compare.
    pub fn features(&self, text: &str) -> Vec<u64> {
        let mut v = Vec::new();
        tokens(text, super::strip(&self.cfg), |t| {
            if t.is_feature() {
                v.push(t.hash());
            }
        });
        v.sort_unstable();
        v.dedup();
        v
    }

    /// File a text (counted into the sketch as the detector would); return the earlier
    /// filed texts it is linked to, by filing number, or `None` when it carries too little
    /// information to be filed.
    pub fn add(&mut self, text: &str) -> Option<Vec<usize>> {
        let strip = super::strip(&self.cfg);
        let min_info = self.cfg.min_clause_info;
        let info = self
            .chunker
            .read(text, strip, &mut self.rarity, true, min_info);
        let evidence = &self.chunker.evidence;
        if evidence.is_empty() || info < self.cfg.min_text_info {
            return None;
        }
        let id = self.texts.len();
        self.hits.clear();
        let chunks: Vec<(u16, u64)> = evidence
            .iter()
            .map(|c| (c.feats, c.sums.fingerprint()))
            .collect();
        for (i, &(_, fp)) in chunks.iter().enumerate() {
            let (hits, texts) = (&mut self.hits, &self.texts);
            self.index.lookup(
                fp,
                MAX_MATCHES,
                |_| true,
                |at| texts[(at >> 4) as usize][(at & 15) as usize].1,
                |at, _| hits.push(((at >> 4) as usize, (at & 15) as u8, i as u8)),
            );
        }
        self.hits.sort_unstable_by_key(|&(t, _, mine)| (t, mine));
        let total_a: u64 = evidence.iter().map(|c| u64::from(c.feats)).sum();
        let mut links = Vec::new();
        for (t, mine, theirs) in shared_chunks(&self.hits) {
            let b = &self.texts[t];
            let total_b: u64 = b.iter().map(|&(f, _)| u64::from(f)).sum();
            let shared_b: u64 = (0..b.len())
                .filter(|i| theirs & (1 << i) != 0)
                .map(|i| u64::from(b[i].0))
                .sum();
            let shared_a = masked_feats(evidence, mine);
            if linked(
                (shared_a, total_a),
                (shared_b, total_b),
                self.cfg.link_share,
            ) {
                links.push(t);
            }
        }
        for (i, &(_, fp)) in chunks.iter().enumerate() {
            self.index
                .insert(fp, ((id as u32) << 4) | i as u32, |_| true);
        }
        self.texts.push(chunks);
        Some(links)
    }
}
