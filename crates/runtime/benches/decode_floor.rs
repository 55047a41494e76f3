//! Decode cost against its floor: serde_json merely skipping each record, and UTF-8 validation.
//!
//! `cargo bench -p levee-runtime --bench decode_floor` prints ns per event for the default
//! simulator stream; docs/benchmarks.md explains why decode has a hand-written fast path.

use levee_model::{decode, Limits};
use levee_sim::{generate, ScenarioConfig};
use std::time::Instant;
fn main() {
    // The scenario is generated once; only the three loops below are timed.
    let s = generate(&ScenarioConfig::default());
    let lines: Vec<Vec<u8>> = s.events.iter().map(|e| e.to_json().into_bytes()).collect();
    for _ in 0..3 {
        let t = Instant::now();
        let n = lines
            .iter()
            .filter(|l| serde_json::from_slice::<serde::de::IgnoredAny>(l).is_ok())
            .count();
        let a = t.elapsed();
        let t = Instant::now();
        let m = lines
            .iter()
            .filter(|l| std::str::from_utf8(l).is_ok())
            .count();
        let u = t.elapsed();
        let t = Instant::now();
        let k = lines
            .iter()
            .filter(|l| decode(l, &Limits::default()).is_ok())
            .count();
        let d = t.elapsed();
        println!("serde_json skip {:.0} ns/ev | utf8 check {:.0} ns/ev | levee decode {:.0} ns/ev ({n} {m} {k} records)", a.as_nanos() as f64 / n as f64, u.as_nanos() as f64 / n as f64, d.as_nanos() as f64 / n as f64);
    }
}
