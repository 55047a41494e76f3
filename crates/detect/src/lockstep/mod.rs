//! `bot_farm`: accounts that engage the same posts within seconds of each other, again and again.
//!
//! Streaming co-engagement: every post keeps its recent engagers; a new engagement
//! pairs the account with those who engaged the same post within `sync_window_ms`.
//! Pair evidence (distinct shared targets, popularity-weighted) accumulates over
//! hours; a pair with enough of it becomes an edge. Every `detect_interval_ms` the
//! edge graph is peeled to its `core_k`-core and split into dense groups, each of
//! which is one alert that keeps its id and gains revisions as it grows.

mod activity;
mod config;
mod graph;
mod interner;
mod pair;
mod sightings;

use activity::{synced_of_common, Activity};
pub use config::LockstepConfig;
pub use graph::{dense_groups, without_weak_members, DenseGroup};
use interner::Interner;
use pair::{co_weight, pair_key, unpack, Pair};
use sightings::{Sighting, Sightings};

use crate::detector::{
    table_bytes, Budget, Detector, DetectorKind, DetectorStats, Every, Lookahead, MapStats,
};
use crate::findings::{Figure, Findings};
use crate::flat::FlatMap;
use crate::profile::Profiles;
use levee_model::{stable_id, Alert, AlertKind, Body, Event, Ts};
use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, VecDeque};

/// The longest event time between sweeps.
const SWEEP_MAX_MS: i64 = 10 * 60_000;

/// A post engaged within the last 2 Δt: its recent engagers.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Active {
    /// (account, ts) within Δt of the newest, oldest first.
    recent: VecDeque<(u32, Ts)>,
    newest: Ts,
}

/// An id's key in the maps keyed by id, [`Lockstep::active`] and [`Lockstep::paired`]
/// (never 0, which the tables keep for empty).
fn id_key(id: u32) -> u64 {
    u64::from(id) | 1 << 32
}

/// See the module docs and `docs/detectors/lockstep.md`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Lockstep {
    cfg: LockstepConfig,
    /// Accounts, each with its engagement count and last targets.
    accounts: Interner<Activity>,
    /// Posts, each with its engagement count (popularity).
    posts: Interner<u32>,
    /// Posts engaged within the last 2 Δt, by id: who engaged them within Δt.
    active: FlatMap<Active>,
    /// Pairs seen on two or more targets (exact).
    pairs: FlatMap<Pair>,
    /// Accounts in exact pairs, by id: how many (0 until the sweep drops them). Past the
    /// pairing degree an engagement only strengthens exact pairs, so an account in none
    /// looks no further (most engagements of a viral post; without this they probed
    /// `pairs` once per recent engager).
    paired: FlatMap<u32>,
    /// Pairs seen on one target so far.
    sightings: Sightings,
    /// The coordination graph: adjacency of edge pairs.
    adj: FxHashMap<u32, Vec<u32>>,
    edge_count: usize,
    /// Accounts whose edges changed since the last extraction.
    touched: FxHashSet<u32>,
    findings: Findings,
    /// Scratch: partners of the current engagement (reused, no allocation per event).
    #[serde(skip)]
    partners: Vec<(u32, Ts)>,
    detect_every: Every,
    sweep_every: Every,
    /// Engagers held in posts' recent lists (for stats).
    recent_entries: usize,
    cap_hits: u64,
    budget: Budget,
}

impl DetectorKind for Lockstep {
    const NAME: &'static str = "lockstep";
    const VERSION: u32 = 1;
    const ALERT_KIND: AlertKind = AlertKind::BotFarm;
    type Config = LockstepConfig;

    fn new(cfg: LockstepConfig) -> Self {
        Lockstep {
            findings: Findings::new(cfg.findings.clone()),
            detect_every: Every::new(cfg.detect_interval_ms),
            sightings: Sightings::new(cfg.max_single_pairs),
            // Often enough to drop quiet posts' engager lists, whatever the horizons.
            sweep_every: Every::new((cfg.single_pair_ttl_ms / 4).clamp(1, SWEEP_MAX_MS)),
            budget: Budget::new(cfg.max_state_bytes),
            cfg,
            accounts: Interner::default(),
            posts: Interner::default(),
            active: FlatMap::default(),
            pairs: FlatMap::default(),
            paired: FlatMap::default(),
            adj: FxHashMap::default(),
            edge_count: 0,
            touched: FxHashSet::default(),
            partners: Vec::new(),
            recent_entries: 0,
            cap_hits: 0,
        }
    }
}

