//! `levee demo`: generate a scenario, run every detector over it in file mode, evaluate.

use crate::gen::write_scenario;
use crate::io::evaluate_files;
use crate::run::run_file;
use anyhow::Context;
use levee_runtime::LeveeConfig;
use levee_sim::ScenarioConfig;
use std::path::Path;
use std::time::Instant;

pub fn demo(scenario: &ScenarioConfig, out: &Path, config: Option<&Path>) -> anyhow::Result<()> {
    let cfg = LeveeConfig::from_env_and_file(config).context("loading configuration")?;
    let t = Instant::now();
    let w = write_scenario(scenario, out)?;
    eprintln!(
        "generated {} events ({} organic accounts, {} planted groups) in {:.1} s -> {}",
        w.events,
        w.truth.organic_accounts,
        w.truth.groups.len(),
        t.elapsed().as_secs_f64(),
        w.events_path.display()
    );
    let (events, truth) = (w.events_path, w.truth_path);
    let alerts = out.join("alerts.jsonl");
    let report = run_file(
        &cfg,
        &events,
        &alerts,
        &out.join("dead-letters.jsonl"),
        Some(&out.join("metrics.prom")),
    )?;
    eprintln!("{report}");
    let eval = evaluate_files(&truth, &alerts)?;
    let json = out.join("eval.json");
    std::fs::write(&json, serde_json::to_string_pretty(&eval)?)
        .with_context(|| format!("writing {}", json.display()))?;
    println!("{eval}");
    eprintln!(
        "alerts: {}  report: {}  total {:.1} s",
        alerts.display(),
        json.display(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
