//! The pipeline: record bytes -> decode -> per-lane event time -> reorder buffer -> detectors.
//!
//! Every record ends in exactly one place: a dead letter, or the detectors. Accepted
//! events wait in the [`ReorderBuffer`] until the release watermark ([`Lanes`]) passes
//! them, and leave in canonical order with the tick boundaries they cross interleaved,
//! so the alerts are a function of the set of events, not of arrival order.

use crate::clock::{Lane, Lanes, Ticker, Timeliness};
use crate::config::LeveeConfig;
use crate::dead_letter::{DeadLetter, Position};
use crate::reorder::{Released, ReorderBuffer, Run};
use levee_detect::{DetectorStats, Detectors, Lookahead};
use levee_model::{decode, decode_text, Alert, AlertKind, Event, EventType, Limits, Reason, Ts};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Cumulative counts, kept as plain arrays on the hot path and published per batch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Records offered to the pipeline (events + dead letters).
    pub records: u64,
    /// Accepted events, by [`EventType::index`] (held for release or handed over).
    pub events: [u64; EventType::ALL.len()],
    /// Dead letters, by [`Reason::index`].
    pub dead_letters: [u64; Reason::ALL.len()],
    /// Events behind their lane's lateness bound but within grace (processed, in order).
    pub late_processed: u64,
    /// Events that arrived behind the release watermark (from a lane that was idle, new or
    /// revoked while the others moved on, or after an overflow) and were handed over at once.
    pub out_of_order: u64,
    /// Records released early because the reorder buffer reached its byte bound.
    pub reorder_overflow: u64,
    /// Alerts emitted, by [`AlertKind::index`].
    pub alerts: [u64; AlertKind::ALL.len()],
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
/// snapshots it, reorder buffer included, to survive restarts.
#[derive(Debug, Serialize, Deserialize)]
pub struct Pipeline {
    #[serde(skip)]
    limits: Limits,
    #[serde(skip)]
    max_held_bytes: usize,
    lanes: Lanes,
    ticker: Ticker,
    held: ReorderBuffer,
    /// Every held event before this has been released; arrivals before it are out of order.
    released: Option<Ts>,
    detectors: Detectors,
    counters: Counters,
    /// Scratch for the detectors' cache hints.
    #[serde(skip)]
    lookahead: Lookahead,
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
            max_held_bytes: r.reorder_max_bytes,
            lanes: Lanes::new(r.allowed_lateness_ms, r.late_grace_ms),
            ticker: Ticker::new(r.tick_interval_ms),
            held: ReorderBuffer::default(),
            released: None,
            detectors,
            counters: Counters::default(),
            lookahead: Lookahead::default(),
        }
    }

    /// Process one record read from `lane`. Exactly one of: the event is accepted (held
    /// for release, or handed over at once if it is behind the release watermark), or a
    /// dead letter is pushed to `dead`. Alerts from what this releases go to `alerts`.
    pub fn process(
        &mut self,
        lane: Lane,
        bytes: &[u8],
        pos: Position,
        alerts: &mut Vec<Alert>,
        dead: &mut Vec<DeadLetter>,
    ) {
        self.counters.records += 1;
        let (text, ev) = match decode_text(bytes, &self.limits) {
            Ok(decoded) => decoded,
            Err(e) => return self.dead(e.reason, e.detail, bytes, pos, dead),
        };
        match self.lanes.observe(lane, ev.ts) {
            Timeliness::TooLate => return self.dead(Reason::Late, "ts", bytes, pos, dead),
            Timeliness::Late => self.counters.late_processed += 1,
            Timeliness::OnTime => {}
        }
        self.counters.events[ev.event_type().index()] += 1;
        let before = alerts.len();
        if self.released.is_some_and(|r| ev.ts < r) {
            self.counters.out_of_order += 1;
            self.detectors.on_event(&ev, alerts);
        } else {
            self.held.push(text, &ev);
        }
        self.release(alerts);
        self.count_alerts(before, alerts);
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
            d.truncated |= truncated;
        }
    }

    /// The source reads `lane` now (a partition was assigned). See [`Lanes::assign`].
    pub fn assign_lane(&mut self, lane: Lane) {
        self.lanes.assign(lane);
    }

    /// The source stopped reading `lane`; what it held is released in order as usual.
    pub fn revoke_lane(&mut self, lane: Lane, alerts: &mut Vec<Alert>) {
        self.lanes.revoke(lane);
        self.release_counted(alerts);
    }

    /// `lane` is caught up and silent (idle) or not; idle lanes do not hold the watermark.
    pub fn set_lane_idle(&mut self, lane: Lane, idle: bool, alerts: &mut Vec<Alert>) {
        self.lanes.set_idle(lane, idle);
        self.release_counted(alerts);
    }

    /// Lanes more than `drift_ms` of event time ahead of the slowest: pause them.
    pub fn lanes_ahead(&self, drift_ms: i64) -> Vec<Lane> {
        self.lanes.ahead(drift_ms)
    }

    /// `(lane, newest event time, idle)` of every assigned lane.
    pub fn lanes(&self) -> Vec<(Lane, Option<Ts>, bool)> {
        self.lanes.assigned().collect()
    }

    /// End of input: release everything held, tick up to the newest event, flush every detector.
    pub fn finish(&mut self, alerts: &mut Vec<Alert>) {
        let before = alerts.len();
        self.release_before(Ts::MAX, alerts);
        if let Some(newest) = self.lanes.newest() {
            self.released = self.released.max(Some(newest));
            if self.ticker.last().is_some() {
                for b in self.ticker.due(newest) {
                    self.detectors.on_tick(b, alerts);
                }
            }
        }
        self.detectors.on_flush(alerts);
        self.count_alerts(before, alerts);
    }

    /// Rebuild a pipeline from a snapshot taken with `serde`, applying `cfg`'s limits.
    pub fn restored(mut self, cfg: &LeveeConfig) -> Self {
        self.limits = Limits {
            max_record_bytes: cfg.runtime.max_record_bytes,
        };
        self.max_held_bytes = cfg.runtime.reorder_max_bytes;
        self.held.recount();
        self
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The release watermark: every event before it has been handed to the detectors.
    pub fn watermark(&self) -> Option<i64> {
        self.released
    }

    /// How far behind its lane's newest event an event may be (lateness + grace).
    pub fn hold_ms(&self) -> i64 {
        self.lanes.hold()
    }

    /// Bytes and records waiting in the reorder buffer.
    pub fn held(&self) -> (usize, usize) {
        (self.held.bytes(), self.held.len())
    }

    pub fn detector_stats(&self) -> Vec<(&'static str, DetectorStats)> {
        self.detectors.stats()
    }

    pub fn detector_names(&self) -> Vec<&'static str> {
        self.detectors.names()
    }

    fn release_counted(&mut self, alerts: &mut Vec<Alert>) {
        let before = alerts.len();
        self.release(alerts);
        self.count_alerts(before, alerts);
    }

    /// Hand over everything the release watermark has passed, with the ticks it crossed;
    /// then, if the buffer is over its byte bound, the oldest records regardless.
    fn release(&mut self, alerts: &mut Vec<Alert>) {
        if let Some(w) = self.lanes.watermark() {
            // Whole buckets (~1 s of event time) at a time: runs long enough to look ahead in.
            let w = release_bound(w);
            if self.released.is_none_or(|r| w > r) {
                self.release_before(w, alerts);
                self.released = Some(w);
                // Ticks start with the first event handed over, so their sequence is a
                // function of the events, not of how far the watermark had run by then.
                if self.ticker.last().is_some() {
                    for b in self.ticker.due(w) {
                        self.detectors.on_tick(b, alerts);
                    }
                }
            }
        }
        while self.held.bytes() > self.max_held_bytes {
            let Some(h) = self.held.pop() else { break };
            self.counters.reorder_overflow += 1;
            self.released = self.released.max(Some(h.ts.saturating_add(1)));
            let ev = event_of(&h, &self.limits);
            deliver(
                h.ts,
                ev.as_ref(),
                &mut self.ticker,
                &mut self.detectors,
                alerts,
            );
        }
    }

    /// Hand every held record before `bound` to the detectors, a run at a time.
    fn release_before(&mut self, bound: Ts, alerts: &mut Vec<Alert>) {
        let (ticker, detectors, limits, want) = (
            &mut self.ticker,
            &mut self.detectors,
            &self.limits,
            &mut self.lookahead,
        );
        self.held.release_before(bound, |run| {
            deliver_run(run, ticker, detectors, limits, want, alerts);
        });
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
        // One rule for every source: a dead letter keeps at most `max_record_bytes`.
        let keep = bytes.len().min(self.limits.max_record_bytes);
        dead.push(DeadLetter {
            reason,
            detail,
            position,
            raw: bytes[..keep].to_vec(),
            truncated: keep < bytes.len(),
        });
    }

    fn count_alerts(&mut self, before: usize, alerts: &[Alert]) {
        for a in &alerts[before..] {
            debug_assert!(
                a.accounts.windows(2).all(|w| w[0] < w[1]),
                "accounts sorted and unique"
            );
            self.counters.alerts[a.kind.index()] += 1;
        }
    }
}

