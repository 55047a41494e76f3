//! `lockstep` (bot_farm) behaviour on scripted engagement streams, through one `check()` helper.

use levee_detect::{Detector, DetectorKind, DetectorStats, Lockstep, LockstepConfig};
use levee_model::{Alert, Body, EngageAction, Event};
use std::borrow::Cow;

const MIN: i64 = 60_000;

/// One engagement: (ms, account, post).
type Eng = (i64, String, String);

/// Run `engagements` (any order within 10 s) through a lockstep detector with
/// runtime-like ticks; return its alerts and final stats.
fn check(cfg: LockstepConfig, mut engagements: Vec<Eng>) -> (Vec<Alert>, DetectorStats) {
    engagements.sort_by_key(|e| e.0);
    let mut d = Lockstep::new(cfg);
    let profiles = levee_detect::Profiles::default();
    let mut out = Vec::new();
    let (mut max_ts, mut next_tick) = (i64::MIN, i64::MIN);
    for (ts, account, post) in engagements {
        let ev = Event {
            ts,
            account: Cow::Owned(account),
            ip: None,
            device: None,
            ua: None,
            account_created: None,
            body: Body::Engage {
                action: EngageAction::Like,
                post: Cow::Owned(post),
                author: None,
                text: None,
                topics: vec![],
            },
        };
        d.on_event(&ev, &profiles, &mut out);
        max_ts = max_ts.max(ts);
        if max_ts - 10_000 >= next_tick {
            d.on_tick(max_ts - 10_000, &mut out);
            next_tick = ((max_ts - 10_000) / 1000 + 1) * 1000;
        }
    }
    d.on_tick(max_ts, &mut out);
    d.on_flush(&mut out);
    for a in &out {
        assert!(a.accounts.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(a.kind.as_str(), "bot_farm");
    }
    (out, d.stats())
}

/// A tiny deterministic generator for test jitter.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// `members` accounts (`prefix{i}`) hitting one fresh post every 10 minutes, each within `spread_ms`.
fn farm(
    prefix: &str,
    members: std::ops::Range<u32>,
    jobs: std::ops::Range<u32>,
    spread_ms: u64,
    seed: u64,
) -> Vec<Eng> {
    let mut r = Lcg(seed);
    let mut v = Vec::new();
    for j in jobs {
        for m in members.clone() {
            v.push((
                i64::from(j) * 10 * MIN + r.next(spread_ms) as i64,
                format!("{prefix}{m:03}"),
                format!("{prefix}-job{j}"),
            ));
        }
    }
    v
}

#[test]
fn a_farm_is_one_alert_that_grows_by_revision() {
    let mut e = farm("bot", 0..10, 0..6, 20_000, 1);
    e.extend(farm("bot", 10..12, 3..6, 20_000, 2)); // two recruits join from the fourth job
    let (alerts, _) = check(LockstepConfig::default(), e);
    assert!(!alerts.is_empty());
    let id = &alerts[0].alert_id;
    assert!(
        alerts.iter().all(|a| &a.alert_id == id),
        "one finding, one id"
    );
    let revisions: Vec<u32> = alerts.iter().map(|a| a.revision).collect();
    assert_eq!(revisions, (1..=alerts.len() as u32).collect::<Vec<_>>());
    let last = alerts.last().expect("alerts");
    assert_eq!(last.accounts.len(), 12, "{:?}", last.accounts);
    assert!(
        alerts[0].window.end < 11 * MIN,
        "found after the second job, not later: {:?}",
        alerts[0].window
    );
    assert!(last.targets.iter().all(|t| t.starts_with("bot-job")));
    assert!(last.evidence["median_gap_ms"]
        .as_i64()
        .is_some_and(|g| g < 20_000));
}

#[test]
fn a_viral_crowd_is_not_a_farm_and_its_state_is_capped() {
    let mut r = Lcg(3);
    let mut e: Vec<Eng> = (0..2000)
        .map(|i| {
            (
                r.next(300_000) as i64,
                format!("fan{i}"),
                "viral".to_owned(),
            )
        })
        .collect();
    // Everyone also engages one of 50 ordinary posts at a random time in the next hour.
    e.extend((0..2000).map(|i| {
        (
            r.next(3_600_000) as i64,
            format!("fan{i}"),
            format!("p{}", r.next(50)),
        )
    }));
    let (alerts, stats) = check(LockstepConfig::default(), e);
    assert!(alerts.is_empty(), "{} alerts", alerts.len());
    assert!(
        stats.cap_hits > 0,
        "the per-post engager cap bit on the viral post"
    );
}

#[test]
fn fans_with_human_delays_are_not_a_farm() {
    // 40 fans engage each of 12 idol posts (one every 30 min) with probability 0.85,
    // 1 to 90 minutes after it appears.
    let mut r = Lcg(4);
    let mut e = Vec::new();
    for post in 0..12 {
        for f in 0..40 {
            if r.next(100) < 85 {
                e.push((
                    post * 30 * MIN + MIN + r.next(89 * MIN as u64) as i64,
                    format!("fan{f}"),
                    format!("idol{post}"),
                ));
            }
        }
    }
    let (alerts, _) = check(LockstepConfig::default(), e);
    assert!(
        alerts.is_empty(),
        "{:?}",
        alerts.iter().map(|a| &a.accounts).collect::<Vec<_>>()
    );
}

/// `fans` accounts each engaging most of `posts` idol posts (one every 30 min), at a
/// uniformly random time within `delay_ms` of it.
fn fans(fans: u32, posts: i64, delay_ms: u64, seed: u64) -> Vec<Eng> {
    let mut r = Lcg(seed);
    let mut e = Vec::new();
    for post in 0..posts {
        for f in 0..fans {
            if r.next(100) < 85 {
                let at = post * 30 * MIN + r.next(delay_ms) as i64;
                e.push((at, format!("fan{f:02}"), format!("idol{post}")));
            }
        }
    }
    e
}

#[test]
fn fans_who_share_targets_but_rarely_the_minute_are_not_a_farm() {
    // Forty fans within 20 minutes of each of 30 posts: any two share ~22 posts and,
    // by chance, the minute on ~1 in 10 of them; a farm's members share the minute on
    // most of theirs. (Fans packed within 10-15 minutes of every post come close to
    // the bar: see docs/detectors/lockstep.md.)
    let e = fans(40, 30, 20 * MIN as u64, 6);
    let (alerts, _) = check(LockstepConfig::default(), e.clone());
    assert!(
        alerts.is_empty(),
        "{:?}",
        alerts.iter().map(|a| &a.accounts).collect::<Vec<_>>()
    );
    // The synchronized-share test is what tells them apart.
    let no_share = LockstepConfig {
        min_sync_share: 0.0,
        ..LockstepConfig::default()
    };
    let (alerts, _) = check(no_share, e);
    assert!(!alerts.is_empty(), "without it the fans look like a farm");
}

/// Six pages share each of 30 links (one every 8 h) at random times within 6 hours, except
/// every fourth link, which all of them post within `sync_ms` of each other.
fn pages(sync_ms: u64, seed: u64) -> Vec<Eng> {
    let mut r = Lcg(seed);
    let mut e = Vec::new();
    for link in 0..30 {
        let synced = link % 4 == 3;
        for page in 0..6 {
            let after = if synced {
                r.next(sync_ms)
            } else {
                r.next(6 * 60 * MIN as u64)
            };
            e.push((
                link * 8 * 60 * MIN + after as i64,
                format!("page{page}"),
                format!("url{link}"),
            ));
        }
    }
    e
}

#[test]
fn pages_that_now_and_then_post_within_seconds_are_a_group() {
    // A scheduler posts the same link on six pages within 2 s, on every fourth link: a pair
    // shares the minute on a quarter of its common links, below `min_sync_share` (0.35),
    // as a German co-link group of five did; but by chance only one synchronized
    // co-engagement in twelve would be that tight.
    let (alerts, _) = check(LockstepConfig::default(), pages(2_000, 12));
    let last = alerts.last().expect("tight pages are a group");
    assert_eq!(last.accounts.len(), 6, "{:?}", last.accounts);
    // Without the tight test the share alone does not make them a group...
    let off = LockstepConfig {
        tight_gap_ms: 0,
        ..LockstepConfig::default()
    };
    assert!(check(off, pages(2_000, 12)).0.is_empty());
    // ...nor do pages that meet in the minute as often but at gaps spread over it.
    let (alerts, _) = check(LockstepConfig::default(), pages(60_000, 12));
    assert!(
        alerts.is_empty(),
        "{:?}",
        alerts.iter().map(|a| &a.accounts).collect::<Vec<_>>()
    );
}

#[test]
fn past_the_pairing_degree_only_pairs_already_exact_gain_evidence() {
    // 600 people like a viral post over ten minutes; then six accounts like it within
    // 20 s. Past `max_pairing_degree` (500) that makes no new pair, but strengthens pairs
    // already on two targets: with three targets needed, the six are a group only if
    // two jobs came before.
    let viral = |e: &mut Vec<Eng>| {
        e.extend((0..600).map(|i| (60 * MIN + i * 1_000, format!("crowd{i:03}"), "viral".into())));
        e.extend(
            farm("bot", 0..6, 0..1, 20_000, 3)
                .into_iter()
                .map(|(ts, a, _)| (ts + 71 * MIN, a, "viral".into())),
        );
    };
    let cfg = LockstepConfig {
        min_shared_targets: 3,
        ..LockstepConfig::default()
    };
    let mut e = farm("bot", 0..6, 0..2, 20_000, 1);
    viral(&mut e);
    let (alerts, _) = check(cfg.clone(), e);
    let last = alerts
        .last()
        .expect("two jobs and the viral post are three targets");
    assert_eq!(last.accounts.len(), 6, "{:?}", last.accounts);
    let mut e = farm("bot", 0..6, 0..1, 20_000, 1);
    viral(&mut e);
    assert!(check(cfg, e).0.is_empty(), "one job: no pair is exact yet");
}

#[test]
fn a_second_synchronized_wave_on_one_post_is_new_evidence() {
    // Eight pages share one link within 20 s, and again 13 hours later (as a German
    // co-link group did): two waves, one target.
    let mut e = farm("page", 0..8, 0..1, 20_000, 7);
    e.extend(
        farm("page", 0..8, 0..1, 20_000, 8)
            .into_iter()
            .map(|(ts, a, p)| (ts + 13 * 60 * MIN, a, p)),
    );
    let (alerts, _) = check(LockstepConfig::default(), e.clone());
    let last = alerts.last().expect("two waves are a group");
    assert_eq!(last.accounts.len(), 8, "{:?}", last.accounts);
    assert_eq!(last.targets, ["page-job0"]);
    let once = LockstepConfig {
        resync_gap_ms: 24 * 60 * MIN,
        ..LockstepConfig::default()
    };
    let (alerts, _) = check(once, e);
    assert!(alerts.is_empty(), "one target, one wave: no evidence");
}

#[test]
fn a_heavy_user_who_met_a_farm_twice_is_not_one_of_its_members() {
    let mut e = farm("bot", 0..20, 0..24, 20_000, 9);
    // One person likes two of the farm's posts within seconds of it, and ten posts alone:
    // two synchronized targets with every member, where members share twenty-four.
    e.extend([3, 9].map(|j| {
        (
            j * 10 * MIN + 4_000,
            "human".to_owned(),
            format!("bot-job{j}"),
        )
    }));
    e.extend((0..10).map(|i| (i * 7 * MIN + 30_000, "human".to_owned(), format!("own{i}"))));
    let (alerts, _) = check(LockstepConfig::default(), e);
    let last = alerts.last().expect("the farm is found");
    assert_eq!(last.accounts.len(), 20, "{:?}", last.accounts);
    assert!(last.accounts.iter().all(|a| a.starts_with("bot")));
}

#[test]
fn one_off_coincidences_do_not_join_the_farm() {
    let mut e = farm("bot", 0..10, 0..6, 20_000, 5);
    // Five organic accounts each happen to engage one farm target within seconds.
    e.extend((0..5).map(|i| {
        (
            i64::from(i) * 10 * MIN + 5_000,
            format!("human{i}"),
            format!("bot-job{i}"),
        )
    }));
    let (alerts, _) = check(LockstepConfig::default(), e);
    let last = alerts.last().expect("the farm is found");
    assert_eq!(last.accounts.len(), 10);
    assert!(
        last.accounts.iter().all(|a| a.starts_with("bot")),
        "{:?}",
        last.accounts
    );
}

#[test]
fn hostile_floods_stay_bounded_and_are_counted() {
    // 200,000 accounts on one post within a minute, then 200,000 others on another.
    // (The same accounts in the same order on both would be lockstep, and flagged.)
    let mut e: Vec<Eng> = (0..200_000)
        .map(|i| (i64::from(i) % 60_000, format!("x{i}"), "hot".to_owned()))
        .collect();
    e.extend((0..200_000).map(|i| {
        (
            120_000 + i64::from(i) % 60_000,
            format!("y{i}"),
            "hot2".to_owned(),
        )
    }));
    let cfg = LockstepConfig::default();
    let (alerts, stats) = check(cfg.clone(), e.clone());
    assert!(alerts.is_empty());
    // Pairs are only made while a post has <= max_pairing_degree engagements, each with
    // <= max_recent_per_target partners.
    let max_pairs = 2 * (cfg.max_pairing_degree as u64 + 1) * cfg.max_recent_per_target as u64;
    assert!(stats.entries() <= 400_000 + 2 + max_pairs, "{stats:?}");
    assert!(stats.cap_hits > 0);

    let tight = LockstepConfig {
        max_pairs: 100,
        max_accounts: 1_000,
        max_single_pairs: 4_096,
        ..cfg
    };
    let (_, stats) = check(tight, e);
    assert!(
        stats.entries() <= 1_000 + 2 + 100 + 4_096,
        "caps hold: {stats:?}"
    );
    let single = stats
        .map("single_pairs")
        .expect("first sightings are reported");
    assert!(single.bytes <= 4_096 * 32, "{stats:?}");
    assert!(
        stats.cap_hits > 399_000,
        "accounts forgotten at the cap are counted: {stats:?}"
    );
}

#[test]
fn same_input_same_alerts() {
    let run = || {
        let mut e = farm("a", 0..8, 0..5, 30_000, 6);
        e.extend(farm("b", 0..9, 2..8, 50_000, 7));
        let (alerts, _) = check(LockstepConfig::default(), e);
        alerts
            .into_iter()
            .map(|a| (a.alert_id, a.revision, a.accounts, a.targets))
            .collect::<Vec<_>>()
    };
    let (x, y) = (run(), run());
    assert_eq!(x, y);
    let ids: std::collections::BTreeSet<&String> = x.iter().map(|a| &a.0).collect();
    assert_eq!(ids.len(), 2, "two farms, two findings");
}

/// A flood of distinct accounts and posts: with a byte budget the detector's own count
/// stays near it (one tick's growth plus one table doubling), refusals are counted as
/// budget hits, and without the budget the same flood grows far past it.
#[test]
fn the_memory_budget_bounds_bytes_and_counts_refusals() {
    let e: Vec<Eng> = (0..300_000)
        .map(|i: i64| (i / 2, format!("acct{i}"), format!("post{}", i / 3)))
        .collect();
    let budget = 4 << 20;
    let free = LockstepConfig::default();
    let (_, unbounded) = check(free.clone(), e.clone());
    assert_eq!(
        unbounded.budget.hits, 0,
        "no pressure, no hits: {unbounded:?}"
    );
    assert!(
        unbounded.bytes() > 4 * budget,
        "the flood needs the budget: {unbounded:?}"
    );
    let tight = LockstepConfig {
        max_state_bytes: budget,
        ..free
    };
    let (_, bounded) = check(tight, e);
    assert_eq!(bounded.budget.max_bytes, budget);
    assert!(bounded.bytes() <= 2 * budget, "{bounded:?}");
    assert!(
        bounded.budget.hits > 100_000,
        "refusals are counted: {bounded:?}"
    );
}

/// Full at `max_accounts` with accounts last seen long ago, lockstep forgets the stalest
/// of them to make room: a farm that starts later is still found, and the accounts
/// forgotten are counted as cap hits (before, every newcomer was refused until the
/// pair horizon freed room, weeks later with the default horizons).
#[test]
fn at_the_account_cap_the_stalest_make_room_for_a_new_farm() {
    // 2,000 one-off accounts over the first hour, each liking its own post.
    let mut e: Vec<Eng> = (0..2_000)
        .map(|i: i64| (i * 1_800, format!("old{i}"), format!("old-post{i}")))
        .collect();
    // Two hours later, a farm of 12 on 6 posts (jobs 12..18: from 2 h on).
    e.extend(farm("farm", 0..12, 12..18, 5_000, 3));
    let cfg = LockstepConfig {
        max_accounts: 1_000,
        max_targets: 1_000,
        ..LockstepConfig::default()
    };
    let (alerts, stats) = check(cfg, e);
    let mut flagged: Vec<&str> = alerts
        .iter()
        .flat_map(|a| a.accounts.iter().map(String::as_str))
        .collect();
    flagged.sort_unstable();
    flagged.dedup();
    let want: Vec<String> = (0..12).map(|m| format!("farm{m:03}")).collect();
    assert_eq!(flagged, want.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(stats.entries() > 0);
    let accounts = stats.map("accounts").expect("accounts are reported");
    assert!(accounts.entries <= 1_000, "{stats:?}");
    assert!(
        stats.cap_hits >= 1_000,
        "forgotten accounts are counted: {stats:?}"
    );
}
