//! `zombie_inflation`: a target (an account followed, a post liked, reposted, favorited
//! or shared) inflated by hollow accounts.
//!
//! An engager is *hollow* when the shared account profile ([`crate::profile`]) shows it
//! young (created between `min_age_ms` and `young_ms` before), never posting, with
//! little other activity (at most `max_events` events). An account in its first hour is
//! a newcomer, not a raised one: people sign up to follow someone famous, and accounts
//! registered and used at once are batch_registration's to find. Per target, over a sliding event-time window
//! kept in `BUCKETS` time buckets, the engagements and the hollow ones. A target's
//! state starts with its first hollow engagement, so ordinary targets cost one lookup.
//! A burst is at least `min_hollow` hollow engagements within the window making at
//! least `min_share` of its engagements; its members are the distinct hollow engagers
//! of the window. The share is over the whole window, not its last minutes: a
//! celebrity's viral moment brings thousands of followers, one in ten of them new and
//! the newest last, so its tail alone would look hollow; over the window it stays far
//! below the share. One finding per target and burst; hollow engagers join it while a
//! third of the burst's count and half its share go on.
//!
//! A burst drowned in a viral target's organic traffic (under `min_share`) still stands
//! when its hollow engagers come from few addresses: at least `min_hollow` distinct
//! hollow engagers of the window on *crowded* addresses (an IPv4 address, an IPv6 /64),
//! each the address of at least `min_per_address` of them. Its members are those
//! engagers only; a hollow engager joins when its address is crowded.

use crate::detector::{key64, Budget, Detector, DetectorConfig, DetectorKind};
use crate::detector::{DetectorStats, Every, Lookahead, MapStats};
use crate::findings::{Figure, Findings, FindingsConfig};
use crate::flat::{Entry, FlatMap};
use crate::name::Name;
use crate::profile::Profiles;
use levee_model::{stable_id, Alert, AlertKind, Body, EngageAction, Event, FollowAction, Ts};
use serde::{Deserialize, Serialize};

const BUCKETS: usize = 6;
const ACTIONS: [&str; 5] = ["follow", "like", "repost", "favorite", "share"];
const DAY: i64 = 24 * 3_600_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ZombieInflationConfig {
    pub enabled: bool,
    /// Engagements per target are counted over this sliding event-time window.
    pub window_ms: i64,
    /// An account created between `min_age_ms` and `young_ms` before, never seen
    /// posting, with at most `max_events` events, is hollow.
    pub min_age_ms: i64,
    pub young_ms: i64,
    pub max_events: u16,
    /// Hollow engagements a burst needs within the window...
    pub min_hollow: usize,
    /// ... and the share of the window's engagements they make.
    pub min_share: f64,
    /// Targets with a hollow engagement tracked at once; beyond it, refused and counted.
    pub max_targets: usize,
    /// An address from which at least this many distinct hollow engagers of a target's
    /// window came is crowded; `min_hollow` hollow engagers on crowded addresses are a
    /// burst whatever their share. 0: off.
    pub min_per_address: usize,
    /// Hollow engagers listed per target within the window; beyond it, counted.
    pub max_hollow_per_target: usize,
    /// Memory budget in bytes: while over, no new targets are admitted.
    pub max_state_bytes: u64,
    pub findings: FindingsConfig,
}

impl Default for ZombieInflationConfig {
    fn default() -> Self {
        ZombieInflationConfig {
            enabled: true,
            window_ms: 3_600_000,
            min_age_ms: 3_600_000,
            young_ms: 30 * DAY,
            max_events: 50,
            min_hollow: 30,
            min_share: 0.15,
            max_targets: 1_000_000,
            min_per_address: 5,
            max_hollow_per_target: 2_000,
            max_state_bytes: 256 << 20,
            findings: FindingsConfig {
                regrow_fraction: 2.0,
                ..FindingsConfig::default()
            },
        }
    }
}

impl DetectorConfig for ZombieInflationConfig {
    fn enabled(&self) -> bool {
        self.enabled
    }

    fn validate(&self) -> Result<(), String> {
        if self.window_ms < BUCKETS as i64
            || self.min_age_ms < 0
            || self.young_ms <= self.min_age_ms
            || self.min_hollow < 2
            || self.min_share.is_nan()
            || !(0.0..=1.0).contains(&self.min_share)
            || self.max_targets == 0
            || self.max_hollow_per_target < self.min_hollow
            || self.min_per_address == 1
            || self.max_state_bytes == 0
        {
            return Err("need window_ms >= 6, 0 <= min_age_ms < young_ms, min_hollow >= 2, min_share in 0..1, max_targets > 0, max_hollow_per_target >= min_hollow, min_per_address 0 (off) or >= 2".into());
        }
        self.findings.validate()
    }
}

