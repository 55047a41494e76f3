//! A pair of accounts seen co-engaging on two or more targets: its exact evidence.

use super::config::LockstepConfig;
use super::sightings::Sighting;
use levee_model::Ts;
use serde::{Deserialize, Serialize};

/// Distinct targets remembered per pair (for de-duplication and evidence).
pub(super) const PAIR_TARGETS: usize = 8;

/// Tight co-engagements that make a pair tight (see [`Pair::is_tight`]).
const MIN_TIGHT: u16 = 3;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct Pair {
    pub(super) first: Ts,
    pub(super) last: Ts,
    pub(super) hits: u32,
    /// Co-engagements counted in `hits` less than `tight_gap_ms` apart.
    pub(super) tight: u16,
    pub(super) weight: f64,
    pub(super) gap_sum_ms: f64,
    /// The last distinct targets, newest first (`u32::MAX` = empty).
    pub(super) targets: [u32; PAIR_TARGETS],
    pub(super) is_edge: bool,
}

impl Pair {
    /// A pair admitted on its second target, with the evidence of its first sighting.
    pub(super) fn from_sighting(first: &Sighting, cfg: &LockstepConfig) -> Self {
        let mut targets = [u32::MAX; PAIR_TARGETS];
        targets[0] = first.target;
        Pair {
            first: first.first,
            last: first.last(),
            hits: 1,
            tight: u16::from(i64::from(first.gap_ms) < cfg.tight_gap_ms),
            weight: co_weight(first.degree, cfg.popular_degree),
            gap_sum_ms: f64::from(first.gap_ms),
            targets,
            is_edge: false,
        }
    }

    /// Whether the pair's co-engagements were mostly tight: at least [`MIN_TIGHT`] of
    /// them, and at least half, less than `tight_gap_ms` apart. By chance a synchronized
    /// co-engagement's gap is spread over the whole window (1 in 12 within 5 s of a 60 s
    /// window), so tight co-engagements are automation's mark, and such a pair needs no
    /// synchronized share.
    pub(super) fn is_tight(&self) -> bool {
        self.tight >= MIN_TIGHT && 2 * u32::from(self.tight) >= self.hits
    }
}

/// The weight of one co-engagement on a post with `degree` engagements so far.
pub(super) fn co_weight(degree: u32, popular_degree: f64) -> f64 {
    1.0 / (1.0 + (1.0 + f64::from(degree) / popular_degree).ln())
}

pub(super) fn pair_key(a: u32, b: u32) -> u64 {
    (u64::from(a.min(b)) << 32) | u64::from(a.max(b))
}

pub(super) fn unpack(k: u64) -> (u32, u32) {
    ((k >> 32) as u32, k as u32)
}
