//! One topic's traffic: per-minute counts, an adaptive baseline, and the accounts behind
//! the last window.

use crate::flat::FlatMap;
use crate::name::Name;
use levee_model::Ts;
use serde::{Deserialize, Serialize};

pub const MINUTE: i64 = 60_000;
/// Minutes of per-minute counts kept (the longest rate or composition window).
pub const RING: usize = 16;

/// An account's activity on the topic within the window.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Acct {
    pub last: Ts,
    /// Events in the current tumbling window (`win`, event time / window) and the one
    /// before: [`Acct::recent`] is their sum, events of the last one to two windows.
    pub win: i64,
    pub events: u16,
    pub prev: u16,
    pub young: bool,
    /// `key64` of its address block and of its device (0: unknown).
    pub block: u64,
    pub device: u64,
    pub name: Name,
}

impl Acct {
    /// Count an event at window `win`.
    pub fn count(&mut self, win: i64) {
        if win != self.win {
            self.prev = if win == self.win + 1 { self.events } else { 0 };
            self.events = 0;
            self.win = win;
        }
        self.events = self.events.saturating_add(1);
    }

    pub fn recent(&self) -> u16 {
        self.events.saturating_add(self.prev)
    }
}

/// The composition of the accounts behind a window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Composition {
    pub accounts: usize,
    pub events: u64,
    pub young: usize,
    /// Accounts with `repeat_events` or more events.
    pub repeaters: usize,
    /// Share of the accounts in the most common address block, and its key; the same
    /// for devices.
    pub top_block_share: f64,
    pub top_block: u64,
    pub top_device_share: f64,
    pub top_device: u64,
    /// Share of the window's events in its busiest tenth of 10-second slots (1.0: all
    /// of them in bursts; organic traffic spreads), when the slots are kept.
    pub sync_share: f64,
    /// The busiest slots (10-second numbers), for naming the accounts active in them.
    pub sync_slots: Vec<i64>,
}

/// What is usual for a topic on this platform: every topic's active minutes by their
/// count, on a log2 scale (bucket `b` holds counts in `2^(b-1)..2^b`), decayed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Population {
    buckets: [f64; 32],
}

impl Population {
    fn bucket(x: f64) -> usize {
        if x < 1.0 {
            0
        } else {
            (x.log2().floor() as usize + 1).min(31)
        }
    }

    pub fn add(&mut self, count: u32) {
        if count > 0 {
            self.buckets[Self::bucket(f64::from(count))] += 1.0;
        }
    }

    pub fn decay(&mut self, keep: f64) {
        for b in &mut self.buckets {
            *b *= keep;
        }
    }

    /// The share of active topic-minutes quieter than `rate` a minute (those in lower
    /// buckets, and half of its own).
    pub fn percentile(&self, rate: f64) -> f64 {
        let total: f64 = self.buckets.iter().sum();
        if total <= 0.0 {
            return 0.0;
        }
        let b = Self::bucket(rate);
        let below: f64 = self.buckets[..b].iter().sum::<f64>() + self.buckets[b] / 2.0;
        below / total
    }
}

/// The most common non-zero key among `keys` (the smallest on ties) and its count.
fn top(keys: impl Iterator<Item = u64>) -> (u64, usize) {
    let mut seen: Vec<(u64, usize)> = Vec::new();
    for k in keys.filter(|k| *k != 0) {
        if let Some(e) = seen.iter_mut().find(|(b, _)| *b == k) {
            e.1 += 1;
        } else if seen.len() < 256 {
            seen.push((k, 1));
        }
    }
    seen.into_iter()
        .max_by_key(|&(k, n)| (n, std::cmp::Reverse(k)))
        .unwrap_or((0, 0))
}

/// 10-second slots over the last window (60 slots: up to 10 minutes), kept for topics
/// that have been near a burst.
pub const SLOT_MS: i64 = 10_000;
pub const SLOTS: usize = 60;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Slots {
    /// When counting began, and the newest slot's number; `counts[n % SLOTS]`.
    pub since: Ts,
    pub head: i64,
    pub counts: Vec<u16>,
}

impl Slots {
    pub fn new(ts: Ts) -> Self {
        Slots {
            since: ts,
            head: ts.div_euclid(SLOT_MS),
            counts: vec![0; SLOTS],
        }
    }

    pub fn add(&mut self, ts: Ts) {
        let n = ts.div_euclid(SLOT_MS);
        if n > self.head {
            for m in (self.head + 1)..=n.min(self.head + SLOTS as i64) {
                self.counts[m.rem_euclid(SLOTS as i64) as usize] = 0;
            }
            self.head = n;
        }
        if self.head - n < SLOTS as i64 {
            let c = &mut self.counts[n.rem_euclid(SLOTS as i64) as usize];
            *c = c.saturating_add(1);
        }
    }

    /// The busiest tenth of the last `slots` slots, and their share of all events in them.
    pub fn sync(&self, slots: usize) -> (f64, Vec<i64>) {
        let slots = slots.clamp(1, SLOTS) as i64;
        let mut v: Vec<(u16, i64)> = (0..slots)
            .map(|i| {
                let n = self.head - i;
                (self.counts[n.rem_euclid(SLOTS as i64) as usize], n)
            })
            .collect();
        let total: u64 = v.iter().map(|(c, _)| u64::from(*c)).sum();
        v.sort_unstable_by(|a, b| b.cmp(a));
        v.truncate((slots as usize / 10).max(1));
        let busy: u64 = v.iter().map(|(c, _)| u64::from(*c)).sum();
        (
            busy as f64 / total.max(1) as f64,
            v.into_iter()
                .filter(|(c, _)| *c > 0)
                .map(|(_, n)| n)
                .collect(),
        )
    }
}

