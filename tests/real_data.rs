//! The real stream in `shared/data` (2021 German federal election, CooRTweet) runs cleanly.

use flate2::read::GzDecoder;
use levee_model::EventType;
use levee_runtime::file::{run_jsonl, AlertWriter};
use levee_runtime::{LeveeConfig, Pipeline};
use std::io::{BufReader, Read};
use std::path::PathBuf;

#[test]
fn german_elections_stream_runs_without_dead_letters() {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/german_elections_2021.jsonl.gz");
    let mut bytes = Vec::new();
    GzDecoder::new(std::fs::File::open(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .read_to_end(&mut bytes)
        .expect("gunzip");
    let cfg = LeveeConfig::default();
    let mut pipeline = Pipeline::new(&cfg);
    let mut alerts = AlertWriter::new(Vec::new());
    let mut dead = Vec::new();
    let report = run_jsonl(
        BufReader::new(&bytes[..]),
        &mut alerts,
        &mut dead,
        &mut pipeline,
        cfg.runtime.max_record_bytes,
        4096,
        &mut |_, _| {},
    )
    .expect("io");
    let c = &report.counters;
    // The data README: 289,824 events, time-ordered, posts and shares only.
    assert_eq!(c.records, 289_824);
    assert_eq!(
        c.dead_letters_total(),
        0,
        "{}",
        String::from_utf8_lossy(&dead[..dead.len().min(2000)])
    );
    assert_eq!(
        c.events[EventType::Post.index()],
        218_971,
        "one post event per source post"
    );
    assert_eq!(
        c.events[EventType::Post.index()] + c.events[EventType::Engage.index()],
        289_824
    );
    assert_eq!(c.late_processed, 0, "the stream is time-ordered");
    // No device fields here, so only the lockstep detector can speak: the source's authors
    // found coordinated link sharing in this data, and Levee finds such a group too.
    let alerts: Vec<levee_model::Alert> = String::from_utf8(alerts.into_inner())
        .expect("utf8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("alert json"))
        .collect();
    assert!(
        !alerts.is_empty(),
        "expected at least one coordinated link-sharing group"
    );
    let text = String::from_utf8_lossy(&bytes);
    for a in &alerts {
        assert_eq!(a.kind, levee_model::AlertKind::BotFarm);
        assert!(a.accounts.len() >= 6 && a.targets.len() >= 2, "{a:?}");
        for acc in &a.accounts {
            assert!(
                text.contains(&format!("\"account\": \"{acc}\"")),
                "{acc} is not in the stream"
            );
        }
    }
}
