//! State snapshots for service mode: the pipeline's state and the offsets it covers, written atomically.
//!
//! A snapshot is taken after a batch's output is acknowledged, so its offsets are the
//! next records to read. Restoring it and seeking there replays only what came after,
//! and the detectors' determinism re-emits any alert of that stretch identically.
//!
//! The format version is the state's schema: a hash of the shape of every type in it,
//! traced through serde ([`schema`]). Any change to a state struct changes it, so an
//! upgraded binary recognises an older snapshot from its header and ignores it (a full
//! replay) instead of misreading it; so does a snapshot that does not decode.

use crate::{LeveeConfig, Pipeline};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const FILE: &str = "levee-snapshot.json";
/// Bump when a state field keeps its shape but changes its meaning (the schema hash
/// cannot see that). It is hashed into [`schema`].
const STATE_EPOCH: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot io at {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What reading the snapshot directory found.
#[derive(Debug)]
pub enum Restore {
    /// No snapshot: start empty and replay the topic.
    Absent,
    /// A snapshot that fits this binary, topic and configuration.
    Restored(Offsets, Box<Pipeline>),
    /// A snapshot that does not fit (or does not decode), ignored: start empty and replay.
    Ignored(Mismatch),
}

/// Why a snapshot was ignored (the `outcome` label of `levee_snapshot_restores_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mismatch {
    /// Written by a binary whose state has another shape (an upgrade or a downgrade).
    Schema,
    Topic,
    /// Written under other runtime or detector settings.
    Config,
    /// The header matched but the state did not decode (truncated or damaged file).
    Undecodable,
}

impl Restore {
    /// The metric outcome: `restored`, `absent`, `schema`, `topic`, `config`, `undecodable`.
    pub fn outcome(&self) -> &'static str {
        match self {
            Restore::Absent => "absent",
            Restore::Restored(..) => "restored",
            Restore::Ignored(Mismatch::Schema) => "schema",
            Restore::Ignored(Mismatch::Topic) => "topic",
            Restore::Ignored(Mismatch::Config) => "config",
            Restore::Ignored(Mismatch::Undecodable) => "undecodable",
        }
    }
}

/// The state's schema: 16 hex digits of FNV-1a over the traced shape of every type a
/// snapshot holds (names, fields, their types and variants) and [`STATE_EPOCH`].
pub fn schema() -> &'static str {
    static SCHEMA: OnceLock<String> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let shape = schema_shape();
        let h = levee_model::fnv1a64(shape.bytes().chain(STATE_EPOCH.to_le_bytes()));
        format!("{h:016x}")
    })
}

/// The traced shape of the snapshot's state, as canonical JSON (types in name order).
pub fn schema_shape() -> String {
    use serde_reflection::{Samples, Tracer, TracerConfig};
    let mut tracer = Tracer::new(TracerConfig::default());
    let samples = Samples::new();
    // One pass per enum reachable from the state: tracing explores one variant per pass
    // of the type it starts from.
    let traced = tracer
        .trace_type::<levee_detect::AnyDetector>(&samples)
        .and_then(|_| tracer.trace_type::<levee_detect::Figure>(&samples))
        .and_then(|_| tracer.trace_type::<levee_model::Severity>(&samples))
        .and_then(|_| tracer.trace_type::<Pipeline>(&samples))
        .and_then(|_| tracer.registry());
    match traced {
        Ok(registry) => serde_json::to_string(&registry).unwrap_or_default(),
        // Only a new state type serde-reflection cannot trace gets here; the schema test
        // fails on it, so it cannot ship.
        Err(e) => format!("untraceable: {e}"),
    }
}

/// What a snapshot holds. `config` guards against restoring state built under other settings.
// tidy: not traced (the envelope; `P` is the traced `Pipeline`).
#[derive(Debug, Serialize, Deserialize)]
struct Snapshot<P> {
    schema: String,
    topic: String,
    config: serde_json::Value,
    /// partition -> next offset to read.
    offsets: BTreeMap<i32, i64>,
    pipeline: P,
}

