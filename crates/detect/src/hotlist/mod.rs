//! `hotlist_manipulation`: topics pushed up the trending list by bought traffic.
//!
//! Per topic, a traffic series: `hotlist` events (view, click, search) and posts and
//! engagements carrying the topic, counted per minute of event time ([`topic`]). A
//! baseline per topic, the EWMA of its per-minute count and of its variance over quiet
//! minutes (time constant `baseline_ms`), says what is usual for it. A **burst** is a
//! rate over the last `rate_minutes` of at least `min_rate_per_min`, `surge_factor`
//! times the baseline and `sigmas` deviations above it. Where it stands among all
//! topics (the share of every topic's active minutes, decayed over a day, that were
//! quieter) goes into the evidence.
//!
//! A burst alone is not manipulation: news bursts too. Each minute of a burst, the
//! accounts behind the topic in the last `window_ms` are examined: the share of young
//! accounts (created less than `young_ms` before, from the shared account profile or
//! the event), the share repeating (`repeat_events` or more events in the last one to
//! two windows), the share in the most common address block and on the most common
//! device, and how synchronized the traffic is (the share of the window's events in
//! its busiest tenth of 10-second slots). Organic trends are driven by a broad, old
//! population spread over time; bought ones by a narrow, repeating, young,
//! synchronized one. With `min_accounts` accounts and any of those shares at its bar
//! (`min_young_share`, `min_repeat_share`, `min_block_share`, `min_device_share`,
//! `min_sync_share`), the burst is a push: one finding per topic and push, naming the
//! accounts behind the anomaly (the young, the repeating, those in the concentrated
//! block or device; the synchronized only when nothing else is at its bar), never
//! every viewer.
//!
//! Nothing is judged during the first `warmup_ms` after the first event: every topic
//! is new to a cold start, and its baseline learns first (a plain average of its first
//! minutes, then the EWMA). After the warm-up a new topic's baseline is zero and learns
//! at the EWMA's pace, so a push that ramps up does not teach itself.

mod topic;

use crate::detector::{key64, Budget, Detector, DetectorConfig, DetectorKind};
use crate::detector::{DetectorStats, Every, MapStats};
use crate::findings::{Figure, Findings, FindingsConfig};
use crate::flat::{Entry, FlatMap};
use crate::name::Name;
use crate::profile::Profiles;
use levee_model::{stable_id, Alert, AlertKind, Body, Event, Ts};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use topic::{Acct, Composition, Population, Slots, Topic, MINUTE, RING, SLOTS, SLOT_MS};

/// The population signals a push is judged on.
const SIGNALS: usize = 5;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HotlistConfig {
    pub enabled: bool,
    /// The accounts behind a topic are those active on it within this window.
    pub window_ms: i64,
    /// The burst rate is the mean per-minute count over this many minutes.
    pub rate_minutes: usize,
    /// Time constant of each topic's baseline.
    pub baseline_ms: i64,
    /// A burst: at least this many events a minute...
    pub min_rate_per_min: f64,
    /// ... this many times the baseline ...
    pub surge_factor: f64,
    /// ... and this many standard deviations above it.
    pub sigmas: f64,
    /// Accounts younger than this are young.
    pub young_ms: i64,
    /// An account with this many events on the topic within the window repeats.
    pub repeat_events: u16,
    /// Distinct accounts a pushed burst needs...
    pub min_accounts: usize,
    /// ... and one of these: shares of them young, repeating, in one address block, on
    /// one device; the share of the window's events in its busiest tenth of 10 s slots.
    pub min_young_share: f64,
    pub min_repeat_share: f64,
    pub min_block_share: f64,
    pub min_device_share: f64,
    pub min_sync_share: f64,
    /// Nothing is judged until the detector has watched this much event time.
    pub warmup_ms: i64,
    /// Topics tracked at once; beyond it, refused and counted.
    pub max_topics: usize,
    /// Accounts tracked per topic within the window; beyond it, counted.
    pub max_accounts_per_topic: usize,
    /// A topic with no event for this long is forgotten.
    pub idle_ms: i64,
    /// Memory budget in bytes: while over, no new topics or topic accounts are admitted.
    pub max_state_bytes: u64,
    pub findings: FindingsConfig,
}

