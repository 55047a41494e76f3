//! `device_farm` behaviour, driven by event scripts through one `check()` helper.

use levee_detect::{DetectorStats, Detectors, DetectorsConfig};
use levee_model::{decode, Alert, Limits};

enum Step {
    /// `(ts_seconds, account, device)` login events.
    Logins(Vec<(i64, String, String)>),
    Tick(i64),
}

fn logins(ts0: i64, accounts: std::ops::Range<u32>, device: &'static str) -> Step {
    Step::Logins(
        accounts
            .map(|i| (ts0 + i64::from(i), format!("a{i:03}"), device.to_owned()))
            .collect(),
    )
}

type Got = Vec<(String, u32, Vec<String>)>;

/// Run `steps` through the default detectors; return `(alert_id, revision, accounts)` per alert.
fn check(steps: Vec<Step>) -> Got {
    run(&DetectorsConfig::default(), steps).0
}

/// Run `steps` through the detectors of `cfg`; also return device_farm's final stats.
fn run(cfg: &DetectorsConfig, steps: Vec<Step>) -> (Got, DetectorStats) {
    let mut d = Detectors::new(cfg);
    let mut out: Vec<Alert> = Vec::new();
    for step in steps {
        match step {
            Step::Logins(evs) => {
                for (ts, account, device) in evs {
                    let line = format!(
                        r#"{{"type":"login","ts":{},"account":"{account}","device":"{device}"}}"#,
                        ts * 1000
                    );
                    let ev = decode(line.as_bytes(), &Limits::default()).expect("valid event");
                    d.on_event(&ev, &mut out);
                }
            }
            Step::Tick(s) => d.on_tick(s * 1000, &mut out),
        }
    }
    d.on_flush(&mut out);
    for a in &out {
        assert!(
            a.accounts.windows(2).all(|w| w[0] < w[1]),
            "accounts sorted and unique"
        );
        assert_eq!(a.kind.as_str(), "device_farm");
    }
    let stats = d
        .stats()
        .into_iter()
        .find(|(n, _)| *n == "device_farm")
        .map(|(_, s)| s)
        .expect("device_farm runs");
    let got = out
        .into_iter()
        .map(|a| (a.alert_id, a.revision, a.accounts))
        .collect();
    (got, stats)
}

fn names(r: std::ops::Range<u32>) -> Vec<String> {
    r.map(|i| format!("a{i:03}")).collect()
}

#[test]
fn a_farm_is_found_and_grows_by_revision() {
    let got = check(vec![
        logins(0, 0..10, "dev-farm"),
        Step::Tick(20),
        logins(30, 10..16, "dev-farm"),
        Step::Tick(60),
        logins(70, 16..18, "dev-farm"),
        Step::Tick(100),
    ]);
    // 10 -> 16 members is material (+60%); 16 -> 18 (+12%) waits for the end of input.
    let revisions: Vec<(u32, Vec<String>)> = got.iter().map(|g| (g.1, g.2.clone())).collect();
    assert_eq!(
        revisions,
        vec![(1, names(0..10)), (2, names(0..16)), (3, names(0..18))]
    );
    assert!(
        got.iter().all(|g| g.0 == got[0].0),
        "the growing group keeps its id"
    );
}

#[test]
fn small_growth_waits_until_the_finding_closes() {
    // 8 accounts, then one more every 5 minutes: each +1 is below the material fraction, so
    // the finding is re-emitted when it has grown by half, and once more when it closes
    // (an hour after its last evidence), never once per newcomer.
    let mut steps = vec![logins(0, 0..8, "d"), Step::Tick(10)];
    for i in 8..14u32 {
        let at = i64::from(i) * 300;
        steps.push(Step::Logins(vec![(at, format!("a{i:03}"), "d".to_owned())]));
        steps.push(Step::Tick(at + 10));
    }
    steps.push(Step::Tick(14 * 300 + 2 * 3600));
    let got = check(steps);
    let sizes: Vec<usize> = got.iter().map(|g| g.2.len()).collect();
    assert_eq!(sizes, vec![8, 12, 14], "{got:?}");
}