impl Lockstep {
    fn engage(&mut self, account: &str, post: &str, ts: Ts) {
        let cfg = &self.cfg;
        // Over the memory budget, only known accounts and posts are served (the budget
        // counts the refusals); at their caps, the stalest are forgotten (`evicted`).
        let Some((a, activity)) =
            self.accounts
                .get_or_insert(account, ts, cfg.max_accounts, &mut self.budget)
        else {
            return;
        };
        let Some((p, degree)) =
            self.posts
                .get_or_insert(post, ts, cfg.max_targets, &mut self.budget)
        else {
            return;
        };
        activity.saw(p);
        *degree = degree.saturating_add(1);
        let degree = *degree;
        // Past the pairing degree only exact pairs gain evidence (`co_engaged`): an account
        // in none has no partner to look up (most engagements of a viral post).
        let may_create = degree <= cfg.max_pairing_degree;
        let pairs_with = may_create || self.paired.get(id_key(a)).is_some_and(|n| *n > 0);
        let t = self.active.entry(id_key(p)).or_insert(Active::default());
        t.newest = t.newest.max(ts);
        while t
            .recent
            .front()
            .is_some_and(|(_, at)| *at < t.newest - cfg.sync_window_ms)
        {
            t.recent.pop_front();
            self.recent_entries -= 1;
        }
        let mut partners = std::mem::take(&mut self.partners);
        partners.clear();
        if pairs_with {
            partners.extend(
                t.recent
                    .iter()
                    .filter(|(b, at)| *b != a && (ts - at).abs() <= cfg.sync_window_ms),
            );
        }
        if t.recent.len() >= cfg.max_recent_per_target {
            t.recent.pop_front();
            self.recent_entries -= 1;
            self.cap_hits += 1;
        }
        t.recent.push_back((a, ts));
        self.recent_entries += 1;
        // Past the pairing degree the first-sighting table is not consulted (its lookups
        // miss the cache).
        if may_create {
            let touched = partners
                .iter()
                .fold(0, |x, &(b, _)| x ^ self.sightings.touch(pair_key(a, b)));
            std::hint::black_box(touched);
        }
        // One weight per engagement: it depends on the post's degree only.
        let weight = co_weight(degree, cfg.popular_degree);
        for &(b, at) in &partners {
            self.co_engaged(a, b, p, ts, (ts - at).abs(), degree, weight, may_create);
        }
        self.partners = partners;
    }

