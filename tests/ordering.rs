//! Arrival-order independence: the same events give the same alerts whatever their
//! order within the lateness bound, their partitioning into lanes, or the skew between
//! lanes; truly late events are dead-lettered on any partitioning.

use levee_model::{Alert, Event, Reason};
use levee_runtime::dead_letter::{DeadLetter, Position};
use levee_runtime::{Counters, LeveeConfig, Pipeline};
use levee_sim::{generate, ScenarioConfig};
use std::borrow::Cow;
use std::sync::OnceLock;

/// A small complete scenario, in the simulator's arrival order (bounded disorder, a few
/// events 15-45 s late: within lateness + grace).
fn events() -> &'static [Event<'static>] {
    static S: OnceLock<Vec<Event<'static>>> = OnceLock::new();
    S.get_or_init(|| {
        generate(&ScenarioConfig {
            seed: 11,
            accounts: 4_000,
            hours: 3,
            ..ScenarioConfig::default()
        })
        .events
    })
}

/// SplitMix64: a tiny deterministic generator for interleavings and shuffles.
struct SimRng(u64);

impl SimRng {
    fn new(seed: u64) -> Self {
        SimRng(seed)
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n.max(1)
    }
}

/// Lane of an account among `n`, as a keyed producer would partition (FNV-1a).
fn lane_of(account: &str, n: i32) -> i32 {
    let h = account.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    (h % n as u64) as i32
}

/// What a run produced: alerts without `emitted_at`, dead letters, counters.
struct Run {
    alerts: Vec<String>,
    dead: Vec<DeadLetter>,
    counters: Counters,
}

/// Feed `(lane, record)` in the given order, then finish. Every lane is assigned first,
/// as a consumer's assignment names its partitions before any record arrives.
fn check(records: &[(i32, String)]) -> Run {
    let cfg = LeveeConfig::default();
    let mut p = Pipeline::new(&cfg);
    let lanes: std::collections::BTreeSet<i32> = records.iter().map(|(l, _)| *l).collect();
    for l in lanes {
        p.assign_lane(l);
    }
    let (mut alerts, mut dead): (Vec<Alert>, Vec<DeadLetter>) = (Vec::new(), Vec::new());
    for (i, (lane, r)) in records.iter().enumerate() {
        p.process(
            *lane,
            r.as_bytes(),
            Position::Line(i as u64 + 1),
            &mut alerts,
            &mut dead,
        );
    }
    p.finish(&mut alerts);
    let alerts = alerts
        .iter()
        .map(|a| serde_json::to_string(a).expect("alert json"))
        .collect();
    Run {
        alerts,
        dead,
        counters: p.counters().clone(),
    }
}

/// The events split into `n` lanes by account, interleaved with skewed rates: lane k is
/// read about k+1 times as fast as lane 0, so lanes drift far apart in event time.
fn skewed(evs: &[Event<'_>], n: i32, seed: u64) -> Vec<(i32, String)> {
    let mut queues: Vec<std::collections::VecDeque<String>> = vec![Default::default(); n as usize];
    for e in evs {
        queues[lane_of(&e.account, n) as usize].push_back(e.to_json());
    }
    let mut rng = SimRng::new(seed);
    let total: usize = queues.iter().map(|q| q.len()).sum();
    let mut out = Vec::with_capacity(total);
    while out.len() < total {
        let weights: Vec<u64> = queues
            .iter()
            .enumerate()
            .map(|(k, q)| if q.is_empty() { 0 } else { k as u64 + 1 })
            .collect();
        let mut pick = rng.below(weights.iter().sum());
        let lane = weights
            .iter()
            .position(|w| {
                if pick < *w {
                    true
                } else {
                    pick -= w;
                    false
                }
            })
            .unwrap_or(0);
        // A burst, as a consumer fetches a partition's records in chunks.
        for _ in 0..=rng.below(200) {
            if let Some(r) = queues[lane].pop_front() {
                out.push((lane as i32, r));
            }
        }
    }
    out
}

/// The events re-shuffled within a bound: sorted by time, then shuffled inside 5 s buckets
/// (every event arrives at most 5 s behind the newest before it).
fn shuffled(evs: &[Event<'_>], seed: u64) -> Vec<(i32, String)> {
    let mut sorted: Vec<&Event<'_>> = evs.iter().collect();
    sorted.sort_by_key(|e| e.ts);
    let mut rng = SimRng::new(seed);
    let mut out = Vec::with_capacity(sorted.len());
    for bucket in sorted.chunk_by(|a, b| a.ts / 5_000 == b.ts / 5_000) {
        let mut b: Vec<String> = bucket.iter().map(|e| e.to_json()).collect();
        for i in (1..b.len()).rev() {
            b.swap(i, rng.below(i as u64 + 1) as usize);
        }
        out.extend(b.into_iter().map(|r| (0, r)));
    }
    out
}

fn original() -> Vec<(i32, String)> {
    events().iter().map(|e| (0, e.to_json())).collect()
}

#[test]
fn alerts_do_not_depend_on_order_partitioning_or_skew() {
    let reference = check(&original());
    assert!(
        reference.alerts.len() >= 5,
        "the scenario plants farms: {} alerts",
        reference.alerts.len()
    );
    assert_eq!(reference.counters.dead_letters_total(), 0);
    assert!(
        reference.counters.late_processed > 0,
        "the simulator delivers some events late (within grace): they must be in order too"
    );
    let cases: Vec<(String, Vec<(i32, String)>)> = vec![
        ("shuffled within 5 s".into(), shuffled(events(), 1)),
        ("shuffled, other seed".into(), shuffled(events(), 2)),
        ("3 lanes, skewed".into(), skewed(events(), 3, 3)),
        ("8 lanes, skewed".into(), skewed(events(), 8, 4)),
        ("1 lane, bursts".into(), skewed(events(), 1, 5)),
    ];
    for (name, records) in cases {
        let run = check(&records);
        assert_eq!(run.counters.dead_letters_total(), 0, "{name}: dead letters");
        assert_eq!(run.counters.out_of_order, 0, "{name}: out of order");
        assert_eq!(
            run.alerts, reference.alerts,
            "{name}: alerts differ from the original order"
        );
    }
}

#[test]
fn truly_late_events_are_dead_lettered_on_any_partitioning() {
    // After every 5,000th event, the same account again two hours earlier: older than
    // lateness + grace within its own lane whatever the partitioning (same account, same lane).
    let mut evs: Vec<Event<'static>> = Vec::new();
    let mut late = Vec::new();
    for (i, e) in events().iter().enumerate() {
        evs.push(e.clone());
        if i % 5_000 == 4_999 {
            let mut old = e.clone();
            old.ts -= 2 * 3_600_000;
            old.account = Cow::Owned(format!("{}", e.account));
            late.push(old.to_json());
            evs.push(old);
        }
    }
    assert!(late.len() >= 5);
    let without: Vec<Event<'static>> = events().to_vec();
    for n in [1, 3, 8] {
        let run = check(&skewed(&evs, n, 9));
        let mut dead: Vec<String> = run
            .dead
            .iter()
            .map(|d| {
                assert_eq!(d.reason, Reason::Late, "{n} lanes");
                String::from_utf8(d.raw.clone()).expect("utf8")
            })
            .collect();
        dead.sort();
        let mut want = late.clone();
        want.sort();
        assert_eq!(dead, want, "{n} lanes: exactly the truly late events");
        let clean = check(&skewed(&without, n, 9));
        assert_eq!(
            run.alerts, clean.alerts,
            "{n} lanes: dead-lettered events leave the alerts as without them"
        );
    }
}
