//! Service mode: a consumer group on the events topic, alerts and dead letters produced at least once.
//!
//! One thread runs the [`drive`] loop over a [`KafkaSource`] and a [`KafkaSink`]: poll
//! a batch, run it through the [`Pipeline`], produce every alert (key = `alert_id`) and
//! dead letter, wait for every acknowledgement, and only then store the batch's offsets
//! (auto-commit then commits them) and maybe snapshot. Each partition is a lane with its
//! own event time; a partition at its end for `partition_idle_ms` is idle, one more than
//! `max_partition_drift_ms` ahead of the slowest is paused. A crash replays at most what
//! came after the last snapshot, and canonical order makes a replayed alert identical.

use crate::dead_letter::{DeadLetter, Position};
use crate::drive::{drive, now_ms, Feed, Poll, Sink, Source};
use crate::http::Health;
use crate::snapshot::{self, Offsets, SnapshotError};
use crate::{Counters, LeveeConfig, Pipeline};
use levee_model::Alert;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("topic {0} does not exist on the brokers: create it first")]
    MissingTopic(String),
    #[error("{0} produced records were not acknowledged; offsets were not stored (they will be replayed)")]
    Delivery(u64),
    #[error("cannot serialize an alert: {0}")]
    Serialize(#[from] serde_json::Error),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
}

/// Counts failed deliveries; read after each flush.
#[derive(Debug, Default)]
struct DeliveryCounter {
    failed: AtomicU64,
}

impl ClientContext for DeliveryCounter {}

impl ProducerContext for DeliveryCounter {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            tracing::error!(error = %e, "delivery failed");
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Client settings: Levee's defaults first, then `[kafka.properties]`, which win.
fn client_config(cfg: &LeveeConfig, defaults: &[(&str, &str)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.kafka.brokers);
    for (k, v) in defaults {
        c.set(*k, *v);
    }
    for (k, v) in &cfg.kafka.properties {
        c.set(k, v);
    }
    c
}

/// Consumer defaults, each measured (docs/benchmarks.md, `kafka_throughput`):
/// - a 6 s session instead of librdkafka's 45 s: the first assignment came after 23 s with
///   the default, 3 s with this; a restarted replica gets its partitions back as quickly;
/// - a 100 ms fetch wait instead of 500 ms: against tansu a partition resumed after a pause
///   was fetched again only after seconds (the 8-partition catch-up test took minutes);
/// - no fetch-queue backoff (librdkafka 2.x waits up to 1 s once its local queue is full)
///   and a deeper queue bounded at 128 MiB: steady state 123k -> 363k-382k events/s.
const CONSUMER_DEFAULTS: &[(&str, &str)] = &[
    ("session.timeout.ms", "6000"),
    ("heartbeat.interval.ms", "1000"),
    ("fetch.wait.max.ms", "100"),
    ("fetch.queue.backoff.ms", "0"),
    ("queued.min.messages", "1000000"),
    ("queued.max.messages.kbytes", "131072"),
];

/// Positions partitions where the state ends on every assignment, and tells the loop.
///
/// The state (snapshot or memory) covers each partition up to `offsets`; a partition the
/// group assigns (first start, later rebalance, replacement replica) starts exactly
/// there, or at the beginning when the state has never seen it. The committed group
/// offset is not used for positioning: it can trail or lead what the state holds.
#[derive(Debug)]
struct Positioning {
    topic: String,
    offsets: Mutex<Offsets>,
    changes: Mutex<Vec<(bool, Vec<i32>)>>,
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
struct Partitions {
    in_topic: usize,
    assigned: BTreeSet<i32>,
    /// Partitions at their end (EOF) since, cleared by their next record.
    at_end: BTreeMap<i32, Instant>,
    idle: BTreeSet<i32>,
    paused: BTreeSet<i32>,
}

/// The events topic as a [`Source`]: one lane per partition, idleness from partition EOF,
/// pause/resume against event-time drift, offsets stored after the sink acknowledged.
struct KafkaSource<'a> {
    cfg: &'a LeveeConfig,
    consumer: BaseConsumer<Positioning>,
    health: &'a Health,
    shutdown: &'a AtomicBool,
    snapshot_dir: Option<PathBuf>,
    /// Next offset the state has not seen, per partition.
    next_offsets: Offsets,
    /// Highest offset fed in the current batch, per partition.
    batch: BTreeMap<i32, i64>,
    parts: Partitions,
    last_snapshot: Instant,
    last_lag_check: Instant,
    replays_skipped: u64,
}

/// Take the partition changes the last poll's rebalances made.
fn take_changes(consumer: &BaseConsumer<Positioning>) -> Vec<(bool, Vec<i32>)> {
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
                let bytes = snapshot::write(dir, self.cfg, &self.next_offsets, pipeline)?;
                tracing::debug!(bytes, "snapshot written");
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
            snapshot::write(dir, self.cfg, &self.next_offsets, pipeline)?;
        }
        if let Err(e) = self.consumer.commit_consumer_state(CommitMode::Sync) {
            // Nothing to commit is not an error worth failing the shutdown for.
            tracing::warn!(error = %e, "final commit");
        }
        Ok(())
    }
}

