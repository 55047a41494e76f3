//! State snapshots for service mode: the pipeline's state and the offsets it covers, written atomically.
//!
//! A snapshot is taken after a batch's output is acknowledged, so its offsets are the
//! next records to read. Restoring it and seeking there replays only what came after,
//! and the detectors' determinism re-emits any alert of that stretch identically.

use crate::{LeveeConfig, Pipeline};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

const FILE: &str = "levee-snapshot.json";
/// 2: lanes (per-partition clocks) and the reorder buffer replaced the single clock.
const VERSION: u32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot io at {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("snapshot {path} is unreadable ({source}); move it away to start from a full replay")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// What a snapshot holds. `config` guards against restoring state built under other settings.
#[derive(Debug, Serialize, Deserialize)]
struct Snapshot<P> {
    version: u32,
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
        version: VERSION,
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

/// The fields read before the state, so that a snapshot of another format version is
/// recognised (and ignored) rather than failing to decode.
#[derive(Debug, Deserialize)]
struct Header {
    version: u32,
    topic: String,
    config: serde_json::Value,
}

/// Read the snapshot in `dir`, if there is one that fits this topic and configuration.
pub fn read(dir: &Path, cfg: &LeveeConfig) -> Result<Option<(Offsets, Pipeline)>, SnapshotError> {
    let path = dir.join(FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(SnapshotError::Io { path, source }),
    };
    let corrupt = |source| SnapshotError::Corrupt {
        path: path.clone(),
        source,
    };
    let header: Header = serde_json::from_slice(&bytes).map_err(corrupt)?;
    if header.version != VERSION
        || header.topic != cfg.kafka.events_topic
        || header.config != fingerprint(cfg)
    {
        tracing::warn!(path = %path.display(), version = header.version, "snapshot was taken under another version, topic or configuration: ignoring it (full replay)");
        return Ok(None);
    }
    let snap: Snapshot<Pipeline> = serde_json::from_slice(&bytes).map_err(corrupt)?;
    Ok(Some((snap.offsets, snap.pipeline.restored(cfg))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_other_versions_are_ignored() {
        let dir = std::env::temp_dir().join(format!("levee-snapshot-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cfg = LeveeConfig::default();
        let mut p = Pipeline::new(&cfg);
        let (mut alerts, mut dead) = (Vec::new(), Vec::new());
        let rec = br#"{"type":"login","ts":1732000000000,"account":"a"}"#;
        p.process(3, rec, crate::Position::Line(1), &mut alerts, &mut dead);
        let offsets: Offsets = [(3, 42)].into_iter().collect();
        write(&dir, &cfg, &offsets, &p).expect("write");
        let (o, back) = read(&dir, &cfg).expect("read").expect("same version");
        assert_eq!(o, offsets);
        assert_eq!(back.held().1, p.held().1, "the reorder buffer survives");
        let record_only = rec.len() + crate::reorder::ENTRY_OVERHEAD;
        assert_eq!(
            back.held().0,
            record_only,
            "restored entries are counted without a shape"
        );
        assert_eq!(back.counters(), p.counters());

        // A snapshot of the previous format: ignored with a warning, not an error.
        let old = serde_json::json!({"version": 1, "topic": cfg.kafka.events_topic,
            "config": fingerprint(&cfg), "offsets": {}, "pipeline": {"clock": {}}});
        std::fs::write(dir.join(FILE), old.to_string()).expect("write old");
        assert!(read(&dir, &cfg).expect("not an error").is_none());
        std::fs::write(dir.join(FILE), "{not json").expect("write junk");
        assert!(matches!(
            read(&dir, &cfg),
            Err(SnapshotError::Corrupt { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
