//! Event scripts for detector tests: `(ts, json)` events run through one detector alone, a
//! tick every 10 s of event time from [`T0`], with the contract's alert invariants checked.

use levee_detect::{DetectorStats, Detectors, DetectorsConfig};
use levee_model::{decode, Alert, Limits};

pub const MIN: i64 = 60_000;
pub const DAY: i64 = 24 * 60 * MIN;
/// Event time of the scripts' start.
pub const T0: i64 = 1_732_000_000_000;

/// One event: `(ts, json)` without `ts`.
pub type Ev = (i64, serde_json::Value);

/// Run `evs` (sorted by time here) through detector `name` of `cfg`, ticking every 10 s; then
/// tick `settle_ms` past the last tick (if not 0) and flush. The alerts (each of kind `name`,
/// accounts sorted and unique) and the detector's stats.
pub fn run(
    cfg: &DetectorsConfig,
    name: &str,
    mut evs: Vec<Ev>,
    settle_ms: i64,
) -> (Vec<Alert>, DetectorStats) {
    evs.sort_by_key(|e| e.0);
    let mut d = Detectors::new(cfg);
    let mut out: Vec<Alert> = Vec::new();
    let mut tick = T0;
    for (ts, mut v) in evs {
        while tick + 10_000 <= ts {
            tick += 10_000;
            d.on_tick(tick, &mut out);
        }
        v["ts"] = ts.into();
        let line = v.to_string();
        let ev = decode(line.as_bytes(), &Limits::default()).expect("valid event");
        d.on_event(&ev, &mut out);
    }
    if settle_ms > 0 {
        d.on_tick(tick + settle_ms, &mut out);
    }
    d.on_flush(&mut out);
    let stats = d
        .stats()
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| s)
        .unwrap_or_else(|| panic!("{name} runs"));
    for a in &out {
        assert_eq!(a.kind.as_str(), name);
        assert!(a.accounts.windows(2).all(|w| w[0] < w[1]), "sorted, unique");
    }
    (out, stats)
}
