//! Levee's detectors: pure, synchronous state machines over events and event-time ticks.
//!
//! A detector sees decoded [`Event`]s in canonical event-time order (the runtime's
//! reorder buffer) and one tick per boundary the stream crosses, and pushes
//! [`Alert`]s into an output buffer. It never reads a clock, a file or a socket: the
//! same events and ticks give the same alerts. The runtime crate owns all IO and
//! drives detectors through [`Detectors`]. Detectors do not know about each other.
//!
//! - [`detector`]: the seam (the [`Detector`] trait, [`DetectorKind`], stats, schedules).
//! - [`findings`]: stable ids, revisions, the re-emission rule, the alert builder.
//! - `flat`: the hash table of 64-bit keys hot detector state lives in (one miss a lookup).
//! - `name`: compact owned names (short ones inline).
//! - `copies`: copy campaigns (near-duplicate text clusters).
//! - `batch_registration`: accounts registered in batches (name templates, devices, blocks).
//! - [`profile`]: the shared, read-only account profile (creation, posting, activity).
//! - `hotlist`: topics pushed up the trending list (bursts scored by who drives them).
//! - `zombie_inflation`: targets inflated by hollow followers and likers.
//! - `registry`: the fixed list of detectors and their config sections.
//!
//! Every map a detector keeps has a configured bound and is reported in
//! [`DetectorStats`]; [`DetectorStats::cap_hits`] counts how often a bound bit.
//!
//! [`Event`]: levee_model::Event
//! [`Alert`]: levee_model::Alert
#![forbid(unsafe_code)]

mod batch_registration;
mod copies;
pub mod detector;
mod device_farm;
pub mod findings;
mod flat;
mod hotlist;
pub mod lockstep;
mod name;
pub mod profile;
mod registry;
mod ring;
mod zombie_inflation;

pub use batch_registration::{BatchRegistration, BatchRegistrationConfig};
pub use copies::{Copies, CopiesConfig, NearDuplicates};
pub use detector::{
    Budget, Detector, DetectorConfig, DetectorKind, DetectorStats, Every, Lookahead, MapStats,
};
pub use device_farm::{DeviceFarm, DeviceFarmConfig};
pub use findings::{Figure, Findings, FindingsConfig};
pub use hotlist::{Hotlist, HotlistConfig};
pub use lockstep::{Lockstep, LockstepConfig};
pub use profile::{AccountProfile, ProfileConfig, Profiles};
pub use registry::{AnyDetector, Detectors, DetectorsConfig};
pub use zombie_inflation::{ZombieInflation, ZombieInflationConfig};