    #[allow(clippy::too_many_arguments)]
    fn co_engaged(
        &mut self,
        a: u32,
        b: u32,
        post: u32,
        ts: Ts,
        gap: i64,
        degree: u32,
        weight: f64,
        may_create: bool,
    ) {
        let key = pair_key(a, b);
        let pair = match self.pairs.get_mut(key) {
            Some(p) => p,
            None if !may_create => return,
            None => {
                // Not yet on two targets: first sightings wait in the compact table.
                let Some(first) = self.sightings.get(key) else {
                    self.sightings.insert(Sighting {
                        key,
                        first: ts,
                        last_delta: 0,
                        degree,
                        target: post,
                        gap_ms: u32::try_from(gap).unwrap_or(u32::MAX),
                    });
                    return;
                };
                if first.target == post && ts - first.last() < self.cfg.resync_gap_ms {
                    // A second action on the same post is not new evidence.
                    self.sightings.see(key, ts);
                    return;
                }
                if self.pairs.len() >= self.cfg.max_pairs {
                    self.cap_hits += 1;
                    return;
                }
                let (len, capacity) = (self.pairs.len(), self.pairs.capacity());
                if !self.budget.admits_insert(len, capacity, self.pairs.bytes()) {
                    return;
                }
                self.sightings.remove(key);
                for x in [a, b] {
                    *self.paired.entry(id_key(x)).or_insert(0) += 1;
                }
                self.pairs
                    .entry(key)
                    .or_insert(Pair::from_sighting(&first, &self.cfg))
            }
        };
        // A second action on the same post is not new evidence, unless the pair engages
        // it together again `resync_gap_ms` or more after its last co-engagement.
        let again = pair.targets.contains(&post);
        let resync = ts - pair.last >= self.cfg.resync_gap_ms;
        pair.last = pair.last.max(ts);
        pair.first = pair.first.min(ts);
        if again && !resync {
            return;
        }
        pair.hits += 1;
        pair.tight = pair
            .tight
            .saturating_add(u16::from(gap < self.cfg.tight_gap_ms));
        pair.weight += weight;
        pair.gap_sum_ms += gap as f64;
        if !again {
            pair.targets.rotate_right(1);
            pair.targets[0] = post;
        }
        if !pair.is_edge
            && pair.hits >= self.cfg.min_shared_targets
            && pair.weight >= self.cfg.min_edge_weight
        {
            let (pa, pb) = (self.accounts.value(a), self.accounts.value(b));
            let (pa, pb) = (
                pa.copied().unwrap_or_default(),
                pb.copied().unwrap_or_default(),
            );
            let (synced, common) = synced_of_common(&pa, &pb, &pair.targets);
            let least = pa.engagements.min(pb.engagements);
            if pair.weight >= self.cfg.min_overlap * f64::from(least)
                && (synced as f64 >= self.cfg.min_sync_share * common as f64 || pair.is_tight())
            {
                if let Some(pair) = self.pairs.get_mut(key) {
                    pair.is_edge = true;
                }
                self.add_edge(a, b);
            }
        }
    }

    /// Give back table memory the entries do not need (over the memory budget, after a sweep).
    fn shrink(&mut self) {
        self.accounts.shrink();
        self.posts.shrink();
        self.active.shrink_to_fit();
        self.pairs.shrink_to_fit();
        self.paired.shrink_to_fit();
        self.adj.shrink_to_fit();
        self.touched.shrink_to_fit();
    }

    /// Forget old pairs, targets and accounts (event time).
    fn sweep(&mut self, watermark: Ts) {
        let horizon = watermark.saturating_sub(self.cfg.pair_horizon_ms);
        let single = watermark.saturating_sub(self.cfg.single_pair_ttl_ms);
        let mut dropped_edges = Vec::new();
        let paired = &mut self.paired;
        self.pairs.retain(|k, p| {
            let keep = p.last >= horizon && (p.hits >= 2 || p.last >= single);
            if !keep {
                let (a, b) = unpack(k);
                for x in [a, b] {
                    let n = paired.get_mut(id_key(x));
                    debug_assert!(n.as_ref().is_some_and(|n| **n > 0), "counted in both");
                    if let Some(n) = n {
                        *n = n.saturating_sub(1);
                    }
                }
                if p.is_edge {
                    dropped_edges.push(k);
                }
            }
            keep
        });
        self.paired.retain(|_, n| *n > 0);
        for k in dropped_edges {
            let (a, b) = unpack(k);
            self.remove_edge(a, b);
        }
        self.sightings.expire_before(single);
        self.posts.evict(horizon, |_| ());
        // A post quiet for 2 Δt has no engager an in-order event could pair with: forget
        // its list (only an event from behind the watermark, counted as out of order,
        // could have paired with one).
        let quiet = watermark.saturating_sub(2 * self.cfg.sync_window_ms);
        let mut recent_dropped = 0;
        self.active.retain(|_, t| {
            let keep = t.newest >= quiet;
            if !keep {
                recent_dropped += t.recent.len();
            }
            keep
        });
        self.recent_entries -= recent_dropped;
        self.accounts.evict(horizon, |_| ());
    }

    fn add_edge(&mut self, a: u32, b: u32) {
        self.adj.entry(a).or_default().push(b);
        self.adj.entry(b).or_default().push(a);
        self.edge_count += 1;
        self.touched.extend([a, b]);
    }

