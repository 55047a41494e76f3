//! Scoring alerts against a scenario's truth: precision, organic false positives, per-kind recall and lag.

use crate::truth::Truth;
use levee_model::{Alert, AlertKind};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;

/// A group counts as detected by a kind when at least this share of its members are flagged by it.
pub const DETECTED_SHARE: f64 = 0.5;

#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub alerts: usize,
    pub flagged_accounts: usize,
    pub flagged_planted: usize,
    pub flagged_organic: usize,
    pub organic_accounts: usize,
    /// Flagged accounts that were planted / all flagged accounts (`None` with nothing flagged).
    pub precision: Option<f64>,
    /// Flagged organic accounts / organic accounts.
    pub organic_fpr: f64,
    pub kinds: Vec<KindReport>,
    pub groups: Vec<GroupReport>,
    pub cohorts: Vec<CohortReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct KindReport {
    pub kind: AlertKind,
    /// Messages of this kind (every revision).
    pub alerts: usize,
    /// Distinct alert ids of this kind.
    pub alert_ids: usize,
    pub groups: usize,
    pub groups_detected: usize,
    pub members: usize,
    pub members_flagged: usize,
    pub member_recall: Option<f64>,
    /// Organic accounts flagged by this kind.
    pub organic_flagged: usize,
    /// Median over groups with any alert of (first alert's window end - group start), ms.
    pub median_lag_ms: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupReport {
    pub id: String,
    pub kind: AlertKind,
    pub variant: String,
    pub members: usize,
    pub flagged_by_kind: usize,
    /// Distinct alert ids of the group's kind that name any of its members.
    pub alert_ids: usize,
    pub recall: f64,
    pub detected: bool,
    pub lag_ms: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CohortReport {
    pub name: String,
    pub accounts: usize,
    pub flagged: usize,
    pub flagged_by_kind: BTreeMap<String, usize>,
}

fn ratio(a: usize, b: usize) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// The median; for an even count, the mean of the two middle values.
fn median(mut v: Vec<i64>) -> Option<i64> {
    v.sort_unstable();
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2),
    }
}

