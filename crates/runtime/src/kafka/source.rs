//! The events topic as a drive-loop source: positioning on assignment, lanes, idleness, alignment.

use super::{record_error, ServiceError};
use crate::dead_letter::Position;
use crate::drive::{Feed, Poll, Source};
use crate::http::Health;
use crate::snapshot::{self, Offsets};
use crate::{LeveeConfig, Pipeline};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Positions partitions where the state ends on every assignment, and tells the loop.
///
/// The state (snapshot or memory) covers each partition up to `offsets`; a partition the
/// group assigns (first start, later rebalance, replacement replica) starts exactly
/// there, or at the beginning when the state has never seen it. The committed group
/// offset is not used for positioning: it can trail or lead what the state holds.
#[derive(Debug)]
pub(super) struct Positioning {
    pub(super) topic: String,
    pub(super) offsets: Mutex<Offsets>,
    pub(super) changes: Mutex<Vec<(bool, Vec<i32>)>>,
}

impl ClientContext for Positioning {
    /// Partition EOF is how idleness is detected, not an error.
    fn error(&self, error: KafkaError, reason: &str) {
        match error {
            KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF) => {
                tracing::trace!(reason, "partition end")
            }
            e => tracing::error!(error = %e, reason, "librdkafka"),
        }
    }
}

impl ConsumerContext for Positioning {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let parts: Vec<i32> = tpl
            .elements_for_topic(&self.topic)
            .iter()
            .map(|e| e.partition())
            .collect();
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let offsets = self.offsets.lock().unwrap_or_else(|e| e.into_inner());
                for p in &parts {
                    let to = offsets
                        .get(p)
                        .map_or(Offset::Beginning, |o| Offset::Offset(*o));
                    if let Err(e) = tpl.set_partition_offset(&self.topic, *p, to) {
                        tracing::error!(partition = p, error = %e, "cannot position partition");
                    }
                    tracing::info!(partition = p, offset = ?to, "assigned");
                }
                drop(offsets);
                self.push(true, parts);
                if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                tracing::info!(partitions = ?parts, "revoked");
                self.push(false, parts);
                if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                }
            }
            other => {
                tracing::error!(error = ?other, "rebalance failed: dropping the assignment");
                self.push(false, parts);
                consumer.unassign()
            }
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "applying a rebalance");
        }
    }
}

impl Positioning {
    fn push(&self, assigned: bool, parts: Vec<i32>) {
        self.changes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((assigned, parts));
    }
}

/// What the source knows of its partitions.
#[derive(Debug, Default)]
pub(super) struct Partitions {
    pub(super) in_topic: usize,
    pub(super) assigned: BTreeSet<i32>,
    /// Partitions at their end (EOF) since, cleared by their next record.
    pub(super) at_end: BTreeMap<i32, Instant>,
    pub(super) idle: BTreeSet<i32>,
    pub(super) paused: BTreeSet<i32>,
}

/// The events topic as a [`Source`]: one lane per partition, idleness from partition EOF,
/// pause/resume against event-time drift, offsets stored after the sink acknowledged.
pub(super) struct KafkaSource<'a> {
    pub(super) cfg: &'a LeveeConfig,
    pub(super) consumer: BaseConsumer<Positioning>,
    pub(super) health: &'a Health,
    pub(super) shutdown: &'a AtomicBool,
    pub(super) snapshot_dir: Option<PathBuf>,
    /// Next offset the state has not seen, per partition.
    pub(super) next_offsets: Offsets,
    /// Highest offset fed in the current batch, per partition.
    pub(super) batch: BTreeMap<i32, i64>,
    pub(super) parts: Partitions,
    pub(super) last_snapshot: Instant,
    pub(super) last_lag_check: Instant,
    pub(super) replays_skipped: u64,
}

/// Take the partition changes the last poll's rebalances made.
pub(super) fn take_changes(consumer: &BaseConsumer<Positioning>) -> Vec<(bool, Vec<i32>)> {
    std::mem::take(
        &mut *consumer
            .context()
            .changes
            .lock()
            .unwrap_or_else(|e| e.into_inner()),
    )
}