    fn remove_edge(&mut self, a: u32, b: u32) {
        for (x, y) in [(a, b), (b, a)] {
            if let Some(v) = self.adj.get_mut(&x) {
                v.retain(|n| *n != y);
                if v.is_empty() {
                    self.adj.remove(&x);
                }
            }
        }
        self.edge_count -= 1;
        self.touched.extend([a, b]);
    }

    /// Extract dense groups from the components whose edges changed. A k-core lies
    /// within one component, so untouched components cannot have changed groups.
    fn detect(&mut self) {
        let mut seeds: Vec<u32> = self.touched.drain().collect();
        seeds.sort_unstable();
        let mut visited: FxHashSet<u32> = FxHashSet::default();
        for seed in seeds {
            if visited.contains(&seed) || !self.adj.contains_key(&seed) {
                continue;
            }
            let mut component = vec![seed];
            visited.insert(seed);
            let mut i = 0;
            while i < component.len() {
                for m in self.adj.get(&component[i]).map_or(&[][..], Vec::as_slice) {
                    if visited.insert(*m) {
                        component.push(*m);
                    }
                }
                i += 1;
            }
            if component.len() < self.cfg.min_group_size {
                continue;
            }
            let mut edges: Vec<(u32, u32)> = component
                .iter()
                .flat_map(|a| {
                    self.adj
                        .get(a)
                        .into_iter()
                        .flatten()
                        .filter(move |b| a < *b)
                        .map(move |b| (*a, *b))
                })
                .collect();
            edges.sort_unstable();
            for g in dense_groups(
                &edges,
                self.cfg.core_k,
                self.cfg.min_group_size,
                self.cfg.min_density,
            ) {
                let weight = |a, b| self.pairs.get(pair_key(a, b)).map_or(0.0, |p| p.weight);
                let cfg = &self.cfg;
                for g in
                    without_weak_members(g, weight, cfg.core_k, cfg.min_group_size, cfg.min_density)
                {
                    self.report(&g);
                }
            }
        }
    }

    /// Fold a dense group into its finding (new or existing); the findings decide when to emit.
    fn report(&mut self, g: &DenseGroup) {
        let names: Vec<Box<str>> = g
            .members
            .iter()
            .filter_map(|id| self.accounts.name(*id))
            .map(Box::from)
            .collect();
        let (mut start, mut end, mut gaps, mut targets) =
            (Ts::MAX, Ts::MIN, Vec::new(), BTreeSet::new());
        for (a, b) in &g.edges {
            if let Some(p) = self.pairs.get(pair_key(*a, *b)) {
                start = start.min(p.first);
                end = end.max(p.last);
                gaps.push(p.gap_sum_ms / f64::from(p.hits.max(1)));
                for t in p.targets.iter().filter(|t| **t != u32::MAX) {
                    if let Some(n) = self.posts.name(*t) {
                        targets.insert(Box::<str>::from(n));
                    }
                }
            }
        }
        if names.is_empty() || start > end {
            return;
        }
        // The finding that shares most members, else a new one (first-evidence id).
        let key = match self.findings.best_overlap(names.iter().map(AsRef::as_ref)) {
            Some(k) => k,
            None => {
                // From names and times only: interned numbers depend on who came first.
                let first_target = targets.iter().next().map_or("", |t| t.as_ref());
                let first_member = names.iter().min().map_or("", |n| n.as_ref());
                let alert_id = stable_id(
                    AlertKind::BotFarm,
                    &[first_member, first_target, &start.to_string()],
                );
                self.findings.open(alert_id, start, end)
            }
        };
        let sync_ms = self.cfg.sync_window_ms;
        let Some(mut f) = self.findings.update(key, end) else {
            return;
        };
        for n in &names {
            f.add_member(n);
        }
        for t in &targets {
            f.add_target(t);
        }
        f.span(start, end);
        gaps.sort_by(f64::total_cmp);
        let median_gap_ms = gaps.get(gaps.len() / 2).copied().unwrap_or(0.0);
        let density = g.density();
        let tightness = (1.0 - median_gap_ms / sync_ms as f64).clamp(0.0, 1.0);
        f.score((0.5 * density + 0.5 * tightness).clamp(0.0, 1.0));
        let (n, shared) = (f.finding().members().len(), f.finding().targets().len());
        let gap_s = median_gap_ms / 1000.0;
        f.summary(if shared >= 2 {
            format!("{n} accounts repeatedly engaged the same posts ({shared} seen), typically within {gap_s:.0} s of one another")
        } else {
            let hours = self.cfg.resync_gap_ms as f64 / 3_600_000.0;
            format!("{n} accounts engaged the same post together in waves at least {hours:.0} h apart, typically within {gap_s:.0} s of one another")
        });
        f.figure("shared_targets", Figure::Int(shared as i64));
        f.figure("median_gap_ms", Figure::Int(median_gap_ms.round() as i64));
        f.figure("density", Figure::Real((density * 1000.0).round() / 1000.0));
        f.figure("core_members", Figure::Int(g.members.len() as i64));
        f.figure("edges", Figure::Int(g.edges.len() as i64));
        f.figure("sync_window_ms", Figure::Int(sync_ms));
    }
}

