//! Platform-scale benchmark: file-mode events/s and peak RSS against the population size.
//!
//! `cargo bench -p levee --bench scale` generates `levee gen --seed 5 --accounts N --hours 6`
//! for each N in `LEVEE_SCALE_ACCOUNTS` (default `30000,300000,1000000`; streams are kept in
//! `LEVEE_SCALE_DIR`, default `target/scale`, and reused), then times `levee run` over each
//! with no detector, each detector alone, and all of them (one core, the whole process,
//! alerts to /dev/null). It prints a Markdown table and writes it with an SVG plot (events/s
//! and peak RSS per active account against accounts) to `LEVEE_SCALE_DIR`. The 1M-account
//! stream is ~8 GB of JSON Lines; generating it holds one 10-minute bucket in memory.

use levee_detect::DetectorsConfig;
use levee_sim::Truth;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

struct Row {
    accounts: u64,
    active: u64,
    events: u64,
    set: String,
    events_per_s: f64,
    peak_rss: f64,
}

fn main() {
    let sizes: Vec<u64> = std::env::var("LEVEE_SCALE_ACCOUNTS")
        .unwrap_or_else(|_| "30000,300000,1000000".into())
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .expect("LEVEE_SCALE_ACCOUNTS: comma-separated numbers")
        })
        .collect();
    let dir =
        PathBuf::from(std::env::var("LEVEE_SCALE_DIR").unwrap_or_else(|_| "target/scale".into()));
    let names = DetectorsConfig::default().names();
    let mut sets: Vec<(String, Vec<&str>)> = vec![("none".into(), vec![])];
    sets.extend(names.iter().map(|n| (n.to_string(), vec![*n])));
    sets.push(("all".into(), names.clone()));

    let mut rows = Vec::new();
    for &n in &sizes {
        let stream = dir.join(format!("s{n}"));
        let events = stream.join("events.jsonl");
        if !events.exists() {
            let t = Instant::now();
            let out = levee(
                &[
                    "gen",
                    "--seed",
                    "5",
                    "--accounts",
                    &n.to_string(),
                    "--hours",
                    "6",
                    "--out",
                ],
                &[&stream],
                &[],
            );
            eprintln!(
                "gen {n}: {:.0} s, {}",
                t.elapsed().as_secs_f64(),
                out.trim()
            );
        }
        let active = active_accounts(&stream.join("truth.json"));
        for (set, enabled) in &sets {
            let env: Vec<(String, String)> = names
                .iter()
                .map(|d| {
                    let key = format!("LEVEE__DETECTORS__{}__ENABLED", d.to_uppercase());
                    (key, enabled.contains(d).to_string())
                })
                .collect();
            let report = levee(
                &[
                    "run",
                    "--alerts",
                    "/dev/null",
                    "--dead-letters",
                    "/dev/null",
                    "--input",
                ],
                &[&events],
                &env,
            );
            let row = Row {
                accounts: n,
                active,
                events: field(&report, "records ", 1),
                set: set.clone(),
                events_per_s: number_before(&report, "records/s", "records/s"),
                peak_rss: number_before(&report, "peak RSS", "MB") * 1e6,
            };
            eprintln!(
                "{n} {set}: {:.0} events/s, {:.1} MB",
                row.events_per_s,
                row.peak_rss / 1e6
            );
            rows.push(row);
        }
    }
    let table = table(&rows);
    println!("{table}");
    std::fs::write(dir.join("scale.md"), &table).expect("write scale.md");
    std::fs::write(dir.join("scale.svg"), svg(&rows, &sets)).expect("write scale.svg");
    eprintln!(
        "wrote {} and {}",
        dir.join("scale.md").display(),
        dir.join("scale.svg").display()
    );
}

/// Run the `levee` binary; return its stderr (where it reports). Panics on failure.
fn levee(args: &[&str], paths: &[&Path], env: &[(String, String)]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_levee"))
        .args(args)
        .args(paths)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("RUST_LOG", "warn")
        .output()
        .expect("start levee");
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "levee {args:?} failed: {err}");
    err
}

/// The `i`-th whitespace-separated token of the line starting with `prefix`.
fn field(report: &str, prefix: &str, i: usize) -> u64 {
    let line = report
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} in {report}"));
    line.split_whitespace()
        .nth(i)
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("bad line {line:?}"))
}

