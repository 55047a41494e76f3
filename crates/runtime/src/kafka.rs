//! Service mode: a consumer group on the events topic, alerts and dead letters produced at least once.
//!
//! One thread runs the loop: poll a batch, run it through the [`Pipeline`], produce
//! every alert (key = `alert_id`) and dead letter, flush the idempotent producer, and
//! only when every delivery is acknowledged store the batch's offsets (auto-commit
//! then commits them). A crash therefore replays at most the unacknowledged batch,
//! and the detectors' determinism makes a replayed alert identical to the first.

use crate::dead_letter::{DeadLetter, Position};
use crate::file::now_ms;
use crate::http::Health;
use crate::snapshot::{self, SnapshotError};
use crate::{Counters, LeveeConfig, Pipeline};
use levee_model::Alert;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
/// - no fetch-queue backoff (librdkafka 2.x waits up to 1 s once its local queue is full)
///   and a deeper queue bounded at 128 MiB: steady state 123k -> 363k-382k events/s.
const CONSUMER_DEFAULTS: &[(&str, &str)] = &[
    ("session.timeout.ms", "6000"),
    ("heartbeat.interval.ms", "1000"),
    ("fetch.queue.backoff.ms", "0"),
    ("queued.min.messages", "1000000"),
    ("queued.max.messages.kbytes", "131072"),
];

/// Run service mode until `shutdown` is set; returns the final counters.
pub fn serve(
    cfg: &LeveeConfig,
    shutdown: &AtomicBool,
    health: &Health,
) -> Result<Counters, ServiceError> {
    let k = &cfg.kafka;
    let consumer: BaseConsumer = client_config(cfg, CONSUMER_DEFAULTS)
        .set("group.id", &k.group_id)
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .create()?;
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
    consumer.subscribe(&[&k.events_topic])?;
    tracing::info!(brokers = %k.brokers, topic = %k.events_topic, group = %k.group_id, "service mode started");

    // State: the snapshot if there is one, else empty state and a replay from the beginning.
    let snapshot_dir =
        (!k.snapshot_dir.is_empty()).then(|| std::path::PathBuf::from(&k.snapshot_dir));
    let restored = match &snapshot_dir {
        Some(dir) => snapshot::read(dir, cfg)?,
        None => None,
    };
    let (mut next_offsets, mut pipeline) = match restored {
        Some((offsets, pipeline)) => {
            tracing::info!(offsets = ?offsets, "restored state snapshot");
            (offsets, pipeline)
        }
        None => (BTreeMap::new(), Pipeline::new(cfg)),
    };
    seek_on_assignment(
        &consumer,
        &k.events_topic,
        &next_offsets,
        shutdown,
        Duration::from_millis(k.poll_timeout_ms),
    )?;
    let mut last_snapshot = Instant::now();
    let (mut last_assigned, mut last_lag_check) = (usize::MAX, Instant::now());
    let mut replays_skipped: u64 = 0;
    let (mut alerts, mut dead): (Vec<Alert>, Vec<DeadLetter>) = (Vec::new(), Vec::new());
    let poll = Duration::from_millis(k.poll_timeout_ms);
    while !shutdown.load(Ordering::Relaxed) {
        let started = Instant::now();
        let mut offsets: BTreeMap<i32, i64> = BTreeMap::new();
        let mut records = 0usize;
        while records < k.batch_max && !shutdown.load(Ordering::Relaxed) {
            match consumer.poll(poll) {
                None => break,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "consume error");
                    record_error(health, "consume", &e);
                    break;
                }
                Some(Ok(msg)) => {
                    // After a rebalance the group resumes at the committed offset, which can
                    // trail what the in-memory state already holds: never feed a record twice.
                    let p = msg.partition();
                    let covered = next_offsets
                        .get(&p)
                        .copied()
                        .unwrap_or(0)
                        .max(offsets.get(&p).map_or(0, |o| o + 1));
                    if msg.offset() < covered {
                        replays_skipped += 1;
                        continue;
                    }
                    records += 1;
                    let pos = Position::Kafka {
                        partition: msg.partition(),
                        offset: msg.offset(),
                    };
                    pipeline.process(
                        msg.payload().unwrap_or_default(),
                        pos,
                        &mut alerts,
                        &mut dead,
                    );
                    let o = offsets.entry(msg.partition()).or_insert(msg.offset());
                    *o = (*o).max(msg.offset());
                }
            }
        }
        let assigned = consumer.assignment().map(|a| a.count()).unwrap_or(0);
        health.ready.store(assigned > 0, Ordering::Relaxed);
        if assigned != last_assigned {
            last_assigned = assigned;
            if assigned > 0 && assigned < topic_partitions {
                // Coordination spans partitions: a replica that sees some of them misses
                // farms whose engagements land elsewhere (docs/service.md, "Replicas").
                tracing::error!(
                    assigned,
                    topic_partitions,
                    "this replica sees only part of the events topic: detectors will miss coordination across partitions; run one replica per detector family"
                );
            }
            if let Ok(m) = health.metrics.lock() {
                m.set_partitions(topic_partitions, assigned);
            }
        }
        if last_lag_check.elapsed() >= Duration::from_secs(5) {
            last_lag_check = Instant::now();
            report_lag(&consumer, &k.events_topic, &next_offsets, health);
        }
        if offsets.is_empty() {
            continue;
        }
        produce_batch(cfg, &producer, &mut alerts, &mut dead, health)?;
        let mut tpl = TopicPartitionList::new();
        for (partition, offset) in &offsets {
            tpl.add_partition_offset(&k.events_topic, *partition, Offset::Offset(offset + 1))?;
        }
        if let Err(e) = consumer.store_offsets(&tpl) {
            // The partition was revoked mid-batch: its new owner replays it (at least once).
            tracing::warn!(error = %e, "offsets not stored");
        }
        for (partition, offset) in &offsets {
            next_offsets.insert(*partition, offset + 1);
        }
        if let Some(dir) = &snapshot_dir {
            if last_snapshot.elapsed() >= Duration::from_millis(k.snapshot_interval_ms) {
                let bytes = snapshot::write(dir, cfg, &next_offsets, &pipeline)?;
                tracing::debug!(bytes, "snapshot written");
                last_snapshot = Instant::now();
            }
        }
        if let Ok(mut m) = health.metrics.lock() {
            m.publish(
                pipeline.counters(),
                &pipeline.detector_stats(),
                pipeline.watermark(),
            );
            if let Some(wm) = pipeline.watermark() {
                m.set_watermark_lag(now_ms(), wm);
            }
            m.set_replays_skipped(replays_skipped);
            m.observe_batch(started.elapsed().as_secs_f64());
        }
    }
    tracing::info!("shutting down: flushing and committing");
    producer.flush(Duration::from_millis(k.shutdown_timeout_ms))?;
    if let Some(dir) = &snapshot_dir {
        snapshot::write(dir, cfg, &next_offsets, &pipeline)?;
    }
    if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
        // Nothing to commit is not an error worth failing the shutdown for.
        tracing::warn!(error = %e, "final commit");
    }
    Ok(pipeline.counters().clone())
}

