//! `batch_registration`: accounts raised in batches ("批量养号"), from `register` events.
//!
//! Every registration is keyed three ways: its name [`template`] (`小雨<4 digits>`,
//! `user_<6 hex>`), its device, and its address block (IPv4 /24, IPv6 /48). Per key,
//! the registrations of the last `window_ms` and a background rate (an exponentially
//! decayed count with time constant `baseline_ms`, so a key's own history sets what
//! is normal for it). A key *surges* when its window holds at least `min_batch`
//! registrations and `surge_factor` times what its background predicts.
//!
//! A surging template or device is a batch on its own: people do not invent the same
//! name shape, or share one phone, at many times their usual rate. A surging block is
//! not (a campus or an office signs up together): it needs its registrations to be
//! concentrated on a second signal too (one client build, one name template, shared
//! devices). The registrations of every surging key that qualifies join one batch
//! (an operation): the batch an earlier key already opened for any of them, or a new
//! one. The detector judges nothing during its first `warmup_ms` (no background yet);
//! service mode keeps the background across restarts in its snapshot.

mod batch;
mod template;

use crate::detector::{key64, table_bytes, Budget, Detector, DetectorConfig, DetectorKind};
use crate::detector::{DetectorStats, Every, MapStats};
use crate::findings::{Findings, FindingsConfig};
use crate::flat::{Entry, FlatMap};
use crate::name::Name;
use crate::profile::Profiles;
use batch::{Batch, Profile, Signal};
use levee_model::{stable_id, Alert, AlertKind, Body, Event, Ts};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::net::IpAddr;
use template::Template;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BatchRegistrationConfig {
    pub enabled: bool,
    /// Registrations per key are counted over this sliding event-time window.
    pub window_ms: i64,
    /// Registrations one key needs within the window to surge.
    pub min_batch: usize,
    /// ... and how many times its background rate predicts.
    pub surge_factor: f64,
    /// Time constant of each key's background rate (its decayed count).
    pub baseline_ms: i64,
    /// Nothing is judged until the detector has watched this much event time.
    pub warmup_ms: i64,
    /// A surging address block is a batch when this share of its registrations use one
    /// client build (or `template_share` share one name template, or accounts share devices).
    pub client_share: f64,
    pub template_share: f64,
    /// Registrations kept within the window; beyond it, refused and counted.
    pub max_registrations: usize,
    /// Keys (templates, devices, blocks) with a background; beyond it, refused and counted.
    pub max_keys: usize,
    /// Registrations listed per key within the window; beyond it, counted and not listed.
    pub max_per_key: usize,
    /// Batches kept at once; beyond it, a surging key opens none (counted).
    pub max_batches: usize,
    /// Memory budget in bytes: while over, no new registrations or keys are admitted.
    pub max_state_bytes: u64,
    pub findings: FindingsConfig,
}

impl Default for BatchRegistrationConfig {
    fn default() -> Self {
        BatchRegistrationConfig {
            enabled: true,
            window_ms: 30 * 60_000,
            min_batch: 15,
            surge_factor: 5.0,
            baseline_ms: 24 * 3_600_000,
            warmup_ms: 3_600_000,
            client_share: 0.8,
            template_share: 0.5,
            max_registrations: 1_000_000,
            max_keys: 2_000_000,
            max_per_key: 4096,
            max_batches: 10_000,
            max_state_bytes: 256 << 20,
            findings: FindingsConfig {
                regrow_fraction: 1.0,
                ..FindingsConfig::default()
            },
        }
    }
}

impl DetectorConfig for BatchRegistrationConfig {
    fn enabled(&self) -> bool {
        self.enabled
    }