/// Score `alerts` (every revision, any order) against `truth`.
pub fn evaluate(truth: &Truth, alerts: &[Alert]) -> EvalReport {
    let planted: HashSet<&str> = truth
        .groups
        .iter()
        .flat_map(|g| g.accounts.iter().map(String::as_str))
        .collect();
    let mut by_kind: BTreeMap<AlertKind, HashSet<&str>> = BTreeMap::new();
    for a in alerts {
        by_kind
            .entry(a.kind)
            .or_default()
            .extend(a.accounts.iter().map(String::as_str));
    }
    let flagged: HashSet<&str> = by_kind.values().flatten().copied().collect();
    let flagged_planted = flagged.iter().filter(|a| planted.contains(*a)).count();
    let flagged_organic = flagged.len() - flagged_planted;
    let empty = HashSet::new();

    let mut groups = Vec::new();
    for g in &truth.groups {
        let kind_flagged = by_kind.get(&g.kind).unwrap_or(&empty);
        let hit = g
            .accounts
            .iter()
            .filter(|a| kind_flagged.contains(a.as_str()))
            .count();
        let members: HashSet<&str> = g.accounts.iter().map(String::as_str).collect();
        let touching: Vec<&Alert> = alerts
            .iter()
            .filter(|a| a.kind == g.kind && a.accounts.iter().any(|m| members.contains(m.as_str())))
            .collect();
        let first = touching.iter().map(|a| a.window.end).min();
        let ids: HashSet<&str> = touching.iter().map(|a| a.alert_id.as_str()).collect();
        let recall = ratio(hit, g.accounts.len()).unwrap_or(0.0);
        groups.push(GroupReport {
            id: g.id.clone(),
            kind: g.kind,
            variant: g.variant.clone(),
            members: g.accounts.len(),
            flagged_by_kind: hit,
            alert_ids: ids.len(),
            recall,
            detected: recall >= DETECTED_SHARE,
            lag_ms: first.map(|t| (t - g.start).max(0)),
        });
    }

    let kinds = AlertKind::ALL
        .iter()
        .map(|&kind| {
            let gs: Vec<&GroupReport> = groups.iter().filter(|g| g.kind == kind).collect();
            let members: usize = gs.iter().map(|g| g.members).sum();
            let members_flagged: usize = gs.iter().map(|g| g.flagged_by_kind).sum();
            let kind_flagged = by_kind.get(&kind).unwrap_or(&empty);
            KindReport {
                kind,
                alerts: alerts.iter().filter(|a| a.kind == kind).count(),
                alert_ids: alerts
                    .iter()
                    .filter(|a| a.kind == kind)
                    .map(|a| a.alert_id.as_str())
                    .collect::<HashSet<_>>()
                    .len(),
                groups: gs.len(),
                groups_detected: gs.iter().filter(|g| g.detected).count(),
                members,
                members_flagged,
                member_recall: ratio(members_flagged, members),
                organic_flagged: kind_flagged
                    .iter()
                    .filter(|a| !planted.contains(*a))
                    .count(),
                median_lag_ms: median(gs.iter().filter_map(|g| g.lag_ms).collect()),
            }
        })
        .collect();

    let cohorts = truth
        .cohorts
        .iter()
        .map(|c| {
            let set: BTreeSet<&str> = c.accounts.iter().map(String::as_str).collect();
            CohortReport {
                name: c.name.clone(),
                accounts: set.len(),
                flagged: set.iter().filter(|a| flagged.contains(*a)).count(),
                flagged_by_kind: by_kind
                    .iter()
                    .map(|(k, f)| {
                        (
                            k.as_str().to_owned(),
                            set.iter().filter(|a| f.contains(*a)).count(),
                        )
                    })
                    .filter(|(_, n)| *n > 0)
                    .collect(),
            }
        })
        .collect();

    EvalReport {
        alerts: alerts.len(),
        flagged_accounts: flagged.len(),
        flagged_planted,
        flagged_organic,
        organic_accounts: truth.organic_accounts,
        precision: ratio(flagged_planted, flagged.len()),
        organic_fpr: ratio(flagged_organic, truth.organic_accounts).unwrap_or(0.0),
        kinds,
        groups,
        cohorts,
    }
}

fn pct(x: Option<f64>) -> String {
    x.map_or("-".to_owned(), |v| format!("{:.1}%", v * 100.0))
}

fn mins(x: Option<i64>) -> String {
    x.map_or("-".to_owned(), |v| {
        format!("{:.1} min", v as f64 / 60_000.0)
    })
}