impl Default for HotlistConfig {
    fn default() -> Self {
        HotlistConfig {
            enabled: true,
            window_ms: 10 * MINUTE,
            rate_minutes: 5,
            baseline_ms: 60 * MINUTE,
            min_rate_per_min: 10.0,
            surge_factor: 3.0,
            sigmas: 3.0,
            young_ms: 30 * 24 * 60 * MINUTE,
            repeat_events: 3,
            min_accounts: 20,
            min_young_share: 0.3,
            min_repeat_share: 0.3,
            min_block_share: 0.3,
            min_device_share: 0.3,
            min_sync_share: 0.6,
            warmup_ms: 30 * MINUTE,
            max_topics: 1_000_000,
            max_accounts_per_topic: 20_000,
            idle_ms: 6 * 60 * MINUTE,
            max_state_bytes: 256 << 20,
            findings: FindingsConfig {
                regrow_fraction: 1.0,
                ..FindingsConfig::default()
            },
        }
    }
}

impl DetectorConfig for HotlistConfig {
    fn enabled(&self) -> bool {
        self.enabled
    }

    fn validate(&self) -> Result<(), String> {
        if self.window_ms < MINUTE
            || self.window_ms > (RING as i64 - 1) * MINUTE
            || self.rate_minutes == 0
            || self.rate_minutes >= RING
            || self.baseline_ms < MINUTE
            || self.min_rate_per_min.is_nan()
            || self.min_rate_per_min <= 0.0
            || self.surge_factor.is_nan()
            || self.surge_factor < 1.0
            || self.sigmas.is_nan()
            || self.sigmas < 0.0
            || self.young_ms <= 0
            || self.repeat_events < 2
            || self.min_accounts < 2
            || ![
                self.min_young_share,
                self.min_repeat_share,
                self.min_block_share,
                self.min_device_share,
                self.min_sync_share,
            ]
            .iter()
            .all(|s| (0.0..=1.0).contains(s))
            || self.warmup_ms < 0
            || self.max_topics == 0
            || self.max_accounts_per_topic < self.min_accounts
            || self.idle_ms < self.window_ms
            || self.max_state_bytes == 0
        {
            return Err("need 1 min <= window_ms <= 15 min, 0 < rate_minutes < 16, baseline_ms >= 1 min, min_rate_per_min > 0, surge_factor >= 1, sigmas >= 0, young_ms > 0, repeat_events >= 2, min_accounts >= 2, shares in 0..1, warmup_ms >= 0, max_topics > 0, max_accounts_per_topic >= min_accounts, idle_ms >= window_ms".into());
        }
        self.findings.validate()
    }
}

/// The key of an address block (IPv4 /24, IPv6 /48).
fn block_key(ip: &IpAddr) -> u64 {
    match ip {
        IpAddr::V4(v4) => xxhash_rust::xxh3::xxh3_64(&v4.octets()[..3]),
        IpAddr::V6(v6) => xxhash_rust::xxh3::xxh3_64(&v6.octets()[..6]),
    }
    .max(1)
}

/// See the module docs.
#[derive(Debug, Serialize, Deserialize)]
pub struct Hotlist {
    cfg: HotlistConfig,
    topics: FlatMap<Topic>,
    /// The first event's time (the warm-up runs from it).
    started: Option<Ts>,
    /// Every topic's active minutes: where a burst stands among topics.
    population: Population,
    /// Topics whose current minute may make a burst: judged on the tick that ends it,
    /// not at their next event (which may come minutes later).
    due: Vec<u64>,
    /// Bytes the topics hold beyond their slots (account tables, names).
    heap: u64,
    findings: Findings,
    sweep: Every,
    cap_hits: u64,
    budget: Budget,
}

impl DetectorKind for Hotlist {
    const NAME: &'static str = "hotlist_manipulation";
    const VERSION: u32 = 1;
    const ALERT_KIND: AlertKind = AlertKind::HotlistManipulation;
    const READS_PROFILES: bool = true;
    type Config = HotlistConfig;

    fn new(cfg: HotlistConfig) -> Self {
        Hotlist {
            findings: Findings::new(cfg.findings.clone()),
            sweep: Every::new(cfg.window_ms),
            budget: Budget::new(cfg.max_state_bytes),
            cfg,
            topics: FlatMap::default(),
            due: Vec::new(),
            started: None,
            population: Population::default(),
            heap: 0,
            cap_hits: 0,
        }
    }
}