    fn validate(&self) -> Result<(), String> {
        let share = |s: f64| (0.0..=1.0).contains(&s);
        if self.window_ms <= 0
            || self.min_batch < 2
            || self.surge_factor.is_nan()
            || self.surge_factor < 1.0
            || self.baseline_ms < self.window_ms
            || self.warmup_ms < 0
            || !share(self.client_share)
            || !share(self.template_share)
            || self.max_registrations == 0
            || self.max_keys == 0
            || self.max_per_key < self.min_batch
            || self.max_batches == 0
            || self.max_state_bytes == 0
        {
            return Err("need window_ms > 0, min_batch >= 2, surge_factor >= 1, baseline_ms >= window_ms, warmup_ms >= 0, client_share and template_share in 0..1, max_registrations, max_keys, max_batches > 0, max_per_key >= min_batch".into());
        }
        self.findings.validate()
    }
}

/// One registration within the window.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Reg {
    pub ts: Ts,
    pub account: Name,
    /// The chosen name, the device, the address block (`203.0.113.0/24`), the client; empty if absent.
    pub name: Name,
    pub device: Name,
    pub block: Name,
    pub client: Name,
    /// The batch it joined.
    batch: Option<u64>,
}

impl Reg {
    fn heap_bytes(&self) -> usize {
        [
            &self.account,
            &self.name,
            &self.device,
            &self.block,
            &self.client,
        ]
        .iter()
        .map(|n| n.heap_bytes())
        .sum()
    }
}

/// One key's window and background.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Key {
    signal: u8,
    first_seen: Ts,
    /// Event time of the last registration, and the decayed count up to it.
    last: Ts,
    decayed: f64,
    /// Sequence numbers of its registrations within the window, oldest first.
    recent: VecDeque<u64>,
    /// The batch its surge opened or joined.
    batch: Option<u64>,
    /// Window size at the last qualification check (block keys re-check as they grow).
    checked: u32,
}

/// The address block of `ip`: IPv4 /24 or IPv6 /48, as text.
fn block_of(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.0/24", o[0], o[1], o[2])
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
        }
    }
}

