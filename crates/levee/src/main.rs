//! The `levee` command: file mode (`run`), the simulator (`gen`), scoring (`eval`) and `demo`.
#![forbid(unsafe_code)]

mod demo;
mod gen;
mod io;
mod run;
mod serve;

use anyhow::Context;
use clap::{Parser, Subcommand};
use levee_sim::ScenarioConfig;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "levee",
    version,
    about = "Real-time detection of coordinated inauthentic behaviour"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run the detectors over JSON Lines events; write alerts and dead letters as JSON Lines.
    Run(run::RunArgs),
    /// Service mode: consume the events topic, produce alerts and dead letters (see [kafka] config).
    Serve {
        /// Config file (defaults -> file -> LEVEE__* env).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Generate a scenario: DIR/events.jsonl (contract v1) and DIR/truth.json.
    Gen {
        #[command(flatten)]
        scenario: ScenarioArgs,
        /// Output directory (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
    /// Score alerts against a scenario's truth; print a table and write JSON.
    Eval {
        #[arg(long)]
        truth: PathBuf,
        #[arg(long)]
        alerts: PathBuf,
        /// Where to write the JSON report (default: eval.json beside the alerts).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Generate the default scenario, run every detector, evaluate, print the table.
    Demo {
        #[command(flatten)]
        scenario: ScenarioArgs,
        /// Where the scenario, alerts and report are written.
        #[arg(long, default_value = "out/demo")]
        out: PathBuf,
        /// Config file (defaults -> file -> LEVEE__* env).
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Debug, clap::Args)]
struct ScenarioArgs {
    #[arg(long, default_value_t = ScenarioConfig::default().seed)]
    seed: u64,
    /// Organic accounts (planted ones come on top).
    #[arg(long, default_value_t = ScenarioConfig::default().accounts)]
    accounts: usize,
    #[arg(long, default_value_t = ScenarioConfig::default().hours)]
    hours: u32,
}

impl ScenarioArgs {
    fn config(&self) -> ScenarioConfig {
        ScenarioConfig {
            seed: self.seed,
            accounts: self.accounts,
            hours: self.hours,
            ..ScenarioConfig::default()
        }
    }
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    match Cli::parse().cmd {
        Cmd::Run(args) => run::run(&args),
        Cmd::Serve { config } => serve::serve(config.as_deref()),
        Cmd::Gen { scenario, out } => {
            let w = gen::write_scenario(&scenario.config(), &out)?;
            eprintln!(
                "wrote {} events to {} and {} planted groups to {}",
                w.events,
                w.events_path.display(),
                w.truth.groups.len(),
                w.truth_path.display()
            );
            Ok(())
        }
        Cmd::Eval { truth, alerts, out } => {
            let report = io::evaluate_files(&truth, &alerts)?;
            print!("{report}");
            let out = out.unwrap_or_else(|| alerts.with_file_name("eval.json"));
            std::fs::write(&out, serde_json::to_string_pretty(&report)?)
                .with_context(|| format!("writing {}", out.display()))?;
            eprintln!("report written to {}", out.display());
            Ok(())
        }
        Cmd::Demo {
            scenario,
            out,
            config,
        } => demo::demo(&scenario.config(), &out, config.as_deref()),
    }
}
