//! The pipeline: record bytes -> decode -> event clock -> detectors -> alerts, or a dead letter.

use crate::clock::{EventClock, Timeliness};
use crate::config::LeveeConfig;
use crate::dead_letter::{DeadLetter, Position};
use levee_detect::{DetectorStats, Detectors};
use levee_model::{decode, Alert, AlertKind, EventType, Limits, Reason};
use serde::{Deserialize, Serialize};

/// Cumulative counts, kept as plain arrays on the hot path and published per batch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Records offered to the pipeline (events + dead letters).
    pub records: u64,
    /// Processed events, by [`EventType::index`].
    pub events: [u64; 6],
    /// Dead letters, by [`Reason::index`].
    pub dead_letters: [u64; 11],
    /// Events behind the watermark but within grace (processed).
    pub late_processed: u64,
    /// Alerts emitted, by [`AlertKind::index`].
    pub alerts: [u64; 6],
}

impl Counters {
    pub fn events_total(&self) -> u64 {
        self.events.iter().sum()
    }
    pub fn dead_letters_total(&self) -> u64 {
        self.dead_letters.iter().sum()
    }
    pub fn alerts_total(&self) -> u64 {
        self.alerts.iter().sum()
    }
}

/// Drives the detectors over a stream of raw records. Synchronous and IO-free:
/// sources feed it bytes, sinks drain the alerts and dead letters it returns.
/// Serializable (all but the limits, which come from the config): service mode
/// snapshots it to survive restarts.
#[derive(Debug, Serialize, Deserialize)]
pub struct Pipeline {
    #[serde(skip)]
    limits: Limits,
    clock: EventClock,
    detectors: Detectors,
    counters: Counters,
}

impl Pipeline {
    pub fn new(cfg: &LeveeConfig) -> Self {
        Self::with_detectors(cfg, Detectors::new(&cfg.detectors))
    }

    pub fn with_detectors(cfg: &LeveeConfig, detectors: Detectors) -> Self {
        let r = &cfg.runtime;
        Pipeline {
            limits: Limits {
                max_record_bytes: r.max_record_bytes,
            },
            clock: EventClock::new(r.allowed_lateness_ms, r.late_grace_ms, r.tick_interval_ms),
            detectors,
            counters: Counters::default(),
        }
    }

    /// Process one record. Exactly one of: the event reaches the detectors, or a
    /// dead letter is pushed to `dead`. Alerts caused by it (or by the tick it
    /// triggers) are pushed to `alerts`.
    pub fn process(
        &mut self,
        bytes: &[u8],
        pos: Position,
        alerts: &mut Vec<Alert>,
        dead: &mut Vec<DeadLetter>,
    ) {
        self.counters.records += 1;
        let ev = match decode(bytes, &self.limits) {
            Ok(ev) => ev,
            Err(e) => return self.dead(e.reason, e.detail, bytes, pos, dead),
        };
        match self.clock.observe(ev.ts) {
            Timeliness::TooLate => return self.dead(Reason::Late, "ts", bytes, pos, dead),
            Timeliness::Late => self.counters.late_processed += 1,
            Timeliness::OnTime => {}
        }
        self.counters.events[ev.event_type().index()] += 1;
        let before = alerts.len();
        self.detectors.on_event(&ev, alerts);
        if let Some(wm) = self.clock.due_tick() {
            self.detectors.on_tick(wm, alerts);
        }
        self.count_alerts(&alerts[before..]);
    }

    /// A record that cannot even be read (over the size limit while reading, say).
    pub fn reject(
        &mut self,
        reason: Reason,
        detail: &'static str,
        bytes: &[u8],
        truncated: bool,
        pos: Position,
        dead: &mut Vec<DeadLetter>,
    ) {
        self.counters.records += 1;
        self.dead(reason, detail, bytes, pos, dead);
        if let Some(d) = dead.last_mut() {
            d.truncated = truncated;
        }
    }

    /// End of input: advance the watermark to the newest event and flush every detector.
    pub fn finish(&mut self, alerts: &mut Vec<Alert>) {
        let before = alerts.len();
        if let Some(wm) = self.clock.close() {
            self.detectors.on_tick(wm, alerts);
        }
        self.detectors.on_flush(alerts);
        self.count_alerts(&alerts[before..]);
    }

    /// Rebuild a pipeline from a snapshot taken with `serde`, applying `cfg`'s limits.
    pub fn restored(mut self, cfg: &LeveeConfig) -> Self {
        self.limits = Limits {
            max_record_bytes: cfg.runtime.max_record_bytes,
        };
        self
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    pub fn watermark(&self) -> Option<i64> {
        self.clock.watermark()
    }

    pub fn detector_stats(&self) -> Vec<(&'static str, DetectorStats)> {
        self.detectors.stats()
    }

    pub fn detector_names(&self) -> Vec<&'static str> {
        self.detectors.names()
    }

    fn dead(
        &mut self,
        reason: Reason,
        detail: &'static str,
        bytes: &[u8],
        position: Position,
        dead: &mut Vec<DeadLetter>,
    ) {
        self.counters.dead_letters[reason.index()] += 1;
        dead.push(DeadLetter {
            reason,
            detail,
            position,
            raw: bytes.to_vec(),
            truncated: false,
        });
    }

    fn count_alerts(&mut self, new: &[Alert]) {
        for a in new {
            debug_assert!(
                a.accounts.windows(2).all(|w| w[0] < w[1]),
                "accounts sorted and unique"
            );
            self.counters.alerts[a.kind.index()] += 1;
        }
    }
}

/// Labels in counter order, for summaries and metrics.
pub fn event_labels() -> [&'static str; 6] {
    EventType::ALL.map(EventType::as_str)
}
pub fn reason_labels() -> [&'static str; 11] {
    Reason::ALL.map(Reason::as_str)
}
pub fn kind_labels() -> [&'static str; 6] {
    AlertKind::ALL.map(AlertKind::as_str)
}