/// The key of a value's `key64` on `signal` (signals never share a key).
fn signal_key(signal: Signal, value: u64) -> u64 {
    value ^ (signal as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// The key of a non-empty `value` (its `key64`), `None` if empty.
fn value_key(value: &str) -> Option<u64> {
    (!value.is_empty()).then(|| key64(value))
}

/// See the module docs.
#[derive(Debug, Serialize, Deserialize)]
pub struct BatchRegistration {
    cfg: BatchRegistrationConfig,
    /// Registrations within the window in arrival order; `regs[0]` has sequence `first_seq`.
    regs: VecDeque<Reg>,
    first_seq: u64,
    reg_bytes: usize,
    keys: FlatMap<Key>,
    /// Sequence numbers listed across every key's window.
    listed: usize,
    batches: FlatMap<Batch>,
    next_batch: u64,
    batch_bytes: usize,
    findings: Findings,
    started: Option<Ts>,
    sweep: Every,
    cap_hits: u64,
    budget: Budget,
}

impl DetectorKind for BatchRegistration {
    const NAME: &'static str = "batch_registration";
    const VERSION: u32 = 1;
    const ALERT_KIND: AlertKind = AlertKind::BatchRegistration;
    type Config = BatchRegistrationConfig;

    fn new(cfg: BatchRegistrationConfig) -> Self {
        BatchRegistration {
            findings: Findings::new(cfg.findings.clone()),
            sweep: Every::new((cfg.window_ms / 4).max(1)),
            budget: Budget::new(cfg.max_state_bytes),
            cfg,
            regs: VecDeque::new(),
            first_seq: 0,
            reg_bytes: 0,
            keys: FlatMap::default(),
            listed: 0,
            batches: FlatMap::default(),
            next_batch: 1,
            batch_bytes: 0,
            started: None,
            cap_hits: 0,
        }
    }
}

impl BatchRegistration {
    fn reg(&self, seq: u64) -> Option<&Reg> {
        let i = seq.checked_sub(self.first_seq)?;
        self.regs.get(usize::try_from(i).ok()?)
    }

    fn reg_mut(&mut self, seq: u64) -> Option<&mut Reg> {
        let i = seq.checked_sub(self.first_seq)?;
        self.regs.get_mut(usize::try_from(i).ok()?)
    }

    /// The registrations `key` predicts for one window from its background, at `now`,
    /// given `n` registrations in the current window.
    fn expected(&self, key: &Key, n: usize) -> f64 {
        let tau = self.cfg.baseline_ms as f64;
        let window = self.cfg.window_ms as f64;
        let observed = (key.last - self.cfg.window_ms - key.first_seen) as f64;
        let background = (key.decayed - n as f64).max(0.0);
        if observed <= 0.0 || background <= 0.0 {
            return 0.0;
        }
        background / (tau * (1.0 - (-observed / tau).exp())) * window
    }

    /// Record `seq` (at `ts`) under `value` on `signal`; return the key, or `None` if refused.
    fn note(&mut self, signal: Signal, value: u64, seq: u64, ts: Ts) -> Option<u64> {
        let k = signal_key(signal, value);
        let horizon = ts - self.cfg.window_ms;
        let (len, capacity, table) = (self.keys.len(), self.keys.capacity(), self.keys.bytes());
        let key = match self.keys.entry(k) {
            Entry::Occupied(key) => key,
            Entry::Vacant(_) if len >= self.cfg.max_keys => {
                self.cap_hits += 1;
                return None;
            }
            Entry::Vacant(_) if !self.budget.admits_insert(len, capacity, table) => return None,
            Entry::Vacant(v) => v.insert(Key {
                signal: signal as u8,
                first_seen: ts,
                last: ts,
                ..Key::default()
            }),
        };
        let tau = self.cfg.baseline_ms as f64;
        let dt = (ts - key.last).max(0) as f64;
        key.decayed = key.decayed * (-dt / tau).exp() + 1.0;
        key.last = key.last.max(ts);
        // Drop what left the window (or the registration buffer).
        let (first_seq, regs) = (self.first_seq, &self.regs);
        while let Some(&s) = key.recent.front() {
            let gone = s
                .checked_sub(first_seq)
                .and_then(|i| regs.get(i as usize))
                .is_none_or(|r| r.ts < horizon);
            if !gone {
                break;
            }
            key.recent.pop_front();
            self.listed -= 1;
        }
        if key.recent.len() >= self.cfg.max_per_key {
            self.cap_hits += 1;
        } else {
            key.recent.push_back(seq);
            self.listed += 1;
        }
        Some(k)
    }

    /// Judge key `k` after registration `seq` joined it.
    fn judge(&mut self, k: u64, signal: Signal, seq: u64, ts: Ts) {
        let Some(key) = self.keys.get(k) else { return };
        let n = key.recent.len();
        if n < self.cfg.min_batch {
            return;
        }
        let expected = self.expected(key, n);
        if (n as f64) < self.cfg.surge_factor * expected {
            return;
        }
        if let Some(b) = key.batch.filter(|b| self.batches.contains_key(*b)) {
            // Join only while the surge goes on: the last sixth of the window surges too
            // (a common key's everyday registrations after a burst are not the batch).
            let tail = self.cfg.window_ms / 6;
            let recent = key
                .recent
                .iter()
                .rev()
                .take_while(|&&s| self.reg(s).is_some_and(|r| r.ts >= ts - tail))
                .count();
            let need = (self.cfg.surge_factor * expected / 6.0).max(3.0);
            if recent as f64 >= need {
                self.join(b, seq, ts);
            }
            return;
        }
        if signal == Signal::Block {
            let checked = key.checked as usize;
            if checked > 0 && n < checked + checked / 4 {
                return;
            }
            if let Some(key) = self.keys.get_mut(k) {
                key.checked = n as u32;
            }
            let mut p = Profile::default();
            for s in self.members(k) {
                if let Some(r) = self.reg(s) {
                    p.add(r, 0);
                }
            }
            let corroborated = (p.named > 0 && p.template_share() >= self.cfg.template_share)
                || p.client_share() >= self.cfg.client_share
                || p.accounts_per_device() >= 2.0;
            if !corroborated {
                return;
            }
        }
        self.open(k, signal, expected, ts);
    }

    fn members(&self, k: u64) -> Vec<u64> {
        self.keys
            .get(k)
            .map(|key| key.recent.iter().copied().collect())
            .unwrap_or_default()
    }

    /// The registrations of key `k`'s burst: from where the count since then most exceeds
    /// twice the background (`expected` per window), so a common key's everyday
    /// registrations before the burst stay out. With no background, the whole window.
    fn burst(&self, k: u64, expected: f64, now: Ts) -> Vec<u64> {
        let mut members = self.members(k);
        let rate = 2.0 * expected / self.cfg.window_ms as f64;
        let (mut best, mut from) = (f64::MIN, 0);
        for (i, &s) in members.iter().enumerate().rev() {
            let Some(r) = self.reg(s) else { continue };
            let excess = (members.len() - i) as f64 - rate * (now - r.ts) as f64;
            if excess >= best {
                (best, from) = (excess, i);
            }
        }
        members.drain(..from);
        members
    }

    /// Key `k` qualified: its burst's registrations join the batch one of them is in
    /// already (the oldest), or a new one.
    fn open(&mut self, k: u64, signal: Signal, expected: f64, ts: Ts) {
        let members = self.burst(k, expected, ts);
        let existing = members
            .iter()
            .filter_map(|&s| self.reg(s).and_then(|r| r.batch))
            .filter(|b| self.batches.contains_key(*b))
            .min();
        let b = match existing {
            Some(b) => b,
            None => {
                if self.batches.len() >= self.cfg.max_batches {
                    self.cap_hits += 1;
                    return;
                }
                let Some(first) = members.first().and_then(|&s| self.reg(s)) else {
                    return;
                };
                let value = match signal {
                    Signal::Template => Template::of(first.name.as_str()).render(),
                    Signal::Device => first.device.as_str().to_owned(),
                    Signal::Block => first.block.as_str().to_owned(),
                };
                let start = first.ts;
                let id = stable_id(
                    AlertKind::BatchRegistration,
                    &[signal.label(), &value, &start.to_string()],
                );
                let finding = self.findings.open(id, start, ts);
                let b = self.next_batch;
                self.next_batch += 1;
                let key = format!("{} {value}", signal.label().replace('_', " "));
                self.batch_bytes += key.len();
                self.batches.entry(b).or_insert(Batch {
                    finding,
                    start,
                    end: start,
                    signals: 0,
                    key,
                    expected,
                    profile: Profile::default(),
                    samples: Vec::new(),
                });
                b
            }
        };
        if let Some(key) = self.keys.get_mut(k) {
            key.batch = Some(b);
        }
        if let Some(batch) = self.batches.get_mut(b) {
            batch.signals |= signal.bit();
        }
        for s in members {
            self.join(b, s, ts);
        }
    }

    /// Registration `seq` joins batch `b` (unless it is in one already).
    fn join(&mut self, b: u64, seq: u64, ts: Ts) {
        let Some(r) = self.reg_mut(seq) else { return };
        if r.batch.is_some() {
            return;
        }
        r.batch = Some(b);
        let r = r.clone();
        let max_numbers = self.cfg.findings.max_members;
        let Some(batch) = self.batches.get_mut(b) else {
            return;
        };
        let before = batch.heap_bytes();
        batch.add(&r, max_numbers);
        self.batch_bytes = self.batch_bytes + batch.heap_bytes() - before;
        let Some(mut f) = self.findings.update(batch.finding, ts) else {
            return;
        };
        f.add_member(r.account.as_str());
        batch.describe(&mut f, &self.cfg);
    }

    /// Drop registrations that left the window, idle keys and batches.
    fn sweep(&mut self, watermark: Ts) {
        let horizon = watermark - self.cfg.window_ms;
        let tau = self.cfg.baseline_ms as f64;
        let (first_seq, regs) = (self.first_seq, &self.regs);
        let mut listed = 0;
        self.keys.retain(|_, key| {
            key.recent.retain(|&s| {
                s.checked_sub(first_seq)
                    .and_then(|i| regs.get(i as usize))
                    .is_some_and(|r| r.ts >= horizon)
            });
            listed += key.recent.len();
            let weight = key.decayed * (-((watermark - key.last).max(0) as f64) / tau).exp();
            !key.recent.is_empty() || weight >= 0.25
        });
        self.listed = listed;
        let mut bytes = 0;
        self.batches.retain(|_, b| {
            let keep = b.end >= horizon;
            if keep {
                bytes += b.heap_bytes();
            }
            keep
        });
        self.batch_bytes = bytes;
    }

    /// Drop registrations older than the window from the front of the buffer.
    fn expire(&mut self, watermark: Ts) {
        let horizon = watermark - self.cfg.window_ms;
        while self.regs.front().is_some_and(|r| r.ts < horizon) {
            if let Some(r) = self.regs.pop_front() {
                self.reg_bytes -= r.heap_bytes();
            }
            self.first_seq += 1;
        }
    }
}

impl Detector for BatchRegistration {
    fn on_event(&mut self, ev: &Event<'_>, _: &Profiles, _out: &mut Vec<Alert>) {
        let started = *self.started.get_or_insert(ev.ts);
        let Body::Register { name } = &ev.body else {
            return;
        };
        if self.regs.len() >= self.cfg.max_registrations {
            self.cap_hits += 1;
            return;
        }
        if !self.budget.admits() {
            return;
        }
        let r = Reg {
            ts: ev.ts,
            account: Name::from(ev.account.as_ref()),
            name: Name::from(name.as_deref().unwrap_or("").trim()),
            device: Name::from(ev.device.as_deref().unwrap_or("")),
            block: Name::from(ev.ip.as_ref().map(block_of).unwrap_or_default().as_str()),
            client: Name::from(ev.ua.as_deref().unwrap_or("")),
            batch: None,
        };
        let seq = self.first_seq + self.regs.len() as u64;
        self.reg_bytes += r.heap_bytes();
        let values = [
            (
                Signal::Template,
                value_key(r.name.as_str()).map(|_| Template::of(r.name.as_str()).key()),
            ),
            (Signal::Device, value_key(r.device.as_str())),
            (Signal::Block, value_key(r.block.as_str())),
        ];
        self.regs.push_back(r);
        let judging = ev.ts - started >= self.cfg.warmup_ms;
        for (signal, value) in values {
            let Some(value) = value else { continue };
            if let Some(k) = self.note(signal, value, seq, ev.ts) {
                if judging {
                    self.judge(k, signal, seq, ev.ts);
                }
            }
        }
    }

    fn on_tick(&mut self, watermark: Ts, out: &mut Vec<Alert>) {
        self.findings.tick::<Self>(watermark, out);
        self.expire(watermark);
        if self.sweep.due(watermark) {
            self.sweep(watermark);
            if self.budget.is_over() {
                self.keys.shrink_to_fit();
                self.regs.shrink_to_fit();
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
                    map: "registrations",
                    entries: self.regs.len() as u64,
                    bytes: (self.regs.capacity() * std::mem::size_of::<Reg>() + self.reg_bytes)
                        as u64,
                },
                MapStats {
                    map: "keys",
                    entries: self.keys.len() as u64,
                    // Listed sequence numbers, with the deques' slack.
                    bytes: self.keys.bytes() + 16 * self.listed as u64,
                },
                MapStats {
                    map: "batches",
                    entries: self.batches.len() as u64,
                    bytes: table_bytes::<u64, Batch>(self.batches.capacity(), self.batch_bytes),
                },
                findings,
                members,
            ],
            cap_hits: self.cap_hits + self.findings.cap_hits(),
            budget: self.budget,
        }
    }
}
