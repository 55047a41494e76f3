//! `device_farm`: many accounts operated from a few devices or addresses (group-control
//! software), reported once per operation.
//!
//! Per device, the distinct accounts seen within a sliding event-time window
//! ([`window`]). A device with `crowded_device` or more is *crowded* (a family phone
//! carries 2 to 4). Crowded devices are joined into operations ([`ops`]) by the accounts
//! they share (logins rotating over a pool of phones) and by the private addresses they
//! share; an address seen with more than `max_devices_per_address` devices is public
//! (carrier-grade NAT, campus, office) and links nothing. An operation with at least
//! `min_accounts` accounts, at least `min_accounts_per_device` per device, is a finding:
//! one alert, every device and account of the operation.

mod ops;
mod window;

use crate::detector::{
    key64, Budget, Detector, DetectorConfig, DetectorKind, DetectorStats, Every, Lookahead,
    MapStats,
};
use crate::findings::{Figure, Findings, FindingsConfig};
use crate::flat::{Entry, FlatMap};
use crate::name::Name;
use crate::profile::Profiles;
use levee_model::{stable_id, Alert, AlertKind, Event, Ts};
use ops::Ops;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use window::{recent_bytes, Recent, Window};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeviceFarmConfig {
    pub enabled: bool,
    /// Sliding window over which distinct accounts per device are counted; an operation
    /// with no event for this long is forgotten (its finding closes on its own schedule).
    pub window_ms: i64,
    /// Distinct accounts on one device within the window that make it crowded.
    /// Family-shared phones carry 2 to 4 accounts; farms carry tens.
    pub crowded_device: usize,
    /// Distinct accounts an operation needs to be reported.
    pub min_accounts: usize,
    /// Accounts per device an operation needs to be reported: farms concentrate many
    /// accounts on few devices.
    pub min_accounts_per_device: f64,
    /// An address seen with more devices than this is public (carrier-grade NAT, a
    /// campus) and joins nothing.
    pub max_devices_per_address: usize,
    /// An address joins devices only after it has been watched this long (from its first
    /// use by a crowded device) without turning out public: a shared address shows its
    /// crowd of devices within minutes.
    pub address_probation_ms: i64,
    /// Devices tracked at once; new devices are refused (and counted) beyond it.
    pub max_devices: usize,
    /// Accounts tracked per device within the window; beyond it, counted and ignored.
    pub max_accounts_per_device: usize,
    /// Addresses tracked at once (only those used by crowded devices); beyond it, counted.
    pub max_addresses: usize,
    /// Operations kept at once; beyond it, a crowded device opens none (counted).
    pub max_operations: usize,
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
            crowded_device: 6,
            min_accounts: 20,
            min_accounts_per_device: 4.0,
            max_devices_per_address: 8,
            address_probation_ms: 600_000,
            max_devices: 1_000_000,
            max_accounts_per_device: 512,
            max_addresses: 100_000,
            max_operations: 10_000,
            max_state_bytes: 256 << 20,
            findings: FindingsConfig {
                regrow_fraction: 1.0,
                close_after_ms: 3_600_000,
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
            || self.crowded_device < 2
            || self.min_accounts < self.crowded_device
            || self.min_accounts_per_device.is_nan()
            || self.min_accounts_per_device < 1.0
            || self.max_devices_per_address == 0
            || self.address_probation_ms < 0
            || self.max_devices == 0
            || self.max_addresses == 0
            || self.max_operations == 0
            || self.max_state_bytes == 0
            || self.max_accounts_per_device < self.crowded_device
            || self.findings.max_members < self.min_accounts
        {
            return Err("need window_ms > 0, crowded_device >= 2, min_accounts >= crowded_device, min_accounts_per_device >= 1, max_devices_per_address > 0, address_probation_ms >= 0, max_devices, max_addresses, max_operations > 0, max_accounts_per_device >= crowded_device, findings.max_members >= min_accounts".into());
        }
        self.findings.validate()
    }
}