impl Composition {
    pub fn young_share(&self) -> f64 {
        self.young as f64 / self.accounts.max(1) as f64
    }

    pub fn events_per_account(&self) -> f64 {
        self.events as f64 / self.accounts.max(1) as f64
    }

    pub fn repeat_share(&self) -> f64 {
        self.repeaters as f64 / self.accounts.max(1) as f64
    }
}

/// See the module docs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Topic {
    pub name: Name,
    /// The current minute (event time / 1 min) and per-minute counts, `ring[m % RING]`.
    pub minute: i64,
    pub ring: [u32; RING],
    /// Baseline of the per-minute count: EWMA of mean and variance over quiet minutes.
    pub mean: f64,
    pub var: f64,
    /// Minutes folded into the baseline.
    pub learned: u32,
    pub last: Ts,
    pub accounts: FlatMap<Acct>,
    /// The burst under way (its first minute), whether its last judged minute was
    /// manipulation (those minutes do not teach the baseline), and its finding.
    pub burst: Option<i64>,
    pub pushed: bool,
    pub finding: Option<u64>,
    /// Ranks seen on clicks during the burst: the first and the best (lowest).
    pub rank_first: Option<u32>,
    pub rank_best: Option<u32>,
    pub peak_rate: f64,
    /// 10-second counts, once the topic came near a burst.
    pub slots: Option<Box<Slots>>,
    /// Queued to be judged on the tick that ends its current minute.
    pub queued: bool,
}

impl Topic {
    /// Move to `minute`, folding each closed minute into the baseline (`alpha` per
    /// minute) unless the topic was being pushed; `fast` (during the warm-up) averages
    /// the first minutes plainly instead. Returns how many minutes closed.
    /// Every closed minute with events also goes into `population`.
    pub fn roll(
        &mut self,
        minute: i64,
        alpha: f64,
        fast: bool,
        population: &mut Population,
    ) -> i64 {
        if minute <= self.minute {
            return 0;
        }
        let closed = minute - self.minute;
        for m in self.minute..minute.min(self.minute + RING as i64) {
            let count = self.ring[m.rem_euclid(RING as i64) as usize];
            population.add(count);
            let x = f64::from(count);
            if !self.pushed {
                let a = if fast {
                    alpha.max(1.0 / f64::from(self.learned + 1))
                } else {
                    alpha
                };
                let d = x - self.mean;
                self.mean += a * d;
                self.var = (1.0 - a) * (self.var + a * d * d);
                self.learned += 1;
            }
        }
        if closed > RING as i64 && !self.pushed {
            // Quiet minutes beyond the ring: zeros, in closed form.
            let k = (closed - RING as i64) as i32;
            let keep = (1.0 - alpha).powi(k);
            self.var = keep * (self.var + (1.0 - keep) * self.mean * self.mean);
            self.mean *= keep;
            self.learned += k as u32;
        }
        for m in (self.minute + 1)..=minute.min(self.minute + RING as i64) {
            self.ring[m.rem_euclid(RING as i64) as usize] = 0;
        }
        self.minute = minute;
        closed
    }

    /// Events in the last `minutes` minutes up to the current one, per minute.
    pub fn rate(&self, minutes: usize) -> f64 {
        let n = minutes.clamp(1, RING - 1);
        let sum: u32 = (0..n as i64)
            .map(|i| self.ring[(self.minute - i).rem_euclid(RING as i64) as usize])
            .sum();
        f64::from(sum) / n as f64
    }

    /// The accounts active since `since`, and their composition.
    pub fn composition(&self, since: Ts, repeat_events: u16) -> Composition {
        let mut c = Composition::default();
        let active = || self.accounts.values().filter(move |a| a.last >= since);
        for a in active() {
            c.accounts += 1;
            c.events += u64::from(a.recent());
            c.young += usize::from(a.young);
            c.repeaters += usize::from(a.recent() >= repeat_events);
        }
        let n = c.accounts.max(1) as f64;
        let (block, k) = top(active().map(|a| a.block));
        (c.top_block, c.top_block_share) = (block, k as f64 / n);
        let (device, k) = top(active().map(|a| a.device));
        (c.top_device, c.top_device_share) = (device, k as f64 / n);
        // Judged only once the slots cover half the window (they start when the topic
        // first comes near a burst).
        if let Some(s) = self
            .slots
            .as_ref()
            .filter(|s| 2 * (self.last - s.since) >= self.last - since)
        {
            let window = ((self.last - since) / SLOT_MS + 1) as usize;
            (c.sync_share, c.sync_slots) = s.sync(window);
        }
        c
    }

    pub fn heap_bytes(&self) -> u64 {
        self.name.heap_bytes() as u64
            + self.slots.as_ref().map_or(0, |_| (SLOTS * 2 + 48) as u64)
            + self.accounts.bytes()
            + self
                .accounts
                .values()
                .map(|a| a.name.heap_bytes() as u64)
                .sum::<u64>()
    }
}