/// A hollow engager within the window.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Hollow {
    key: u64,
    ts: Ts,
    created: Ts,
    name: Name,
    /// [`address`] of the engagement's IP; 0: none given.
    addr: u32,
}

/// A 32-bit key of an IP address, never 0 (0 stands for none): an IPv4 address whole, an
/// IPv6 address by its /64 (one subscriber's prefix, within which a host may rotate its
/// address at will). Two addresses share a key with odds ~2^-32: among a window's at
/// most `max_hollow_per_target` engagers, the chance that two unrelated ones merge is
/// under one in a thousand.
fn address(ip: Option<std::net::IpAddr>) -> u32 {
    let bits: u64 = match ip {
        None => return 0,
        Some(std::net::IpAddr::V4(v4)) => u64::from(u32::from(v4)),
        Some(std::net::IpAddr::V6(v6)) => ((u128::from(v6) >> 64) as u64) ^ (1 << 63),
    };
    ((bits.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as u32).max(1)
}

/// The crowded addresses of a window (each the address of at least `m` of its hollow
/// engagers), sorted. Asked only when an address turns or stays crowded: its sort is rare.
fn crowded(hollow: &[Hollow], m: usize) -> Vec<u32> {
    let mut addrs: Vec<u32> = hollow.iter().map(|h| h.addr).filter(|&a| a != 0).collect();
    addrs.sort_unstable();
    addrs
        .chunk_by(|a, b| a == b)
        .filter(|run| run.len() >= m)
        .map(|run| run[0])
        .collect()
}

/// One target with hollow engagements.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Target {
    name: Name,
    /// Index into [`ACTIONS`].
    action: u8,
    /// `(engagements, hollow engagements)` per bucket; `head` is the newest bucket's
    /// number (`ts / bucket_ms`), held in `ring[head % BUCKETS]`.
    ring: [(u32, u32); BUCKETS],
    head: i64,
    /// Distinct hollow engagers within the window, oldest first.
    hollow: Vec<Hollow>,
    /// The burst's finding, whether it stands on crowded addresses (else on its hollow
    /// share), its start and its distinct hollow engagers so far.
    finding: Option<u64>,
    by_addresses: bool,
    start: Ts,
    /// The last hollow engager joined (a burst ends a window after it).
    last: Ts,
    joined: u32,
    /// The members' distinct addresses (a burst on crowded addresses only).
    addrs: Vec<u32>,
    /// Creation times of the burst's hollow engagers: earliest, latest, and counts
    /// created within a day, a week, and earlier, before their engagement.
    created: (Ts, Ts),
    ages: [u32; 3],
}

impl Target {
    /// Move the ring to `ts`'s bucket, clearing the buckets that left the window.
    fn advance(&mut self, ts: Ts, bucket_ms: i64) {
        let b = ts.div_euclid(bucket_ms);
        if b <= self.head {
            return;
        }
        for n in (self.head + 1)..=b.min(self.head + BUCKETS as i64) {
            self.ring[n.rem_euclid(BUCKETS as i64) as usize] = (0, 0);
        }
        self.head = b;
    }

    fn add(&mut self, ts: Ts, bucket_ms: i64, hollow: bool) {
        self.advance(ts, bucket_ms);
        let b = ts.div_euclid(bucket_ms);
        if self.head - b >= BUCKETS as i64 {
            return; // behind the window
        }
        let slot = &mut self.ring[b.rem_euclid(BUCKETS as i64) as usize];
        slot.0 += 1;
        slot.1 += u32::from(hollow);
    }

    /// `(engagements, hollow ones)` within the window.
    fn totals(&self) -> (u32, u32) {
        self.ring
            .iter()
            .fold((0, 0), |(a, b), (x, y)| (a + x, b + y))
    }

    fn heap_bytes(&self) -> usize {
        self.name.heap_bytes()
            + self.addrs.capacity() * std::mem::size_of::<u32>()
            + self.hollow.capacity() * std::mem::size_of::<Hollow>()
            + self
                .hollow
                .iter()
                .map(|h| h.name.heap_bytes())
                .sum::<usize>()
    }
}

