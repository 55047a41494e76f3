//! `device_farm`: many accounts operated from one device fingerprint (group-control software).
//!
//! The reference detector: per device, the distinct accounts seen within a sliding
//! event-time window. When they reach `min_accounts` the device becomes a finding;
//! accounts seen on it later join the finding, which is re-emitted on material change.

use crate::detector::{
    key64, Budget, Detector, DetectorConfig, DetectorKind, DetectorStats, Every, MapStats,
};
use crate::findings::{Figure, Findings, FindingsConfig};
use crate::flat::{Entry, FlatMap};
use crate::name::Name;
use levee_model::{stable_id, Alert, AlertKind, Event, Ts};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeviceFarmConfig {
    pub enabled: bool,
    /// Sliding window over which distinct accounts per device are counted.
    pub window_ms: i64,
    /// Distinct accounts on one device within the window that make a finding.
    /// Family-shared phones carry 2 to 4 accounts; farms carry tens.
    pub min_accounts: usize,
    /// Devices tracked at once; new devices are refused (and counted) beyond it.
    pub max_devices: usize,
    /// Accounts tracked per device within the window; beyond it, counted and ignored.
    pub max_accounts_per_device: usize,
    /// Memory budget of the detector (its own byte count, checked every tick): while
    /// over, no new devices or device accounts are admitted (`levee_detector_budget_hits_total`).
    pub max_state_bytes: u64,
    pub findings: FindingsConfig,
}

impl Default for DeviceFarmConfig {
    fn default() -> Self {
        DeviceFarmConfig {
            enabled: true,
            window_ms: 3_600_000,
            min_accounts: 8,
            max_devices: 1_000_000,
            max_accounts_per_device: 512,
            max_state_bytes: 256 << 20,
            findings: FindingsConfig {
                close_after_ms: 3_600_000,
                max_members: 512,
                ..FindingsConfig::default()
            },
        }
    }
}

impl DetectorConfig for DeviceFarmConfig {
    fn enabled(&self) -> bool {
        self.enabled
    }

    fn validate(&self) -> Result<(), String> {
        if self.window_ms <= 0
            || self.min_accounts < 2
            || self.max_devices == 0
            || self.max_state_bytes == 0
            || self.max_accounts_per_device < self.min_accounts
            || self.findings.max_members < self.min_accounts
        {
            return Err("need window_ms > 0, min_accounts >= 2, max_devices > 0, max_accounts_per_device and findings.max_members >= min_accounts".into());
        }
        self.findings.validate()
    }
}

/// One device, keyed by [`key64`] of its fingerprint. Its name is not kept: every
/// alert about it is raised on one of its events, which carries the name.
#[derive(Debug, Default, Serialize, Deserialize)]
struct DeviceState {
    /// The accounts seen within the window, each with its last event time: a short list
    /// (a family phone holds 2-4, a farm tens, `max_accounts_per_device` at most), searched
    /// by key. The first lies in the device's own slot: most devices carry one account,
    /// and their events then touch no memory beyond the table.
    recent: Window,
    /// Once a finding: its key in [`DeviceFarm::findings`].
    finding: Option<u64>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Recent {
    key: u64,
    ts: Ts,
    /// Read only when the device becomes a finding.
    name: Name,
}

/// The accounts of one device: never empty (a device whose window empties is dropped).
#[derive(Debug, Default, Serialize, Deserialize)]
struct Window {
    head: Recent,
    tail: Vec<Recent>,
}

impl Window {
    fn new(first: Recent) -> Self {
        Window {
            head: first,
            tail: Vec::new(),
        }
    }

    fn len(&self) -> usize {
        1 + self.tail.len()
    }

    fn iter(&self) -> impl Iterator<Item = &Recent> {
        std::iter::once(&self.head).chain(&self.tail)
    }

    fn find_mut(&mut self, key: u64) -> Option<&mut Recent> {
        if self.head.key == key {
            return Some(&mut self.head);
        }
        self.tail.iter_mut().find(|r| r.key == key)
    }

    fn push(&mut self, r: Recent) {
        if self.tail.capacity() == 0 {
            // A second account: room for a family phone, not the default four.
            self.tail.reserve_exact(1);
        }
        self.tail.push(r);
    }

    /// Keep the accounts seen at or after `horizon`; `false` if none is left.
    fn retain_since(&mut self, horizon: Ts) -> bool {
        self.tail.retain(|r| r.ts >= horizon);
        if self.head.ts < horizon {
            match self.tail.pop() {
                Some(r) => self.head = r,
                None => return false,
            }
        }
        if self.tail.is_empty() {
            self.tail = Vec::new();
        }
        true
    }
}

/// Heap bytes one recent account costs (entry, and the name if it is not inline).
fn recent_bytes(name: &Name) -> usize {
    std::mem::size_of::<Recent>() + name.heap_bytes()
}

/// See the module docs.
#[derive(Debug, Serialize, Deserialize)]
pub struct DeviceFarm {
    cfg: DeviceFarmConfig,
    devices: FlatMap<DeviceState>,
    findings: Findings,
    sweep: Every,
    /// Account entries across every device's window, and heap bytes of all names.
    accounts: usize,
    name_bytes: usize,
    cap_hits: u64,
    budget: Budget,
}

impl DetectorKind for DeviceFarm {
    const NAME: &'static str = "device_farm";
    const VERSION: u32 = 1;
    const ALERT_KIND: AlertKind = AlertKind::DeviceFarm;
    type Config = DeviceFarmConfig;

