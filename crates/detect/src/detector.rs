//! The detector seam: the [`Detector`] trait every detector implements, the [`DetectorKind`]
//! constants that name it, its config contract, its state report and its schedules.
//!
//! Nothing here knows the set of detectors; that list lives in `registry`.

use crate::profile::Profiles;
use levee_model::{Alert, AlertKind, Event, Ts};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fmt::Debug;

/// The detector shape: one required method, optional hooks with no-op defaults.
pub trait Detector {
    /// Observe one event. Events come in `(ts, record)` order; rarely one comes
    /// behind the last tick (a partition that was idle, or a buffer overflow:
    /// the runtime counts those), and the detector must accept that. `profiles` is the
    /// shared account profile, already updated with `ev` (read-only; empty unless a
    /// detector declares [`DetectorKind::READS_PROFILES`]).
    fn on_event(&mut self, ev: &Event<'_>, profiles: &Profiles, out: &mut Vec<Alert>);

    /// Name the cache lines [`Detector::on_event`] will read first for `ev`, an event a
    /// few places ahead of the next one it sees, so that the runtime can ask the CPU for
    /// them early and the misses of several events overlap. A hint: it changes nothing,
    /// and a line named in vain costs only time.
    fn lookahead(&self, _ev: &Event<'_>, _want: &mut Lookahead) {}

    /// The watermark advanced to `watermark`: no event older than it will be
    /// seen again (bar late ones within grace). Evict windows, emit findings.
    fn on_tick(&mut self, _watermark: Ts, _out: &mut Vec<Alert>) {}

    /// End of input (file mode, shutdown): emit whatever is pending.
    fn on_flush(&mut self, _out: &mut Vec<Alert>) {}

    /// Every map the detector keeps, and its cap hits. Read by the runtime once per
    /// batch, so it must not walk the maps: sizes are kept as the maps change.
    fn stats(&self) -> DetectorStats {
        DetectorStats::default()
    }
}

/// Addresses of cache lines the detectors will read (see [`Detector::lookahead`]):
/// numbers only, nothing is read through them.
#[derive(Debug, Default)]
pub struct Lookahead(Vec<usize>);

impl Lookahead {
    pub fn want(&mut self, addr: Option<usize>) {
        if let Some(a) = addr {
            self.0.push(a);
        }
    }

    /// The addresses named since the last call, emptied.
    pub fn take(&mut self) -> std::vec::Drain<'_, usize> {
        self.0.drain(..)
    }
}

/// What names a detector and builds it from its config section.
pub trait DetectorKind: Detector + Sized {
    /// The one name: module, config section `[detectors.<NAME>]`, metric label
    /// `detector="<NAME>"`, and the alert's `detector` field `"<NAME>/<VERSION>"`.
    const NAME: &'static str;
    /// Bumped when the same input would give materially different alerts.
    const VERSION: u32;
    /// The contract's alert kind this detector emits.
    const ALERT_KIND: AlertKind;
    type Config: DetectorConfig;
    /// Whether it reads the shared account profile (the driver keeps one only if some
    /// enabled detector does).
    const READS_PROFILES: bool = false;

    fn new(cfg: Self::Config) -> Self;

    /// The alert's `detector` field.
    fn label() -> String {
        format!("{}/{}", Self::NAME, Self::VERSION)
    }
}

/// A detector's config section: typed, defaulted, `deny_unknown_fields`, self-validating.
pub trait DetectorConfig:
    Debug + Clone + Default + PartialEq + Serialize + DeserializeOwned
{
    fn enabled(&self) -> bool;

    /// Check the values together; the message names the offending keys.
    fn validate(&self) -> Result<(), String>;
}

/// A detector's memory budget: its own byte count ([`DetectorStats::bytes`]) checked on
/// event-time ticks. While over, the detector admits no new keys (each refusal counted in
/// `hits`) and shrinks its tables on the next sweep; existing entries keep their evidence.
/// The check is per tick; between checks, a table about to grow reserves its growth
/// from the headroom ([`Budget::admits_insert`]), so only the small growth of tables that are
/// not reserved against can overshoot it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    pub max_bytes: u64,
    over: bool,
    /// Bytes the detector may still grow by before the next check (table growth is
    /// reserved against it, see [`Budget::admits_insert`]).
    headroom: u64,
    /// Keys refused because the detector was over its budget (cumulative).
    pub hits: u64,
}