/// See the module docs.
#[derive(Debug, Serialize, Deserialize)]
pub struct ZombieInflation {
    cfg: ZombieInflationConfig,
    targets: FlatMap<Target>,
    heap: usize,
    findings: Findings,
    sweep: Every,
    cap_hits: u64,
    budget: Budget,
}

impl DetectorKind for ZombieInflation {
    const NAME: &'static str = "zombie_inflation";
    const VERSION: u32 = 1;
    const ALERT_KIND: AlertKind = AlertKind::ZombieInflation;
    const READS_PROFILES: bool = true;
    type Config = ZombieInflationConfig;

    fn new(cfg: ZombieInflationConfig) -> Self {
        ZombieInflation {
            findings: Findings::new(cfg.findings.clone()),
            sweep: Every::new((cfg.window_ms / BUCKETS as i64).max(1)),
            budget: Budget::new(cfg.max_state_bytes),
            cfg,
            targets: FlatMap::default(),
            heap: 0,
            cap_hits: 0,
        }
    }
}

/// The target an event inflates, its action, and its key.
fn target<'e>(ev: &'e Event<'_>) -> Option<(&'e str, u8, u64)> {
    match &ev.body {
        Body::Follow {
            target,
            action: FollowAction::Follow,
        } => Some((target.as_ref(), 0, key64(target) ^ 0x5bd1_e995)),
        Body::Engage { action, post, .. } => {
            let a = match action {
                EngageAction::Like => 1,
                EngageAction::Repost => 2,
                EngageAction::Favorite => 3,
                EngageAction::Share => 4,
                EngageAction::Comment => return None,
            };
            Some((post.as_ref(), a, key64(post)))
        }
        _ => None,
    }
}

impl ZombieInflation {
    /// The account's creation time if it is hollow at `ts`.
    fn hollow(&self, ev: &Event<'_>, profiles: &Profiles) -> Option<Ts> {
        let p = profiles.get(&ev.account)?;
        let created = ev.account_created.or(p.created())?;
        let age = ev.ts - created;
        let hollow = (self.cfg.min_age_ms..self.cfg.young_ms).contains(&age)
            && p.posts() == 0
            && p.events() <= self.cfg.max_events;
        hollow.then_some(created)
    }

    fn describe(cfg: &ZombieInflationConfig, t: &Target, f: &mut crate::findings::Update<'_>) {
        let (total, hollow) = t.totals();
        let share = f64::from(hollow) / f64::from(total.max(1));
        let n = t.joined;
        let (lo, hi) = t.created;
        let days = |ms: i64| ms as f64 / DAY as f64;
        let action = ACTIONS[usize::from(t.action)];
        let who = if !t.by_addresses {
            // How sure: the hollow share itself (the count is gated by `min_hollow`).
            f.score(share.clamp(0.0, 1.0));
            format!("{n} hollow accounts")
        } else {
            // How sure: how concentrated the members are (30 addresses for 200: 0.85).
            let addresses = t.addrs.len();
            f.score((1.0 - addresses as f64 / f64::from(n.max(1))).clamp(0.0, 1.0));
            f.figure("addresses", Figure::Int(addresses as i64));
            f.figure("min_per_address", Figure::Int(cfg.min_per_address as i64));
            let noun = if addresses == 1 {
                "address"
            } else {
                "addresses"
            };
            format!(
                "{n} hollow accounts from {addresses} shared {noun} ({} or more each)",
                cfg.min_per_address
            )
        };
        f.summary(format!(
            "{who} (created {:.1} to {:.1} days before, never seen posting) engaged {} ({action}) within {} minutes; in the last {} minutes hollow accounts made {hollow} of its {total} {action}s ({:.0}%)",
            days(t.start - hi).max(0.0),
            days(t.start - lo).max(0.0),
            t.name.as_str(),
            (t.last - t.start) / 60_000 + 1,
            cfg.window_ms / 60_000,
            share * 100.0,
        ));
        f.figure("target", Figure::Names(vec![t.name.as_str().into()]));
        f.figure("action", Figure::Names(vec![action.into()]));
        f.figure("hollow_accounts", Figure::Int(i64::from(n)));
        f.figure("window_engagements", Figure::Int(i64::from(total)));
        f.figure("window_hollow_engagements", Figure::Int(i64::from(hollow)));
        f.figure("hollow_share", Figure::Real(share));
        f.figure("created_earliest_ms", Figure::Int(lo));
        f.figure("created_latest_ms", Figure::Int(hi));
        f.figure("created_within_1d", Figure::Int(i64::from(t.ages[0])));
        f.figure("created_within_7d", Figure::Int(i64::from(t.ages[1])));
        f.figure("created_within_young", Figure::Int(i64::from(t.ages[2])));
        f.figure("window_ms", Figure::Int(cfg.window_ms));
    }

