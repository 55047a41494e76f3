//! Layered configuration: built-in defaults, then a TOML file, then `LEVEE__*` environment.

use levee_detect::DetectorsConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The whole `levee.toml`. Unknown keys anywhere are an error, so typos surface.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LeveeConfig {
    pub runtime: RuntimeConfig,
    pub detectors: DetectorsConfig,
    pub kafka: KafkaConfig,
    pub http: HttpConfig,
}

/// `[kafka]`: service mode (`levee serve`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// `bootstrap.servers`.
    pub brokers: String,
    pub group_id: String,
    pub events_topic: String,
    /// Alerts, keyed by `alert_id` (meant to be compacted).
    pub alerts_topic: String,
    /// Rejected records: original bytes, reason and source position in headers.
    pub dead_letter_topic: String,
    /// Records per batch. Offsets are stored once per batch, after its output is acknowledged.
    pub batch_max: usize,
    /// How long one poll waits for a record before a partial batch is processed.
    pub poll_timeout_ms: u64,
    /// How long the producer may take to acknowledge a batch's output before the service gives up.
    pub flush_timeout_ms: u64,
    /// On SIGTERM/SIGINT: finish the batch, flush, commit, within this bound.
    pub shutdown_timeout_ms: u64,
    /// Directory for state snapshots (a persistent volume in Kubernetes). Empty: no
    /// snapshots, and every start replays the events topic from the beginning.
    pub snapshot_dir: String,
    /// A snapshot is written at most this often (wall time), after a batch is acknowledged.
    pub snapshot_interval_ms: u64,
    /// A partition caught up to its high-water mark with no record for this long (wall time)
    /// is idle: it stops holding the watermark back until its next record.
    pub partition_idle_ms: u64,
    /// A partition whose event time runs more than this ahead of the slowest is paused
    /// until the slowest catches up (bounds the reorder buffer during catch-up)...
    pub max_partition_drift_ms: i64,
    /// ...while the reorder buffer holds at least this many bytes (until it is back under
    /// half of it). 0: always.
    pub align_above_bytes: usize,
    /// Any librdkafka property (SASL, SSL, ...), applied to consumer and producer.
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: "127.0.0.1:9092".to_owned(),
            group_id: "levee".to_owned(),
            events_topic: "levee.events".to_owned(),
            alerts_topic: "levee.alerts".to_owned(),
            dead_letter_topic: "levee.dead-letters".to_owned(),
            batch_max: 10_000,
            poll_timeout_ms: 100,
            flush_timeout_ms: 30_000,
            shutdown_timeout_ms: 30_000,
            snapshot_dir: String::new(),
            snapshot_interval_ms: 30_000,
            partition_idle_ms: 5_000,
            max_partition_drift_ms: 60_000,
            align_above_bytes: 64 << 20,
            properties: BTreeMap::new(),
        }
    }
}

/// `[http]`: `/metrics`, `/healthz`, `/readyz` in service mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    pub enabled: bool,
    pub listen: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            enabled: true,
            listen: "0.0.0.0:9898".to_owned(),
        }
    }
}

