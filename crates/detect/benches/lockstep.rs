//! The lockstep detector alone, and MIDAS-R (`midas_rs`) on the same engagement stream.
//!
//! `cargo bench -p levee-detect --bench lockstep [-- SEED...]` prints, per seed: the
//! detector's throughput on pre-decoded engagement events (one core, best of 3), and
//! MIDAS-R's throughput and what its top-scored accounts would catch.

use levee_detect::{Detector, DetectorKind, Lockstep, LockstepConfig};
use levee_model::{AlertKind, Body, Event};
use levee_sim::{generate, ScenarioConfig};
use midas_rs::{MidasR, MidasRParams};
use std::collections::{HashMap, HashSet};
use std::time::Instant;

/// Feed `events` to a fresh detector with runtime-like ticks (10 s lateness, 1 s ticks).
fn run_lockstep(events: &[Event<'static>]) -> (f64, HashSet<String>) {
    let mut d = Lockstep::new(LockstepConfig::default());
    let profiles = levee_detect::Profiles::default();
    let mut out = Vec::new();
    let (mut max_ts, mut next_tick) = (i64::MIN, i64::MIN);
    let t = Instant::now();
    for ev in events {
        d.on_event(ev, &profiles, &mut out);
        max_ts = max_ts.max(ev.ts);
        let wm = max_ts - 10_000;
        if wm >= next_tick {
            d.on_tick(wm, &mut out);
            next_tick = (wm / 1000 + 1) * 1000;
        }
    }
    d.on_tick(max_ts, &mut out);
    d.on_flush(&mut out);
    let secs = t.elapsed().as_secs_f64();
    let flagged = out
        .iter()
        .filter(|a| a.kind == AlertKind::BotFarm)
        .flat_map(|a| a.accounts.clone())
        .collect();
    (events.len() as f64 / secs, flagged)
}

/// MIDAS-R over (account, post, minute) edges; an account's score is its highest edge score.
fn run_midas(events: &[Event<'static>]) -> (f64, Vec<(String, f64)>) {
    let mut ids: HashMap<&str, u64> = HashMap::new();
    let mut edges = Vec::with_capacity(events.len());
    let mut minute = 0u64;
    for ev in events {
        let Body::Engage { post, .. } = &ev.body else {
            continue;
        };
        let n = ids.len() as u64;
        let a = *ids.entry(ev.account.as_ref()).or_insert(n);
        let n = ids.len() as u64;
        let p = *ids.entry(post.as_ref()).or_insert(n);
        minute = minute.max((ev.ts / 60_000) as u64); // MIDAS needs non-decreasing time
        edges.push((a, p, minute));
    }
    let base = edges.first().map_or(0, |e| e.2) - 1;
    let mut m = MidasR::new(MidasRParams::default());
    let mut best: HashMap<u64, f64> = HashMap::new();
    let t = Instant::now();
    for &(a, p, time) in &edges {
        let s = m.insert((a, p, time - base));
        let e = best.entry(a).or_insert(0.0);
        *e = e.max(s);
    }
    let secs = t.elapsed().as_secs_f64();
    let names: HashMap<u64, &str> = ids.iter().map(|(k, v)| (*v, *k)).collect();
    let mut ranked: Vec<(String, f64)> = best
        .into_iter()
        .map(|(a, s)| (names[&a].to_owned(), s))
        .collect();
    ranked.sort_by(|x, y| y.1.total_cmp(&x.1).then_with(|| x.0.cmp(&y.0)));
    (edges.len() as f64 / secs, ranked)
}

fn main() {
    let seeds: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let seeds = if seeds.is_empty() { vec![42] } else { seeds };
    for seed in seeds {
        let s = generate(&ScenarioConfig {
            seed,
            ..ScenarioConfig::default()
        });
        let engage: Vec<Event<'static>> = s
            .events
            .iter()
            .filter(|e| matches!(e.body, Body::Engage { .. }))
            .cloned()
            .collect();
        let farm: HashSet<&str> = s
            .truth
            .groups
            .iter()
            .filter(|g| g.kind == AlertKind::BotFarm)
            .flat_map(|g| g.accounts.iter().map(String::as_str))
            .collect();
        let planted: HashSet<&str> = s
            .truth
            .groups
            .iter()
            .flat_map(|g| g.accounts.iter().map(String::as_str))
            .collect();
        println!(
            "seed {seed}: {} engagement events, {} bot-farm members",
            engage.len(),
            farm.len()
        );

        let mut best = 0.0f64;
        let mut flagged = HashSet::new();
        for _ in 0..3 {
            let (rate, f) = run_lockstep(&engage);
            best = best.max(rate);
            flagged = f;
        }
        let hit = flagged.iter().filter(|a| farm.contains(a.as_str())).count();
        let organic = flagged
            .iter()
            .filter(|a| !planted.contains(a.as_str()))
            .count();
        println!(
            "  lockstep : {:>6.2} M events/s | flags {} accounts: {hit} farm members (recall {:.3}), {organic} organic",
            best / 1e6,
            flagged.len(),
            hit as f64 / farm.len() as f64
        );

        let (rate, ranked) = run_midas(&engage);
        for k in [farm.len(), 2 * farm.len(), 1000] {
            let top = &ranked[..k.min(ranked.len())];
            let hit = top
                .iter()
                .filter(|(a, _)| farm.contains(a.as_str()))
                .count();
            let organic = top
                .iter()
                .filter(|(a, _)| !planted.contains(a.as_str()))
                .count();
            println!(
                "  MIDAS-R  : {:>6.2} M edges/s  | top {k:>4} accounts: {hit} farm members (precision {:.3}, recall {:.3}), {organic} organic",
                rate / 1e6,
                hit as f64 / top.len().max(1) as f64,
                hit as f64 / farm.len() as f64
            );
        }
    }
}