impl Hotlist {
    /// Whether `now` is within the warm-up (nothing judged, baselines learn fast).
    fn warming(&self, now: Ts) -> bool {
        self.started.is_none_or(|s| now - s < self.cfg.warmup_ms)
    }

    /// Which shares are at their bars (young, repeating, one block, one device,
    /// synchronized), and the score: the largest share at its bar.
    fn anomaly(cfg: &HotlistConfig, c: &Composition) -> ([bool; SIGNALS], f64) {
        let shares = [
            c.young_share(),
            c.repeat_share(),
            c.top_block_share,
            c.top_device_share,
            c.sync_share,
        ];
        let bars = [
            cfg.min_young_share,
            cfg.min_repeat_share,
            cfg.min_block_share,
            cfg.min_device_share,
            cfg.min_sync_share,
        ];
        let at: [bool; SIGNALS] = std::array::from_fn(|i| shares[i] >= bars[i]);
        let score = (0..SIGNALS)
            .filter(|&i| at[i])
            .map(|i| shares[i])
            .fold(0.0, f64::max);
        (at, score.clamp(0.0, 1.0))
    }

    /// Topic `k`'s current minute is over (an event of a later one came at `now`): judge
    /// the last `rate_minutes` up to it, before they teach the baseline.
    fn judge(&mut self, k: u64, now: Ts) {
        let warming = self.warming(now);
        let cfg = &self.cfg;
        let Some(t) = self.topics.get_mut(k) else {
            return;
        };
        t.queued = false;
        if warming {
            return;
        }
        let rate = t.rate(cfg.rate_minutes);
        let sd = t.var.max(0.0).sqrt();
        let bursting = rate >= cfg.min_rate_per_min
            && rate >= cfg.surge_factor * t.mean
            && rate >= t.mean + cfg.sigmas * sd;
        t.pushed = false;
        if !bursting {
            t.burst = None;
            return;
        }
        let first = *t
            .burst
            .get_or_insert(t.minute + 1 - cfg.rate_minutes as i64);
        t.peak_rate = t.peak_rate.max(rate);
        let since = now - cfg.window_ms;
        let c = t.composition(since, cfg.repeat_events);
        let (at, score) = Self::anomaly(cfg, &c);
        if c.accounts < cfg.min_accounts || !at.contains(&true) {
            return;
        }
        t.pushed = true;
        let live = t.finding.filter(|f| self.findings.get(*f).is_some());
        let key = match live {
            Some(f) => f,
            None => {
                let start = first * MINUTE;
                let id = stable_id(
                    AlertKind::HotlistManipulation,
                    &[t.name.as_str(), &start.to_string()],
                );
                let f = self.findings.open(id, start, now);
                t.finding = Some(f);
                t.rank_first = None;
                t.rank_best = None;
                f
            }
        };
        let Some(mut f) = self.findings.update(key, now) else {
            return;
        };
        f.set_topic(t.name.as_str());
        // Synchronization is a property of the traffic, not of an account: it names
        // accounts (twice or more active, last in a busy slot) only when no account-level
        // share is at its bar.
        let by_sync = at[4] && !at[..4].contains(&true);
        let mut named: Vec<&str> = t
            .accounts
            .values()
            .filter(|a| {
                a.last >= since
                    && ((at[0] && a.young)
                        || (at[1] && a.recent() >= cfg.repeat_events)
                        || (at[2] && a.block == c.top_block)
                        || (at[3] && a.device == c.top_device)
                        || (by_sync
                            && a.recent() >= 2
                            && c.sync_slots.contains(&a.last.div_euclid(SLOT_MS))))
            })
            .map(|a| a.name.as_str())
            .collect();
        named.sort_unstable();
        for n in named {
            f.add_member(n);
        }
        f.span(first * MINUTE, now);
        f.score(score);
        let baseline = t.mean;
        let percentile = self.population.percentile(rate);
        let rank = match (t.rank_first, t.rank_best) {
            (Some(a), Some(b)) => format!("; rank {a} -> {b}"),
            _ => String::new(),
        };
        f.summary(format!(
            "{}: {rate:.0} events a minute against a usual {baseline:.1} (busier than {:.0}% of active topic-minutes); {} accounts behind it in {} minutes, {:.0}% under {} days old, {:.0}% with {} or more events, {:.0}% from one address block, {:.0}% on one device, {:.0}% of the events in a tenth of the time; {} named; signals: {}{rank}",
            t.name.as_str(),
            100.0 * percentile,
            c.accounts,
            cfg.window_ms / MINUTE,
            100.0 * c.young_share(),
            cfg.young_ms / (24 * 60 * MINUTE),
            100.0 * c.repeat_share(),
            cfg.repeat_events,
            100.0 * c.top_block_share,
            100.0 * c.top_device_share,
            100.0 * c.sync_share,
            f.finding().members().len(),
            ["young", "repeating", "in that block", "on that device", "synchronized"]
                .iter()
                .zip(at)
                .filter(|(_, a)| *a)
                .map(|(s, _)| *s)
                .collect::<Vec<_>>()
                .join(", "),
        ));
        f.figure("rate_per_min", Figure::Real(rate));
        f.figure("population_percentile", Figure::Real(percentile));
        f.figure("peak_rate_per_min", Figure::Real(t.peak_rate));
        f.figure("baseline_per_min", Figure::Real(baseline));
        f.figure("accounts_in_window", Figure::Int(c.accounts as i64));
        f.figure("events_in_window", Figure::Int(c.events as i64));
        f.figure("young_share", Figure::Real(c.young_share()));
        f.figure("events_per_account", Figure::Real(c.events_per_account()));
        f.figure("repeat_share", Figure::Real(c.repeat_share()));
        f.figure("top_block_share", Figure::Real(c.top_block_share));
        f.figure("top_device_share", Figure::Real(c.top_device_share));
        f.figure("sync_share", Figure::Real(c.sync_share));
        f.figure("window_ms", Figure::Int(cfg.window_ms));
        if let (Some(a), Some(b)) = (t.rank_first, t.rank_best) {
            f.figure("rank_first", Figure::Int(i64::from(a)));
            f.figure("rank_best", Figure::Int(i64::from(b)));
        }
    }

