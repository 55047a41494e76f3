//! Issue 12's acceptance bars for the hot-list manipulation detector, on simulated
//! scenarios end to end.

use levee_model::{Alert, AlertKind};
use levee_sim::eval::evaluate;
use levee_sim::ScenarioConfig;
#[path = "support.rs"]
mod support;

use std::collections::BTreeSet;
use support::run_scenario;

/// Run `scenario` end to end with the default config; assert the hot-list bars.
fn check(scenario: ScenarioConfig) {
    let seed = scenario.seed;
    let (s, all) = run_scenario(&scenario);
    let alerts: Vec<Alert> = all
        .into_iter()
        .filter(|a| a.kind == AlertKind::HotlistManipulation)
        .collect();
    let r = evaluate(&s.truth, &alerts);
    let k = &r.kinds[AlertKind::HotlistManipulation.index()];
    assert_eq!(k.groups, 2, "seed {seed}: two pushes planted");
    assert_eq!(
        k.groups_detected, k.groups,
        "seed {seed}: every push detected"
    );
    let lag = k.median_lag_ms.expect("a lag when detected");
    assert!(lag <= 10 * 60_000, "seed {seed}: median lag {lag} ms");
    assert!(
        k.alerts as f64 <= 5.0 * k.alert_ids as f64,
        "seed {seed}: {} messages for {} ids",
        k.alerts,
        k.alert_ids
    );
    // The accounts named are the pushers: >= 90% planted; recall >= 0.8.
    let planted: BTreeSet<&str> = s
        .truth
        .groups
        .iter()
        .filter(|g| g.kind == AlertKind::HotlistManipulation)
        .flat_map(|g| g.accounts.iter().map(String::as_str))
        .collect();
    let named: BTreeSet<&str> = alerts
        .iter()
        .flat_map(|a| a.accounts.iter().map(String::as_str))
        .collect();
    let right = named.intersection(&planted).count();
    assert!(
        right as f64 >= 0.9 * named.len() as f64,
        "seed {seed}: {right} of {} named accounts planted",
        named.len()
    );
    for g in r
        .groups
        .iter()
        .filter(|g| g.kind == AlertKind::HotlistManipulation)
    {
        assert!(
            g.recall >= 0.8,
            "seed {seed}: {} recall {:.3}",
            g.id,
            g.recall
        );
        assert!(
            g.alert_ids <= 2,
            "seed {seed}: {} over {} ids",
            g.id,
            g.alert_ids
        );
    }
    // Each alert names its topic, the planted one; the breaking news is never flagged.
    let topics: BTreeSet<&str> = s
        .truth
        .groups
        .iter()
        .filter_map(|g| g.topic.as_deref())
        .collect();
    for a in &alerts {
        let topic = a
            .topic
            .as_deref()
            .expect("a hot-list alert names its topic");
        assert!(topics.contains(topic), "seed {seed}: {topic} flagged");
        for key in [
            "rate_per_min",
            "baseline_per_min",
            "young_share",
            "repeat_share",
            "top_block_share",
        ] {
            assert!(a.evidence.contains_key(key), "seed {seed}: no {key}");
        }
    }
    let news = r
        .cohorts
        .iter()
        .find(|c| c.name == "news_crowd")
        .expect("news trap planted");
    assert_eq!(
        news.flagged, 0,
        "seed {seed}: the breaking news crowd flagged"
    );
}

#[test]
fn default_scenario() {
    check(ScenarioConfig::default());
}

#[test]
fn default_size_seeds_1_and_7() {
    for seed in [1, 7] {
        check(ScenarioConfig {
            seed,
            ..ScenarioConfig::default()
        });
    }
}