    /// Hollow engagers `hs` join target `k`'s finding, in order.
    fn join_all(&mut self, k: u64, hs: &[Hollow], ts: Ts) {
        for h in hs {
            self.join(k, h, ts);
        }
    }

    /// Hollow engager `h` joins target `k`'s finding.
    fn join(&mut self, k: u64, h: &Hollow, ts: Ts) {
        let Some(t) = self.targets.get_mut(k) else {
            return;
        };
        let Some(mut f) = t.finding.and_then(|key| self.findings.update(key, ts)) else {
            return;
        };
        if f.finding().members().contains(h.name.as_str()) {
            return;
        }
        f.add_member(h.name.as_str());
        f.span(t.start, ts);
        t.last = t.last.max(ts);
        t.joined += 1;
        t.created = if t.joined == 1 {
            (h.created, h.created)
        } else {
            (t.created.0.min(h.created), t.created.1.max(h.created))
        };
        let age = h.ts - h.created;
        t.ages[usize::from(age >= DAY) + usize::from(age >= 7 * DAY)] += 1;
        if t.by_addresses && !t.addrs.contains(&h.addr) {
            t.addrs.push(h.addr);
        }
        Self::describe(&self.cfg, t, &mut f);
    }
}

impl Detector for ZombieInflation {
    fn lookahead(&self, ev: &Event<'_>, want: &mut Lookahead) {
        if let Some((_, _, k)) = target(ev) {
            want.want(self.targets.slot_addr(k));
        }
    }

    fn on_event(&mut self, ev: &Event<'_>, profiles: &Profiles, _out: &mut Vec<Alert>) {
        let Some((name, action, k)) = target(ev) else {
            return;
        };
        let bucket_ms = self.cfg.window_ms / BUCKETS as i64;
        let hollow = self.hollow(ev, profiles);
        let (len, capacity, table) = (
            self.targets.len(),
            self.targets.capacity(),
            self.targets.bytes(),
        );
        let t = match self.targets.entry(k) {
            Entry::Occupied(t) => t,
            Entry::Vacant(_) if hollow.is_none() => return,
            Entry::Vacant(_) if len >= self.cfg.max_targets => {
                self.cap_hits += 1;
                return;
            }
            Entry::Vacant(_) if !self.budget.admits_insert(len, capacity, table) => return,
            Entry::Vacant(v) => {
                let name = Name::from(name);
                self.heap += name.heap_bytes();
                v.insert(Target {
                    name,
                    action,
                    head: ev.ts.div_euclid(bucket_ms),
                    ..Target::default()
                })
            }
        };
        t.add(ev.ts, bucket_ms, hollow.is_some());
        let Some(created) = hollow else { return };
        let key = key64(&ev.account);
        let h = Hollow {
            key,
            ts: ev.ts,
            created,
            name: Name::from(ev.account.as_ref()),
            addr: address(ev.ip),
        };
        let horizon = ev.ts - self.cfg.window_ms;
        let before = t.heap_bytes();
        t.hollow.retain(|h| h.ts >= horizon);
        // Whether the engager is new to the window, and the window's engagers on its address.
        let (mut fresh, mut same) = (true, 0);
        for x in &t.hollow {
            fresh &= x.key != key;
            same += usize::from(h.addr != 0 && x.addr == h.addr);
        }
        let mut listed = false;
        if fresh {
            if t.hollow.len() >= self.cfg.max_hollow_per_target {
                self.cap_hits += 1;
            } else {
                t.hollow.push(h.clone());
                same += usize::from(h.addr != 0);
                listed = true;
            }
        }
        self.heap = self.heap + t.heap_bytes() - before;
        let m = self.cfg.min_per_address;
        // A new engager on a crowded address: only then can the crowd have grown (so a
        // flood of repeats costs no sort), and only on its `m`-th engager does an address
        // turn crowded (so its earlier engagers join once).
        let crowded_address = m > 0 && same >= m && fresh;
        let turned_crowded = crowded_address && listed && same == m;
        let (total, hollow_n) = t.totals();
        let share = f64::from(hollow_n) / f64::from(total.max(1));
        let by_share = hollow_n as usize >= self.cfg.min_hollow && share >= self.cfg.min_share;
        let kept = t.finding.filter(|f| self.findings.get(*f).is_some());
        if kept.is_some() && ev.ts - t.last <= self.cfg.window_ms {
            if !t.by_addresses {
                // The burst goes on while a third of its rate and half its share do.
                if 3 * hollow_n as usize >= self.cfg.min_hollow && share >= self.cfg.min_share / 2.0
                {
                    self.join(k, &h, ev.ts);
                }
            } else if by_share {
                // Reaching the share, it is a burst by share from then on: the window's
                // hollow engagers join.
                t.by_addresses = false;
                let all = t.hollow.clone();
                self.join_all(k, &all, ev.ts);
            } else if turned_crowded {
                // The address just became crowded: its engagers so far join.
                let on: Vec<Hollow> = (t.hollow.iter())
                    .filter(|x| x.addr == h.addr)
                    .cloned()
                    .collect();
                debug_assert_eq!(on.len(), m);
                self.join_all(k, &on, ev.ts);
            } else if crowded_address {
                self.join(k, &h, ev.ts);
            }
            return;
        }
        // The burst's members: the window's hollow engagers (on crowded addresses, when
        // the share is short of `min_share`).
        let (burst, by_addresses): (Vec<Hollow>, bool) = if by_share {
            (t.hollow.clone(), false)
        } else if crowded_address && hollow_n as usize >= self.cfg.min_hollow {
            let crowd = crowded(&t.hollow, m);
            let on = (t.hollow.iter()).filter(|x| crowd.binary_search(&x.addr).is_ok());
            let on: Vec<Hollow> = on.cloned().collect();
            if on.len() < self.cfg.min_hollow {
                return;
            }
            (on, true)
        } else {
            return;
        };
        // A burst: a new finding, or the target's earlier one reopened under its id.
        let start = burst.first().map_or(ev.ts, |h| h.ts);
        if kept.is_none() {
            let id = stable_id(
                AlertKind::ZombieInflation,
                &[
                    ACTIONS[usize::from(action)],
                    t.name.as_str(),
                    &start.to_string(),
                ],
            );
            t.finding = Some(self.findings.open(id, start, ev.ts));
            t.start = start;
            t.joined = 0;
            t.ages = [0; 3];
            t.addrs.clear();
        }
        t.by_addresses = by_addresses;
        t.last = ev.ts;
        if let Some(mut f) = t.finding.and_then(|key| self.findings.update(key, ev.ts)) {
            f.add_target(t.name.as_str());
        }
        self.join_all(k, &burst, ev.ts);
    }

