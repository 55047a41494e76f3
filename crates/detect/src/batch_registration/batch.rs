//! One batch (an operation of registrations) and the evidence it shows a moderator.

use super::template::Template;
use super::Reg;
use crate::findings::{Figure, Update};
use crate::name::Name;
use levee_model::Ts;
use serde::{Deserialize, Serialize};

/// The signals a batch can be keyed on; each is one bit of [`Batch::signals`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Signal {
    Template = 0,
    Device = 1,
    Block = 2,
}

impl Signal {
    pub const ALL: [Signal; 3] = [Signal::Template, Signal::Device, Signal::Block];

    pub fn bit(self) -> u32 {
        1 << self as u32
    }

    pub fn label(self) -> &'static str {
        match self {
            Signal::Template => "name_template",
            Signal::Device => "device",
            Signal::Block => "address_block",
        }
    }
}

/// Distinct values and their counts, the first [`Tally::MAX`] values exactly.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Tally {
    values: Vec<(Name, u32)>,
    /// Members whose value was not among the tracked ones.
    more: u32,
}

impl Tally {
    const MAX: usize = 64;

    pub fn add(&mut self, value: &str) {
        if value.is_empty() {
            return;
        }
        if let Some(v) = self.values.iter_mut().find(|(n, _)| n.as_str() == value) {
            v.1 += 1;
        } else if self.values.len() < Self::MAX {
            self.values.push((Name::from(value), 1));
        } else {
            self.more += 1;
        }
    }

    /// Distinct values (a lower bound once more than [`Tally::MAX`]).
    pub fn distinct(&self) -> usize {
        self.values.len() + usize::from(self.more > 0)
    }

    /// `3 devices`, `more than 64 devices`.
    pub fn count(&self, what: &str) -> String {
        let n = self.values.len();
        let s = if n == 1 && self.more == 0 { "" } else { "s" };
        if self.more > 0 {
            format!("more than {n} {what}{s}")
        } else {
            format!("{n} {what}{s}")
        }
    }

    /// The most common value and its count.
    pub fn top(&self) -> Option<(&str, u32)> {
        self.values
            .iter()
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.as_str().cmp(a.0.as_str())))
            .map(|(n, c)| (n.as_str(), *c))
    }

    /// Up to `k` most common values as `value (count)`, most common first.
    pub fn listing(&self, k: usize) -> Vec<Box<str>> {
        let mut v: Vec<&(Name, u32)> = self.values.iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.as_str().cmp(b.0.as_str())));
        v.iter()
            .take(k)
            .map(|(n, c)| format!("{} ({c})", n.as_str()).into())
            .collect()
    }

    fn heap_bytes(&self) -> usize {
        self.values.capacity() * std::mem::size_of::<(Name, u32)>()
            + self
                .values
                .iter()
                .map(|(n, _)| n.heap_bytes())
                .sum::<usize>()
    }
}

/// Shares of a group of registrations on each signal.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Profile {
    pub members: u32,
    pub templates: Tally,
    pub devices: Tally,
    pub blocks: Tally,
    pub clients: Tally,
    /// Members with a named template (a name was given).
    pub named: u32,
    /// The digit suffixes of the names, for the sequence check (bounded by the caller).
    pub numbers: Vec<u64>,
}

impl Profile {
    pub fn add(&mut self, r: &Reg, max_numbers: usize) {
        self.members += 1;
        if !r.name.as_str().is_empty() {
            let t = Template::of(r.name.as_str());
            self.named += 1;
            self.templates.add(&t.render());
            if let Some(n) = t.number() {
                if self.numbers.len() < max_numbers {
                    self.numbers.push(n);
                }
            }
        }
        self.devices.add(r.device.as_str());
        self.blocks.add(r.block.as_str());
        self.clients.add(r.client.as_str());
    }

    fn share(t: &Tally, of: u32) -> f64 {
        t.top()
            .map_or(0.0, |(_, c)| f64::from(c) / f64::from(of.max(1)))
    }

    pub fn template_share(&self) -> f64 {
        Self::share(&self.templates, self.members)
    }

    pub fn client_share(&self) -> f64 {
        Self::share(&self.clients, self.members)
    }

    pub fn block_share(&self) -> f64 {
        Self::share(&self.blocks, self.members)
    }

    /// Accounts per distinct device (1 when every account has its own).
    pub fn accounts_per_device(&self) -> f64 {
        f64::from(self.members) / self.devices.distinct().max(1) as f64
    }

    /// The digit suffixes run nearly consecutively: distinct, in a range at most twice their number.
    pub fn sequential(&self) -> bool {
        let n = self.numbers.len();
        if n < 5 || (n as f64) < 0.8 * f64::from(self.named) {
            return false;
        }
        let mut v = self.numbers.clone();
        v.sort_unstable();
        v.dedup();
        let (lo, hi) = (v[0], v[v.len() - 1]);
        v.len() as f64 >= 0.9 * n as f64 && hi - lo < 2 * n as u64
    }

