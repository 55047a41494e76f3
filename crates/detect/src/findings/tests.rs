//! The findings store driven through one `check()` helper: revisions, closing, forgetting, the cap.

use super::*;
use crate::{Detector, DetectorConfig};
use levee_model::{AlertKind, Event};

/// A detector that only exists to name the alerts these tests build.
#[derive(Debug)]
struct Probe;
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct ProbeConfig;
impl DetectorConfig for ProbeConfig {
    fn enabled(&self) -> bool {
        true
    }
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}
impl Detector for Probe {
    fn on_event(&mut self, _: &Event<'_>, _: &crate::Profiles, _: &mut Vec<Alert>) {}
}
impl DetectorKind for Probe {
    const NAME: &'static str = "probe";
    const VERSION: u32 = 3;
    const ALERT_KIND: AlertKind = AlertKind::CopyCampaign;
    type Config = ProbeConfig;
    fn new(_: ProbeConfig) -> Self {
        Probe
    }
}

enum Step {
    /// At `ts`: grow to `n` members (`m0..`), with `score` and evidence `class` bits.
    Grow(Ts, usize, f64, u32),
    Tick(Ts),
    Flush,
}

/// Drive one finding through `steps`; return `(revision, members, severity)` per alert.
fn check(steps: &[Step]) -> Vec<(u32, usize, Severity)> {
    let mut f = Findings::new(FindingsConfig::default());
    let key = f.open("cc-1".into(), 0, 0);
    let mut out = Vec::new();
    for s in steps {
        match *s {
            Step::Grow(ts, n, score, class) => {
                let mut u = f.update(key, ts).expect("kept");
                for i in 0..n {
                    u.add_member(&format!("m{i:03}"));
                }
                u.score(score);
                u.class(class);
            }
            Step::Tick(ts) => f.tick::<Probe>(ts, &mut out),
            Step::Flush => f.flush::<Probe>(&mut out),
        }
    }
    for a in &out {
        assert_eq!(
            (a.kind, a.detector.as_str()),
            (AlertKind::CopyCampaign, "probe/3")
        );
        assert_eq!(a.alert_id, "cc-1");
    }
    out.iter()
        .map(|a| (a.revision, a.accounts.len(), a.severity))
        .collect()
}

const H: Ts = 3_600_000;

#[test]
fn revisions_only_on_material_change() {
    use Severity::*;
    type Case<'a> = (&'a str, &'a [Step], &'a [(u32, usize, Severity)]);
    let cases: &[Case] = &[
        (
            "first evidence is emitted at once",
            &[Step::Grow(0, 10, 0.6, 0), Step::Tick(1)],
            &[(1, 10, Medium)],
        ),
        (
            "growth below the fraction waits, at the fraction goes",
            &[
                Step::Grow(0, 10, 0.6, 0),
                Step::Tick(1),
                Step::Grow(2, 14, 0.6, 0),
                Step::Tick(3),
                Step::Grow(4, 15, 0.6, 0),
                Step::Tick(5),
            ],
            &[(1, 10, Medium), (2, 15, Medium)],
        ),
        (
            "a severity rise is material, a fall is not",
            &[
                Step::Grow(0, 10, 0.6, 0),
                Step::Tick(1),
                Step::Grow(2, 10, 0.9, 0),
                Step::Tick(3),
                Step::Grow(4, 10, 0.3, 0),
                Step::Tick(5),
            ],
            &[(1, 10, Medium), (2, 10, High)],
        ),
        (
            "a new evidence class is material, a known one is not",
            &[
                Step::Grow(0, 10, 0.6, 1),
                Step::Tick(1),
                Step::Grow(2, 11, 0.6, 1),
                Step::Tick(3),
                Step::Grow(4, 11, 0.6, 2),
                Step::Tick(5),
            ],
            &[(1, 10, Medium), (2, 11, Medium)],
        ),
        (
            "closing says what was not said yet; flush has nothing left",
            &[
                Step::Grow(0, 10, 0.6, 0),
                Step::Tick(1),
                Step::Grow(2, 12, 0.6, 0),
                Step::Tick(2 * H),
                Step::Flush,
            ],
            &[(1, 10, Medium), (2, 12, Medium)],
        ),
        (
            "flush says what was not said yet",
            &[
                Step::Grow(0, 10, 0.6, 0),
                Step::Tick(1),
                Step::Grow(2, 12, 0.6, 0),
                Step::Flush,
            ],
            &[(1, 10, Medium), (2, 12, Medium)],
        ),
        (
            "a closed finding reopens under its id",
            &[
                Step::Grow(0, 10, 0.6, 0),
                Step::Tick(1),
                Step::Tick(2 * H),
                Step::Grow(3 * H, 20, 0.6, 0),
                Step::Tick(3 * H + 1),
            ],
            &[(1, 10, Medium), (2, 20, Medium)],
        ),
    ];
    for (name, steps, want) in cases {
        assert_eq!(check(steps), *want, "{name}");
    }
}

#[test]
fn closed_findings_are_forgotten_and_the_cap_evicts_the_oldest() {
    let cfg = FindingsConfig {
        max_findings: 3,
        ..FindingsConfig::default()
    };
    let mut f = Findings::new(cfg.clone());
    let mut out = Vec::new();
    for i in 0..5 {
        let k = f.open(format!("cc-{i}"), i * H, i * H);
        f.update(k, i * H)
            .expect("new")
            .add_member(&format!("m{i}"));
    }
    assert_eq!(f.len(), 3);
    assert_eq!(f.cap_hits(), 2);
    assert_eq!(
        f.best_overlap(["m0", "m1"]),
        None,
        "evicted members leave the index"
    );
    assert!(f.best_overlap(["m4"]).is_some());
    f.tick::<Probe>(4 * H + cfg.forget_after_ms + 1, &mut out);
    assert!(f.is_empty(), "closed and past forget_after_ms");
    assert_eq!(f.map_stats()[1].entries, 0, "the member index empties too");
    assert_eq!(out.len(), 3, "each emitted once");
}