/// How far ahead of the record being handed over the runtime asks the cache for a
/// record's own lines (measured at 4, 6 and 8: docs/benchmarks.md)...
const PREFETCH_AHEAD: usize = 6;
/// ... and, nearer, reads its event and asks for the detectors' first lines.
const LOOKAHEAD: usize = 3;

/// The release bound for watermark `w`: the start of its bucket, so that records leave
/// a whole bucket at a time. The interleaving of ticks and events does not change (a
/// tick still comes after every event before it and before every event after it).
fn release_bound(w: Ts) -> Ts {
    w & !((1 << crate::reorder::BUCKET_BITS) - 1)
}

/// The event of a released record: re-borrowed, or decoded again if it was not packed.
fn event_of<'a>(h: &Released<'a>, limits: &Limits) -> Option<Event<'a>> {
    h.event()
        .or_else(|| match decode(h.record().as_bytes(), limits) {
            Ok(ev) => Some(ev),
            Err(e) => {
                debug_assert!(false, "a held record was accepted once: {e:?}");
                None
            }
        })
}

/// Hand a run of released records to the detectors in order, each after the ticks
/// before its time. [`LOOKAHEAD`] records ahead, the detectors name the lines they will
/// read (see `Detector::lookahead`) and the runtime asks the cache for them, so that the
/// misses of several events overlap instead of following one another.
fn deliver_run(
    run: Run<'_>,
    ticker: &mut Ticker,
    detectors: &mut Detectors,
    limits: &Limits,
    want: &mut Lookahead,
    alerts: &mut Vec<Alert>,
) {
    let hint = !detectors.is_empty();
    let mut ahead = VecDeque::with_capacity(LOOKAHEAD + 1);
    let mut read = |i: usize, detectors: &Detectors, ahead: &mut VecDeque<_>| {
        run.prefetch(i + PREFETCH_AHEAD - LOOKAHEAD);
        let Some(h) = run.get(i) else { return };
        let ev = event_of(&h, limits);
        if let (true, Some(ev)) = (hint, &ev) {
            detectors.lookahead(ev, want);
            want.take().for_each(crate::prefetch::prefetch_addr);
        }
        ahead.push_back((h.ts, ev));
    };
    for i in 0..LOOKAHEAD.min(run.len()) {
        read(i, detectors, &mut ahead);
    }
    for i in 0..run.len() {
        read(i + LOOKAHEAD, detectors, &mut ahead);
        let Some((ts, ev)) = ahead.pop_front() else {
            break;
        };
        deliver(ts, ev.as_ref(), ticker, detectors, alerts);
    }
    debug_assert!(ahead.is_empty(), "every record of the run is handed over");
}

/// Hand one released record to the detectors, after the ticks before its time.
fn deliver(
    ts: Ts,
    ev: Option<&Event<'_>>,
    ticker: &mut Ticker,
    detectors: &mut Detectors,
    alerts: &mut Vec<Alert>,
) {
    for b in ticker.due(ts) {
        detectors.on_tick(b, alerts);
    }
    if let Some(ev) = ev {
        detectors.on_event(ev, alerts);
    }
}

/// Labels in counter order, for summaries and metrics.
pub fn event_labels() -> [&'static str; EventType::ALL.len()] {
    EventType::ALL.map(EventType::as_str)
}
pub fn reason_labels() -> [&'static str; Reason::ALL.len()] {
    Reason::ALL.map(Reason::as_str)
}
pub fn kind_labels() -> [&'static str; AlertKind::ALL.len()] {
    AlertKind::ALL.map(AlertKind::as_str)
}
