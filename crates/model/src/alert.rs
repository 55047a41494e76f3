//! The alert model (contract v1) and the stable, deterministic alert ids.

use serde::{Deserialize, Serialize};

/// The `v` every alert carries.
pub const ALERT_CONTRACT_VERSION: u32 = 1;

/// One finding, as written to the alert topic or file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub v: u32,
    pub alert_id: String,
    pub revision: u32,
    pub kind: AlertKind,
    pub severity: Severity,
    pub score: f64,
    pub window: Window,
    /// Processing time of emission (ms). Detectors leave it 0; the sink stamps it.
    pub emitted_at: i64,
    /// Every implicated account, sorted and unique.
    pub accounts: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    pub summary: String,
    /// Detector-specific figures. A `BTreeMap` underneath, so key order is stable.
    pub evidence: serde_json::Map<String, serde_json::Value>,
    /// `name/version` of the emitting detector.
    pub detector: String,
}

/// The alert kinds of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    BotFarm,
    CopyCampaign,
    BatchRegistration,
    ZombieInflation,
    HotlistManipulation,
    DeviceFarm,
}

impl AlertKind {
    pub const ALL: [AlertKind; 6] = [
        AlertKind::BotFarm,
        AlertKind::CopyCampaign,
        AlertKind::BatchRegistration,
        AlertKind::ZombieInflation,
        AlertKind::HotlistManipulation,
        AlertKind::DeviceFarm,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::BotFarm => "bot_farm",
            AlertKind::CopyCampaign => "copy_campaign",
            AlertKind::BatchRegistration => "batch_registration",
            AlertKind::ZombieInflation => "zombie_inflation",
            AlertKind::HotlistManipulation => "hotlist_manipulation",
            AlertKind::DeviceFarm => "device_farm",
        }
    }

    /// Short prefix of this kind's alert ids (`bf-...`).
    pub fn id_prefix(self) -> &'static str {
        match self {
            AlertKind::BotFarm => "bf",
            AlertKind::CopyCampaign => "cc",
            AlertKind::BatchRegistration => "br",
            AlertKind::ZombieInflation => "zi",
            AlertKind::HotlistManipulation => "hm",
            AlertKind::DeviceFarm => "df",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        AlertKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
}

impl Severity {
    /// The conventional mapping from a 0..1 score.
    pub fn from_score(score: f64) -> Self {
        if score >= 0.8 {
            Severity::High
        } else if score >= 0.5 {
            Severity::Medium
        } else {
            Severity::Low
        }
    }
}

/// Event-time span of an alert's evidence, in ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub start: i64,
    pub end: i64,
}

/// A stable alert id `"<prefix>-<16 hex>"` from the parts of a finding's first evidence.
///
/// FNV-1a 64 over the parts (each followed by a 0xff separator): the same on every
/// platform, Rust version and run, unlike `std`'s `DefaultHasher`.
pub fn stable_id(kind: AlertKind, parts: &[&str]) -> String {
    let h = fnv1a64(
        parts
            .iter()
            .flat_map(|p| p.bytes().chain(std::iter::once(0xff))),
    );
    format!("{}-{h:016x}", kind.id_prefix())
}

/// FNV-1a 64 of `bytes`: stable across platforms, Rust versions and runs.
pub fn fnv1a64(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
