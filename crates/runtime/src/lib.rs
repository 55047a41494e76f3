//! Levee's runtime: everything between bytes and detectors, and all of Levee's IO.
//!
//! [`config`] loads layered configuration; [`clock::EventClock`] turns event
//! times into a watermark, late classification and ticks; [`Pipeline`] decodes
//! records, dead-letters bad ones and drives the detectors; [`file`] runs the
//! pipeline over JSON Lines, [`kafka`] over a consumer group with at-least-once
//! output; [`metrics`] exports Prometheus counters per batch and [`http`] serves them.
//! Detectors themselves live in `levee-detect` and never see any of this IO.
#![forbid(unsafe_code)]

pub mod clock;
pub mod config;
pub mod dead_letter;
pub mod file;
pub mod http;
pub mod kafka;
pub mod metrics;
pub mod pipeline;
pub mod snapshot;

pub use config::{ConfigError, HttpConfig, KafkaConfig, LeveeConfig, RuntimeConfig};
pub use dead_letter::{DeadLetter, Position};
pub use pipeline::{Counters, Pipeline};