/// The alerts and dead-letter topics as a [`Sink`]: idempotent producer, acks=all.
struct KafkaSink<'a> {
    cfg: &'a LeveeConfig,
    producer: BaseProducer<DeliveryCounter>,
    health: &'a Health,
}

impl Sink for KafkaSink<'_> {
    type Error = ServiceError;

    fn send(
        &mut self,
        alerts: &mut Vec<Alert>,
        dead: &mut Vec<DeadLetter>,
    ) -> Result<(), ServiceError> {
        produce_batch(self.cfg, &self.producer, alerts, dead)
    }

    /// Wait for every acknowledgement. `flush` would do, but it waits in 100 ms steps
    /// (measured: a batch with one alert took 100 ms); polling in 1 ms steps returns
    /// within a broker round trip.
    fn flush(&mut self) -> Result<(), ServiceError> {
        let deadline = Instant::now() + Duration::from_millis(self.cfg.kafka.flush_timeout_ms);
        while self.producer.in_flight_count() > 0 {
            if Instant::now() > deadline {
                return Err(ServiceError::Delivery(
                    u64::try_from(self.producer.in_flight_count()).unwrap_or(0),
                ));
            }
            self.producer.poll(Duration::from_millis(1));
        }
        let failed = self.producer.context().failed.swap(0, Ordering::Relaxed);
        if failed > 0 {
            if let Ok(m) = self.health.metrics.lock() {
                m.error("produce", "delivery_failed", failed);
            }
            return Err(ServiceError::Delivery(failed));
        }
        Ok(())
    }
}

/// Run service mode until `shutdown` is set; returns the final counters.
pub fn serve(
    cfg: &LeveeConfig,
    shutdown: &AtomicBool,
    health: &Health,
) -> Result<Counters, ServiceError> {
    let k = &cfg.kafka;
    // State: the snapshot if there is one, else empty state and a replay from the beginning.
    let snapshot_dir = (!k.snapshot_dir.is_empty()).then(|| PathBuf::from(&k.snapshot_dir));
    let restored = match &snapshot_dir {
        Some(dir) => snapshot::read(dir, cfg)?,
        None => None,
    };
    let (next_offsets, mut pipeline) = match restored {
        Some((offsets, pipeline)) => {
            tracing::info!(offsets = ?offsets, "restored state snapshot");
            (offsets, pipeline)
        }
        None => (BTreeMap::new(), Pipeline::new(cfg)),
    };
    let positioning = Positioning {
        topic: k.events_topic.clone(),
        offsets: Mutex::new(next_offsets.clone()),
        changes: Mutex::new(Vec::new()),
    };
    let consumer: BaseConsumer<Positioning> = client_config(cfg, CONSUMER_DEFAULTS)
        .set("group.id", &k.group_id)
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest")
        .create_with_context(positioning)?;
    let producer: BaseProducer<DeliveryCounter> = client_config(cfg, &[])
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create_with_context(DeliveryCounter::default())?;
    let mut topic_partitions = 0;
    for topic in [&k.events_topic, &k.alerts_topic, &k.dead_letter_topic] {
        let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
        if md
            .topics()
            .iter()
            .all(|t| t.error().is_some() || t.partitions().is_empty())
        {
            return Err(ServiceError::MissingTopic(topic.clone()));
        }
        if topic == &k.events_topic {
            topic_partitions = md.topics().iter().map(|t| t.partitions().len()).sum();
        }
    }
    if let Ok(m) = health.metrics.lock() {
        m.set_partitions(topic_partitions, 0);
    }
    consumer.subscribe(&[&k.events_topic])?;
    tracing::info!(brokers = %k.brokers, topic = %k.events_topic, group = %k.group_id, "service mode started");

    let mut source = KafkaSource {
        cfg,
        consumer,
        health,
        shutdown,
        snapshot_dir,
        next_offsets,
        batch: BTreeMap::new(),
        parts: Partitions {
            in_topic: topic_partitions,
            ..Partitions::default()
        },
        last_snapshot: Instant::now(),
        last_lag_check: Instant::now(),
        replays_skipped: 0,
    };
    let mut sink = KafkaSink {
        cfg,
        producer,
        health,
    };
    let counters = drive(
        &mut source,
        &mut sink,
        &mut pipeline,
        k.batch_max,
        shutdown,
        &mut |p, b| {
            if let Ok(mut m) = health.metrics.lock() {
                m.publish_pipeline(p);
                if let Some(wm) = p.watermark() {
                    m.set_watermark_lag(now_ms(), wm);
                }
                if b.records > 0 {
                    m.observe_batch(b.elapsed.as_secs_f64());
                }
            }
        },
    )?;
    sink.producer
        .flush(Duration::from_millis(k.shutdown_timeout_ms))?;
    Ok(counters)
}