/// One device, keyed by [`key64`] of its fingerprint: 56 bytes.
#[derive(Debug, Serialize, Deserialize)]
struct DeviceState {
    recent: Window,
    /// Once crowded: its operation (resolve through [`Ops::root`]); [`NO_OP`] before (an
    /// `Option` would pad the slot by 8 bytes).
    op: u64,
}

/// [`DeviceState::op`] of a device not crowded yet (operation ids count up from 0).
const NO_OP: u64 = u64::MAX;

impl Default for DeviceState {
    fn default() -> Self {
        DeviceState {
            recent: Window::default(),
            op: NO_OP,
        }
    }
}

impl DeviceState {
    fn op(&self) -> Option<u64> {
        (self.op != NO_OP).then_some(self.op)
    }
}

const _: () = assert!(std::mem::size_of::<DeviceState>() == 56);

/// An address used by a crowded device: the devices seen on it since.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Addr {
    /// Distinct devices, up to `max_devices_per_address`; emptied once public.
    devices: Vec<u64>,
    public: bool,
    op: Option<u64>,
    /// First use by a crowded device, and the last event seen.
    since: Ts,
    last: Ts,
}

impl Addr {
    fn see(&mut self, device: u64, max: usize, ts: Ts) {
        self.last = self.last.max(ts);
        if self.public || self.devices.contains(&device) {
            return;
        }
        if self.devices.len() >= max {
            self.public = true;
            self.devices = Vec::new();
        } else {
            self.devices.push(device);
        }
    }
}

/// A stable key of an address (the same in every process).
fn addr_key(ip: &IpAddr) -> u64 {
    match ip {
        IpAddr::V4(v4) => xxhash_rust::xxh3::xxh3_64(&v4.octets()),
        IpAddr::V6(v6) => xxhash_rust::xxh3::xxh3_64(&v6.octets()),
    }
}

/// See the module docs.
#[derive(Debug, Serialize, Deserialize)]
pub struct DeviceFarm {
    cfg: DeviceFarmConfig,
    devices: FlatMap<DeviceState>,
    addrs: FlatMap<Addr>,
    ops: Ops,
    findings: Findings,
    sweep: Every,
    /// Account entries across every device's window, and their heap bytes.
    accounts: usize,
    name_bytes: usize,
    cap_hits: u64,
    budget: Budget,
}

impl DetectorKind for DeviceFarm {
    const NAME: &'static str = "device_farm";
    const VERSION: u32 = 2;
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
            addrs: FlatMap::default(),
            ops: Ops::default(),
            accounts: 0,
            name_bytes: 0,
            cap_hits: 0,
        }
    }
}

impl DeviceFarm {
    /// Drop accounts that left the window, devices with nothing left, idle addresses
    /// and idle operations.
    fn sweep(&mut self, watermark: Ts) {
        let horizon = watermark.saturating_sub(self.cfg.window_ms);
        let (mut accounts, mut bytes) = (0, 0);
        self.devices.retain(|_, st| {
            if !st.recent.retain_since(horizon) {
                return false;
            }
            accounts += st.recent.len();
            bytes += st.recent.heap_bytes();
            true
        });
        self.accounts = accounts;
        self.name_bytes = bytes;
        self.addrs.retain(|_, a| a.last >= horizon);
        self.ops.sweep(horizon);
    }

