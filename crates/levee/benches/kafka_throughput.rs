//! Service mode throughput on loopback against tansu, versus file mode on the same input.
//!
//! `cargo bench -p levee --bench kafka_throughput`: the default scenario is produced to an
//! events topic of `LEVEE_BENCH_PARTITIONS` partitions (default 1; records keyed and
//! partitioned by account, FNV-1a) first; then `levee serve` (one consumer, all detectors)
//! is timed from start until every record is processed and its output acknowledged (offsets
//! stored; the auto-commit that follows is at most `auto.commit.interval.ms` later). The peak
//! of `levee_reorder_buffer_bytes` seen while sampling is printed too.

#[path = "../tests/support/mod.rs"]
mod support;

use levee_sim::{generate, ScenarioConfig};
use std::process::Command;
use std::time::{Duration, Instant};
use support::{produce_records, Broker, Service, Topics};

fn main() {
    let s = generate(&ScenarioConfig::default());
    let lines: Vec<String> = s.events.iter().map(|e| e.to_json()).collect();
    let n = lines.len();

    let dir = std::env::temp_dir().join(format!("levee-kbench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let input = dir.join("events.jsonl");
    std::fs::write(&input, lines.join("\n") + "\n").expect("write");
    let t = Instant::now();
    let o = Command::new(env!("CARGO_BIN_EXE_levee"))
        .args(["run", "--input"])
        .arg(&input)
        .arg("--alerts")
        .arg(dir.join("alerts.jsonl"))
        .output()
        .expect("levee run");
    assert!(o.status.success());
    let file_secs = t.elapsed().as_secs_f64();
    println!(
        "file mode : {n} events in {file_secs:.2} s = {:.0} events/s (whole process)",
        n as f64 / file_secs
    );

    let partitions: i32 = std::env::var("LEVEE_BENCH_PARTITIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let broker = Broker::start();
    let topics = Topics::create_with(&broker, "bench", partitions as u32);
    let mut by_part: Vec<Vec<(String, Vec<u8>)>> = vec![Vec::new(); partitions as usize];
    for (e, l) in s.events.iter().zip(lines) {
        let h = e.account.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        by_part[(h % partitions as u64) as usize].push((e.account.to_string(), l.into_bytes()));
    }
    let t = Instant::now();
    for (p, recs) in by_part.iter().enumerate() {
        produce_records(&broker.brokers(), &topics.events, Some(p as i32), recs);
    }
    let produce_secs = t.elapsed().as_secs_f64();
    println!(
        "produce   : {n} events in {produce_secs:.2} s = {:.0} events/s (librdkafka -> tansu)",
        n as f64 / produce_secs
    );

    // The broker's own ceiling: a bare consumer reading everything, no processing.
    let t = Instant::now();
    if partitions == 1 {
        let read = broker.read(&topics.events, n, Duration::from_secs(600));
        let read_secs = t.elapsed().as_secs_f64();
        println!("consume   : {} events in {read_secs:.2} s = {:.0} events/s (bare librdkafka consumer, no processing)", read.len(), read.len() as f64 / read_secs);
    }

    let t = Instant::now();
    let log = std::env::var("LEVEE_BENCH_LOG").unwrap_or_else(|_| "warn".to_owned());
    let mut extra = vec![("RUST_LOG", log)];
    if let Ok(cfg) = std::env::var("LEVEE_BENCH_CONFIG") {
        extra.push(("LEVEE_TEST_CONFIG", cfg));
    }
    let svc = Service::start_with(&broker, "levee-bench", &topics, &extra);
    // Startup (group join, positioning) versus steady state, sampled every 50 ms.
    let mut first = None;
    let mut held_peak: f64 = 0.0;
    while svc.metric("levee_records_total") != Some(n as f64) {
        if first.is_none() && svc.metric("levee_records_total").unwrap_or(0.0) > 0.0 {
            first = Some(t.elapsed().as_secs_f64());
        }
        held_peak = held_peak.max(svc.metric("levee_reorder_buffer_bytes").unwrap_or(0.0));
        assert!(t.elapsed() < Duration::from_secs(600), "timed out");
        std::thread::sleep(Duration::from_millis(50));
    }
    let serve_secs = t.elapsed().as_secs_f64();
    let first = first.unwrap_or(0.0);
    println!("serve     : {n} events in {serve_secs:.2} s = {:.0} events/s (process start to all output acknowledged)", n as f64 / serve_secs);
    println!("            first batch acknowledged after {first:.2} s (group join, positioning); steady state {:.0} events/s", n as f64 / (serve_secs - first));
    println!(
        "            {partitions} partition(s); reorder buffer peak {:.1} MB (sampled every 50 ms)",
        held_peak / 1e6
    );
    if let Some((_, body)) = svc.get("/metrics") {
        for l in body.lines().filter(|l| {
            l.starts_with("levee_batch_duration_seconds_sum")
                || l.starts_with("levee_batch_duration_seconds_count")
        }) {
            println!("  {l}");
        }
    }
    assert!(svc.terminate(Duration::from_secs(60)).success());
    let _ = std::fs::remove_dir_all(&dir);
}