/// Consumer lag per assigned partition: high watermark minus the next offset to read.
fn report_lag(
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

/// Produce a batch's alerts (key = `alert_id`) and dead letters (original bytes, headers).
fn produce_batch(
    cfg: &LeveeConfig,
    producer: &BaseProducer<DeliveryCounter>,
    alerts: &mut Vec<Alert>,
    dead: &mut Vec<DeadLetter>,
) -> Result<(), ServiceError> {
    let k = &cfg.kafka;
    for a in alerts.drain(..) {
        let payload = serde_json::to_vec(&a)?;
        send(
            producer,
            BaseRecord::to(&k.alerts_topic)
                .key(&a.alert_id)
                .payload(&payload),
        )?;
    }
    for d in dead.drain(..) {
        let (partition, offset) = match d.position {
            Position::Kafka { partition, offset } => (partition, offset),
            Position::Line(_) => (-1, -1),
        };
        let (p, o) = (partition.to_string(), offset.to_string());
        let truncated = if d.truncated { "true" } else { "false" };
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "levee.reason",
                value: Some(d.reason.as_str()),
            })
            .insert(Header {
                key: "levee.detail",
                value: Some(d.detail),
            })
            .insert(Header {
                key: "levee.topic",
                value: Some(k.events_topic.as_str()),
            })
            .insert(Header {
                key: "levee.partition",
                value: Some(p.as_str()),
            })
            .insert(Header {
                key: "levee.offset",
                value: Some(o.as_str()),
            })
            .insert(Header {
                key: "levee.truncated",
                value: Some(truncated),
            });
        send(
            producer,
            BaseRecord::<(), [u8]>::to(&k.dead_letter_topic)
                .payload(&d.raw[..])
                .headers(headers),
        )?;
    }
    Ok(())
}

/// Send one record, waiting for queue space when the producer's buffer is full.
fn send<K: rdkafka::message::ToBytes + ?Sized, P: rdkafka::message::ToBytes + ?Sized>(
    producer: &BaseProducer<DeliveryCounter>,
    mut record: BaseRecord<'_, K, P>,
) -> Result<(), ServiceError> {
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                producer.poll(Duration::from_millis(10));
            }
            Err((e, _)) => return Err(e.into()),
        }
    }
}

fn record_error(health: &Health, stage: &'static str, e: &KafkaError) {
    let code = match e.rdkafka_error_code() {
        Some(RDKafkaErrorCode::BrokerTransportFailure | RDKafkaErrorCode::AllBrokersDown) => {
            "broker_unreachable"
        }
        Some(_) => "kafka_error",
        None => "client_error",
    };
    if let Ok(m) = health.metrics.lock() {
        m.error(stage, code, 1);
    }
}