    /// Count one event of `account` on topic `name`.
    fn see(&mut self, name: &str, ev: &Event<'_>, young: bool, rank: Option<u32>) {
        let k = key64(name);
        let minute = ev.ts.div_euclid(MINUTE);
        let alpha = 1.0 - (-(MINUTE as f64) / self.cfg.baseline_ms as f64).exp();
        let (len, capacity, table) = (
            self.topics.len(),
            self.topics.capacity(),
            self.topics.bytes(),
        );
        let t = match self.topics.entry(k) {
            Entry::Occupied(t) => t,
            Entry::Vacant(_) if len >= self.cfg.max_topics => {
                self.cap_hits += 1;
                return;
            }
            Entry::Vacant(_) if !self.budget.admits_insert(len, capacity, table) => return,
            Entry::Vacant(v) => {
                let name = Name::from(name);
                self.heap += name.heap_bytes() as u64;
                v.insert(Topic {
                    name,
                    minute,
                    ..Topic::default()
                })
            }
        };
        if minute > t.minute {
            self.judge(k, ev.ts);
        }
        let warming = self.warming(ev.ts);
        let Some(t) = self.topics.get_mut(k) else {
            return;
        };
        t.roll(minute, alpha, warming, &mut self.population);
        if minute < t.minute - RING as i64 + 1 {
            return; // behind the ring
        }
        t.ring[minute.rem_euclid(RING as i64) as usize] += 1;
        t.last = t.last.max(ev.ts);
        if let Some(s) = &mut t.slots {
            s.add(ev.ts);
        }
        if !t.queued && t.rate(self.cfg.rate_minutes) >= self.cfg.min_rate_per_min {
            t.queued = true;
            self.due.push(k);
            if t.slots.is_none() {
                t.slots = Some(Box::new(Slots::new(ev.ts)));
                self.heap += (SLOTS * 2 + 48) as u64;
            }
        }
        if t.burst.is_some() {
            if let Some(r) = rank {
                t.rank_first.get_or_insert(r);
                t.rank_best = Some(t.rank_best.map_or(r, |b| b.min(r)));
            }
        }
        let ak = key64(&ev.account);
        let win = ev.ts.div_euclid(self.cfg.window_ms);
        let before = t.accounts.bytes();
        let full = t.accounts.len() >= self.cfg.max_accounts_per_topic;
        match t.accounts.entry(ak) {
            Entry::Occupied(a) => {
                a.last = a.last.max(ev.ts);
                a.count(win);
            }
            Entry::Vacant(_) if full => self.cap_hits += 1,
            Entry::Vacant(_) if !self.budget.admits() => {}
            Entry::Vacant(v) => {
                let name = Name::from(ev.account.as_ref());
                self.heap += name.heap_bytes() as u64;
                v.insert(Acct {
                    last: ev.ts,
                    win,
                    events: 1,
                    prev: 0,
                    young,
                    block: ev.ip.as_ref().map_or(0, block_key),
                    device: ev.device.as_deref().map_or(0, |d| key64(d).max(1)),
                    name,
                });
            }
        }
        self.heap = self.heap + t.accounts.bytes() - before;
    }
}