impl fmt::Display for EvalReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "alerts {} | flagged accounts {} ({} planted, {} organic)",
            self.alerts, self.flagged_accounts, self.flagged_planted, self.flagged_organic
        )?;
        writeln!(
            f,
            "account precision {} | organic false-positive rate {:.3}% of {} organic accounts",
            pct(self.precision),
            self.organic_fpr * 100.0,
            self.organic_accounts
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "{:<22} {:>6} {:>5} {:>9} {:>14} {:>9} {:>8} {:>11}",
            "kind", "alerts", "ids", "detected", "member recall", "organic", "", "median lag"
        )?;
        for k in &self.kinds {
            writeln!(
                f,
                "{:<22} {:>6} {:>5} {:>4}/{:<4} {:>14} {:>9} {:>8} {:>11}",
                k.kind.as_str(),
                k.alerts,
                k.alert_ids,
                k.groups_detected,
                k.groups,
                format!(
                    "{} ({}/{})",
                    pct(k.member_recall),
                    k.members_flagged,
                    k.members
                ),
                k.organic_flagged,
                "",
                mins(k.median_lag_ms)
            )?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "{:<44} {:>8} {:>8} {:>8} {:>4} {:>11}",
            "planted group", "members", "flagged", "recall", "ids", "lag"
        )?;
        for g in &self.groups {
            writeln!(
                f,
                "{:<44} {:>8} {:>8} {:>8} {:>4} {:>11}",
                format!("{} ({})", g.id, g.variant),
                g.members,
                g.flagged_by_kind,
                pct(Some(g.recall)),
                g.alert_ids,
                mins(g.lag_ms)
            )?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "{:<44} {:>8} {:>8}  by kind",
            "organic cohort", "accounts", "flagged"
        )?;
        for c in &self.cohorts {
            let by: Vec<String> = c
                .flagged_by_kind
                .iter()
                .map(|(k, n)| format!("{k}={n}"))
                .collect();
            writeln!(
                f,
                "{:<44} {:>8} {:>8}  {}",
                c.name,
                c.accounts,
                c.flagged,
                by.join(" ")
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::truth::{Cohort, Group};
    use levee_model::{Severity, Window};

    fn alert(kind: AlertKind, accounts: &[&str], end: i64) -> Alert {
        Alert {
            v: 1,
            alert_id: "x".into(),
            revision: 1,
            kind,
            severity: Severity::High,
            score: 0.9,
            window: Window { start: 0, end },
            emitted_at: 0,
            accounts: accounts.iter().map(|s| s.to_string()).collect(),
            targets: vec![],
            topic: None,
            summary: "s".into(),
            evidence: Default::default(),
            detector: "t/1".into(),
        }
    }

    #[test]
    fn median_of_even_counts_is_the_mean_of_the_middle_two() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![5, 1, 3]), Some(3));
        assert_eq!(median(vec![4, 1, 3, 10]), Some(3));
    }

    #[test]
    fn scores_precision_recall_lag_and_cohorts() {
        let truth = Truth {
            seed: 1,
            start: 0,
            end: 100,
            organic_accounts: 100,
            groups: vec![
                Group {
                    id: "g1".into(),
                    kind: AlertKind::DeviceFarm,
                    variant: "v".into(),
                    accounts: vec!["a".into(), "b".into(), "c".into(), "d".into()],
                    targets: vec![],
                    topic: None,
                    start: 1000,
                    end: 5000,
                },
                Group {
                    id: "g2".into(),
                    kind: AlertKind::BotFarm,
                    variant: "v".into(),
                    accounts: vec!["e".into(), "f".into()],
                    targets: vec![],
                    topic: None,
                    start: 0,
                    end: 10,
                },
            ],
            cohorts: vec![Cohort {
                name: "fans".into(),
                accounts: vec!["o1".into(), "o2".into()],
            }],
        };
        // Device farm: 3 of 4 members and one organic account, first seen at 61,000.
        // The bot-farm member "e" is flagged by the wrong kind: counts for precision, not recall.
        let alerts = vec![
            alert(AlertKind::DeviceFarm, &["a", "b", "o1"], 61_000),
            alert(AlertKind::DeviceFarm, &["a", "b", "c", "o1"], 90_000),
            alert(AlertKind::DeviceFarm, &["e"], 95_000),
        ];
        let r = evaluate(&truth, &alerts);
        assert_eq!(
            (r.flagged_accounts, r.flagged_planted, r.flagged_organic),
            (5, 4, 1)
        );
        assert_eq!(r.precision, Some(0.8));
        assert!((r.organic_fpr - 0.01).abs() < 1e-12);
        let df = &r.kinds[AlertKind::DeviceFarm.index()];
        assert_eq!(
            (
                df.groups_detected,
                df.members_flagged,
                df.members,
                df.organic_flagged
            ),
            (1, 3, 4, 1)
        );
        assert_eq!(df.median_lag_ms, Some(60_000));
        let bf = &r.kinds[AlertKind::BotFarm.index()];
        assert_eq!(
            (bf.groups_detected, bf.members_flagged, bf.median_lag_ms),
            (0, 0, None)
        );
        assert_eq!(r.cohorts[0].flagged, 1);
        assert_eq!(r.cohorts[0].flagged_by_kind.get("device_farm"), Some(&1));
    }
}