/// `[runtime]`: event time and input limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Events at most this much older than the newest event of their own lane (partition) are on time.
    pub allowed_lateness_ms: i64,
    /// Events up to this much further behind are still processed in order (counted as late);
    /// older ones are dead-lettered with reason `late`. Detectors see an event once every
    /// holding lane is `allowed_lateness_ms + late_grace_ms` past it.
    pub late_grace_ms: i64,
    /// Detectors get a tick each time the watermark crosses a multiple of this.
    pub tick_interval_ms: i64,
    /// Records longer than this are dead-lettered (`too_long`) without being parsed.
    pub max_record_bytes: usize,
    /// Records per batch: metrics and progress are updated once per batch.
    pub batch_size: usize,
    /// Bound of the reorder buffer (records waiting for the watermark, each with its packed event).
    /// Past it the oldest are released early and counted (`levee_reorder_overflow_total`).
    pub reorder_max_bytes: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            allowed_lateness_ms: 10_000,
            late_grace_ms: 60_000,
            tick_interval_ms: 1_000,
            max_record_bytes: 256 * 1024,
            batch_size: 4096,
            reorder_max_bytes: 256 << 20,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("environment variable {var}: {why}")]
    Env { var: String, why: &'static str },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

const ENV_PREFIX: &str = "LEVEE__";

impl LeveeConfig {
    /// Defaults, overlaid by `file` (if any), overlaid by `LEVEE__SECTION__KEY=value` pairs from `env`.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut table = match file {
            None => toml::Table::new(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                text.parse::<toml::Table>()
                    .map_err(|source| ConfigError::Parse {
                        path: path.to_owned(),
                        source,
                    })?
            }
        };
        let mut vars: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .collect();
        vars.sort(); // deterministic when two spellings collide
        for (var, value) in vars {
            overlay(&mut table, &var, &value)?;
        }
        let mut cfg: LeveeConfig = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(e.message().to_owned()))?;
        // librdkafka names use dots, environment names cannot: `security_protocol`
        // (from LEVEE__KAFKA__PROPERTIES__SECURITY_PROTOCOL) means `security.protocol`.
        cfg.kafka.properties = std::mem::take(&mut cfg.kafka.properties)
            .into_iter()
            .map(|(k, v)| (k.replace('_', "."), v))
            .collect();
        cfg.validate()?;
        Ok(cfg)
    }

    /// Load from the process environment.
    pub fn from_env_and_file(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load(file, std::env::vars())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let r = &self.runtime;
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if r.allowed_lateness_ms < 0 || r.late_grace_ms < 0 {
            return bad("runtime.allowed_lateness_ms and runtime.late_grace_ms must be >= 0");
        }
        if r.tick_interval_ms <= 0 {
            return bad("runtime.tick_interval_ms must be > 0");
        }
        // The reorder buffer keeps record lengths in 32 bits.
        if r.max_record_bytes < 1024 || r.max_record_bytes > 1 << 30 || r.batch_size == 0 {
            return bad(
                "runtime.max_record_bytes must be between 1024 and 2^30 and runtime.batch_size > 0",
            );
        }
        if r.reorder_max_bytes < r.max_record_bytes {
            return bad("runtime.reorder_max_bytes must be >= runtime.max_record_bytes");
        }
        self.detectors.validate().map_err(ConfigError::Invalid)?;
        let k = &self.kafka;
        if k.max_partition_drift_ms < 0 {
            return bad("kafka.max_partition_drift_ms must be >= 0");
        }
        if k.align_above_bytes > self.runtime.reorder_max_bytes {
            return bad("kafka.align_above_bytes must be <= runtime.reorder_max_bytes (pausing must start before the buffer overflows)");
        }
        if k.batch_max == 0
            || k.brokers.is_empty()
            || k.events_topic.is_empty()
            || k.alerts_topic.is_empty()
            || k.dead_letter_topic.is_empty()
        {
            return bad("kafka: need brokers, the three topics and batch_max > 0");
        }
        Ok(())
    }
}

/// Set `a.b.c = value` in `table` for `LEVEE__A__B__C=value`. The value is read as a TOML
/// value (`10`, `true`, `"x"`, `[1, 2]`) and, if that fails, as a plain string.
fn overlay(table: &mut toml::Table, var: &str, value: &str) -> Result<(), ConfigError> {
    let path: Vec<String> = var[ENV_PREFIX.len()..]
        .split("__")
        .map(str::to_ascii_lowercase)
        .collect();
    if path.iter().any(String::is_empty) {
        return Err(ConfigError::Env {
            var: var.to_owned(),
            why: "empty path segment",
        });
    }
    // librdkafka properties are strings, whatever they look like (`fetch.wait.max.ms=100`).
    let is_property = path.len() == 3 && path[0] == "kafka" && path[1] == "properties";
    let parsed = format!("v = {value}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .filter(|_| !is_property)
        .unwrap_or_else(|| toml::Value::String(value.to_owned()));
    let (last, parents) = path.split_last().ok_or(ConfigError::Env {
        var: var.to_owned(),
        why: "no key",
    })?;
    let mut cur = table;
    for seg in parents {
        let next = cur
            .entry(seg.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = next.as_table_mut().ok_or(ConfigError::Env {
            var: var.to_owned(),
            why: "a parent key is not a table",
        })?;
    }
    cur.insert(last.clone(), parsed);
    Ok(())
}
