//! `zombie_inflation` behaviour, driven by event scripts through one `check()` helper.

mod script;

use levee_detect::{DetectorStats, DetectorsConfig, ZombieInflationConfig};
use script::{Ev, DAY, MIN, T0};

/// `n` accounts `<prefix><i>` created `age` before T0 act on `target` (`follow` an
/// account or `like` a post), evenly over `over` from `at`.
fn act(prefix: &str, n: u32, age: i64, verb: &str, target: &str, at: i64, over: i64) -> Vec<Ev> {
    (0..n)
        .map(|i| {
            let ts = T0 + at + over * i64::from(i) / i64::from(n.max(1));
            let account = format!("{prefix}{i:05}");
            let created = T0 - age;
            let v = match verb {
                "follow" => serde_json::json!({"type": "follow", "account": account,
                    "target": target, "account_created": created}),
                _ => serde_json::json!({"type": "engage", "action": verb, "account": account,
                    "post": target, "account_created": created}),
            };
            (ts, v)
        })
        .collect()
}

/// The same accounts each post once at `at`.
fn posts(prefix: &str, n: u32, age: i64, at: i64) -> Vec<Ev> {
    (0..n)
        .map(|i| {
            let v = serde_json::json!({"type": "post", "account": format!("{prefix}{i:05}"),
                "post": format!("q{prefix}{i}"), "text": "今天天气不错", "account_created": T0 - age});
            (T0 + at, v)
        })
        .collect()
}

/// `evs` from `addresses` IPs in `10.<net>.0.0/16`, round robin (one each: as many as `evs`).
fn from_addresses(mut evs: Vec<Ev>, addresses: usize, net: u8) -> Vec<Ev> {
    for (i, (_, v)) in evs.iter_mut().enumerate() {
        let host = i % addresses.max(1);
        v["ip"] = format!("10.{net}.{}.{}", host / 256, host % 256).into();
    }
    evs
}

/// `(alert_id, revision, accounts, summary)` per alert.
type Got = Vec<(String, u32, Vec<String>, String)>;

fn check(evs: Vec<Ev>) -> Got {
    run(ZombieInflationConfig::default(), evs).0
}

/// Run `evs` through zombie_inflation alone (`script::run`).
fn run(cfg: ZombieInflationConfig, evs: Vec<Ev>) -> (Got, DetectorStats) {
    let mut all = DetectorsConfig::only("zombie_inflation");
    all.zombie_inflation = cfg;
    let (alerts, stats) = script::run(&all, "zombie_inflation", evs, 0);
    let got = alerts
        .into_iter()
        .map(|a| (a.alert_id, a.revision, a.accounts, a.summary))
        .collect();
    (got, stats)
}

fn ids(got: &Got) -> Vec<&str> {
    let mut v: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
    v.dedup();
    v
}

fn last_accounts(got: &Got) -> &[String] {
    got.last().map(|g| g.2.as_slice()).unwrap_or_default()
}

#[test]
fn hollow_followers_bursting_onto_one_account_are_one_alert() {
    let mut evs = act("old", 20, 900 * DAY, "follow", "seller", 0, 60 * MIN);
    evs.extend(act(
        "z",
        120,
        3 * DAY,
        "follow",
        "seller",
        10 * MIN,
        40 * MIN,
    ));
    let got = check(evs);
    assert_eq!(ids(&got).len(), 1, "{got:?}");
    let accounts = last_accounts(&got);
    assert_eq!(accounts.len(), 120);
    assert!(accounts.iter().all(|a| a.starts_with('z')));
    assert!(got.len() <= 5, "{} messages", got.len());
    let summary = &got[got.len() - 1].3;
    assert!(
        summary.starts_with(
            "120 hollow accounts (created 3.0 to 3.0 days before, never seen posting) engaged seller (follow)"
        ),
        "{summary}"
    );
}

#[test]
fn hollow_likers_on_a_busy_post_are_found_and_its_real_likers_are_not_named() {
    // 300 real likes an hour for two hours; 150 hollow likes in 30 minutes of the second.
    let mut evs = act("real", 600, 800 * DAY, "like", "p1", 0, 120 * MIN);
    evs.extend(act("z", 150, 2 * DAY, "like", "p1", 70 * MIN, 30 * MIN));
    let got = check(evs);
    assert_eq!(ids(&got).len(), 1, "{got:?}");
    let accounts = last_accounts(&got);
    assert_eq!(accounts.len(), 150);
    assert!(accounts.iter().all(|a| a.starts_with('z')));
}

/// A viral post: 6,000 real likes an hour for two hours and, in the second, 300 young
/// and silent likers (hollow by the profile) from addresses of their own or two to four
/// sharing one (carrier NAT); then `zombies` hollow likers from `zombie_ips` addresses in
/// 30 minutes. The hollow share stays under 10%: no burst by share.
fn viral_post(zombies: u32, zombie_ips: usize) -> Vec<Ev> {
    let mut evs = from_addresses(
        act("real", 12_000, 800 * DAY, "like", "p1", 0, 120 * MIN),
        12_000,
        1,
    );
    evs.extend(from_addresses(
        act("single", 200, 9 * DAY, "like", "p1", 60 * MIN, 60 * MIN),
        200,
        2,
    ));
    for (n, net) in [(2, 3), (3, 4), (4, 5)] {
        let young = act(
            &format!("nat{n}-"),
            30 - 3 * n,
            12 * DAY,
            "like",
            "p1",
            62 * MIN,
            50 * MIN,
        );
        let ips = young.len().div_ceil(n as usize);
        evs.extend(from_addresses(young, ips, net));
    }
    let z = act("z", zombies, 3 * DAY, "like", "p1", 70 * MIN, 30 * MIN);
    evs.extend(from_addresses(z, zombie_ips, 9));
    evs
}

