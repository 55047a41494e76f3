//! Issue 10's acceptance bars for the copy-campaign detector, on simulated scenarios end to end.

use levee_model::{Alert, AlertKind};
use levee_sim::eval::evaluate;
use levee_sim::ScenarioConfig;
#[path = "support.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use support::run_scenario;

/// Run `scenario` end to end with the default config; assert the copy-campaign bars.
fn check(scenario: ScenarioConfig) {
    let seed = scenario.seed;
    let (s, all) = run_scenario(&scenario);
    let alerts: Vec<Alert> = all
        .into_iter()
        .filter(|a| a.kind == AlertKind::CopyCampaign)
        .collect();
    let r = evaluate(&s.truth, &alerts);

    // Revisions only on material change: at most 5 messages per alert id on average.
    let ids: BTreeSet<&str> = alerts.iter().map(|a| a.alert_id.as_str()).collect();
    assert!(!ids.is_empty(), "seed {seed}: no copy_campaign alert");
    assert!(
        alerts.len() as f64 <= 5.0 * ids.len() as f64,
        "seed {seed}: {} messages for {} alert ids",
        alerts.len(),
        ids.len()
    );
    let campaigns: Vec<_> = r
        .groups
        .iter()
        .filter(|g| g.kind == AlertKind::CopyCampaign)
        .collect();
    assert_eq!(campaigns.len(), 5, "seed {seed}: five campaigns planted");
    for g in campaigns {
        // Every level, heavy disguise included (clauses reordered, filler in front).
        let bar = 0.95;
        assert!(
            g.recall >= bar,
            "seed {seed}: {} ({}) recall {:.3} < {bar}",
            g.id,
            g.variant,
            g.recall
        );
        // One operation, one alert (at most two ids).
        let truth = s.truth.groups.iter().find(|t| t.id == g.id).expect("group");
        let members: BTreeSet<&str> = truth.accounts.iter().map(String::as_str).collect();
        let alert_ids: BTreeSet<&str> = alerts
            .iter()
            .filter(|a| a.accounts.iter().any(|m| members.contains(m.as_str())))
            .map(|a| a.alert_id.as_str())
            .collect();
        assert!(
            alert_ids.len() <= 2,
            "seed {seed}: {} split over {} alert ids",
            g.id,
            alert_ids.len()
        );
    }
    let kind = &r.kinds[AlertKind::CopyCampaign.index()];
    assert!(
        kind.organic_flagged as f64 <= 0.0005 * r.organic_accounts as f64,
        "seed {seed}: {} organic accounts flagged",
        kind.organic_flagged
    );
    let traps: BTreeMap<&str, Option<&usize>> = r
        .cohorts
        .iter()
        .map(|c| (c.name.as_str(), c.flagged_by_kind.get("copy_campaign")))
        .collect();
    for trap in ["news_quoters", "viral_crowd", "fan_group"] {
        assert!(traps.contains_key(trap), "seed {seed}: {trap} planted");
        assert_eq!(traps[trap], None, "seed {seed}: {trap} flagged as copies");
    }
    // Evidence a moderator can read: samples, the template's features, the mean distance.
    for a in &alerts {
        for key in [
            "samples",
            "template_features",
            "mean_hamming",
            "spread_ms",
            "copies",
        ] {
            assert!(
                a.evidence.contains_key(key),
                "seed {seed}: no {key} in {}",
                a.alert_id
            );
        }
    }
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