impl Budget {
    pub fn new(max_bytes: u64) -> Self {
        Budget {
            max_bytes,
            headroom: max_bytes,
            ..Budget::default()
        }
    }

    /// Compare the detector's current byte count with the budget; true when over.
    pub fn check(&mut self, bytes: u64) -> bool {
        self.over = bytes > self.max_bytes;
        self.headroom = self.max_bytes.saturating_sub(bytes);
        self.over
    }

    /// Whether a new key may go into a table holding `len` entries of `capacity`: not
    /// while over, and when the table is full (its next insert grows it) only if
    /// `table_bytes` more (a doubling's worth: growth is by half) fits the headroom left
    /// at the last check.
    /// A refusal is counted.
    pub fn admits_insert(&mut self, len: usize, capacity: usize, table_bytes: u64) -> bool {
        if !self.admits() {
            return false;
        }
        if len < capacity {
            return true;
        }
        if table_bytes > self.headroom {
            self.hits += 1;
            return false;
        }
        self.headroom -= table_bytes;
        true
    }

    pub fn is_over(&self) -> bool {
        self.over
    }

    /// Whether a new key may be admitted now; a refusal is counted.
    pub fn admits(&mut self) -> bool {
        if self.over {
            self.hits += 1;
        }
        !self.over
    }
}

/// The size of one map a detector keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapStats {
    /// A fixed name (a metric label): `"pairs"`, `"findings"`, ...
    pub map: &'static str,
    pub entries: u64,
    /// Approximate heap bytes: table slots plus owned strings.
    pub bytes: u64,
}

/// What a detector reports about its memory, for metrics and bound tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DetectorStats {
    /// Every map the detector keeps, findings included.
    pub maps: Vec<MapStats>,
    /// Times (cumulative) an insert was refused or an entry evicted because a cap was reached.
    pub cap_hits: u64,
    /// The configured memory budget and the keys it refused (cumulative).
    pub budget: Budget,
}

impl DetectorStats {
    pub fn entries(&self) -> u64 {
        self.maps.iter().map(|m| m.entries).sum()
    }

    pub fn bytes(&self) -> u64 {
        self.maps.iter().map(|m| m.bytes).sum()
    }

    /// The entry of `map`, if reported.
    pub fn map(&self, map: &str) -> Option<MapStats> {
        self.maps.iter().copied().find(|m| m.map == map)
    }
}

/// Approximate bytes of a hash table with `capacity` slots of `(K, V)` (hashbrown: one
/// control byte per slot), plus `heap` bytes the entries own.
pub fn table_bytes<K, V>(capacity: usize, heap: usize) -> u64 {
    (capacity * (std::mem::size_of::<(K, V)>() + 1) + heap) as u64
}

/// A string's stable 64-bit key: xxh3, seedless, so the same in every process and
/// release (snapshots hold keys). Hot maps key by it instead of owning the string.
/// Two strings with the same key are treated as one; for n distinct strings that
/// happens with probability about n^2 / 2^65 (3e-8 for a million).
pub fn key64(s: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(s.as_bytes())
}

/// An event-time schedule: "every `interval` of watermark".
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Every {
    interval: i64,
    last: Ts,
}

impl Every {
    pub fn new(interval: i64) -> Self {
        debug_assert!(interval > 0, "a schedule needs a positive interval");
        Every {
            interval,
            last: Ts::MIN,
        }
    }

    /// True (and restarts the period) when `watermark` is at least one interval past the last run.
    pub fn due(&mut self, watermark: Ts) -> bool {
        let due = watermark.saturating_sub(self.last) >= self.interval;
        if due {
            self.last = watermark;
        }
        due
    }
}
