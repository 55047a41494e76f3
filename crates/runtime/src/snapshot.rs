//! State snapshots for service mode: the pipeline's state and the offsets it covers, written atomically.
//!
//! A snapshot is taken after a batch's output is acknowledged, so its offsets are the
//! next records to read. Restoring it and seeking there replays only what came after,
//! and the detectors' determinism re-emits any alert of that stretch identically.

use crate::{LeveeConfig, Pipeline};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};

const FILE: &str = "levee-snapshot.json";
const VERSION: u32 = 1;

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

/// Read the snapshot in `dir`, if there is one that fits this topic and configuration.
pub fn read(dir: &Path, cfg: &LeveeConfig) -> Result<Option<(Offsets, Pipeline)>, SnapshotError> {
    let path = dir.join(FILE);
    let f = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(SnapshotError::Io { path, source }),
    };
    let snap: Snapshot<Pipeline> =
        serde_json::from_reader(BufReader::new(f)).map_err(|source| SnapshotError::Corrupt {
            path: path.clone(),
            source,
        })?;
    if snap.version != VERSION
        || snap.topic != cfg.kafka.events_topic
        || snap.config != fingerprint(cfg)
    {
        tracing::warn!(path = %path.display(), "snapshot was taken under another version, topic or configuration: ignoring it (full replay)");
        return Ok(None);
    }
    Ok(Some((snap.offsets, snap.pipeline.restored(cfg))))
}
