//! Service mode: a consumer group on the events topic, alerts and dead letters produced at least once.
//!
//! One thread runs the [`drive`] loop over a [`KafkaSource`] and a [`KafkaSink`]: poll
//! a batch, run it through the [`Pipeline`], produce every alert (key = `alert_id`) and
//! dead letter, wait for every acknowledgement, and only then store the batch's offsets
//! (auto-commit then commits them) and maybe snapshot. Each partition is a lane with its
//! own event time; a partition at its end for `partition_idle_ms` is idle, one more than
//! `max_partition_drift_ms` ahead of the slowest is paused. A crash replays at most what
//! came after the last snapshot, and canonical order makes a replayed alert identical.

mod sink;
mod source;

use sink::{DeliveryCounter, KafkaSink};
use source::{KafkaSource, Partitions, Positioning};

use crate::drive::{drive, now_ms};
use crate::http::Health;
use crate::snapshot::{self, Restore, SnapshotError};
use crate::{Counters, LeveeConfig, Pipeline};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, Producer};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
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
        None => Restore::Absent,
    };
    if let Ok(m) = health.metrics.lock() {
        m.snapshot_restore(restored.outcome());
    }
    let (next_offsets, mut pipeline) = match restored {
        Restore::Restored(offsets, pipeline) => {
            tracing::info!(offsets = ?offsets, "restored state snapshot");
            (offsets, *pipeline)
        }
        Restore::Absent | Restore::Ignored(_) => (BTreeMap::new(), Pipeline::new(cfg)),
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

pub(super) fn record_error(health: &Health, stage: &'static str, e: &KafkaError) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The deployment passes SASL/SSL through `[kafka.properties]` (deploy/helm, the example
    /// overlay): librdkafka refuses those values at client creation when built without OpenSSL.
    #[test]
    fn sasl_ssl_properties_are_accepted() {
        let env = [
            ("LEVEE__KAFKA__BROKERS", "kafka.invalid:9093"),
            ("LEVEE__KAFKA__PROPERTIES__SECURITY_PROTOCOL", "SASL_SSL"),
            ("LEVEE__KAFKA__PROPERTIES__SASL_MECHANISMS", "SCRAM-SHA-512"),
            ("LEVEE__KAFKA__PROPERTIES__SASL_USERNAME", "levee"),
            ("LEVEE__KAFKA__PROPERTIES__SASL_PASSWORD", "secret"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let cfg = LeveeConfig::load(None, env).expect("config");
        assert_eq!(cfg.kafka.properties["security.protocol"], "SASL_SSL");
        let consumer: Result<BaseConsumer, _> = client_config(&cfg, CONSUMER_DEFAULTS)
            .set("group.id", "levee")
            .create();
        assert!(consumer.is_ok(), "{:?}", consumer.err());
        let producer: Result<BaseProducer, _> = client_config(&cfg, &[]).create();
        assert!(producer.is_ok(), "{:?}", producer.err());
        // And an unknown mechanism is still refused (the check can fail).
        let mut bad = cfg.clone();
        bad.kafka
            .properties
            .insert("sasl.mechanisms".into(), "NO-SUCH-MECHANISM".into());
        let refused: Result<BaseProducer, _> = client_config(&bad, &[]).create();
        assert!(refused.is_err());
    }
}
