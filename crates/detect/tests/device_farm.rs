//! `device_farm` behaviour, driven by event scripts through one `check()` helper.

use levee_detect::{Detectors, DetectorsConfig};
use levee_model::{decode, Alert, Limits};

enum Step {
    /// `(ts_seconds, account, device)` login events.
    Logins(Vec<(i64, String, &'static str)>),
    Tick(i64),
}

fn logins(ts0: i64, accounts: std::ops::Range<u32>, device: &'static str) -> Step {
    Step::Logins(
        accounts
            .map(|i| (ts0 + i64::from(i), format!("a{i:03}"), device))
            .collect(),
    )
}

/// Run `steps` through the default detectors; return `(alert_id, revision, accounts)` per alert.
fn check(steps: Vec<Step>) -> Vec<(String, u32, Vec<String>)> {
    let mut d = Detectors::new(&DetectorsConfig::default());
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
    out.into_iter()
        .map(|a| (a.alert_id, a.revision, a.accounts))
        .collect()
}

fn names(r: std::ops::Range<u32>) -> Vec<String> {
    r.map(|i| format!("a{i:03}")).collect()
}

#[test]
fn a_farm_is_found_and_grows_by_revision() {
    let got = check(vec![
        logins(0, 0..10, "dev-farm"),
        Step::Tick(20),
        logins(30, 10..12, "dev-farm"),
        Step::Tick(60),
    ]);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!((got[0].1, got[0].2.clone()), (1, names(0..10)));
    assert_eq!((got[1].1, got[1].2.clone()), (2, names(0..12)));
    assert_eq!(got[0].0, got[1].0, "the growing group keeps its id");
}

#[test]
fn family_devices_and_slow_turnover_are_not_farms() {
    // Three accounts on a family phone; and twelve accounts on one device, but each
    // more than the one-hour window after the previous.
    let slow: Vec<_> = (0..12)
        .map(|i| (i64::from(i) * 4000, format!("s{i}"), "kiosk"))
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
