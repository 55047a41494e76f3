//! The registry: the fixed set of detectors, their config sections and the enum that drives them.
//!
//! Registering a detector is one line in [`DetectorsConfig::each`], plus its variant
//! in [`AnyDetector`] and its field in [`DetectorsConfig`]; the compiler asks for the
//! two dispatch arms. Everything else (construction, validation, names, metrics,
//! snapshots) follows from that list.

use crate::detector::{Detector, DetectorConfig, DetectorKind, DetectorStats, Lookahead};
use crate::profile::{ProfileConfig, Profiles};
use crate::{BatchRegistration, Copies, DeviceFarm, Hotlist, Lockstep, ZombieInflation};
use levee_model::{Alert, Event, Ts};
use serde::{Deserialize, Serialize};

/// `[detectors.<name>]` of `levee.toml`: one typed section per detector, and the shared
/// account profile's `[detectors.account_profile]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectorsConfig {
    pub lockstep: <Lockstep as DetectorKind>::Config,
    pub device_farm: <DeviceFarm as DetectorKind>::Config,
    pub copies: <Copies as DetectorKind>::Config,
    pub batch_registration: <BatchRegistration as DetectorKind>::Config,
    pub zombie_inflation: <ZombieInflation as DetectorKind>::Config,
    pub hotlist_manipulation: <Hotlist as DetectorKind>::Config,
    pub account_profile: ProfileConfig,
}

/// The fixed set of detectors. An enum, not a plugin registry: adding one is a code change.
#[derive(Debug, Serialize, Deserialize)]
pub enum AnyDetector {
    Lockstep(Box<Lockstep>),
    DeviceFarm(Box<DeviceFarm>),
    Copies(Box<Copies>),
    BatchRegistration(Box<BatchRegistration>),
    ZombieInflation(Box<ZombieInflation>),
    Hotlist(Box<Hotlist>),
}

impl AnyDetector {
    fn get(&self) -> &dyn Named {
        match self {
            AnyDetector::Lockstep(d) => d.as_ref(),
            AnyDetector::DeviceFarm(d) => d.as_ref(),
            AnyDetector::Copies(d) => d.as_ref(),
            AnyDetector::BatchRegistration(d) => d.as_ref(),
            AnyDetector::ZombieInflation(d) => d.as_ref(),
            AnyDetector::Hotlist(d) => d.as_ref(),
        }
    }

    fn get_mut(&mut self) -> &mut dyn Named {
        match self {
            AnyDetector::Lockstep(d) => d.as_mut(),
            AnyDetector::DeviceFarm(d) => d.as_mut(),
            AnyDetector::Copies(d) => d.as_mut(),
            AnyDetector::BatchRegistration(d) => d.as_mut(),
            AnyDetector::ZombieInflation(d) => d.as_mut(),
            AnyDetector::Hotlist(d) => d.as_mut(),
        }
    }

    /// The detector's [`DetectorKind::NAME`].
    pub fn name(&self) -> &'static str {
        self.get().name()
    }
}

/// Called once per registered detector, in output order.
trait Visit {
    fn visit<D: DetectorKind>(&mut self, cfg: &D::Config, wrap: fn(D) -> AnyDetector);
}

impl DetectorsConfig {
    /// The list: every detector, in output order.
    fn each(&self, v: &mut impl Visit) {
        v.visit::<Lockstep>(&self.lockstep, |d| AnyDetector::Lockstep(Box::new(d)));
        v.visit::<DeviceFarm>(&self.device_farm, |d| AnyDetector::DeviceFarm(Box::new(d)));
        v.visit::<Copies>(&self.copies, |d| AnyDetector::Copies(Box::new(d)));
        v.visit::<BatchRegistration>(&self.batch_registration, |d| {
            AnyDetector::BatchRegistration(Box::new(d))
        });
        v.visit::<ZombieInflation>(&self.zombie_inflation, |d| {
            AnyDetector::ZombieInflation(Box::new(d))
        });
        v.visit::<Hotlist>(&self.hotlist_manipulation, |d| {
            AnyDetector::Hotlist(Box::new(d))
        });
    }

    /// Validate every section; the message names the section (`detectors.lockstep: ...`).
    pub fn validate(&self) -> Result<(), String> {
        struct Check(Result<(), String>);
        impl Visit for Check {
            fn visit<D: DetectorKind>(&mut self, cfg: &D::Config, _: fn(D) -> AnyDetector) {
                if self.0.is_ok() {
                    self.0 = cfg
                        .validate()
                        .map_err(|e| format!("detectors.{}: {e}", D::NAME));
                }
            }
        }
        let mut c = Check(self.account_profile.validate());
        self.each(&mut c);
        c.0
    }

