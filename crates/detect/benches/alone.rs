//! Detectors' throughput, one at a time and all together on one core, over a simulated
//! stream held in memory (decoded, in event-time order), and the account profile's memory
//! per 10M accounts. `cargo bench -p levee-detect --bench alone`;
//! `LEVEE_BENCH_ACCOUNTS=300000` for the 300k-account stream (needs ~4 GB).

use levee_detect::{Detectors, DetectorsConfig, ProfileConfig, Profiles};
use levee_model::{Body, Event, FollowAction};
use levee_sim::{generate, ScenarioConfig};
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

/// Events/s of the detectors of `cfg` over `events`, with a tick per second of event
/// time (10 s behind); best of three runs. Also the alerts of the last run.
fn measure(cfg: &DetectorsConfig, events: &[Event<'static>]) -> (f64, usize) {
    let mut best = 0.0f64;
    let mut alerts = 0;
    for _ in 0..3 {
        let mut d = Detectors::new(cfg);
        let mut out = Vec::new();
        let mut next_tick = i64::MIN;
        let t = Instant::now();
        for ev in events {
            d.on_event(ev, &mut out);
            if ev.ts - 10_000 >= next_tick {
                d.on_tick(ev.ts - 10_000, &mut out);
                next_tick = ev.ts - 10_000 + 1_000;
            }
        }
        d.on_flush(&mut out);
        best = best.max(events.len() as f64 / t.elapsed().as_secs_f64());
        alerts = out.len();
    }
    (best, alerts)
}

fn main() {
    let accounts: usize = std::env::var("LEVEE_BENCH_ACCOUNTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let mut s = generate(&ScenarioConfig {
        accounts,
        ..ScenarioConfig::default()
    });
    s.events.sort_by_key(|e| e.ts);
    let n = s.events.len();
    println!(
        "stream: levee gen --accounts {accounts} (6 h), {n} events, in memory, event-time order"
    );
    for name in [
        "batch_registration",
        "device_farm",
        "zombie_inflation",
        "hotlist_manipulation",
    ] {
        let (rate, alerts) = measure(&DetectorsConfig::only(name), &s.events);
        println!("{name:<20} alone: {rate:>12.0} events/s ({alerts} alert messages)");
    }
    let together = |label: &str, cfg: &DetectorsConfig| {
        let (rate, alerts) = measure(cfg, &s.events);
        println!("{label:<20}      : {rate:>12.0} events/s ({alerts} alert messages)");
    };
    let mut four = DetectorsConfig::default();
    four.lockstep.enabled = false;
    four.copies.enabled = false;
    together("the four together", &four);
    // Every detector, as `levee run` has them by default: the detectors' own ceiling,
    // with no decoding and no reordering to pay for.
    together("all six together", &DetectorsConfig::default());
    drop(s);

    // The account profile: 10M accounts, one follow each.
    let before = rss_mib();
    let mut p = Profiles::new(ProfileConfig::default());
    let t = Instant::now();
    for i in 0..10_000_000u64 {
        let ev = Event {
            ts: 1_732_000_000_000 + i as i64,
            account: Cow::Owned(format!("u{i:09}")),
            ip: None,
            device: None,
            ua: None,
            account_created: Some(1_731_000_000_000),
            body: Body::Follow {
                target: Cow::Borrowed("star"),
                action: FollowAction::Follow,
            },
        };
        p.observe(&ev);
    }
    let secs = t.elapsed().as_secs_f64();
    let bytes = p.stats().bytes();
    println!(
        "account profile: {} accounts, {} MiB by its count ({:.1} bytes an account), RSS +{:.0} MiB; {:.0} observations/s",
        p.len(),
        bytes >> 20,
        bytes as f64 / p.len() as f64,
        rss_mib() - before,
        1e7 / secs
    );
}
