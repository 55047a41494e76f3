//! Levee's runtime: everything between bytes and detectors, and all of Levee's IO.
//!
//! [`config`] loads layered configuration; [`clock`] keeps event time per lane
//! (partition) and derives the release watermark and tick boundaries; [`Pipeline`]
//! decodes records, dead-letters bad ones, holds the rest in the [`reorder`] buffer
//! and hands them to the detectors in canonical order; [`drive`] is the one loop
//! from a source through the pipeline into a sink, with [`file`] (JSON Lines) and
//! [`kafka`] (consumer group, at-least-once output) as sources and sinks;
//! [`metrics`] exports Prometheus counters per batch and [`http`] serves them.
//! Detectors themselves live in `levee-detect` and never see any of this IO.
#![deny(unsafe_code)]

pub mod clock;
pub mod config;
pub mod dead_letter;
pub mod drive;
pub mod file;
pub mod http;
pub mod kafka;
pub mod metrics;
mod packed;
pub mod pipeline;
mod prefetch;
pub mod reorder;
pub mod snapshot;

pub use config::{ConfigError, HttpConfig, KafkaConfig, LeveeConfig, RuntimeConfig};
pub use dead_letter::{DeadLetter, Position};
pub use pipeline::{Counters, Pipeline};
