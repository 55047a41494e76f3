//! Prometheus metrics in an explicit registry, published once per batch from [`Counters`].
//!
//! Names follow `levee_<name>_<unit>_total`; labels come from closed sets
//! (event type, reason, alert kind, detector name), never ids, addresses or topics.

use crate::pipeline::{event_labels, kind_labels, reason_labels, Counters, Pipeline};
use levee_detect::DetectorStats;
use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// The closed set of `levee_errors_total` labels `(stage, error_type)`: each one is exported
/// from the start (at zero), so a rule or panel over it has data before the first error.
pub const ERROR_CODES: [(&str, &str); 6] = [
    ("consume", "broker_unreachable"),
    ("consume", "kafka_error"),
    ("consume", "client_error"),
    ("produce", "delivery_failed"),
    ("produce", "delivery_timeout"),
    ("snapshot", "write_failed"),
];

/// Every metric Levee exports, registered in one [`Registry`] owned by the process.
#[derive(Debug, Clone)]
pub struct Metrics {
    pub registry: Registry,
    records: IntCounter,
    events: IntCounterVec,
    dead_letters: IntCounterVec,
    late: IntCounterVec,
    alerts: IntCounterVec,
    state_entries: IntGaugeVec,
    state_bytes: IntGaugeVec,
    snapshot_restores: IntCounterVec,
    cap_hits: IntCounterVec,
    budget_hits: IntCounterVec,
    budget_bytes: IntGaugeVec,
    watermark: IntGauge,
    errors: IntCounterVec,
    batch_seconds: Histogram,
    consumer_lag: IntGaugeVec,
    partitions: IntGaugeVec,
    watermark_lag: prometheus::Gauge,
    replays_skipped: IntCounter,
    reorder_bytes: IntGauge,
    reorder_records: IntGauge,
    reorder_overflow: IntCounter,
    partition_watermark: IntGaugeVec,
    pauses: IntCounter,
    snapshot_writes: IntCounterVec,
    snapshot_bytes: IntGauge,
    /// What was last published, so each batch adds only its delta.
    published: Counters,
    /// Per detector: (cap hits, budget hits) last published.
    published_caps: Vec<(&'static str, u64, u64)>,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| -> Result<IntCounter, prometheus::Error> {
            let c = IntCounter::new(name, help)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let counter_vec =
            |name: &str, help: &str, label: &str| -> Result<IntCounterVec, prometheus::Error> {
                let c = IntCounterVec::new(Opts::new(name, help), &[label])?;
                registry.register(Box::new(c.clone()))?;
                Ok(c)
            };
        let records = counter(
            "levee_records_total",
            "Records read from the input (events and dead letters).",
        )?;
        let events = counter_vec("levee_events_total", "Events processed, by type.", "type")?;
        let dead_letters = counter_vec(
            "levee_dead_letters_total",
            "Records dead-lettered, by reason.",
            "reason",
        )?;
        let late = counter_vec(
            "levee_late_events_total",
            "Events behind the watermark, by outcome.",
            "outcome",
        )?;
        let alerts = counter_vec(
            "levee_alerts_total",
            "Alerts emitted (every revision), by kind.",
            "kind",
        )?;
        let cap_hits = counter_vec(
            "levee_detector_cap_hits_total",
            "Inserts refused or entries evicted because a detector cap was reached.",
            "detector",
        )?;
        let budget_hits = counter_vec(
            "levee_detector_budget_hits_total",
            "New keys a detector refused because it was over its memory budget.",
            "detector",
        )?;
        let budget_bytes = IntGaugeVec::new(
            Opts::new(
                "levee_detector_state_budget_bytes",
                "A detector's configured memory budget (compare with levee_detector_state_bytes).",
            ),
            &["detector"],
        )?;
        registry.register(Box::new(budget_bytes.clone()))?;
        let state_entries = IntGaugeVec::new(
            Opts::new(
                "levee_detector_state_entries",
                "Entries held in one of a detector's maps.",
            ),
            &["detector", "map"],
        )?;
        registry.register(Box::new(state_entries.clone()))?;
        let state_bytes = IntGaugeVec::new(
            Opts::new(
                "levee_detector_state_bytes",
                "Approximate heap bytes of one of a detector's maps.",
            ),
            &["detector", "map"],
        )?;
        registry.register(Box::new(state_bytes.clone()))?;
        let snapshot_restores = counter_vec(
            "levee_snapshot_restores_total",
            "State snapshots read at start, by outcome (restored, absent, or ignored: schema, topic, config, undecodable).",
            "outcome",
        )?;
        let watermark = IntGauge::new(
            "levee_watermark_milliseconds",
            "Current event-time watermark (ms since the epoch).",
        )?;
        registry.register(Box::new(watermark.clone()))?;
        let errors = IntCounterVec::new(
            Opts::new(
                "levee_errors_total",
                "Errors outside the data path, by stage (consume, produce) and type.",
            ),
            &["stage", "error_type"],
        )?;
        registry.register(Box::new(errors.clone()))?;
        let batch_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "levee_batch_duration_seconds",
                "Wall time to process one batch and have its output acknowledged.",
            )
            .buckets(vec![
                0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
        )?;
        registry.register(Box::new(batch_seconds.clone()))?;
        let consumer_lag = IntGaugeVec::new(
            Opts::new(
                "levee_consumer_lag_records",
                "Records between the next offset to read and the partition's high watermark.",
            ),
            &["partition"],
        )?;
        registry.register(Box::new(consumer_lag.clone()))?;
        let partitions = IntGaugeVec::new(
            Opts::new(
                "levee_kafka_partitions",
                "Partitions of the events topic: in the topic, assigned to this replica, paused (ahead in event time), idle (caught up and silent).",
            ),
            &["scope"],
        )?;
        registry.register(Box::new(partitions.clone()))?;
        let watermark_lag = prometheus::Gauge::new(
            "levee_watermark_lag_seconds",
            "Wall clock minus the event-time watermark (service mode).",
        )?;
        registry.register(Box::new(watermark_lag.clone()))?;
        let replays_skipped = counter(
            "levee_replayed_records_skipped_total",
            "Records consumed again after a rebalance that the in-memory state already holds (not processed twice).",
        )?;
        let reorder_bytes = IntGauge::new(
            "levee_reorder_buffer_bytes",
            "Bytes held in the reorder buffer, waiting for the watermark (records, their packed events, per-entry overhead).",
        )?;
        registry.register(Box::new(reorder_bytes.clone()))?;
        let reorder_records = IntGauge::new(
            "levee_reorder_buffer_records",
            "Records held in the reorder buffer, waiting for the watermark.",
        )?;
        registry.register(Box::new(reorder_records.clone()))?;
        let reorder_overflow = counter(
            "levee_reorder_overflow_total",
            "Records released before the watermark because the reorder buffer reached reorder_max_bytes.",
        )?;
        let partition_watermark = IntGaugeVec::new(
            Opts::new(
                "levee_partition_watermark_milliseconds",
                "Per input lane (Kafka partition): newest event time minus lateness and grace.",
            ),
            &["partition"],
        )?;
        registry.register(Box::new(partition_watermark.clone()))?;
        let pauses = counter(
            "levee_kafka_pauses_total",
            "Partitions paused for running ahead of the slowest in event time (service mode).",
        )?;
        let snapshot_writes = counter_vec(
            "levee_snapshot_writes_total",
            "State snapshots written (service mode), by outcome (written, failed).",
            "outcome",
        )?;
        let snapshot_bytes = IntGauge::new(
            "levee_snapshot_bytes",
            "Size of the last state snapshot written.",
        )?;
        registry.register(Box::new(snapshot_bytes.clone()))?;
        let start_time = prometheus::Gauge::new(
            "levee_process_start_time_seconds",
            "Wall-clock start of this process (seconds since the epoch): changes on every restart, which counters restored from a snapshot do not show.",
        )?;
        // Set once: the registry keeps it.
        start_time.set(crate::drive::now_ms() as f64 / 1000.0);
        registry.register(Box::new(start_time))?;
        // Pre-create every label value so dashboards and alert rules see zeros, not gaps.
        for (stage, error_type) in ERROR_CODES {
            errors.with_label_values(&[stage, error_type]);
        }
        for l in ["written", "failed"] {
            snapshot_writes.with_label_values(&[l]);
        }
        for l in event_labels() {
            events.with_label_values(&[l]);
        }
        for l in reason_labels() {
            dead_letters.with_label_values(&[l]);
        }
        for l in kind_labels() {
            alerts.with_label_values(&[l]);
        }
        for l in ["processed", "dead_lettered", "out_of_order"] {
            late.with_label_values(&[l]);
        }
        Ok(Metrics {
            registry,
            records,
            events,
            dead_letters,
            late,
            alerts,
            state_entries,
            state_bytes,
            snapshot_restores,
            cap_hits,
            budget_hits,
            budget_bytes,
            watermark,
            errors,
            batch_seconds,
            consumer_lag,
            partitions,
            watermark_lag,
            replays_skipped,
            reorder_bytes,
            reorder_records,
            reorder_overflow,
            partition_watermark,
            pauses,
            snapshot_writes,
            snapshot_bytes,
            published: Counters::default(),
            published_caps: Vec::new(),
        })
    }

