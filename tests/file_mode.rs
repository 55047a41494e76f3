//! File mode end to end on simulated streams: contract conformance and determinism.

use levee_model::{decode, Alert, Limits};
use levee_runtime::file::{run_jsonl, AlertWriter, Report};
use levee_runtime::{LeveeConfig, Pipeline};
use levee_sim::{generate, ScenarioConfig};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

fn schema(file: &str) -> jsonschema::Validator {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/contract")
        .join(file);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    jsonschema::validator_for(&serde_json::from_str(&text).expect("schema is json"))
        .expect("schema compiles")
}

/// A small but complete scenario as JSON Lines (built once per test binary).
fn stream() -> &'static [u8] {
    static S: OnceLock<Vec<u8>> = OnceLock::new();
    S.get_or_init(|| {
        let s = generate(&ScenarioConfig {
            seed: 7,
            accounts: 4_000,
            hours: 3,
            ..ScenarioConfig::default()
        });
        let mut out = Vec::new();
        for e in &s.events {
            out.extend_from_slice(e.to_json().as_bytes());
            out.push(b'\n');
        }
        out
    })
}

/// Run file mode over `input`; return the report and the alert lines.
fn run(input: &[u8], cfg: &LeveeConfig) -> (Report, Vec<String>) {
    let mut p = Pipeline::new(cfg);
    let mut alerts = AlertWriter::new(Vec::new());
    let mut dead = Vec::new();
    let report = run_jsonl(
        input,
        &mut alerts,
        &mut dead,
        &mut p,
        cfg.runtime.max_record_bytes,
        cfg.runtime.batch_size,
        &mut |_, _| {},
    )
    .expect("in-memory io");
    let buf = alerts.into_inner();
    let lines = String::from_utf8(buf)
        .expect("utf8")
        .lines()
        .map(str::to_owned)
        .collect();
    (report, lines)
}

fn without_emitted_at(line: &str) -> String {
    let mut v: serde_json::Value = serde_json::from_str(line).expect("alert is json");
    v.as_object_mut().expect("object").remove("emitted_at");
    v.to_string()
}

#[test]
fn simulated_events_satisfy_the_event_schema() {
    let validator = schema("event.schema.json");
    let mut n = 0;
    for line in stream().split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let v: serde_json::Value = serde_json::from_slice(line).expect("json");
        assert!(validator.is_valid(&v), "{}", String::from_utf8_lossy(line));
        decode(line, &Limits::default()).expect("the simulator writes valid events");
        n += 1;
    }
    assert!(n > 50_000, "scenario too small: {n}");
}

#[test]
fn alerts_satisfy_the_alert_contract() {
    let (report, lines) = run(stream(), &LeveeConfig::default());
    assert_eq!(report.counters.dead_letters_total(), 0);
    assert!(
        !lines.is_empty(),
        "the scenario plants device farms: expected alerts"
    );
    let validator = schema("alert.schema.json");
    let mut revisions: BTreeMap<String, u32> = BTreeMap::new();
    for line in &lines {
        let v: serde_json::Value = serde_json::from_str(line).expect("json");
        assert!(validator.is_valid(&v), "{line}");
        let a: Alert = serde_json::from_value(v).expect("alert model");
        assert!(
            a.accounts.windows(2).all(|w| w[0] < w[1]),
            "accounts sorted, unique"
        );
        assert!(a.emitted_at > 0, "the sink stamps emitted_at");
        assert!(a.window.start <= a.window.end);
        let prev = revisions
            .insert(a.alert_id.clone(), a.revision)
            .unwrap_or(0);
        assert_eq!(
            a.revision,
            prev + 1,
            "revisions of {} count up from 1",
            a.alert_id
        );
    }
}

#[test]
fn same_input_and_config_give_byte_identical_alerts() {
    let cfg = LeveeConfig::default();
    let (_, a) = run(stream(), &cfg);
    let (_, b) = run(stream(), &cfg);
    let mut small_batches = cfg.clone();
    small_batches.runtime.batch_size = 7;
    let (_, c) = run(stream(), &small_batches);
    let strip = |v: &[String]| v.iter().map(|l| without_emitted_at(l)).collect::<Vec<_>>();
    assert!(!a.is_empty());
    assert_eq!(strip(&a), strip(&b), "two runs differ");
    assert_eq!(strip(&a), strip(&c), "batch size changed the alerts");
}
