//! Levee's scenario simulator and evaluator: synthetic engagement streams with ground truth.
//!
//! [`generate`] builds a hard scenario (heavy-tailed organic background, hard
//! negatives such as viral crowds, fan groups, carrier-grade NAT and campus
//! sign-up waves, and planted campaigns of every alert kind) and returns its
//! events in arrival order with bounded disorder, plus a [`Truth`]. [`eval`]
//! scores alerts against that truth. Pure computation: callers do the IO.
#![forbid(unsafe_code)]

pub mod eval;
mod organic;
mod planted;
mod rng;
pub mod text;
mod truth;
mod world;

pub use truth::{Cohort, Group, Truth};

use levee_model::{Event, Ts};
use serde::{Deserialize, Serialize};
use world::World;

/// Scenario size and shape. Every field is documented in `docs/simulator.md`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioConfig {
    pub seed: u64,
    /// Organic accounts in the background population (planted accounts come on top).
    pub accounts: usize,
    /// Scenario length in hours of event time.
    pub hours: u32,
    /// Event time of the scenario's start (ms).
    pub start_ts: Ts,
    /// Arrival order deviates from event-time order by at most this (ms).
    pub disorder_ms: i64,
    /// Fraction of events delivered 15 to 45 s late (behind the default watermark, within grace).
    pub late_fraction: f64,
}

impl Default for ScenarioConfig {
    fn default() -> Self {
        ScenarioConfig {
            seed: 42,
            accounts: 20_000,
            hours: 6,
            start_ts: 1_732_000_000_000,
            disorder_ms: 5_000,
            late_fraction: 0.0005,
        }
    }
}

/// A generated scenario: events in arrival order, and what was planted.
#[derive(Debug)]
pub struct Scenario {
    pub events: Vec<Event<'static>>,
    pub truth: Truth,
}

/// Where the generator hands its events, in emission order, each with its arrival
/// time. Arrival order is the events sorted by (arrival, emission order): a sink may
/// sort in memory ([`generate`]) or spill to disk in arrival-time buckets and sort
/// each (`levee gen`), so a large scenario need not be held in memory.
pub trait EventSink {
    fn push(&mut self, arrival: Ts, event: Event<'static>);
}

/// Generate a scenario into `sink`; return what was planted. Deterministic: the same
/// config gives the same events, in the same order, and the same truth.
pub fn generate_into(cfg: &ScenarioConfig, sink: &mut dyn EventSink) -> Truth {
    let mut w = World::new(cfg.clone(), sink);
    organic::background(&mut w);
    organic::hard_negatives(&mut w);
    planted::all(&mut w);
    // Added later, each on a random stream of its own: earlier events stay as they were.
    w.with_stream(0xC0_9135, planted::heavy_copy_campaigns);
    w.with_stream(0x9E_0715, organic::news_quoting);
    w.with_stream(0x51_6E05, organic::sign_ups);
    w.with_stream(0x57_EA17, planted::stealthy_batch);
    w.with_stream(0xCE_1EB5, organic::celebrity_follows);
    w.finish()
}

/// Generate a scenario in memory, its events in arrival order.
pub fn generate(cfg: &ScenarioConfig) -> Scenario {
    struct Collect(Vec<(Ts, Event<'static>)>);
    impl EventSink for Collect {
        fn push(&mut self, arrival: Ts, event: Event<'static>) {
            self.0.push((arrival, event));
        }
    }
    let mut sink = Collect(Vec::new());
    let truth = generate_into(cfg, &mut sink);
    // A stable sort: ties keep emission order.
    sink.0.sort_by_key(|(arrival, _)| *arrival);
    let events = sink.0.into_iter().map(|(_, e)| e).collect();
    Scenario { events, truth }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_scenarios_are_deterministic_and_bounded_in_disorder() {
        let cfg = ScenarioConfig {
            accounts: 2_000,
            hours: 2,
            late_fraction: 0.0,
            ..ScenarioConfig::default()
        };
        let a = generate(&cfg);
        let b = generate(&cfg);
        assert_eq!(a.events, b.events);
        assert_eq!(
            serde_json::to_string(&a.truth).ok(),
            serde_json::to_string(&b.truth).ok()
        );
        let mut max_seen = Ts::MIN;
        for e in &a.events {
            assert!(
                e.ts > max_seen.saturating_sub(cfg.disorder_ms),
                "disorder beyond the bound"
            );
            max_seen = max_seen.max(e.ts);
        }
        let kinds: std::collections::BTreeSet<&str> =
            a.truth.groups.iter().map(|g| g.kind.as_str()).collect();
        assert_eq!(kinds.len(), 6, "every alert kind is planted: {kinds:?}");
    }
}
