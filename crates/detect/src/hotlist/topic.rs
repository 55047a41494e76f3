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
    /// `key64` of its address block (0: unknown).
    pub block: u64,
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
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Composition {
    pub accounts: usize,
    pub events: u64,
    pub young: usize,
    /// Accounts with `repeat_events` or more events.
    pub repeaters: usize,
    /// Share of the accounts in the most common address block, and its key.
    pub top_block_share: f64,
    pub top_block: u64,
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
    /// Queued to be judged on the tick that ends its current minute.
    pub queued: bool,
}

impl Topic {
    /// Move to `minute`, folding each closed minute into the baseline (`alpha` per
    /// minute) unless the topic was being pushed; `fast` (during the warm-up) averages
    /// the first minutes plainly instead. Returns how many minutes closed.
    pub fn roll(&mut self, minute: i64, alpha: f64, fast: bool) -> i64 {
        if minute <= self.minute {
            return 0;
        }
        let closed = minute - self.minute;
        for m in self.minute..minute.min(self.minute + RING as i64) {
            let x = f64::from(self.ring[m.rem_euclid(RING as i64) as usize]);
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
        let mut blocks: Vec<(u64, usize)> = Vec::new();
        for (_, a) in self.accounts.iter() {
            if a.last < since {
                continue;
            }
            c.accounts += 1;
            c.events += u64::from(a.recent());
            c.young += usize::from(a.young);
            c.repeaters += usize::from(a.recent() >= repeat_events);
            if a.block != 0 {
                if let Some(e) = blocks.iter_mut().find(|(b, _)| *b == a.block) {
                    e.1 += 1;
                } else if blocks.len() < 256 {
                    blocks.push((a.block, 1));
                }
            }
        }
        let (top_block, top) = blocks
            .iter()
            .copied()
            .max_by_key(|&(b, n)| (n, std::cmp::Reverse(b)))
            .unwrap_or((0, 0));
        c.top_block = top_block;
        c.top_block_share = top as f64 / c.accounts.max(1) as f64;
        c
    }

    pub fn heap_bytes(&self) -> u64 {
        self.name.heap_bytes() as u64
            + self.accounts.bytes()
            + self
                .accounts
                .values()
                .map(|a| a.name.heap_bytes() as u64)
                .sum::<u64>()
    }
}