    /// Record `account` on `device`; return the device's state, or `None` if a bound refused it.
    fn see(&mut self, device: u64, account: &str, ts: Ts) -> Option<&mut DeviceState> {
        let key = key64(account);
        let (devices, capacity, table) = (
            self.devices.len(),
            self.devices.capacity(),
            self.devices.bytes(),
        );
        match self.devices.entry(device) {
            Entry::Occupied(st) => {
                let full = st.recent.len() >= self.cfg.max_accounts_per_device;
                match st.recent.find_mut(key) {
                    Some(r) => r.ts = r.ts.max(ts),
                    None if full => {
                        self.cap_hits += 1;
                        // A crowded device still reports its known accounts' events.
                        return st.op().is_some().then_some(st);
                    }
                    None if !self.budget.admits() => return None,
                    None => {
                        let name = Name::from(account);
                        self.name_bytes += recent_bytes(&name);
                        st.recent.push(Recent { key, ts, name });
                        self.accounts += 1;
                    }
                }
                Some(st)
            }
            Entry::Vacant(_) if devices >= self.cfg.max_devices => {
                self.cap_hits += 1;
                None
            }
            Entry::Vacant(_) if !self.budget.admits_insert(devices, capacity, table) => None,
            Entry::Vacant(v) => {
                let name = Name::from(account);
                self.name_bytes += name.heap_bytes();
                self.accounts += 1;
                Some(v.insert(DeviceState {
                    recent: Window::new(Recent { key, ts, name }),
                    op: NO_OP,
                }))
            }
        }
    }

    /// `device` just crowded: open its operation with everyone in its window (merging
    /// the operations they were in). Returns the root, or `None` at `max_operations`.
    fn crowd(&mut self, device: u64, name: &str, now: Ts) -> Option<u64> {
        if self.ops.len() >= self.cfg.max_operations {
            self.cap_hits += 1;
            return None;
        }
        let st = self.devices.get_mut(device)?;
        let start = st.recent.iter().map(|r| r.ts).min().unwrap_or(now);
        let op = self.ops.open(device, name, start, now);
        debug_assert!(op != NO_OP);
        st.op = op;
        let mut root = op;
        for r in st.recent.iter() {
            match self.ops.join(
                root,
                r.key,
                r.name.as_str(),
                device,
                self.cfg.findings.max_members,
            ) {
                Ok((r, _)) => root = r,
                Err(_) => self.cap_hits += 1,
            }
        }
        Some(root)
    }

    /// Link root `root` through address `ip` (used by its crowded `device`); return the
    /// root after any merge.
    fn link_addr(&mut self, root: u64, ip: IpAddr, device: u64, ts: Ts) -> u64 {
        let k = addr_key(&ip);
        let max = self.cfg.max_devices_per_address;
        let tracked = self.addrs.len();
        let a = match self.addrs.entry(k) {
            Entry::Occupied(a) => a,
            Entry::Vacant(_) if tracked >= self.cfg.max_addresses => {
                self.cap_hits += 1;
                return root;
            }
            Entry::Vacant(v) => v.insert(Addr {
                since: ts,
                last: ts,
                ..Addr::default()
            }),
        };
        a.see(device, max, ts);
        if a.public {
            return root;
        }
        if ts - a.since < self.cfg.address_probation_ms {
            // On probation: remember one operation, join none yet.
            if a.op.and_then(|o| self.ops.root(o)).is_none() {
                a.op = Some(root);
            }
            return root;
        }
        let root = match a.op.and_then(|o| self.ops.root(o)) {
            Some(other) => self.ops.union(root, other),
            None => root,
        };
        a.op = Some(root);
        self.ops.add_addr(root, k, || ip.to_string());
        root
    }

