//! Lockstep's configuration: windows, evidence thresholds, caps and the memory budget.

use crate::detector::DetectorConfig;
use crate::findings::FindingsConfig;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LockstepConfig {
    pub enabled: bool,
    /// Two engagements of one post are synchronized when at most this far apart (Δt).
    pub sync_window_ms: i64,
    /// Engagers remembered per post within Δt; older ones are dropped (cap hit) beyond it.
    pub max_recent_per_target: usize,
    /// Popularity scale d0: a co-engagement on a post with d engagers so far weighs 1 / (1 + ln(1 + d/d0)).
    pub popular_degree: f64,
    /// On a post with more engagements than this, co-engagements strengthen existing pairs
    /// but create none (popular posts make most coincidental pairs and carry little evidence).
    pub max_pairing_degree: u32,
    /// A pair becomes an edge with at least this many distinct synchronized targets...
    pub min_shared_targets: u32,
    /// ...and at least this much popularity-weighted evidence...
    pub min_edge_weight: f64,
    /// ...and popularity-weighted evidence >= this x the distinct targets of the less
    /// active of the two (a weighted overlap coefficient): heavy users' coincidences are
    /// a tiny share of what they do.
    pub min_overlap: f64,
    /// ...and, of the targets both engaged lately (the last few of each), at least this
    /// share engaged in sync: fans of one idol share many targets but rarely the minute.
    pub min_sync_share: f64,
    /// ...unless the pair is tight: at least three of its co-engagements, and at least half,
    /// less than this many ms apart (by chance 1 in 12 would be, at 5 s of 60 s):
    /// automation posts within seconds, fans spread over the window. 0 = off.
    pub tight_gap_ms: i64,
    /// A pair engaging a post it already engaged together counts it again when this
    /// long or more after its last co-engagement (a second synchronized wave).
    pub resync_gap_ms: i64,
    /// Pair evidence with two or more targets is kept this long after its last co-engagement.
    pub pair_horizon_ms: i64,
    /// Pairs seen on one target only are forgotten this long after it (most pairs are coincidences).
    pub single_pair_ttl_ms: i64,
    /// Groups are the k-core of the edge graph, with this k.
    pub core_k: usize,
    pub min_group_size: usize,
    /// Edges inside a group over its possible edges.
    pub min_density: f64,
    /// How often (event time) groups are extracted.
    pub detect_interval_ms: i64,
    /// Accounts and posts held at once (each at most 16,777,214: an id's low 24 bits).
    pub max_accounts: usize,
    pub max_targets: usize,
    pub max_pairs: usize,
    /// Slots for pairs seen on one target only (24 bytes each; the table grows to this).
    /// Beyond it the oldest first sighting is overwritten (a cap hit).
    pub max_single_pairs: usize,
    /// Memory budget of the whole detector (its own byte count, checked every tick):
    /// while over, no new accounts, posts or pairs are admitted and the first-sighting
    /// table stops growing (counted in `levee_detector_budget_hits_total`).
    pub max_state_bytes: u64,
    /// Revisions, members per alert and the bound on findings.
    pub findings: FindingsConfig,
}

impl Default for LockstepConfig {
    fn default() -> Self {
        LockstepConfig {
            enabled: true,
            sync_window_ms: 60_000,
            max_recent_per_target: 32,
            popular_degree: 200.0,
            max_pairing_degree: 500,
            min_shared_targets: 2,
            min_edge_weight: 1.5,
            min_overlap: 0.1,
            min_sync_share: 0.35,
            tight_gap_ms: 5_000,
            resync_gap_ms: 3_600_000,
            pair_horizon_ms: 30 * 86_400_000,
            single_pair_ttl_ms: 21 * 86_400_000,
            core_k: 4,
            min_group_size: 5,
            min_density: 0.3,
            detect_interval_ms: 60_000,
            // 7/8 of a power of two: a hash table's full load, so reaching the cap
            // never doubles the table for the last few entries (2^22 and 2^21 buckets).
            max_accounts: 3_670_016,
            max_targets: 1_835_008,
            max_pairs: 8_000_000,
            max_single_pairs: 2 << 20,
            max_state_bytes: 512 << 20,
            findings: FindingsConfig {
                close_after_ms: 6 * 3_600_000,
                ..FindingsConfig::default()
            },
        }
    }
}

impl DetectorConfig for LockstepConfig {
    fn enabled(&self) -> bool {
        self.enabled
    }

    fn validate(&self) -> Result<(), String> {
        if self.sync_window_ms <= 0
            || self.max_recent_per_target < 2
            || self.popular_degree.is_nan()
            || self.popular_degree <= 0.0
            || self.min_shared_targets < 1
            || self.core_k < 1
            || self.min_group_size < 2
            || !(0.0..=1.0).contains(&self.min_density)
            || !(0.0..=1.0).contains(&self.min_overlap)
            || !(0.0..=1.0).contains(&self.min_sync_share)
            || self.detect_interval_ms <= 0
            || !(1..=super::sightings::BASE_LAG_MS).contains(&self.single_pair_ttl_ms)
            || !(1..=i64::from(u16::MAX)).contains(&self.sync_window_ms)
            || self.max_pairing_degree > u32::from(u16::MAX)
            || !(0..=self.sync_window_ms).contains(&self.tight_gap_ms)
            || self.resync_gap_ms <= 0
            || self.pair_horizon_ms < self.single_pair_ttl_ms
            || !(1..=super::interner::MAX_ENTRIES).contains(&self.max_accounts)
            || !(1..=super::interner::MAX_ENTRIES).contains(&self.max_targets)
            || self.max_pairs == 0
            || self.max_single_pairs == 0
            || self.max_state_bytes == 0
        {
            return Err("need positive windows and caps, max_recent_per_target >= 2, min_group_size >= 2, 0 <= min_density <= 1, 0 <= min_overlap, min_sync_share <= 1, 0 <= tight_gap_ms <= sync_window_ms, pair_horizon_ms >= single_pair_ttl_ms, max_accounts and max_targets from 1 to 16,777,214, single_pair_ttl_ms at most 2^31 (24.8 days), sync_window_ms at most 65,535, max_pairing_degree at most 65,535 (the first-sighting table's fields)".into());
        }
        self.findings.validate()
    }
}
