//! Writing a generated scenario to disk without holding its events in memory.
//!
//! The simulator hands events over in emission order with their arrival time
//! ([`levee_sim::EventSink`]). Each is encoded at once and appended to the spill
//! file of its arrival-time bucket; afterwards each bucket is read back alone,
//! sorted by arrival (a stable sort, so ties keep emission order) and appended to
//! `events.jsonl`. Buckets cover disjoint arrival ranges, so the output is the
//! same as sorting everything in memory, and memory holds one bucket at a time.

use anyhow::Context;
use levee_model::{Event, Ts};
use levee_sim::{EventSink, ScenarioConfig, Truth};
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

const HOUR: i64 = 3_600_000;
/// The narrowest bucket, and the most buckets (open spill files) a scenario uses.
const MIN_BUCKET_MS: i64 = 10 * 60_000;
const MAX_BUCKETS: i64 = 64;

/// What [`write_scenario`] wrote.
pub struct Written {
    pub events_path: PathBuf,
    pub truth_path: PathBuf,
    pub events: u64,
    pub truth: Truth,
}

/// Generate `cfg` into `DIR/events.jsonl` (arrival order, contract v1) and `DIR/truth.json`.
pub fn write_scenario(cfg: &ScenarioConfig, dir: &Path) -> anyhow::Result<Written> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let spill_dir = dir.join(".spill");
    std::fs::create_dir_all(&spill_dir)
        .with_context(|| format!("creating {}", spill_dir.display()))?;
    let mut sink = Spill::new(cfg, &spill_dir)?;
    let truth = levee_sim::generate_into(cfg, &mut sink);
    if let Some(e) = sink.error.take() {
        return Err(e).context("spilling generated events");
    }
    let events_path = dir.join("events.jsonl");
    let mut out = BufWriter::new(
        File::create(&events_path)
            .with_context(|| format!("creating {}", events_path.display()))?,
    );
    let files = std::mem::take(&mut sink.files);
    for (i, file) in files.into_iter().enumerate() {
        file.into_inner()
            .map_err(|e| e.into_error())
            .context("flushing a spill file")?;
        let path = sink.path(i);
        append_sorted(&path, &mut out).with_context(|| format!("sorting {}", path.display()))?;
        std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    }
    out.flush()?;
    std::fs::remove_dir(&spill_dir).ok();
    let truth_path = dir.join("truth.json");
    std::fs::write(&truth_path, serde_json::to_string_pretty(&truth)?)
        .with_context(|| format!("writing {}", truth_path.display()))?;
    Ok(Written {
        events_path,
        truth_path,
        events: sink.events,
        truth,
    })
}

/// The spilling sink: one file per arrival bucket, records `arrival (i64 LE), len (u32 LE), line`.
struct Spill {
    dir: PathBuf,
    start: Ts,
    width: i64,
    files: Vec<BufWriter<File>>,
    line: Vec<u8>,
    events: u64,
    error: Option<anyhow::Error>,
}

impl Spill {
    fn new(cfg: &ScenarioConfig, dir: &Path) -> anyhow::Result<Self> {
        // Arrival runs from the start to past the end by the largest delay (45 s).
        let span = i64::from(cfg.hours.max(1)) * HOUR + 60_000;
        let width = MIN_BUCKET_MS.max((span + MAX_BUCKETS - 1) / MAX_BUCKETS);
        let buckets = (span / width + 1) as usize;
        let mut spill = Spill {
            dir: dir.to_owned(),
            start: cfg.start_ts,
            width,
            files: Vec::with_capacity(buckets),
            line: Vec::with_capacity(1024),
            events: 0,
            error: None,
        };
        for i in 0..buckets {
            let path = spill.path(i);
            let f = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
            spill.files.push(BufWriter::with_capacity(1 << 16, f));
        }
        Ok(spill)
    }

    fn path(&self, bucket: usize) -> PathBuf {
        self.dir.join(format!("{bucket:03}.bin"))
    }

    fn write(&mut self, arrival: Ts, event: &Event<'static>) -> anyhow::Result<()> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, event)?;
        let last = self.files.len() - 1;
        let bucket = (((arrival - self.start) / self.width).max(0) as usize).min(last);
        let f = &mut self.files[bucket];
        f.write_all(&arrival.to_le_bytes())?;
        f.write_all(&(self.line.len() as u32).to_le_bytes())?;
        f.write_all(&self.line)?;
        Ok(())
    }
}

impl EventSink for Spill {
    fn push(&mut self, arrival: Ts, event: Event<'static>) {
        if self.error.is_some() {
            return;
        }
        match self.write(arrival, &event) {
            Ok(()) => self.events += 1,
            Err(e) => self.error = Some(e),
        }
    }
}

/// Read one spill file, sort its records by arrival (stable) and append their lines.
fn append_sorted(path: &Path, out: &mut impl Write) -> anyhow::Result<()> {
    let mut buf = Vec::new();
    File::open(path)?.read_to_end(&mut buf)?;
    let mut records: Vec<(Ts, usize, usize)> = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        let header = buf.get(at..at + 12).context("truncated spill record")?;
        let arrival = Ts::from_le_bytes(header[..8].try_into()?);
        let len = u32::from_le_bytes(header[8..].try_into()?) as usize;
        let body = at + 12;
        anyhow::ensure!(body + len <= buf.len(), "truncated spill record");
        records.push((arrival, body, len));
        at = body + len;
    }
    records.sort_by_key(|r| r.0);
    for (_, body, len) in records {
        out.write_all(&buf[body..body + len])?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spilled_buckets_give_the_in_memory_arrival_order_byte_for_byte() {
        let cfg = ScenarioConfig {
            seed: 11,
            accounts: 2_000,
            hours: 2,
            ..ScenarioConfig::default()
        };
        let dir = std::env::temp_dir().join(format!("levee-gen-test-{}", std::process::id()));
        let w = write_scenario(&cfg, &dir).expect("write scenario");
        let expected = levee_sim::generate(&cfg);
        let mut want = String::new();
        for e in &expected.events {
            want.push_str(&serde_json::to_string(e).expect("encode"));
            want.push('\n');
        }
        let got = std::fs::read_to_string(&w.events_path).expect("read events");
        assert_eq!(w.events, expected.events.len() as u64);
        assert!(got == want, "spilled order differs from the in-memory sort");
        assert!(!dir.join(".spill").exists(), "spill files are removed");
        let truth = std::fs::read_to_string(&w.truth_path).expect("read truth");
        assert_eq!(
            truth,
            serde_json::to_string_pretty(&expected.truth).expect("truth")
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
