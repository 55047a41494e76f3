//! What lockstep keeps per account: distinct-target count and a ring of recent target tags.

use serde::{Deserialize, Serialize};

/// Distinct targets remembered per account (for the synchronized-share test).
pub(super) const ACCOUNT_RECENT: usize = 16;

/// What lockstep keeps per account: its count of distinct targets (for the overlap
/// test) and a 16-bit tag of each of its last distinct targets, newest first (0 = empty).
/// Tags halve the ring; two targets share one with odds 1 in 65,535, so the
/// synchronized-share test may count a common target that is not (256 comparisons a
/// test: one miscount in ~250 tests, by one).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(super) struct Activity {
    pub(super) engagements: u32,
    recent: [u16; ACCOUNT_RECENT],
}

impl Default for Activity {
    fn default() -> Self {
        Activity {
            engagements: 0,
            recent: [0; ACCOUNT_RECENT],
        }
    }
}

/// A post's 16-bit tag in accounts' rings (never 0).
fn tag(post: u32) -> u16 {
    ((u64::from(post).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 48) as u16).max(1)
}

impl Activity {
    pub(super) fn saw(&mut self, post: u32) {
        let t = tag(post);
        if !self.recent.contains(&t) {
            self.engagements = self.engagements.saturating_add(1);
            self.recent.rotate_right(1);
            self.recent[0] = t;
        }
    }
}

/// Of the targets both accounts engaged lately, how many the pair engaged in sync
/// (`synced`: its last distinct synchronized targets), and how many there are:
/// coordinated accounts engage their common targets together, fans of one idol mostly
/// at different times.
pub(super) fn synced_of_common(a: &Activity, b: &Activity, synced: &[u32]) -> (usize, usize) {
    let synced: Vec<u16> = synced
        .iter()
        .filter(|t| **t != u32::MAX)
        .map(|t| tag(*t))
        .collect();
    let common = a.recent.iter().filter(|t| **t != 0 && b.recent.contains(t));
    common.fold((0, 0), |(s, c), t| {
        (s + usize::from(synced.contains(t)), c + 1)
    })
}
