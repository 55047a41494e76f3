//! Seeded randomness: the distributions the simulator draws from, and unique opaque ids.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::HashSet;

/// The one generator type: ChaCha8 is specified, so a seed gives the same stream everywhere.
pub type SimRng = ChaCha8Rng;

/// Exponential with the given mean.
pub fn exp(rng: &mut SimRng, mean: f64) -> f64 {
    -mean * (1.0 - rng.gen::<f64>()).ln()
}

/// Standard normal (Box-Muller).
pub fn normal(rng: &mut SimRng) -> f64 {
    let u1: f64 = 1.0 - rng.gen::<f64>();
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Log-normal with the given median and shape.
pub fn lognormal(rng: &mut SimRng, median: f64, sigma: f64) -> f64 {
    median * (sigma * normal(rng)).exp()
}

/// Pareto with scale `xm` and tail index `alpha` (smaller alpha, heavier tail).
pub fn pareto(rng: &mut SimRng, xm: f64, alpha: f64) -> f64 {
    xm / (1.0 - rng.gen::<f64>()).powf(1.0 / alpha)
}

/// Poisson by inversion for small means, normal approximation for large ones.
pub fn poisson(rng: &mut SimRng, mean: f64) -> u64 {
    if mean > 50.0 {
        return (mean + mean.sqrt() * normal(rng)).round().max(0.0) as u64;
    }
    let l = (-mean).exp();
    let (mut k, mut p) = (0u64, 1.0);
    loop {
        p *= rng.gen::<f64>();
        if p <= l {
            return k;
        }
        k += 1;
    }
}

/// Milliseconds from a duration in seconds.
pub fn ms(seconds: f64) -> i64 {
    (seconds * 1000.0).round() as i64
}

/// Unique random ids with a prefix; the same shape for organic and planted entities,
/// so no detector can tell them apart by id.
#[derive(Debug, Default)]
pub struct Ids {
    used: HashSet<String>,
}

impl Ids {
    pub fn fresh(&mut self, rng: &mut SimRng, prefix: &str, digits: u32) -> String {
        let max = 10u64.pow(digits);
        loop {
            let id = format!(
                "{prefix}{:0width$}",
                rng.gen_range(0..max),
                width = digits as usize
            );
            if self.used.insert(id.clone()) {
                return id;
            }
        }
    }
}