impl Detector for Lockstep {
    fn on_event(&mut self, ev: &Event<'_>, _: &Profiles, _out: &mut Vec<Alert>) {
        if let Body::Engage { post, .. } = &ev.body {
            self.engage(&ev.account, post, ev.ts);
        }
    }

    fn lookahead(&self, ev: &Event<'_>, want: &mut Lookahead) {
        if let Body::Engage { post, .. } = &ev.body {
            want.want(self.accounts.slot_addr(&ev.account));
            want.want(self.posts.slot_addr(post));
        }
    }

    fn on_tick(&mut self, watermark: Ts, out: &mut Vec<Alert>) {
        if !self.touched.is_empty() && self.detect_every.due(watermark) {
            self.detect();
        }
        self.findings.tick::<Self>(watermark, out);
        if self.sweep_every.due(watermark) {
            self.sweep(watermark);
            if self.budget.is_over() {
                self.shrink();
            }
        }
        let bytes = self.stats().bytes();
        self.sightings.frozen = self.budget.check(bytes);
    }

    fn on_flush(&mut self, out: &mut Vec<Alert>) {
        if !self.touched.is_empty() {
            self.detect();
        }
        self.findings.flush::<Self>(out);
    }

    fn stats(&self) -> DetectorStats {
        let recent_heap = self.recent_entries * std::mem::size_of::<(u32, Ts)>();
        let adj_heap = 2 * self.edge_count * std::mem::size_of::<u32>();
        let [findings, members] = self.findings.map_stats();
        DetectorStats {
            maps: vec![
                self.accounts.map_stats("accounts", 0),
                self.posts.map_stats("posts", 0),
                MapStats {
                    map: "active_posts",
                    entries: self.active.len() as u64,
                    bytes: self.active.bytes() + recent_heap as u64,
                },
                MapStats {
                    map: "pairs",
                    entries: self.pairs.len() as u64,
                    bytes: self.pairs.bytes(),
                },
                MapStats {
                    map: "paired_accounts",
                    entries: self.paired.len() as u64,
                    bytes: self.paired.bytes(),
                },
                MapStats {
                    map: "single_pairs",
                    entries: self.sightings.size().0 as u64,
                    bytes: self.sightings.size().1 as u64,
                },
                MapStats {
                    map: "edges",
                    entries: self.edge_count as u64,
                    bytes: table_bytes::<u32, Vec<u32>>(self.adj.capacity(), adj_heap),
                },
                MapStats {
                    map: "touched",
                    entries: self.touched.len() as u64,
                    bytes: table_bytes::<u32, ()>(self.touched.capacity(), 0),
                },
                findings,
                members,
            ],
            cap_hits: self.cap_hits
                + self.sightings.overwritten
                + self.accounts.evicted
                + self.posts.evicted
                + self.findings.cap_hits(),
            budget: self.budget,
        }
    }
}