/// Consumer lag per assigned partition: high watermark minus the next offset to read.
fn report_lag(consumer: &BaseConsumer, topic: &str, next: &BTreeMap<i32, i64>, health: &Health) {
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

/// Wait for the group to assign partitions, then position each at the snapshot's
/// offset (or the beginning, for a full replay). Records polled before that are
/// dropped unprocessed: the seek fetches them again.
fn seek_on_assignment(
    consumer: &BaseConsumer,
    topic: &str,
    offsets: &BTreeMap<i32, i64>,
    shutdown: &AtomicBool,
    poll: Duration,
) -> Result<(), ServiceError> {
    let assigned = loop {
        let a = consumer.assignment()?;
        if a.count() > 0 || shutdown.load(Ordering::Relaxed) {
            break a;
        }
        let _ = consumer.poll(poll);
    };
    // A partition can be positioned only once its fetcher runs: retry with short polls
    // (whatever they return is dropped and fetched again after the seek).
    let mut pending: Vec<i32> = assigned
        .elements_for_topic(topic)
        .iter()
        .map(|e| e.partition())
        .collect();
    let started = Instant::now();
    while !pending.is_empty() {
        let mut failed = Vec::new();
        for p in pending {
            let to = offsets
                .get(&p)
                .map_or(Offset::Beginning, |o| Offset::Offset(*o));
            match consumer.seek(topic, p, to, Duration::from_secs(5)) {
                Ok(()) => tracing::info!(partition = p, offset = ?to, "positioned"),
                Err(e) if started.elapsed() < Duration::from_secs(30) => {
                    tracing::debug!(partition = p, error = %e, "seek not possible yet");
                    failed.push(p);
                }
                Err(e) => return Err(e.into()),
            }
        }
        pending = failed;
        if !pending.is_empty() {
            let _ = consumer.poll(Duration::from_millis(50));
        }
    }
    Ok(())
}

/// Produce the batch's alerts and dead letters, wait for every acknowledgement.
fn produce_batch(
    cfg: &LeveeConfig,
    producer: &BaseProducer<DeliveryCounter>,
    alerts: &mut Vec<Alert>,
    dead: &mut Vec<DeadLetter>,
    health: &Health,
) -> Result<(), ServiceError> {
    let k = &cfg.kafka;
    for mut a in alerts.drain(..) {
        a.emitted_at = now_ms();
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
            });
        send(
            producer,
            BaseRecord::<(), [u8]>::to(&k.dead_letter_topic)
                .payload(&d.raw[..])
                .headers(headers),
        )?;
    }
    // Wait for every acknowledgement. `flush` would do, but it waits in 100 ms steps
    // (measured: a batch with one alert took 100 ms); polling in 1 ms steps returns
    // within a broker round trip.
    let deadline = Instant::now() + Duration::from_millis(k.flush_timeout_ms);
    while producer.in_flight_count() > 0 {
        if Instant::now() > deadline {
            return Err(ServiceError::Delivery(
                u64::try_from(producer.in_flight_count()).unwrap_or(0),
            ));
        }
        producer.poll(Duration::from_millis(1));
    }
    let failed = producer.context().failed.swap(0, Ordering::Relaxed);
    if failed > 0 {
        if let Ok(m) = health.metrics.lock() {
            m.error("produce", "delivery_failed", failed);
        }
        return Err(ServiceError::Delivery(failed));
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