    /// How many signals the group is concentrated on (each corroborates a batch).
    pub fn concentrated(&self, template_share: f64, client_share: f64) -> u32 {
        u32::from(self.named > 0 && self.template_share() >= template_share)
            + u32::from(self.accounts_per_device() >= 2.0)
            + u32::from(self.block_share() >= 0.5)
            + u32::from(self.client_share() >= client_share)
    }

    pub fn heap_bytes(&self) -> usize {
        self.templates.heap_bytes()
            + self.devices.heap_bytes()
            + self.blocks.heap_bytes()
            + self.clients.heap_bytes()
            + self.numbers.capacity() * 8
    }
}

/// One batch: the registrations of one operation.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Batch {
    pub finding: u64,
    pub start: Ts,
    pub end: Ts,
    /// Signals whose surge joined members to this batch.
    pub signals: u32,
    /// The first signal's value and the registrations it was expected to carry in a window.
    pub key: String,
    pub expected: f64,
    pub profile: Profile,
    pub samples: Vec<Name>,
}

impl Batch {
    pub fn add(&mut self, r: &Reg, max_numbers: usize) {
        self.start = self.start.min(r.ts);
        self.end = self.end.max(r.ts);
        self.profile.add(r, max_numbers);
        if self.samples.len() < 5 && !r.name.as_str().is_empty() {
            self.samples.push(r.name.clone());
        }
    }

    /// Write the alert's score, summary and evidence.
    pub fn describe(&self, f: &mut Update<'_>, cfg: &super::BatchRegistrationConfig) {
        let p = &self.profile;
        let n = p.members;
        let c = p.concentrated(cfg.template_share, cfg.client_share);
        let size = f64::from(n) / (f64::from(n) + cfg.min_batch as f64);
        f.score((0.6 * size + 0.1 * f64::from(c)).min(0.99));
        f.span(self.start, self.end);
        let template = match p.templates.top() {
            Some((t, k)) if f64::from(k) >= cfg.template_share * f64::from(n) => format!(
                "names following the template {t}{} ({k} of {n})",
                if p.sequential() {
                    ", numbered in sequence"
                } else {
                    ""
                }
            ),
            _ => format!("{} different name templates", p.templates.distinct()),
        };
        let (blocks, devices, clients) = (
            p.blocks.distinct(),
            p.devices.distinct(),
            p.clients.distinct(),
        );
        let most = |t: &Tally| match t.top() {
            Some((v, k)) if k > 1 && t.distinct() > 1 => format!(" (most {v}: {k})"),
            Some((v, _)) if t.distinct() == 1 => format!(" ({v})"),
            _ => String::new(),
        };
        f.summary(format!(
            "{n} accounts registered within {} minutes: {template}; from {}{}, {}{} and {}{}; {} usually sees {:.1} registrations in {} minutes",
            (self.end - self.start) / 60_000 + 1,
            p.blocks.count("address block"),
            most(&p.blocks),
            p.devices.count("device"),
            most(&p.devices),
            p.clients.count("client"),
            most(&p.clients),
            self.key,
            self.expected,
            cfg.window_ms / 60_000,
        ));
        f.figure("registrations", Figure::Int(i64::from(n)));
        f.figure("span_ms", Figure::Int(self.end - self.start));
        f.figure("expected_registrations", Figure::Real(self.expected));
        f.figure("surging_key", Figure::Names(vec![self.key.as_str().into()]));
        f.figure(
            "signals",
            Figure::Names(
                Signal::ALL
                    .iter()
                    .filter(|s| self.signals & s.bit() != 0)
                    .map(|s| s.label().into())
                    .collect(),
            ),
        );
        f.figure("name_templates", Figure::Names(p.templates.listing(5)));
        f.figure("sequential_names", Figure::Int(i64::from(p.sequential())));
        f.figure("address_blocks", Figure::Names(p.blocks.listing(10)));
        f.figure("distinct_address_blocks", Figure::Int(blocks as i64));
        f.figure("devices", Figure::Names(p.devices.listing(10)));
        f.figure("distinct_devices", Figure::Int(devices as i64));
        f.figure("clients", Figure::Names(p.clients.listing(5)));
        f.figure("distinct_clients", Figure::Int(clients as i64));
        f.figure(
            "sample_names",
            Figure::Names(self.samples.iter().map(|s| s.as_str().into()).collect()),
        );
    }

    pub fn heap_bytes(&self) -> usize {
        self.profile.heap_bytes() + self.key.len() + self.samples.capacity() * 24
    }
}