/// The number just before the last `unit` on the line that contains `marker`.
fn number_before(report: &str, marker: &str, unit: &str) -> f64 {
    let line = report
        .lines()
        .find(|l| l.contains(marker))
        .unwrap_or_else(|| panic!("no {marker:?} in {report}"));
    let head = &line[..line.rfind(unit).unwrap_or(0)];
    head.split_whitespace()
        .last()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("bad line {line:?}"))
}

/// Organic accounts plus planted ones (every account that acts in the stream).
fn active_accounts(truth: &Path) -> u64 {
    let text = std::fs::read_to_string(truth).expect("read truth.json");
    let t: Truth = serde_json::from_str(&text).expect("parse truth.json");
    let planted: usize = t.groups.iter().map(|g| g.accounts.len()).sum();
    (t.organic_accounts + planted) as u64
}

fn table(rows: &[Row]) -> String {
    let mut s = String::from("| accounts | events | detectors | events/s | peak RSS | RSS per active account |\n|---|---|---|---|---|---|\n");
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {:.2} M | {} | {:.0} k | {:.0} MB | {:.0} B |",
            r.accounts,
            r.events as f64 / 1e6,
            r.set,
            r.events_per_s / 1e3,
            r.peak_rss / 1e6,
            r.peak_rss / r.active as f64
        );
    }
    s
}

/// Two panels over log-scaled accounts: events/s, and peak RSS per active account.
fn svg(rows: &[Row], sets: &[(String, Vec<&str>)]) -> String {
    const COLORS: [&str; 6] = [
        "#555", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    ];
    let (w, h, pad) = (420.0, 260.0, 50.0);
    let xs: Vec<f64> = rows.iter().map(|r| (r.accounts as f64).log10()).collect();
    let (x0, x1) = (
        xs.iter().cloned().fold(f64::MAX, f64::min),
        xs.iter().cloned().fold(f64::MIN, f64::max),
    );
    let sx = |x: f64| pad + (x - x0) / (x1 - x0).max(1e-9) * (w - 2.0 * pad);
    let mut s = format!("<svg xmlns='http://www.w3.org/2000/svg' width='{}' height='{}' font-family='sans-serif' font-size='11'>\n", 2.0 * w, h + 40.0);
    type Value = fn(&Row) -> f64;
    let panels: [(&str, Value); 2] = [
        ("events/s (thousands)", |r| r.events_per_s / 1e3),
        ("peak RSS per active account (bytes)", |r| {
            r.peak_rss / r.active as f64
        }),
    ];
    for (p, (title, value)) in panels.iter().enumerate() {
        let ox = p as f64 * w;
        let top = rows.iter().map(value).fold(0.0, f64::max) * 1.1;
        let sy = |y: f64| h - pad + 20.0 - y / top.max(1e-9) * (h - 2.0 * pad);
        let _ = writeln!(
            s,
            "<g transform='translate({ox},0)'><text x='{pad}' y='20'>{title}</text>"
        );
        let _ = writeln!(s, "<line x1='{pad}' y1='{}' x2='{}' y2='{}' stroke='black'/><line x1='{pad}' y1='{}' x2='{pad}' y2='{}' stroke='black'/>", sy(0.0), w - pad, sy(0.0), sy(0.0), sy(top));
        for i in 0..=4 {
            let y = top * f64::from(i) / 4.0;
            let _ = writeln!(
                s,
                "<text x='{}' y='{}' text-anchor='end'>{y:.0}</text>",
                pad - 4.0,
                sy(y) + 4.0
            );
        }
        for r in rows.iter().filter(|r| r.set == rows[0].set) {
            let x = sx((r.accounts as f64).log10());
            let _ = writeln!(
                s,
                "<text x='{x}' y='{}' text-anchor='middle'>{}k</text>",
                sy(0.0) + 14.0,
                r.accounts / 1000
            );
        }
        for (k, (set, _)) in sets.iter().enumerate() {
            let color = COLORS[k % COLORS.len()];
            let pts: Vec<String> = rows
                .iter()
                .filter(|r| &r.set == set)
                .map(|r| format!("{:.1},{:.1}", sx((r.accounts as f64).log10()), sy(value(r))))
                .collect();
            let _ = writeln!(
                s,
                "<polyline fill='none' stroke='{color}' stroke-width='2' points='{}'/>",
                pts.join(" ")
            );
            let _ = writeln!(
                s,
                "<text x='{}' y='{}' fill='{color}'>{set}</text>",
                w - pad + 4.0 - 40.0,
                34.0 + 13.0 * k as f64
            );
        }
        s.push_str("</g>\n");
    }
    s.push_str("</svg>\n");
    s
}
