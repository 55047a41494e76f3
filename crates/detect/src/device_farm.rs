//! `device_farm`: many accounts operated from one device fingerprint (group-control software).
//!
//! The reference detector: per device, the distinct accounts seen within a sliding
//! event-time window. When they reach `min_accounts` the device becomes a finding;
//! its alert is re-emitted (revision + 1) on a tick whenever new accounts joined.

use crate::{Detector, DetectorStats};
use levee_model::{
    stable_id, Alert, AlertKind, Event, Severity, Ts, Window, ALERT_CONTRACT_VERSION,
};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeSet;

const NAME: &str = "device_farm/1";

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
    /// Accounts tracked per device (and members per alert); beyond it, counted and ignored.
    pub max_accounts_per_device: usize,
}

impl Default for DeviceFarmConfig {
    fn default() -> Self {
        DeviceFarmConfig {
            enabled: true,
            window_ms: 3_600_000,
            min_accounts: 8,
            max_devices: 1_000_000,
            max_accounts_per_device: 512,
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct DeviceState {
    /// account -> last event time on this device, within the window.
    recent: FxHashMap<Box<str>, Ts>,
    /// Once a finding: every account it implicates, and its alert identity.
    finding: Option<Finding>,
    /// Queued for emission on the next tick.
    dirty: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct Finding {
    alert_id: String,
    revision: u32,
    members: BTreeSet<Box<str>>,
    emitted_members: usize,
    start: Ts,
    end: Ts,
}

/// See the module docs.
#[derive(Debug, Serialize, Deserialize)]
pub struct DeviceFarm {
    cfg: DeviceFarmConfig,
    devices: FxHashMap<Box<str>, DeviceState>,
    dirty: Vec<Box<str>>,
    last_sweep: Ts,
    cap_hits: u64,
}

impl DeviceFarm {
    pub fn new(cfg: DeviceFarmConfig) -> Self {
        DeviceFarm {
            cfg,
            devices: FxHashMap::default(),
            dirty: Vec::new(),
            last_sweep: Ts::MIN,
            cap_hits: 0,
        }
    }

    fn emit(&mut self, out: &mut Vec<Alert>) {
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.sort_unstable();
        for device in dirty {
            let Some(st) = self.devices.get_mut(&device) else {
                continue;
            };
            st.dirty = false;
            let Some(f) = st.finding.as_mut() else {
                continue;
            };
            if f.members.len() == f.emitted_members {
                continue;
            }
            f.revision += 1;
            f.emitted_members = f.members.len();
            out.push(alert(&device, f, self.cfg.min_accounts, self.cfg.window_ms));
        }
    }

    /// Drop accounts that left the window and devices with nothing left.
    fn sweep(&mut self, watermark: Ts) {
        let horizon = watermark.saturating_sub(self.cfg.window_ms);
        self.devices.retain(|_, st| {
            st.recent.retain(|_, ts| *ts >= horizon);
            !st.recent.is_empty() || st.dirty
        });
    }
}

fn alert(device: &str, f: &Finding, min_accounts: usize, window_ms: i64) -> Alert {
    let n = f.members.len();
    let score = n as f64 / (n as f64 + min_accounts as f64 / 2.0);
    Alert {
        v: ALERT_CONTRACT_VERSION,
        alert_id: f.alert_id.clone(),
        revision: f.revision,
        kind: AlertKind::DeviceFarm,
        severity: Severity::from_score(score),
        score,
        window: Window {
            start: f.start,
            end: f.end,
        },
        emitted_at: 0,
        accounts: f.members.iter().map(|m| m.to_string()).collect(),
        targets: Vec::new(),
        topic: None,
        summary: format!(
            "{n} accounts were operated from device {device} within {} minutes",
            window_ms / 60_000
        ),
        evidence: json!({"devices": [device], "accounts_on_devices": n, "window_ms": window_ms})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        detector: NAME.to_owned(),
    }
}

impl Detector for DeviceFarm {
    fn on_event(&mut self, ev: &Event<'_>, _out: &mut Vec<Alert>) {
        let Some(device) = ev.device.as_deref() else {
            return;
        };
        if !self.devices.contains_key(device) {
            if self.devices.len() >= self.cfg.max_devices {
                self.cap_hits += 1;
                return;
            }
            self.devices.insert(device.into(), DeviceState::default());
        }
        let Some(st) = self.devices.get_mut(device) else {
            return;
        };
        let full = st.recent.len() >= self.cfg.max_accounts_per_device;
        match st.recent.get_mut(ev.account.as_ref()) {
            Some(last) => *last = (*last).max(ev.ts),
            None if full => {
                self.cap_hits += 1;
                return;
            }
            None => {
                st.recent.insert(ev.account.as_ref().into(), ev.ts);
            }
        }
        if st.recent.len() < self.cfg.min_accounts && st.finding.is_none() {
            return;
        }
        let f = st.finding.get_or_insert_with(|| {
            let start = st.recent.values().copied().min().unwrap_or(ev.ts);
            Finding {
                alert_id: stable_id(AlertKind::DeviceFarm, &[device, &start.to_string()]),
                revision: 0,
                members: BTreeSet::new(),
                emitted_members: 0,
                start,
                end: ev.ts,
            }
        });
        let before = f.members.len();
        if f.members.is_empty() {
            // A new finding: everyone in the window. Later, only the newcomer.
            f.members.extend(st.recent.keys().cloned());
        } else if f.members.len() < self.cfg.max_accounts_per_device
            && !f.members.contains(ev.account.as_ref())
        {
            f.members.insert(ev.account.as_ref().into());
        }
        f.start = f.start.min(ev.ts);
        f.end = f.end.max(ev.ts);
        if f.members.len() != before && !st.dirty {
            st.dirty = true;
            self.dirty.push(device.into());
        }
    }

    fn on_tick(&mut self, watermark: Ts, out: &mut Vec<Alert>) {
        self.emit(out);
        // Sweeping scans every device: do it every eighth of a window, not every tick.
        if watermark.saturating_sub(self.last_sweep) >= self.cfg.window_ms / 8 {
            self.sweep(watermark);
            self.last_sweep = watermark;
        }
    }

    fn on_flush(&mut self, out: &mut Vec<Alert>) {
        self.emit(out);
    }

    fn stats(&self) -> DetectorStats {
        let accounts: usize = self.devices.values().map(|d| d.recent.len()).sum();
        DetectorStats {
            entries: (self.devices.len() + accounts) as u64,
            cap_hits: self.cap_hits,
        }
    }
}