#[test]
fn a_flood_of_findings_stays_within_max_findings() {
    let mut cfg = DetectorsConfig::default();
    cfg.device_farm.findings.max_findings = 50;
    // 1,000 farms of 8 accounts, each on its own device, a minute apart.
    let steps: Vec<Step> = (0..1_000u32)
        .flat_map(|d| {
            let ts = i64::from(d) * 60;
            let device = format!("dev{d}");
            let accounts = (0..8)
                .map(|i| (ts, format!("f{d}-{i}"), device.clone()))
                .collect();
            [Step::Logins(accounts), Step::Tick(ts + 30)]
        })
        .collect();
    let (got, stats) = run(&cfg, steps);
    let ids: std::collections::BTreeSet<&String> = got.iter().map(|g| &g.0).collect();
    assert_eq!(ids.len(), 1_000, "every farm is reported once");
    let findings = stats.map("findings").expect("findings are reported");
    assert!(findings.entries <= 50, "{stats:?}");
    assert!(findings.bytes > 0, "{stats:?}");
    assert!(stats.cap_hits >= 950, "evictions are counted: {stats:?}");
    let index = stats
        .map("finding_members")
        .expect("member index is reported");
    assert!(index.entries <= 50 * 8, "{stats:?}");
}

#[test]
fn family_devices_and_slow_turnover_are_not_farms() {
    // Three accounts on a family phone; and twelve accounts on one device, but each
    // more than the one-hour window after the previous.
    let slow: Vec<_> = (0..12)
        .map(|i| (i64::from(i) * 4000, format!("s{i}"), "kiosk".to_owned()))
        .collect();
    let mut steps = vec![logins(0, 0..3, "family-phone"), Step::Logins(vec![])];
    for (k, ev) in slow.into_iter().enumerate() {
        steps.push(Step::Logins(vec![ev]));
        steps.push(Step::Tick(k as i64 * 4000 + 10));
    }
    assert_eq!(check(steps), vec![]);
}

#[test]
fn no_revision_without_new_members() {
    let got = check(vec![
        logins(0, 0..9, "d"),
        Step::Tick(10),
        logins(20, 0..9, "d"),
        Step::Tick(40),
    ]);
    assert_eq!(got.len(), 1, "{got:?}");
}

#[test]
fn identical_input_gives_identical_ids() {
    let run = || {
        check(vec![
            logins(0, 0..9, "d1"),
            logins(5, 20..40, "d2"),
            Step::Tick(100),
        ])
    };
    let (a, b) = (run(), run());
    assert_eq!(a, b);
    assert_eq!(a.len(), 2);
    assert_ne!(a[0].0, a[1].0);
}

/// Distinct devices flooding in: the byte budget holds them near it and counts refusals.
#[test]
fn the_memory_budget_bounds_devices_and_counts_refusals() {
    let steps = |n: u32| -> Vec<Step> {
        (0..n / 1_000)
            .flat_map(|s| {
                let logins = (0..1_000)
                    .map(|i| {
                        let k = s * 1_000 + i;
                        (i64::from(s), format!("acct{k}"), format!("device-{k}"))
                    })
                    .collect();
                [Step::Logins(logins), Step::Tick(i64::from(s))]
            })
            .collect()
    };
    let free = DetectorsConfig::default();
    let (_, unbounded) = run(&free, steps(100_000));
    assert_eq!(unbounded.budget.hits, 0, "{unbounded:?}");
    let budget = unbounded.bytes() / 8;
    let mut tight = free.clone();
    tight.device_farm.max_state_bytes = budget;
    let (_, bounded) = run(&tight, steps(100_000));
    assert!(bounded.bytes() <= 2 * budget, "{bounded:?} vs {budget}");
    assert!(
        bounded.budget.hits > 50_000,
        "refusals are counted: {bounded:?}"
    );
}

#[test]
fn the_first_account_leaving_the_window_makes_room_and_is_not_a_member() {
    // a000 first (the device's inline slot), six more 2000 s later; the sweep at 4000 s
    // drops a000 only. Two newcomers then make eight, and the farm is those eight.
    let got = check(vec![
        logins(0, 0..1, "d"),
        logins(2000, 1..7, "d"),
        Step::Tick(4000),
        logins(4100, 7..8, "d"),
        Step::Tick(4150),
        logins(4200, 8..9, "d"),
        Step::Tick(4300),
    ]);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].2, names(1..9));
}
