//! Throughput of decode and of the runtime, on the simulator's stream and the real one.
//!
//! `cargo bench -p levee-runtime --bench pipeline`. Figures are events/s on one core.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use flate2::read::GzDecoder;
use levee_detect::Detectors;
use levee_model::{decode, Limits};
use levee_runtime::{LeveeConfig, Pipeline, Position};
use levee_sim::{generate, ScenarioConfig};
use std::io::Read;
use std::path::PathBuf;

fn simulated() -> Vec<Vec<u8>> {
    let s = generate(&ScenarioConfig::default());
    s.events.iter().map(|e| e.to_json().into_bytes()).collect()
}

fn real() -> Vec<Vec<u8>> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/german_elections_2021.jsonl.gz");
    let mut text = String::new();
    let f = std::fs::File::open(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    GzDecoder::new(f).read_to_string(&mut text).expect("gunzip");
    text.lines().map(|l| l.as_bytes().to_vec()).collect()
}

fn run(p: &mut Pipeline, lines: &[Vec<u8>]) -> usize {
    let (mut alerts, mut dead) = (Vec::new(), Vec::new());
    for (i, l) in lines.iter().enumerate() {
        p.process(0, l, Position::Line(i as u64), &mut alerts, &mut dead);
        dead.clear();
    }
    p.finish(&mut alerts);
    alerts.len()
}

fn bench(c: &mut Criterion) {
    let cfg = LeveeConfig::default();
    for (name, lines) in [("sim", simulated()), ("real", real())] {
        let bytes: usize = lines.iter().map(Vec::len).sum();
        eprintln!(
            "{name}: {} events, {:.1} MB",
            lines.len(),
            bytes as f64 / 1e6
        );
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Elements(lines.len() as u64));
        g.sample_size(10);
        g.bench_function("decode", |b| {
            let limits = Limits::default();
            b.iter(|| lines.iter().filter(|l| decode(l, &limits).is_ok()).count())
        });
        g.bench_function("runtime_no_detector", |b| {
            b.iter_batched(
                || Pipeline::with_detectors(&cfg, Detectors::none()),
                |mut p| run(&mut p, &lines),
                BatchSize::LargeInput,
            )
        });
        g.bench_function("runtime_all_detectors", |b| {
            b.iter_batched(
                || Pipeline::new(&cfg),
                |mut p| run(&mut p, &lines),
                BatchSize::LargeInput,
            )
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