/// Next offset to read, per partition.
pub type Offsets = BTreeMap<i32, i64>;

/// The settings that shape detector state: a snapshot is only valid under the same ones.
fn fingerprint(cfg: &LeveeConfig) -> serde_json::Value {
    serde_json::json!({ "runtime": cfg.runtime, "detectors": cfg.detectors })
}

/// Write a snapshot atomically (temporary file, fsync, rename); returns its size in bytes.
pub fn write(
    dir: &Path,
    cfg: &LeveeConfig,
    offsets: &BTreeMap<i32, i64>,
    pipeline: &Pipeline,
) -> Result<u64, SnapshotError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| SnapshotError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let tmp = dir.join(format!("{FILE}.tmp"));
    let f = File::create(&tmp).map_err(io(&tmp))?;
    let mut w = BufWriter::new(f);
    let snap = Snapshot {
        schema: schema().to_owned(),
        topic: cfg.kafka.events_topic.clone(),
        config: fingerprint(cfg),
        offsets: offsets.clone(),
        pipeline,
    };
    serde_json::to_writer(&mut w, &snap).map_err(|e| SnapshotError::Io {
        path: tmp.clone(),
        source: e.into(),
    })?;
    let f = w.into_inner().map_err(|e| SnapshotError::Io {
        path: tmp.clone(),
        source: e.into_error(),
    })?;
    f.sync_all().map_err(io(&tmp))?;
    let size = f.metadata().map_err(io(&tmp))?.len();
    let dest = dir.join(FILE);
    std::fs::rename(&tmp, &dest).map_err(io(&dest))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))?;
    Ok(size)
}

/// The fields read before the state, so that a snapshot of another schema is recognised
/// (and ignored) rather than failing to decode. Format 2 and older had no `schema`.
#[derive(Debug, Deserialize)]
struct Header {
    #[serde(default)]
    schema: Option<String>,
    topic: String,
    config: serde_json::Value,
}

