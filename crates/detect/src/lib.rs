//! Levee's detectors: pure, synchronous state machines over events and event-time ticks.
//!
//! A detector sees decoded [`Event`]s in canonical event-time order (the runtime's
//! reorder buffer) and one tick per boundary the stream crosses, and
//! pushes [`Alert`]s into an output buffer. It never reads a clock, a file or a
//! socket: the same events and ticks give the same alerts. The runtime crate
//! owns all IO and drives detectors through [`Detectors`]. Detectors do not
//! know about each other. Every map a detector keeps has a configured bound;
//! [`DetectorStats::cap_hits`] counts how often one bit.
#![forbid(unsafe_code)]

mod device_farm;
pub mod lockstep;

pub use device_farm::{DeviceFarm, DeviceFarmConfig};
pub use lockstep::{Lockstep, LockstepConfig};

use levee_model::{Alert, Event, Ts};
use serde::{Deserialize, Serialize};

/// The detector shape: one required method, optional hooks with no-op defaults.
pub trait Detector {
    /// Observe one event. Events come in `(ts, record)` order; rarely one comes
    /// behind the last tick (a partition that was idle, or a buffer overflow:
    /// the runtime counts those), and the detector must accept that.
    fn on_event(&mut self, ev: &Event<'_>, out: &mut Vec<Alert>);

    /// The watermark advanced to `watermark`: no event older than it will be
    /// seen again (bar late ones within grace). Evict windows, emit findings.
    fn on_tick(&mut self, _watermark: Ts, _out: &mut Vec<Alert>) {}

    /// End of input (file mode, shutdown): emit whatever is pending.
    fn on_flush(&mut self, _out: &mut Vec<Alert>) {}

    /// State size and cap hits, read by the runtime once per batch.
    fn stats(&self) -> DetectorStats {
        DetectorStats::default()
    }
}

/// What a detector reports about its memory, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DetectorStats {
    /// Entries currently held across the detector's maps.
    pub entries: u64,
    /// Times (cumulative) an insert was refused or an entry evicted because a cap was reached.
    pub cap_hits: u64,
}

/// Configuration of every detector: `[detectors.<name>]` in `levee.toml`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectorsConfig {
    pub lockstep: LockstepConfig,
    pub device_farm: DeviceFarmConfig,
}

/// The fixed set of detectors. An enum, not a registry: adding one is a code change.
#[derive(Debug, Serialize, Deserialize)]
pub enum AnyDetector {
    Lockstep(Box<Lockstep>),
    DeviceFarm(DeviceFarm),
}

impl AnyDetector {
    /// `name` as used in metric labels and config sections.
    pub fn name(&self) -> &'static str {
        match self {
            AnyDetector::Lockstep(_) => "lockstep",
            AnyDetector::DeviceFarm(_) => "device_farm",
        }
    }

    fn inner(&mut self) -> &mut dyn Detector {
        match self {
            AnyDetector::Lockstep(d) => d.as_mut(),
            AnyDetector::DeviceFarm(d) => d,
        }
    }

    fn inner_ref(&self) -> &dyn Detector {
        match self {
            AnyDetector::Lockstep(d) => d.as_ref(),
            AnyDetector::DeviceFarm(d) => d,
        }
    }
}

/// All enabled detectors, driven together. Output order is deterministic:
/// detectors in a fixed order, each in its own deterministic order.
/// Serializable: service mode snapshots it to survive restarts.
#[derive(Debug, Serialize, Deserialize)]
pub struct Detectors {
    all: Vec<AnyDetector>,
}

impl Detectors {
    pub fn new(cfg: &DetectorsConfig) -> Self {
        let mut all = Vec::new();
        if cfg.lockstep.enabled {
            all.push(AnyDetector::Lockstep(Box::new(Lockstep::new(
                cfg.lockstep.clone(),
            ))));
        }
        if cfg.device_farm.enabled {
            all.push(AnyDetector::DeviceFarm(DeviceFarm::new(
                cfg.device_farm.clone(),
            )));
        }
        Detectors { all }
    }

    /// No detector at all (for measuring the runtime alone).
    pub fn none() -> Self {
        Detectors { all: Vec::new() }
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.all.iter().map(AnyDetector::name).collect()
    }

    pub fn on_event(&mut self, ev: &Event<'_>, out: &mut Vec<Alert>) {
        for d in &mut self.all {
            d.inner().on_event(ev, out);
        }
    }

    pub fn on_tick(&mut self, watermark: Ts, out: &mut Vec<Alert>) {
        for d in &mut self.all {
            d.inner().on_tick(watermark, out);
        }
    }

    pub fn on_flush(&mut self, out: &mut Vec<Alert>) {
        for d in &mut self.all {
            d.inner().on_flush(out);
        }
    }

    /// `(name, stats)` per detector.
    pub fn stats(&self) -> Vec<(&'static str, DetectorStats)> {
        self.all
            .iter()
            .map(|d| (d.name(), d.inner_ref().stats()))
            .collect()
    }
}
