//! `hotlist_manipulation` behaviour, driven by event scripts through one `check()` helper.

mod script;

use levee_detect::{DetectorStats, DetectorsConfig, HotlistConfig};
use script::{Ev, DAY, MIN, T0};

/// Accounts `<prefix><i>` for `i` in `who`, created `age` before T0, each `search`ing
/// `topic` at `at` + `i * gap_ms` (then clicking it a few seconds later, at `rank`).
fn searches(
    prefix: &str,
    who: std::ops::Range<u32>,
    age: i64,
    topic: &str,
    at: i64,
    gap_ms: i64,
    rank: u32,
) -> Vec<Ev> {
    who.flat_map(|i| {
        let ts = T0 + at + gap_ms * i64::from(i);
        let account = format!("{prefix}{i:05}");
        let base = serde_json::json!({"type": "hotlist", "account": account, "topic": topic,
            "account_created": T0 - age, "ip": format!("10.{}.{}.7", i % 200, i / 200)});
        let mut search = base.clone();
        search["action"] = "search".into();
        let mut click = base;
        click["action"] = "click".into();
        click["rank"] = rank.into();
        [(ts, search), (ts + 3_000, click)]
    })
    .collect()
}

/// A push: `n` young accounts search and click `topic` together every `every` for `bursts` bursts.
fn push(n: u32, topic: &str, at: i64, every: i64, bursts: i64) -> Vec<Ev> {
    (0..bursts)
        .flat_map(|b| {
            searches(
                "bot",
                0..n,
                10 * DAY,
                topic,
                at + b * every,
                150,
                (40 - b * 3).max(1) as u32,
            )
        })
        .collect()
}

/// Organic interest: `per_min` distinct old accounts a minute search `topic` for `minutes`.
fn organic(prefix: &str, per_min: u32, topic: &str, at: i64, minutes: u32) -> Vec<Ev> {
    searches(
        prefix,
        0..per_min * minutes,
        900 * DAY,
        topic,
        at,
        MIN / i64::from(per_min),
        5,
    )
}

/// `(alert_id, revision, accounts, topic, summary)` per alert.
type Got = Vec<(String, u32, Vec<String>, Option<String>, String)>;

fn check(evs: Vec<Ev>) -> Got {
    run(HotlistConfig::default(), evs).0
}

/// Run `evs` through hotlist_manipulation alone (`script::run`).
fn run(cfg: HotlistConfig, evs: Vec<Ev>) -> (Got, DetectorStats) {
    let mut all = DetectorsConfig::only("hotlist_manipulation");
    all.hotlist_manipulation = cfg;
    let (alerts, stats) = script::run(&all, "hotlist_manipulation", evs, 120_000);
    let got = alerts
        .into_iter()
        .map(|a| (a.alert_id, a.revision, a.accounts, a.topic, a.summary))
        .collect();
    (got, stats)
}

fn ids(got: &Got) -> Vec<&str> {
    let mut v: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
    v.dedup();
    v
}

#[test]
fn a_young_crowd_searching_a_topic_in_bursts_is_a_push_and_its_accounts_are_named() {
    // The topic has a steady organic audience; 60 young accounts push it for 40 minutes.
    let mut evs = organic("org", 4, "topic-a", 0, 120);
    evs.extend(push(60, "topic-a", 60 * MIN, 5 * MIN, 8));
    let got = check(evs);
    assert_eq!(ids(&got).len(), 1, "{got:?}");
    let last = &got[got.len() - 1];
    assert_eq!(last.3.as_deref(), Some("topic-a"));
    assert!(
        last.2.iter().all(|a| a.starts_with("bot")),
        "only the pushers named"
    );
    assert_eq!(last.2.len(), 60);
    assert!(got.len() <= 5, "{} messages", got.len());
    // Seen within a minute or two of the push's start.
    let first = got[0].4.clone();
    assert!(first.starts_with("topic-a: "), "{first}");
    assert!(first.contains("60% under 30 days old"), "{first}");
    assert!(first.ends_with("60 named; signals: young"), "{first}");
}

#[test]
fn breaking_news_from_a_broad_old_crowd_is_not_a_push() {
    // 3,000 distinct old accounts search a new topic within 15 minutes, most once.
    let evs = organic("news", 200, "breaking", 10 * MIN, 15);
    assert_eq!(check(evs), vec![]);
}

#[test]
fn steady_interest_is_no_burst_whoever_drives_it() {
    // Young accounts, but at the topic's usual rate for two hours: the baseline learns it.
    let evs: Vec<Ev> = (0..120)
        .flat_map(|m| {
            searches(
                &format!("y{m}-"),
                0..30,
                5 * DAY,
                "steady",
                m * MIN,
                1_000,
                9,
            )
        })
        .collect();
    // The warm-up learns the baseline of what was there from the start.
    assert_eq!(check(evs.clone()), vec![]);
    // Without a warm-up a cold start sees every busy topic as new.
    let cfg = HotlistConfig {
        warmup_ms: 0,
        ..HotlistConfig::default()
    };
    assert!(!run(cfg, evs).0.is_empty());
}

#[test]
fn the_same_input_gives_the_same_alerts() {
    let make = || {
        let mut evs = organic("org", 3, "t", 0, 90);
        evs.extend(push(40, "t", 45 * MIN, 4 * MIN, 6));
        evs
    };
    let a = check(make());
    assert_eq!(ids(&a).len(), 1);
    assert_eq!(a, check(make()));
}

#[test]
fn a_flood_of_topics_and_accounts_is_bounded_and_counted() {
    let evs: Vec<Ev> = (0..40_000u32)
        .flat_map(|i| {
            searches(
                &format!("f{i}-"),
                0..1,
                DAY,
                &format!("topic{i}"),
                i64::from(i),
                0,
                1,
            )
        })
        .collect();
    let cfg = HotlistConfig {
        max_topics: 1_000,
        ..HotlistConfig::default()
    };
    let (got, stats) = run(cfg, evs);
    assert_eq!(got, vec![]);
    let topics = stats.map("topics").expect("reported");
    assert!(topics.entries <= 1_000, "{topics:?}");
    assert!(stats.cap_hits >= 38_000, "{}", stats.cap_hits);
    // One hot topic: accounts per topic are capped.
    let evs = organic("hot", 1_000, "hot", 0, 3);
    let cfg = HotlistConfig {
        max_accounts_per_topic: 500,
        ..HotlistConfig::default()
    };
    let (_, stats) = run(cfg, evs);
    assert!(stats.cap_hits >= 2_000, "{}", stats.cap_hits);
}

#[test]
fn old_accounts_pushing_in_lockstep_are_seen_by_their_repetition_and_timing() {
    // Aged, bought accounts: none young, each from its own block, but every 3 minutes
    // all of them search and click within 6 seconds.
    let mut evs = organic("org", 4, "topic-b", 0, 120);
    evs.extend((0..10).flat_map(|b| {
        searches(
            "old",
            0..40,
            800 * DAY,
            "topic-b",
            60 * MIN + b * 3 * MIN,
            150,
            20,
        )
    }));
    let got = check(evs);
    assert_eq!(ids(&got).len(), 1, "{got:?}");
    let last = &got[got.len() - 1];
    assert!(
        last.2.iter().all(|a| a.starts_with("old")),
        "only the pushers named"
    );
    assert!(last.2.len() >= 36, "{} of 40 named", last.2.len());
    assert!(last.4.contains("0% under 30 days old"), "{}", last.4);
}
