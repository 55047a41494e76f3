//! Issue 3's acceptance bars for the lockstep detector, on simulated scenarios end to end.

use levee_model::{Alert, AlertKind};
use levee_sim::eval::evaluate;
use levee_sim::ScenarioConfig;
#[path = "support.rs"]
mod support;

use std::collections::{BTreeMap, HashSet};
use support::run_scenario;

/// Run `scenario` end to end and assert the bars; `lag` says whether the median-lag bar applies
/// (the issue sets it on default-size scenarios; in small ones a farm may do its second
/// evidence-bearing job more than 15 minutes in, see docs/detectors/lockstep.md).
fn check(scenario: ScenarioConfig, lag: bool) {
    let seed = scenario.seed;
    let (s, alerts) = run_scenario(&scenario);
    let r = evaluate(&s.truth, &alerts);

    // One alert per operation, revisions only on material change: at most 5 messages
    // per alert id on average, for every kind emitted.
    let mut per_kind: BTreeMap<AlertKind, (HashSet<&str>, usize)> = BTreeMap::new();
    for a in &alerts {
        let e = per_kind.entry(a.kind).or_default();
        e.0.insert(&a.alert_id);
        e.1 += 1;
    }
    assert!(
        per_kind.contains_key(&AlertKind::BotFarm),
        "seed {seed}: no bot_farm alert"
    );
    for (kind, (ids, messages)) in &per_kind {
        assert!(
            *messages as f64 <= 5.0 * ids.len() as f64,
            "seed {seed}: {kind:?} wrote {messages} messages for {} alert ids",
            ids.len()
        );
    }

    let farms: Vec<_> = r
        .groups
        .iter()
        .filter(|g| g.kind == AlertKind::BotFarm)
        .collect();
    assert!(
        farms.len() >= 2,
        "seed {seed}: the scenario plants bot farms"
    );
    for g in farms {
        let bar = if g.variant == "tight" { 0.97 } else { 0.85 };
        assert!(
            g.recall >= bar,
            "seed {seed}: {} ({}) recall {:.3} < {bar}",
            g.id,
            g.variant,
            g.recall
        );
    }
    let bf = &r.kinds[AlertKind::BotFarm.index()];
    assert!(
        bf.organic_flagged as f64 <= 0.0005 * r.organic_accounts as f64,
        "seed {seed}: {} organic accounts flagged",
        bf.organic_flagged
    );
    assert!(bf.median_lag_ms.is_some(), "seed {seed}: no lag measured");
    if lag {
        assert!(
            bf.median_lag_ms.is_some_and(|l| l <= 15 * 60_000),
            "seed {seed}: median lag {:?}",
            bf.median_lag_ms
        );
    }
    let traps: Vec<_> = r
        .cohorts
        .iter()
        .filter(|c| c.name == "fan_group" || c.name == "viral_crowd")
        .collect();
    assert_eq!(traps.len(), 2, "seed {seed}: both trap cohorts are planted");
    for c in traps {
        assert_eq!(
            c.flagged_by_kind.get("bot_farm"),
            None,
            "seed {seed}: {} flagged",
            c.name
        );
    }
    // No bot_farm alert (latest revision) is mostly organic.
    let planted: HashSet<&str> = s
        .truth
        .groups
        .iter()
        .flat_map(|g| g.accounts.iter().map(String::as_str))
        .collect();
    let mut latest: BTreeMap<&str, &Alert> = BTreeMap::new();
    for a in alerts.iter().filter(|a| a.kind == AlertKind::BotFarm) {
        latest.insert(&a.alert_id, a);
    }
    assert!(!latest.is_empty());
    for a in latest.values() {
        let organic = a
            .accounts
            .iter()
            .filter(|m| !planted.contains(m.as_str()))
            .count();
        assert!(
            organic * 2 < a.accounts.len(),
            "seed {seed}: alert {} is mostly organic",
            a.alert_id
        );
    }
}

#[test]
fn default_scenario() {
    check(ScenarioConfig::default(), true);
}

#[test]
fn default_size_seed_1() {
    check(
        ScenarioConfig {
            seed: 1,
            ..ScenarioConfig::default()
        },
        true,
    );
}

#[test]
fn default_size_seed_7() {
    check(
        ScenarioConfig {
            seed: 7,
            ..ScenarioConfig::default()
        },
        true,
    );
}

#[test]
fn small_scenarios_seeds_3_and_11() {
    for seed in [3, 11] {
        check(
            ScenarioConfig {
                seed,
                accounts: 6_000,
                hours: 4,
                ..ScenarioConfig::default()
            },
            false,
        );
    }
}