    fn on_tick(&mut self, watermark: Ts, out: &mut Vec<Alert>) {
        self.findings.tick::<Self>(watermark, out);
        if self.sweep.due(watermark) {
            let horizon = watermark - self.cfg.window_ms;
            let bucket_ms = self.cfg.window_ms / BUCKETS as i64;
            let findings = &self.findings;
            let mut heap = 0;
            self.targets.retain(|_, t| {
                t.advance(watermark, bucket_ms);
                t.hollow.retain(|h| h.ts >= horizon);
                let open = t.finding.is_some_and(|f| findings.get(f).is_some());
                let keep = t.totals().0 > 0 || open;
                if keep {
                    heap += t.heap_bytes();
                }
                keep
            });
            self.heap = heap;
            if self.budget.is_over() {
                self.targets.shrink_to_fit();
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
                    map: "targets",
                    entries: self.targets.len() as u64,
                    bytes: self.targets.bytes() + self.heap as u64,
                },
                findings,
                members,
            ],
            cap_hits: self.cap_hits + self.findings.cap_hits(),
            budget: self.budget,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::address;

    #[test]
    fn an_address_key_is_the_ipv4_address_or_the_ipv6_slash_64() {
        let key = |s: &str| address(Some(s.parse().expect("an IP")));
        assert_eq!(address(None), 0);
        assert_ne!(key("203.0.113.7"), key("203.0.113.8"));
        assert_eq!(key("203.0.113.7"), key("203.0.113.7"));
        assert_eq!(
            key("2408:aa7c:525a:2cae::f464"),
            key("2408:aa7c:525a:2cae:1::1")
        );
        assert_ne!(
            key("2408:aa7c:525a:2cae::f464"),
            key("2408:aa7c:525a:2caf::f464")
        );
        assert!(["0.0.0.0", "::", "255.255.255.255"]
            .iter()
            .all(|a| key(a) != 0));
    }
}
