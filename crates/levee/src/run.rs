//! `levee run`: file mode over JSON Lines, with a progress bar and a summary.

use crate::io::{open_input, open_output, LazyFile};
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use levee_runtime::file::{run_jsonl, AlertWriter, Report};
use levee_runtime::metrics::Metrics;
use levee_runtime::{LeveeConfig, Pipeline};
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Events as JSON Lines: a file, or `-` for standard input.
    #[arg(long)]
    pub input: PathBuf,
    /// Where alerts go: a file, or `-` for standard output.
    #[arg(long)]
    pub alerts: PathBuf,
    /// Where rejected records go (created only if there are any).
    #[arg(long, default_value = "dead-letters.jsonl")]
    pub dead_letters: PathBuf,
    /// Config file (defaults -> file -> LEVEE__* env).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Also write the final Prometheus metrics (text format) to this file.
    #[arg(long)]
    pub metrics_out: Option<PathBuf>,
}

pub fn run(args: &RunArgs) -> anyhow::Result<()> {
    let cfg =
        LeveeConfig::from_env_and_file(args.config.as_deref()).context("loading configuration")?;
    let report = run_file(
        &cfg,
        &args.input,
        &args.alerts,
        &args.dead_letters,
        args.metrics_out.as_deref(),
    )?;
    eprintln!("{report}");
    Ok(())
}

/// Run file mode once; shared by `run` and `demo`.
pub fn run_file(
    cfg: &LeveeConfig,
    input: &Path,
    alerts: &Path,
    dead_letters: &Path,
    metrics_out: Option<&Path>,
) -> anyhow::Result<Report> {
    let (reader, len) = open_input(input)?;
    let mut alert_writer = AlertWriter::new(open_output(alerts)?);
    let mut dead = LazyFile::new(dead_letters.to_owned());
    let mut pipeline = Pipeline::new(cfg);
    let mut metrics = Metrics::new().context("registering metrics")?;
    tracing::info!(detectors = ?pipeline.detector_names(), input = %input.display(), "file mode started");

    let bar = match len {
        Some(n) => ProgressBar::new(n).with_style(
            ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::hidden(),
    };
    let mut on_batch = |p: &Pipeline, bytes: u64| {
        bar.set_position(bytes);
        metrics.publish_pipeline(p);
    };
    let r = &cfg.runtime;
    let report = run_jsonl(
        reader,
        &mut alert_writer,
        &mut dead,
        &mut pipeline,
        r.max_record_bytes,
        r.batch_size,
        &mut on_batch,
    )
    .with_context(|| format!("processing {}", input.display()))?;
    bar.finish_and_clear();
    if dead.written() {
        tracing::warn!(count = report.counters.dead_letters_total(), path = %dead.path().display(), "records were dead-lettered");
    }
    if let Some(path) = metrics_out {
        std::fs::write(path, metrics.render())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(report)
}
