//! Shared by the acceptance tests: a simulated scenario run end to end through file mode.

use levee_model::Alert;
use levee_runtime::file::{run_jsonl, AlertWriter};
use levee_runtime::{LeveeConfig, Pipeline};
use levee_sim::{generate, Scenario, ScenarioConfig};

/// Generate `scenario`, run its events as JSON Lines through the default configuration,
/// and return the scenario with every alert written.
pub fn run_scenario(scenario: &ScenarioConfig) -> (Scenario, Vec<Alert>) {
    let s = generate(scenario);
    let mut input = Vec::new();
    for e in &s.events {
        input.extend_from_slice(e.to_json().as_bytes());
        input.push(b'\n');
    }
    let cfg = LeveeConfig::default();
    let mut p = Pipeline::new(&cfg);
    let mut w = AlertWriter::new(Vec::new());
    run_jsonl(
        &input[..],
        &mut w,
        &mut Vec::new(),
        &mut p,
        cfg.runtime.max_record_bytes,
        4096,
        &mut |_, _| {},
    )
    .expect("io");
    let alerts = String::from_utf8(w.into_inner())
        .expect("utf8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("alert"))
        .collect();
    (s, alerts)
}