    /// Publish one batch of a pipeline: counters, detector state, reorder buffer, lanes.
    pub fn publish_pipeline(&mut self, p: &Pipeline) {
        self.publish(p.counters(), &p.detector_stats(), p.watermark());
        let (bytes, records) = p.held();
        self.reorder_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        self.reorder_records
            .set(i64::try_from(records).unwrap_or(i64::MAX));
        let hold = p.hold_ms();
        for (lane, newest, _) in p.lanes() {
            if let Some(n) = newest {
                self.partition_watermark
                    .with_label_values(&[&lane.to_string()])
                    .set(n.saturating_sub(hold));
            }
        }
    }

    /// Publish one batch: add what changed since the last call.
    pub fn publish(
        &mut self,
        c: &Counters,
        detectors: &[(&'static str, DetectorStats)],
        watermark: Option<i64>,
    ) {
        let p = &self.published;
        self.records.inc_by(c.records - p.records);
        for (i, l) in event_labels().iter().enumerate() {
            self.events
                .with_label_values(&[l])
                .inc_by(c.events[i] - p.events[i]);
        }
        for (i, l) in reason_labels().iter().enumerate() {
            self.dead_letters
                .with_label_values(&[l])
                .inc_by(c.dead_letters[i] - p.dead_letters[i]);
        }
        let late_idx = levee_model::Reason::Late.index();
        self.late
            .with_label_values(&["processed"])
            .inc_by(c.late_processed - p.late_processed);
        self.late
            .with_label_values(&["dead_lettered"])
            .inc_by(c.dead_letters[late_idx] - p.dead_letters[late_idx]);
        self.late
            .with_label_values(&["out_of_order"])
            .inc_by(c.out_of_order - p.out_of_order);
        self.reorder_overflow
            .inc_by(c.reorder_overflow - p.reorder_overflow);
        for (i, l) in kind_labels().iter().enumerate() {
            self.alerts
                .with_label_values(&[l])
                .inc_by(c.alerts[i] - p.alerts[i]);
        }
        for (name, s) in detectors {
            for m in &s.maps {
                let labels = [*name, m.map];
                self.state_entries
                    .with_label_values(&labels)
                    .set(i64::try_from(m.entries).unwrap_or(i64::MAX));
                self.state_bytes
                    .with_label_values(&labels)
                    .set(i64::try_from(m.bytes).unwrap_or(i64::MAX));
            }
            let (caps, budget) = self
                .published_caps
                .iter()
                .find(|(n, _, _)| n == name)
                .map_or((0, 0), |(_, c, b)| (*c, *b));
            self.cap_hits
                .with_label_values(&[name])
                .inc_by(s.cap_hits.saturating_sub(caps));
            self.budget_hits
                .with_label_values(&[name])
                .inc_by(s.budget.hits.saturating_sub(budget));
            self.budget_bytes
                .with_label_values(&[name])
                .set(i64::try_from(s.budget.max_bytes).unwrap_or(i64::MAX));
        }
        self.published_caps = detectors
            .iter()
            .map(|(n, s)| (*n, s.cap_hits, s.budget.hits))
            .collect();
        if let Some(wm) = watermark {
            self.watermark.set(wm);
        }
        self.published = c.clone();
    }

    /// Count `n` errors of `error_type` (a closed set of codes) at `stage`.
    pub fn error(&self, stage: &'static str, error_type: &'static str, n: u64) {
        debug_assert!(
            ERROR_CODES.contains(&(stage, error_type)),
            "error code {stage}/{error_type} is not in ERROR_CODES"
        );
        self.errors
            .with_label_values(&[stage, error_type])
            .inc_by(n);
    }

    /// Record one batch's processing-to-acknowledgement time.
    pub fn observe_batch(&self, seconds: f64) {
        self.batch_seconds.observe(seconds);
    }

    /// Consumer lag of one partition (the label set is the topic's partitions: bounded).
    pub fn set_consumer_lag(&self, partition: i32, lag: i64) {
        self.consumer_lag
            .with_label_values(&[&partition.to_string()])
            .set(lag);
    }

    /// Partitions in the topic (`scope="topic"`) and assigned here (`scope="assigned"`).
    pub fn set_partitions(&self, in_topic: usize, assigned: usize) {
        self.partitions
            .with_label_values(&["topic"])
            .set(in_topic as i64);
        self.partitions
            .with_label_values(&["assigned"])
            .set(assigned as i64);
    }

    /// Count the outcome of reading the state snapshot at start (see [`crate::snapshot::Restore::outcome`]).
    pub fn snapshot_restore(&self, outcome: &'static str) {
        self.snapshot_restores.with_label_values(&[outcome]).inc();
    }

    /// Count one snapshot write: its size, or `None` for a failure (also counted as an error).
    pub fn snapshot_written(&self, bytes: Option<u64>) {
        match bytes {
            Some(bytes) => {
                self.snapshot_writes.with_label_values(&["written"]).inc();
                self.snapshot_bytes
                    .set(i64::try_from(bytes).unwrap_or(i64::MAX));
            }
            None => {
                self.snapshot_writes.with_label_values(&["failed"]).inc();
                self.error("snapshot", "write_failed", 1);
            }
        }
    }

    /// Count `n` partitions newly paused.
    pub fn count_pauses(&self, n: usize) {
        self.pauses.inc_by(n as u64);
    }

    /// Partitions paused for running ahead (`scope="paused"`) and idle (`scope="idle"`).
    pub fn set_partition_states(&self, paused: usize, idle: usize) {
        self.partitions
            .with_label_values(&["paused"])
            .set(paused as i64);
        self.partitions
            .with_label_values(&["idle"])
            .set(idle as i64);
    }

    /// Set the cumulative count of skipped replayed records.
    pub fn set_replays_skipped(&self, total: u64) {
        self.replays_skipped
            .inc_by(total.saturating_sub(self.replays_skipped.get()));
    }

    /// Wall clock minus the watermark, in seconds.
    pub fn set_watermark_lag(&self, now_ms: i64, watermark_ms: i64) {
        self.watermark_lag
            .set((now_ms - watermark_ms) as f64 / 1000.0);
    }

    /// The registry in Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut buf = String::new();
        let enc = prometheus::TextEncoder::new();
        // Encoding our own registered metrics into a String does not fail.
        let _ = enc.encode_utf8(&self.registry.gather(), &mut buf);
        buf
    }
}
