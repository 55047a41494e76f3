//! `[detectors.copies]`: the copy-campaign detector's configuration, defaults and validation.

use crate::detector::DetectorConfig;
use crate::findings::FindingsConfig;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CopiesConfig {
    pub enabled: bool,
    /// Texts are compared with those of the last `window_ms` of event time.
    pub window_ms: i64,
    /// Distinct qualified accounts that make a campaign.
    pub min_accounts: usize,
    /// Fingerprints (of a clause) within this many differing bits of 64 are near-duplicates.
    pub max_hamming: u32,
    /// A clause carries evidence from this much information (sum of its features' rarity,
    /// in nats); shorter or more generic clauses are ignored.
    pub min_clause_info: f64,
    /// A text is indexed from this much information in its evidence clauses.
    pub min_text_info: f64,
    /// Two texts are linked when the chunks they share hold this share of either one's
    /// evidence features (a chance repeat of one phrase between long texts is not a link).
    pub link_share: f64,
    /// ...and carry this much information (nats): a chunk of `I` nats recurs by chance in
    /// about `N e^-I` of the `N` texts of a window, more for common words (their bigrams
    /// are not independent), so short texts of common words are not linked by one phrase.
    pub min_link_info: f64,
    /// A text qualifies its account when this share of its evidence features lies in
    /// clauses other accounts repeated.
    pub min_coverage: f64,
    /// Between two texts of other accounts that share a chunk, the other chunks within this
    /// many differing bits also count as shared (for the link) and as repeated (for
    /// coverage): a template clause behind filler words, reordered or cut short. Unrelated
    /// chunks differ by ~32 bits. 0: only index matches (`max_hamming`) count.
    pub loose_hamming: u32,
    /// A text's last chunk, unmatched, within this many bits of a longer chunk of a text it
    /// shares chunks with (the one after the last chunk they share) counts as shared: a copy
    /// cut short. 0 to 20; 0: off.
    pub tail_hamming: u32,
    /// A chunk shared with another account's text that is not linked to this one (a
    /// template's synonyms leave copies short of a link) counts as repeated when it carries
    /// this much information: a chunk of `I` nats recurs by chance in about `N e^-I` of `N`
    /// texts. Inside one cluster every shared chunk counts.
    pub min_repeat_info: f64,
    /// Texts counted into the rarity sketch before any is indexed (weights need a population).
    pub warmup_texts: u64,
    pub strip_urls: bool,
    pub strip_mentions: bool,
    pub strip_hashtags: bool,
    /// Longer texts are fingerprinted on their first this many bytes.
    pub max_text_bytes: usize,
    /// Texts held in the window; beyond it the oldest leave early (counted).
    pub max_texts: usize,
    /// Entries per index bucket; beyond it the oldest leave (counted).
    pub max_bucket: usize,
    /// The rarity sketch has two rows of 2^this 16-bit counters.
    pub sketch_width_bits: u32,
    /// Document counts halve every this many texts.
    pub sketch_half_life_texts: u64,
    /// Memory budget of the detector (its own byte count, checked every tick).
    pub max_state_bytes: u64,
    pub findings: FindingsConfig,
}

impl Default for CopiesConfig {
    fn default() -> Self {
        CopiesConfig {
            enabled: true,
            window_ms: 3 * 3_600_000,
            min_accounts: 8,
            max_hamming: 3,
            min_clause_info: 12.0,
            min_text_info: 24.0,
            link_share: 0.6,
            min_link_info: 40.0,
            min_coverage: 0.7,
            loose_hamming: 8,
            tail_hamming: 12,
            min_repeat_info: 40.0,
            warmup_texts: 2_000,
            strip_urls: true,
            strip_mentions: true,
            strip_hashtags: true,
            max_text_bytes: 4_096,
            max_texts: 2_000_000,
            max_bucket: 1_024,
            sketch_width_bits: 20,
            sketch_half_life_texts: 1 << 21,
            max_state_bytes: 512 << 20,
            findings: FindingsConfig {
                // Campaigns grow by hundreds: a revision when members double.
                regrow_fraction: 1.0,
                close_after_ms: 3 * 3_600_000,
                ..FindingsConfig::default()
            },
        }
    }
}

impl DetectorConfig for CopiesConfig {
    fn enabled(&self) -> bool {
        self.enabled
    }

    fn validate(&self) -> Result<(), String> {
        let info_ok = self.min_clause_info >= 0.0 && self.min_text_info >= self.min_clause_info;
        if self.window_ms <= 0
            || self.min_accounts < 2
            || self.max_hamming > 7
            || self.loose_hamming > 20
            || self.tail_hamming > 20
            || !(self.min_repeat_info >= 0.0 && self.min_repeat_info <= 1000.0)
            || !(self.min_link_info >= 0.0 && self.min_link_info <= 1000.0)
            || !info_ok
            || !(self.min_coverage > 0.0 && self.min_coverage <= 1.0)
            || !(self.link_share > 0.0 && self.link_share <= 1.0)
            || self.max_text_bytes < 16
            || self.max_texts == 0
            || self.max_texts >= 1 << 27
            || self.max_bucket == 0
            || !(10..=26).contains(&self.sketch_width_bits)
            || self.sketch_half_life_texts == 0
            || self.max_state_bytes == 0
            || self.findings.max_members < self.min_accounts
        {
            return Err("need window_ms > 0, min_accounts >= 2, max_hamming <= 7, loose_hamming <= 20, tail_hamming <= 20, 0 <= min_repeat_info <= 1000, 0 <= min_link_info <= 1000, 0 <= min_clause_info <= min_text_info, 0 < min_coverage <= 1, 0 < link_share <= 1, max_text_bytes >= 16, 0 < max_texts < 2^27, max_bucket > 0, sketch_width_bits in 10..=26, sketch_half_life_texts > 0, max_state_bytes > 0, findings.max_members >= min_accounts".into());
        }
        self.findings.validate()
    }
}
