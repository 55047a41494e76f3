//! `levee serve`: service mode over Kafka, with HTTP metrics and graceful shutdown.

use anyhow::Context;
use levee_runtime::http::{self, Health};
use levee_runtime::metrics::Metrics;
use levee_runtime::{kafka, LeveeConfig};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

pub fn serve(config: Option<&Path>) -> anyhow::Result<()> {
    let cfg = LeveeConfig::from_env_and_file(config).context("loading configuration")?;
    let shutdown = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&shutdown))
            .context("installing signal handlers")?;
    }
    let health = Health {
        metrics: Arc::new(Mutex::new(Metrics::new()?)),
        ready: Arc::new(AtomicBool::new(false)),
    };
    if cfg.http.enabled {
        let addr = http::spawn(&cfg.http.listen, health.clone())
            .with_context(|| format!("binding {}", cfg.http.listen))?;
        tracing::info!(%addr, "http endpoints: /metrics /healthz /readyz");
    }
    let counters = kafka::serve(&cfg, &shutdown, &health)?;
    health.ready.store(false, Ordering::Relaxed);
    tracing::info!(
        records = counters.records,
        alerts = counters.alerts_total(),
        dead_letters = counters.dead_letters_total(),
        "stopped"
    );
    Ok(())
}