    /// Open or update root `root`'s finding if it qualifies.
    fn report(&mut self, root: u64, ts: Ts, newcomer: Option<&str>) {
        let cfg = &self.cfg;
        let Some(op) = self.ops.get_mut(root) else {
            return;
        };
        let (n, d) = (op.members.len(), op.devices.len());
        let qualifies = n >= cfg.min_accounts && n as f64 >= cfg.min_accounts_per_device * d as f64;
        let live = op.finding.filter(|k| self.findings.get(*k).is_some());
        let (key, all) = match live {
            Some(k) => (k, std::mem::take(&mut op.merged)),
            None if qualifies => {
                let first = op.devices.first().map_or("", |(_, n)| n.as_str());
                let id = stable_id(AlertKind::DeviceFarm, &[first, &op.start.to_string()]);
                let k = self.findings.open(id, op.start, ts);
                op.finding = Some(k);
                op.merged = false;
                (k, true)
            }
            None => return,
        };
        let Some(mut f) = self.findings.update(key, ts) else {
            return;
        };
        if all {
            let mut names: Vec<&str> = op.members.values().map(|m| m.name.as_str()).collect();
            names.sort_unstable();
            for name in names {
                f.add_member(name);
            }
        } else if let Some(name) = newcomer {
            f.add_member(name);
        }
        f.span(op.start, ts);
        let per_device = n as f64 / d.max(1) as f64;
        let shared = op.addrs.len();
        f.score(n as f64 / (n as f64 + cfg.min_accounts as f64 / 2.0));
        f.summary(format!(
            "{n} accounts were operated from {d} devices ({per_device:.1} accounts per device) and {shared} shared private addresses within {} minutes; {} of them logged in on more than one of the devices",
            (ts - op.start) / 60_000,
            op.rotating,
        ));
        f.figure(
            "devices",
            Figure::Names(op.devices.iter().map(|(_, n)| n.as_str().into()).collect()),
        );
        f.figure(
            "addresses",
            Figure::Names(op.addrs.iter().map(|(_, a)| a.as_str().into()).collect()),
        );
        f.figure("accounts_on_devices", Figure::Int(n as i64));
        f.figure("accounts_per_device", Figure::Real(per_device));
        f.figure("rotating_accounts", Figure::Int(op.rotating as i64));
        f.figure("events", Figure::Int(op.events as i64));
        f.figure("window_ms", Figure::Int(cfg.window_ms));
    }
}

impl Detector for DeviceFarm {
    fn lookahead(&self, ev: &Event<'_>, want: &mut Lookahead) {
        if let Some(device) = ev.device.as_deref() {
            want.want(self.devices.slot_addr(key64(device)));
        }
    }

    fn on_event(&mut self, ev: &Event<'_>, _: &Profiles, _out: &mut Vec<Alert>) {
        let Some(device_name) = ev.device.as_deref() else {
            return;
        };
        let account = ev.account.as_ref();
        let device = key64(device_name);
        let (crowded, max_members) = (self.cfg.crowded_device, self.cfg.findings.max_members);
        let Some(st) = self.see(device, account, ev.ts) else {
            return;
        };
        let (op, n) = (st.op(), st.recent.len());
        let mut root = match op.and_then(|o| self.ops.root(o)) {
            Some(r) => r,
            None if n >= crowded => match self.crowd(device, device_name, ev.ts) {
                Some(r) => r,
                None => return,
            },
            None => {
                // Not crowded: only count the device on a tracked address.
                if let Some(a) = ev.ip.and_then(|ip| self.addrs.get_mut(addr_key(&ip))) {
                    a.see(device, self.cfg.max_devices_per_address, ev.ts);
                }
                return;
            }
        };
        let mut newcomer = None;
        match self
            .ops
            .join(root, key64(account), account, device, max_members)
        {
            Ok((r, fresh)) => {
                root = r;
                newcomer = fresh.then_some(account);
            }
            Err(_) => self.cap_hits += 1,
        }
        if let Some(ip) = ev.ip {
            root = self.link_addr(root, ip, device, ev.ts);
        }
        if let Some(op) = self.ops.get_mut(root) {
            op.last = op.last.max(ev.ts);
            op.events += 1;
        }
        debug_assert_eq!(self.ops.root(root), Some(root));
        self.report(root, ev.ts, newcomer);
    }

    fn on_tick(&mut self, watermark: Ts, out: &mut Vec<Alert>) {
        self.findings.tick::<Self>(watermark, out);
        if self.sweep.due(watermark) {
            self.sweep(watermark);
            if self.budget.is_over() {
                self.devices.shrink_to_fit();
                self.addrs.shrink_to_fit();
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
                MapStats {
                    map: "addresses",
                    entries: self.addrs.len() as u64,
                    bytes: self.addrs.bytes(),
                },
                MapStats {
                    map: "operations",
                    entries: self.ops.members() as u64,
                    bytes: self.ops.bytes(),
                },
                findings,
                members,
            ],
            cap_hits: self.cap_hits + self.findings.cap_hits(),
            budget: self.budget,
        }
    }
}