/// Read the snapshot in `dir`. Only an IO failure is an error: a snapshot that does not fit
/// or does not decode is ignored, with a warning, and the caller replays.
pub fn read(dir: &Path, cfg: &LeveeConfig) -> Result<Restore, SnapshotError> {
    let path = dir.join(FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Restore::Absent),
        Err(source) => return Err(SnapshotError::Io { path, source }),
    };
    let ignored = |why: Mismatch, detail: &dyn std::fmt::Display| {
        tracing::warn!(path = %path.display(), reason = ?why, %detail, "ignoring the state snapshot: replaying the events topic from the beginning");
        Ok(Restore::Ignored(why))
    };
    let header: Header = match serde_json::from_slice(&bytes) {
        Ok(h) => h,
        Err(e) => return ignored(Mismatch::Undecodable, &e),
    };
    if header.schema.as_deref() != Some(schema()) {
        let found = header
            .schema
            .unwrap_or_else(|| "none (format 2 or older)".into());
        return ignored(
            Mismatch::Schema,
            &format!("schema {found}, this binary {}", schema()),
        );
    }
    if header.topic != cfg.kafka.events_topic {
        return ignored(Mismatch::Topic, &header.topic);
    }
    if header.config != fingerprint(cfg) {
        return ignored(Mismatch::Config, &"runtime or detector settings changed");
    }
    match serde_json::from_slice::<Snapshot<Pipeline>>(&bytes) {
        Ok(snap) => Ok(Restore::Restored(
            snap.offsets,
            Box::new(snap.pipeline.restored(cfg)),
        )),
        Err(e) => ignored(Mismatch::Undecodable, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The schema of this build's state. When this test fails, a state struct changed
    /// shape: snapshots of the previous release will be ignored on upgrade (full replay).
    /// If that is acceptable (it is, unless replays are too long to afford), update the
    /// value and say so in the release notes; otherwise make the change compatible.
    const PINNED_SCHEMA: &str = "a6563b25ab881b58";

    #[test]
    fn the_state_schema_is_traced_and_pinned() {
        let shape = schema_shape();
        assert!(!shape.starts_with("untraceable"), "{shape}");
        for ty in [
            "Pipeline",
            "Lockstep",
            "Active",
            "Pair",
            "DeviceFarm",
            "DeviceState",
            "Findings",
            "Finding",
            "Held",
        ] {
            assert!(
                shape.contains(&format!("\"{ty}\"")),
                "{ty} is traced: {shape}"
            );
        }
        assert_eq!(
            schema(),
            PINNED_SCHEMA,
            "the snapshot state changed shape; see PINNED_SCHEMA's docs"
        );
    }

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("levee-snapshot-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn sample(cfg: &LeveeConfig) -> Pipeline {
        let mut p = Pipeline::new(cfg);
        let (mut alerts, mut dead) = (Vec::new(), Vec::new());
        let rec = br#"{"type":"login","ts":1732000000000,"account":"a","device":"d"}"#;
        p.process(3, rec, crate::Position::Line(1), &mut alerts, &mut dead);
        p
    }

    #[test]
    fn round_trip() {
        let dir = scratch("round-trip");
        let cfg = LeveeConfig::default();
        let p = sample(&cfg);
        let offsets: Offsets = [(3, 42)].into_iter().collect();
        write(&dir, &cfg, &offsets, &p).expect("write");
        let Restore::Restored(o, back) = read(&dir, &cfg).expect("read") else {
            panic!("the same binary restores its own snapshot");
        };
        assert_eq!(o, offsets);
        assert_eq!(back.held().1, p.held().1, "the reorder buffer survives");
        let rec_len = 62;
        assert_eq!(
            back.held().0,
            rec_len + crate::reorder::ENTRY_OVERHEAD,
            "restored entries are counted without a shape"
        );
        assert_eq!(back.counters(), p.counters());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Snapshot, change the state as an upgrade would, restart: ignored with a reason, never an error.
    #[test]
    fn a_snapshot_that_does_not_fit_is_ignored() {
        let dir = scratch("mismatch");
        let cfg = LeveeConfig::default();
        let offsets: Offsets = [(0, 7)].into_iter().collect();
        write(&dir, &cfg, &offsets, &sample(&cfg)).expect("write");
        let path = dir.join(FILE);
        let good: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
        let check = |edit: &dyn Fn(&mut serde_json::Value), want: &str| {
            let mut v = good.clone();
            edit(&mut v);
            std::fs::write(&path, v.to_string()).expect("write edited");
            let got = read(&dir, &cfg).expect("never an error");
            assert_eq!(got.outcome(), want);
        };
        check(&|_| {}, "restored");
        // A state field renamed by a newer binary: its schema differs.
        check(
            &|v| {
                let lanes = v["pipeline"]["lanes"].take();
                v["pipeline"]["lanes_by_partition"] = lanes;
                v["schema"] = "0123456789abcdef".into();
            },
            "schema",
        );
        // The same change, but the header claims this schema: the state does not decode.
        check(
            &|v| {
                let lanes = v["pipeline"]["lanes"].take();
                v["pipeline"]["lanes_by_partition"] = lanes;
            },
            "undecodable",
        );
        // Format 2 and older had a `version` and no `schema`.
        check(
            &|v| {
                v.as_object_mut().map(|m| m.remove("schema"));
                v["version"] = 2.into();
            },
            "schema",
        );
        check(&|v| v["topic"] = "other".into(), "topic");
        check(
            &|v| v["config"]["runtime"]["tick_interval_ms"] = 5.into(),
            "config",
        );
        std::fs::write(&path, "{not json").expect("write junk");
        assert_eq!(
            read(&dir, &cfg).expect("not an error").outcome(),
            "undecodable"
        );
        std::fs::remove_dir_all(&dir).expect("clean up");
        assert_eq!(read(&dir, &cfg).expect("absent").outcome(), "absent");
    }
}