    fn new(cfg: DeviceFarmConfig) -> Self {
        DeviceFarm {
            findings: Findings::new(cfg.findings.clone()),
            // Sweeping scans every device: every eighth of a window, not every tick.
            sweep: Every::new((cfg.window_ms / 8).max(1)),
            budget: Budget::new(cfg.max_state_bytes),
            cfg,
            devices: FlatMap::default(),
            accounts: 0,
            name_bytes: 0,
            cap_hits: 0,
        }
    }
}

impl DeviceFarm {
    /// Drop accounts that left the window and devices with nothing left.
    fn sweep(&mut self, watermark: Ts) {
        let horizon = watermark.saturating_sub(self.cfg.window_ms);
        let (mut accounts, mut bytes) = (0, 0);
        self.devices.retain(|_, st| {
            if !st.recent.retain_since(horizon) {
                return false;
            }
            accounts += st.recent.len();
            bytes += st.recent.tail.capacity() * std::mem::size_of::<Recent>();
            bytes += st.recent.iter().map(|r| r.name.heap_bytes()).sum::<usize>();
            true
        });
        self.accounts = accounts;
        self.name_bytes = bytes;
    }
}

impl Detector for DeviceFarm {
    fn on_event(&mut self, ev: &Event<'_>, _out: &mut Vec<Alert>) {
        let Some(device) = ev.device.as_deref() else {
            return;
        };
        let account = ev.account.as_ref();
        let key = key64(account);
        let (devices, capacity, table) = (
            self.devices.len(),
            self.devices.capacity(),
            self.devices.bytes(),
        );
        let st = match self.devices.entry(key64(device)) {
            Entry::Occupied(st) => {
                let full = st.recent.len() >= self.cfg.max_accounts_per_device;
                match st.recent.find_mut(key) {
                    Some(r) => r.ts = r.ts.max(ev.ts),
                    None if full => {
                        self.cap_hits += 1;
                        return;
                    }
                    None if !self.budget.admits() => return,
                    None => {
                        let name = Name::from(account);
                        self.name_bytes += recent_bytes(&name);
                        st.recent.push(Recent {
                            key,
                            ts: ev.ts,
                            name,
                        });
                        self.accounts += 1;
                    }
                }
                st
            }
            Entry::Vacant(_) if devices >= self.cfg.max_devices => {
                self.cap_hits += 1;
                return;
            }
            Entry::Vacant(_) if !self.budget.admits_insert(devices, capacity, table) => return,
            Entry::Vacant(v) => {
                let first = Name::from(account);
                self.name_bytes += first.heap_bytes();
                self.accounts += 1;
                v.insert(DeviceState {
                    recent: Window::new(Recent {
                        key,
                        ts: ev.ts,
                        name: first,
                    }),
                    finding: None,
                })
            }
        };
        if st.recent.len() < self.cfg.min_accounts && st.finding.is_none() {
            return;
        }
        let fresh = st.finding.is_none_or(|k| self.findings.get(k).is_none());
        if fresh {
            let start = st.recent.iter().map(|r| r.ts).min().unwrap_or(ev.ts);
            let id = stable_id(AlertKind::DeviceFarm, &[device, &start.to_string()]);
            st.finding = Some(self.findings.open(id, start, ev.ts));
        }
        let Some(mut f) = st.finding.and_then(|k| self.findings.update(k, ev.ts)) else {
            return;
        };
        if fresh {
            // A new finding: everyone in the window (in name order). Later, only the newcomer.
            let mut names: Vec<&str> = st.recent.iter().map(|r| r.name.as_str()).collect();
            names.sort_unstable();
            for n in names {
                f.add_member(n);
            }
        } else {
            f.add_member(account);
        }
        f.span(ev.ts, ev.ts);
        let n = f.finding().members().len();
        let window_ms = self.cfg.window_ms;
        f.score(n as f64 / (n as f64 + self.cfg.min_accounts as f64 / 2.0));
        f.summary(format!(
            "{n} accounts were operated from device {device} within {} minutes",
            window_ms / 60_000
        ));
        f.figure("devices", Figure::Names(vec![device.into()]));
        f.figure("accounts_on_devices", Figure::Int(n as i64));
        f.figure("window_ms", Figure::Int(window_ms));
    }

    fn on_tick(&mut self, watermark: Ts, out: &mut Vec<Alert>) {
        self.findings.tick::<Self>(watermark, out);
        if self.sweep.due(watermark) {
            self.sweep(watermark);
            if self.budget.is_over() {
                self.devices.shrink_to_fit();
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
                    map: "devices",
                    entries: self.devices.len() as u64,
                    bytes: self.devices.bytes(),
                },
                MapStats {
                    map: "device_accounts",
                    entries: self.accounts as u64,
                    bytes: self.name_bytes as u64,
                },
                findings,
                members,
            ],
            cap_hits: self.cap_hits + self.findings.cap_hits(),
            budget: self.budget,
        }
    }
}