    /// Defaults with every detector disabled but `name` (tests and benches that study one
    /// detector). Panics on a name that is not registered.
    pub fn only(name: &str) -> Self {
        let defaults = DetectorsConfig::default();
        assert!(
            defaults.names().contains(&name),
            "no detector named {name:?}"
        );
        let mut c = defaults;
        c.lockstep.enabled = name == Lockstep::NAME;
        c.device_farm.enabled = name == DeviceFarm::NAME;
        c.copies.enabled = name == Copies::NAME;
        c.batch_registration.enabled = name == BatchRegistration::NAME;
        c.zombie_inflation.enabled = name == ZombieInflation::NAME;
        c.hotlist_manipulation.enabled = name == Hotlist::NAME;
        c
    }

    /// Every registered detector's name, enabled or not.
    pub fn names(&self) -> Vec<&'static str> {
        struct Names(Vec<&'static str>);
        impl Visit for Names {
            fn visit<D: DetectorKind>(&mut self, _: &D::Config, _: fn(D) -> AnyDetector) {
                self.0.push(D::NAME);
            }
        }
        let mut n = Names(Vec::new());
        self.each(&mut n);
        n.0
    }
}

/// A detector with its name, as the registry drives it.
trait Named: Detector {
    fn name(&self) -> &'static str;
}

impl<D: DetectorKind> Named for D {
    fn name(&self) -> &'static str {
        D::NAME
    }
}

/// All enabled detectors, driven together. Output order is deterministic:
/// detectors in registry order, each in its own deterministic order.
/// Serializable: service mode snapshots it to survive restarts.
#[derive(Debug, Serialize, Deserialize)]
pub struct Detectors {
    all: Vec<AnyDetector>,
    /// The shared account profile, kept (`profiled`) only when an enabled detector reads it.
    profiles: Profiles,
    profiled: bool,
}

impl Detectors {
    pub fn new(cfg: &DetectorsConfig) -> Self {
        struct Build(Vec<AnyDetector>, bool);
        impl Visit for Build {
            fn visit<D: DetectorKind>(&mut self, cfg: &D::Config, wrap: fn(D) -> AnyDetector) {
                if cfg.enabled() {
                    self.0.push(wrap(D::new(cfg.clone())));
                    self.1 |= D::READS_PROFILES;
                }
            }
        }
        let mut b = Build(Vec::new(), false);
        cfg.each(&mut b);
        Detectors {
            all: b.0,
            profiles: Profiles::new(cfg.account_profile.clone()),
            profiled: b.1,
        }
    }

    /// No detector at all (for measuring the runtime alone).
    pub fn none() -> Self {
        Detectors {
            all: Vec::new(),
            profiles: Profiles::default(),
            profiled: false,
        }
    }

    /// The enabled detectors' names, in output order.
    pub fn names(&self) -> Vec<&'static str> {
        self.all.iter().map(AnyDetector::name).collect()
    }

    pub fn on_event(&mut self, ev: &Event<'_>, out: &mut Vec<Alert>) {
        if self.profiled {
            self.profiles.observe(ev);
        }
        for d in &mut self.all {
            d.get_mut().on_event(ev, &self.profiles, out);
        }
    }

    /// No detector is enabled (so a lookahead would serve nothing).
    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }

    /// Every enabled detector's and the profile's [`Detector::lookahead`] for `ev`.
    pub fn lookahead(&self, ev: &Event<'_>, want: &mut Lookahead) {
        if self.profiled {
            self.profiles.lookahead(ev, want);
        }
        for d in &self.all {
            d.get().lookahead(ev, want);
        }
    }

    pub fn on_tick(&mut self, watermark: Ts, out: &mut Vec<Alert>) {
        if self.profiled {
            self.profiles.on_tick(watermark);
        }
        for d in &mut self.all {
            d.get_mut().on_tick(watermark, out);
        }
    }

    pub fn on_flush(&mut self, out: &mut Vec<Alert>) {
        for d in &mut self.all {
            d.get_mut().on_flush(out);
        }
    }

    /// `(name, stats)` per enabled detector, and `account_profile` if kept.
    pub fn stats(&self) -> Vec<(&'static str, DetectorStats)> {
        let mut all: Vec<_> = self
            .all
            .iter()
            .map(|d| (d.name(), d.get().stats()))
            .collect();
        if self.profiled {
            all.push(("account_profile", self.profiles.stats()));
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_registered_detector_is_built_validated_and_configured() {
        let cfg = DetectorsConfig::default();
        let built = Detectors::new(&cfg).names();
        assert_eq!(built, cfg.names(), "every detector is enabled by default");
        let sections: Vec<String> = match serde_json::to_value(&cfg) {
            Ok(serde_json::Value::Object(m)) => m.keys().cloned().collect(),
            other => panic!("config is a table: {other:?}"),
        };
        let mut names: Vec<String> = cfg.names().iter().map(|n| n.to_string()).collect();
        names.push("account_profile".into());
        names.sort();
        assert_eq!(
            sections, names,
            "one config section per detector, named by NAME"
        );
        assert_eq!(cfg.validate(), Ok(()));
    }
}