impl Partitions {
    /// Apply assignment changes to the lanes and the readiness flag.
    fn apply(&mut self, changes: Vec<(bool, Vec<i32>)>, feed: &mut Feed<'_>, health: &Health) {
        for (assigned, parts) in changes {
            for p in parts {
                if assigned {
                    self.assigned.insert(p);
                    feed.assign(p);
                } else {
                    self.assigned.remove(&p);
                    feed.revoke(p);
                }
                self.at_end.remove(&p);
                self.idle.remove(&p);
                self.paused.remove(&p); // a new assignment starts unpaused
            }
            let n = self.assigned.len();
            health.ready.store(n > 0, Ordering::Relaxed);
            if n > 0 && n < self.in_topic {
                // Coordination spans partitions: a replica that sees some of them misses
                // farms whose engagements land elsewhere (docs/service.md, "Replicas").
                tracing::error!(
                    assigned = n,
                    topic_partitions = self.in_topic,
                    "this replica sees only part of the events topic: detectors will miss coordination across partitions; run one replica per detector family"
                );
            }
            if let Ok(m) = health.metrics.lock() {
                m.set_partitions(self.in_topic, n);
            }
        }
    }
}

impl KafkaSource<'_> {
    /// Idle partitions stop holding the watermark; partitions far ahead pause.
    fn align(&mut self, feed: &mut Feed<'_>) {
        let idle_after = Duration::from_millis(self.cfg.kafka.partition_idle_ms);
        for p in self.parts.assigned.clone() {
            let idle = self
                .parts
                .at_end
                .get(&p)
                .is_some_and(|t| t.elapsed() >= idle_after);
            if idle != self.parts.idle.contains(&p) {
                tracing::debug!(partition = p, idle, "partition idleness changed");
                if idle {
                    self.parts.idle.insert(p);
                } else {
                    self.parts.idle.remove(&p);
                }
                feed.set_idle(p, idle);
            }
        }
        // Pausing discards librdkafka's prefetched records (they are fetched again on
        // resume), so it is kept for when the reorder buffer actually fills: measured on
        // 3 partitions, pausing at every drift cost 60% of the throughput.
        let k = &self.cfg.kafka;
        let held = feed.pipeline().held().0;
        let pressure = held >= k.align_above_bytes
            || (!self.parts.paused.is_empty() && held >= k.align_above_bytes / 2);
        let ahead: BTreeSet<i32> = if pressure {
            feed.pipeline()
                .lanes_ahead(k.max_partition_drift_ms)
                .into_iter()
                .filter(|p| self.parts.assigned.contains(p))
                .collect()
        } else {
            BTreeSet::new()
        };
        let topic = &self.cfg.kafka.events_topic;
        let list = |ps: &mut dyn Iterator<Item = &i32>| {
            let mut tpl = TopicPartitionList::new();
            for p in ps {
                tpl.add_partition(topic, *p);
            }
            tpl
        };
        let pause = list(&mut ahead.difference(&self.parts.paused));
        let resume = list(&mut self.parts.paused.difference(&ahead));
        if pause.count() > 0 {
            match self.consumer.pause(&pause) {
                Ok(()) => tracing::debug!(partitions = ?ahead, "paused: ahead in event time"),
                Err(e) => tracing::warn!(error = %e, "pause"),
            }
        }
        if resume.count() > 0 {
            if let Err(e) = self.consumer.resume(&resume) {
                tracing::warn!(error = %e, "resume");
            }
        }
        self.parts.paused = ahead;
        if let Ok(m) = self.health.metrics.lock() {
            m.count_pauses(pause.count());
            m.set_partition_states(self.parts.paused.len(), self.parts.idle.len());
        }
    }
}