impl Detector for Hotlist {
    fn on_event(&mut self, ev: &Event<'_>, profiles: &Profiles, _out: &mut Vec<Alert>) {
        let (topics, rank): (&[_], Option<u32>) = match &ev.body {
            Body::Hotlist { topic, rank, .. } => (std::slice::from_ref(topic), *rank),
            Body::Post { topics, .. } | Body::Engage { topics, .. } => (topics.as_slice(), None),
            _ => return,
        };
        self.started.get_or_insert(ev.ts);
        if topics.is_empty() {
            return;
        }
        let created = ev
            .account_created
            .or_else(|| profiles.get(&ev.account).and_then(|p| p.created()));
        let young = created.is_some_and(|c| ev.ts - c < self.cfg.young_ms);
        for topic in topics.iter().take(8) {
            self.see(topic, ev, young, rank);
        }
    }

    fn on_tick(&mut self, watermark: Ts, out: &mut Vec<Alert>) {
        // Judge the queued topics whose minute is over, then let it teach the baseline.
        let minute = watermark.div_euclid(MINUTE);
        let alpha = 1.0 - (-(MINUTE as f64) / self.cfg.baseline_ms as f64).exp();
        let due = std::mem::take(&mut self.due);
        for k in due {
            match self.topics.get(k) {
                Some(t) if t.minute < minute => {
                    self.judge(k, watermark);
                    let warming = self.warming(watermark);
                    if let Some(t) = self.topics.get_mut(k) {
                        t.roll(minute, alpha, warming, &mut self.population);
                    }
                }
                Some(_) => self.due.push(k),
                None => {}
            }
        }
        self.findings.tick::<Self>(watermark, out);
        if self.sweep.due(watermark) {
            let (window, idle) = (watermark - self.cfg.window_ms, watermark - self.cfg.idle_ms);
            let findings = &self.findings;
            let mut heap = 0;
            self.topics.retain(|_, t| {
                let open = t.finding.is_some_and(|f| findings.get(f).is_some());
                if t.last < idle && !open {
                    return false;
                }
                t.accounts.retain(|_, a| a.last >= window);
                t.accounts.shrink_to_fit();
                heap += t.heap_bytes();
                true
            });
            self.heap = heap;
            // The population forgets with a day's time constant.
            self.population
                .decay((-(self.cfg.window_ms as f64) / (24.0 * 60.0 * MINUTE as f64)).exp());
            if self.budget.is_over() {
                self.topics.shrink_to_fit();
            }
        }
        let bytes = self.stats().bytes();
        self.budget.check(bytes);
    }

    fn on_flush(&mut self, out: &mut Vec<Alert>) {
        self.findings.flush::<Self>(out);
    }

    fn stats(&self) -> DetectorStats {
        let [findings, members] = self.findings.map_stats();
        DetectorStats {
            maps: vec![
                MapStats {
                    map: "topics",
                    entries: self.topics.len() as u64,
                    bytes: self.topics.bytes() + self.heap,
                },
                findings,
                members,
            ],
            cap_hits: self.cap_hits + self.findings.cap_hits(),
            budget: self.budget,
        }
    }
}