#[test]
fn hollow_likers_from_few_addresses_drowned_in_a_viral_post_are_found() {
    let got = check(viral_post(120, 10));
    assert_eq!(ids(&got).len(), 1, "{got:?}");
    let accounts = last_accounts(&got);
    assert_eq!(accounts.len(), 120, "only the zombies: {accounts:?}");
    assert!(accounts.iter().all(|a| a.starts_with('z')));
    let summary = &got[got.len() - 1].3;
    assert!(
        summary.starts_with("120 hollow accounts from 10 shared addresses (5 or more each)"),
        "{summary}"
    );
    // Addresses off: drowned (under min_share), as before.
    let off = ZombieInflationConfig {
        min_per_address: 0,
        ..ZombieInflationConfig::default()
    };
    assert_eq!(run(off, viral_post(120, 10)).0, vec![]);
}

#[test]
fn young_likers_sharing_carrier_addresses_are_no_burst() {
    // No zombies: the young likers' shared addresses carry at most four each.
    assert_eq!(check(viral_post(0, 1)), vec![]);
    // Zombies spread four to an address are not crowded either.
    assert_eq!(check(viral_post(120, 30)), vec![]);
}

#[test]
fn a_flood_of_hollow_engagers_from_one_address_is_one_bounded_alert() {
    // A hollow like opens the post's state; 100 real likes follow in 10 minutes, then
    // 20,000 hollow likes from one address in 20. With the share out of reach
    // (`min_share` 1.0) the burst stands on the address alone.
    let mut evs = from_addresses(act("early", 1, 2 * DAY, "like", "p1", 0, MIN), 1, 2);
    evs.extend(from_addresses(
        act("real", 100, 800 * DAY, "like", "p1", MIN / 60, 10 * MIN),
        100,
        1,
    ));
    evs.extend(from_addresses(
        act("f", 20_000, 2 * DAY, "like", "p1", 10 * MIN, 20 * MIN),
        1,
        7,
    ));
    let cfg = ZombieInflationConfig {
        min_share: 1.0,
        ..ZombieInflationConfig::default()
    };
    let max_members = cfg.findings.max_members;
    let (got, stats) = run(cfg, evs);
    assert_eq!(ids(&got).len(), 1, "{} messages", got.len());
    let accounts = last_accounts(&got);
    assert_eq!(accounts.len(), max_members);
    assert!(accounts.iter().all(|a| a.starts_with('f')));
    let summary = &got.last().expect("an alert").3;
    assert!(
        summary.contains(" from 1 shared address (5 or more each)"),
        "{summary}"
    );
    // Listed at most 2,000 a window, members at most `max_members`: the rest counted.
    assert!(
        stats.cap_hits >= 2 * (20_000 - 2_000) as u64,
        "{}",
        stats.cap_hits
    );
}

#[test]
fn a_celebrity_gaining_thousands_of_real_followers_is_not_inflated() {
    // 2,550 real followers in half an hour, 150 of them young and silent (hollow by
    // the profile), and 300 people signing up just to follow, the new ones last.
    let mut evs = act("fan", 2550, 700 * DAY, "follow", "star", 0, 20 * MIN);
    evs.extend(act("young", 150, 10 * DAY, "follow", "star", 0, 30 * MIN));
    evs.extend(act("new", 300, 0, "follow", "star", 10 * MIN, 20 * MIN));
    assert_eq!(check(evs), vec![]);
}

#[test]
fn young_accounts_that_post_are_not_hollow() {
    let mut evs = posts("y", 80, 3 * DAY, 0);
    evs.extend(act("y", 80, 3 * DAY, "follow", "seller", 5 * MIN, 20 * MIN));
    assert_eq!(check(evs.clone()), vec![]);
    // Old accounts are not hollow either, posting or not.
    let evs = act("o", 80, 400 * DAY, "follow", "seller", 5 * MIN, 20 * MIN);
    assert_eq!(check(evs), vec![]);
}

#[test]
fn a_trickle_of_hollow_followers_is_no_burst() {
    // 29 hollow follows within the window: under min_hollow, whatever the share.
    let evs = act("z", 29, 2 * DAY, "follow", "quiet", 0, 50 * MIN);
    assert_eq!(check(evs), vec![]);
}

#[test]
fn the_same_input_gives_the_same_alerts() {
    let make = || {
        let mut evs = act("old", 50, 900 * DAY, "like", "p9", 0, 60 * MIN);
        evs.extend(act("z", 90, 4 * DAY, "like", "p9", 5 * MIN, 30 * MIN));
        evs
    };
    let a = check(make());
    assert_eq!(ids(&a).len(), 1);
    assert_eq!(a, check(make()));
}

#[test]
fn a_flood_of_hollow_likes_on_new_posts_is_bounded_and_counted() {
    let evs: Vec<Ev> = (0..50_000u32)
        .flat_map(|i| act(&format!("h{i}-"), 1, DAY, "like", &format!("x{i}"), 0, MIN))
        .collect();
    let cfg = ZombieInflationConfig {
        max_targets: 1_000,
        ..ZombieInflationConfig::default()
    };
    let (got, stats) = run(cfg, evs);
    assert_eq!(got, vec![]);
    let targets = stats.map("targets").expect("reported");
    assert!(targets.entries <= 1_000, "{targets:?}");
    assert!(stats.cap_hits >= 49_000, "{}", stats.cap_hits);
}
