//! Lockstep memory under hostile load: resident memory per million active accounts.
//!
//! `cargo bench -p levee-detect --bench lockstep_memory` prints, for each load, the
//! growth of resident memory (VmRSS) while the detector holds the state, its entries and
//! bytes by its own count,
//! cap hits and throughput. Linux only (reads /proc/self/status).

use levee_detect::{Detector, DetectorKind, Lockstep, LockstepConfig};
use levee_model::{Body, EngageAction, Event};
use std::borrow::Cow;
use std::time::Instant;

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

fn engage(ts: i64, account: String, post: String) -> Event<'static> {
    Event {
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
    }
}

fn measure(name: &str, events: Vec<Event<'static>>) {
    let before = rss_mib();
    let mut d = Lockstep::new(LockstepConfig::default());
    let profiles = levee_detect::Profiles::default();
    let mut out = Vec::new();
    let t = Instant::now();
    let mut next_tick = i64::MIN;
    for ev in &events {
        d.on_event(ev, &profiles, &mut out);
        if ev.ts - 10_000 >= next_tick {
            d.on_tick(ev.ts - 10_000, &mut out);
            next_tick = ev.ts - 10_000 + 1000;
        }
    }
    let secs = t.elapsed().as_secs_f64();
    let grown = rss_mib() - before;
    let s = d.stats();
    println!(
        "{name}: {} events, {:.2} M events/s | state {} entries, ~{:.0} MiB by its own count, +{grown:.0} MiB resident | cap hits {} | budget hits {} | alerts {}",
        events.len(),
        events.len() as f64 / secs / 1e6,
        s.entries(),
        s.bytes() as f64 / (1 << 20) as f64,
        s.cap_hits,
        s.budget.hits,
        out.len()
    );
}

fn main() {
    // A tiny LCG: the load is the same on every run.
    let mut x: u64 = 1;
    let mut next = |n: u64| {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (x >> 33) % n
    };
    // 1M active accounts, 4 engagements each on 200k posts, within one hour.
    let mut spread: Vec<Event<'static>> = (0..4_000_000u64)
        .map(|i| {
            engage(
                next(3_600_000) as i64,
                format!("acct{:07}", i % 1_000_000),
                format!("post{}", next(200_000)),
            )
        })
        .collect();
    spread.sort_by_key(|e| e.ts);
    measure("1M accounts x 4 engagements over 200k posts in 1 h", spread);
    // A million engagers on one post within a minute.
    let flood: Vec<Event<'static>> = (0..1_000_000u64)
        .map(|i| {
            engage(
                (i * 60) as i64 / 1000,
                format!("f{i:07}"),
                "viral".to_owned(),
            )
        })
        .collect();
    measure("1M engagers on one post in 1 min", flood);
    // 5M distinct accounts, each engaging once, on 1M posts within an hour.
    let mut once: Vec<Event<'static>> = (0..5_000_000u64)
        .map(|i| {
            engage(
                next(3_600_000) as i64,
                format!("o{i:07}"),
                format!("post{}", next(1_000_000)),
            )
        })
        .collect();
    once.sort_by_key(|e| e.ts);
    measure("5M distinct accounts engaging once in 1 h", once);
    // A flood of new target ids: 5M distinct posts, each engaged once by 100k accounts.
    let targets: Vec<Event<'static>> = (0..5_000_000u64)
        .map(|i| {
            engage(
                (i * 3_600) as i64 / 5_000,
                format!("t{}", next(100_000)),
                format!("new{i:07}"),
            )
        })
        .collect();
    measure("5M new target ids in 1 h", targets);
}