impl Source for KafkaSource<'_> {
    type Error = ServiceError;

    fn read_batch(&mut self, feed: &mut Feed<'_>, max: usize) -> Result<Poll, ServiceError> {
        let poll = Duration::from_millis(self.cfg.kafka.poll_timeout_ms);
        self.batch.clear();
        self.parts
            .apply(take_changes(&self.consumer), feed, self.health);
        while feed.records() < max && !self.shutdown.load(Ordering::Relaxed) {
            let msg = self.consumer.poll(poll);
            self.parts
                .apply(take_changes(&self.consumer), feed, self.health);
            match msg {
                None => break,
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    self.parts.at_end.entry(p).or_insert_with(Instant::now);
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "consume error");
                    record_error(self.health, "consume", &e);
                    break;
                }
                Some(Ok(msg)) => {
                    let p = msg.partition();
                    // Never feed a record twice: the state may already hold it (a fetch
                    // that raced a re-positioning, a paused partition's queue).
                    let covered = self
                        .next_offsets
                        .get(&p)
                        .copied()
                        .unwrap_or(0)
                        .max(self.batch.get(&p).map_or(0, |o| o + 1));
                    if msg.offset() < covered {
                        self.replays_skipped += 1;
                        continue;
                    }
                    self.parts.at_end.remove(&p);
                    let pos = Position::Kafka {
                        partition: p,
                        offset: msg.offset(),
                    };
                    feed.record(p, msg.payload().unwrap_or_default(), pos);
                    self.batch.insert(p, msg.offset());
                }
            }
        }
        self.align(feed);
        if self.last_lag_check.elapsed() >= Duration::from_secs(5) {
            self.last_lag_check = Instant::now();
            report_lag(
                &self.consumer,
                &self.cfg.kafka.events_topic,
                &self.next_offsets,
                self.health,
            );
        }
        Ok(Poll::More)
    }

    fn commit(&mut self, pipeline: &Pipeline) -> Result<(), ServiceError> {
        let topic = &self.cfg.kafka.events_topic;
        let mut tpl = TopicPartitionList::new();
        for (partition, offset) in &self.batch {
            tpl.add_partition_offset(topic, *partition, Offset::Offset(offset + 1))?;
            self.next_offsets.insert(*partition, offset + 1);
        }
        if tpl.count() > 0 {
            if let Err(e) = self.consumer.store_offsets(&tpl) {
                // Revoked mid-batch: the state holds its records; a re-assignment resumes after them.
                tracing::warn!(error = %e, "offsets not stored");
            }
        }
        self.consumer
            .context()
            .offsets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone_from(&self.next_offsets);
        if let Some(dir) = &self.snapshot_dir {
            if self.last_snapshot.elapsed()
                >= Duration::from_millis(self.cfg.kafka.snapshot_interval_ms)
            {
                // A failed snapshot costs a longer replay after a restart, not the service:
                // count it, log it and try again after the next interval.
                let written = snapshot::write(dir, self.cfg, &self.next_offsets, pipeline);
                match &written {
                    Ok(bytes) => tracing::debug!(bytes, "snapshot written"),
                    Err(e) => tracing::error!(error = %e, "snapshot not written"),
                }
                if let Ok(m) = self.health.metrics.lock() {
                    m.snapshot_written(written.ok());
                }
                self.last_snapshot = Instant::now();
            }
        }
        if let Ok(m) = self.health.metrics.lock() {
            m.set_replays_skipped(self.replays_skipped);
        }
        Ok(())
    }

    fn close(&mut self, pipeline: &Pipeline) -> Result<(), ServiceError> {
        tracing::info!("shutting down: snapshot and commit");
        if let Some(dir) = &self.snapshot_dir {
            let written = snapshot::write(dir, self.cfg, &self.next_offsets, pipeline);
            if let Ok(m) = self.health.metrics.lock() {
                m.snapshot_written(written.as_ref().ok().copied());
            }
            written?;
        }
        if let Err(e) = self.consumer.commit_consumer_state(CommitMode::Sync) {
            // Nothing to commit is not an error worth failing the shutdown for.
            tracing::warn!(error = %e, "final commit");
        }
        Ok(())
    }
}

/// Consumer lag per assigned partition: high watermark minus the next offset to read.
pub(super) fn report_lag(
    consumer: &BaseConsumer<Positioning>,
    topic: &str,
    next: &BTreeMap<i32, i64>,
    health: &Health,
) {
    let Ok(assigned) = consumer.assignment() else {
        return;
    };
    for el in assigned.elements_for_topic(topic) {
        let p = el.partition();
        if let Ok((low, high)) = consumer.fetch_watermarks(topic, p, Duration::from_millis(500)) {
            let pos = next.get(&p).copied().unwrap_or(low);
            if let Ok(m) = health.metrics.lock() {
                m.set_consumer_lag(p, (high - pos).max(0));
            }
        }
    }
}
