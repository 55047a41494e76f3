//! Ground truth of a scenario: planted groups and labelled organic cohorts.

use levee_model::{AlertKind, Ts};
use serde::{Deserialize, Serialize};

/// Everything `levee eval` needs to score alerts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Truth {
    pub seed: u64,
    pub start: Ts,
    pub end: Ts,
    /// Organic accounts (every account not in a planted group), for false-positive rates.
    pub organic_accounts: usize,
    pub groups: Vec<Group>,
    /// Organic accounts that look suspicious and must not be flagged (hard negatives).
    pub cohorts: Vec<Cohort>,
}

/// One planted campaign.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub id: String,
    pub kind: AlertKind,
    /// Sub-type, e.g. `tight` or `stealthy` bot farm.
    pub variant: String,
    pub accounts: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    pub start: Ts,
    pub end: Ts,
}

/// A named set of organic accounts with a hard-to-tell-apart behaviour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cohort {
    pub name: String,
    pub accounts: Vec<String>,
}
