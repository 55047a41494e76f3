//! Service mode on real topics: 1, 3 and 8 partitions, keyed by account; a backlog produced
//! before start, or a producer writing concurrently at skewed per-partition rates; each
//! with and without a SIGKILL and restart in the middle. Every case must give the alerts
//! of file mode exactly (ids, revisions, members, evidence), and dead-letter nothing.

mod support;

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use support::{file_mode_lines, produce_records, Broker, Service, TestProducer, Topics};

/// The scenario as `(account, record)`, plus a sentinel login a day later that moves every
/// partition's event time past every window (a stream has no end of file).
fn records() -> &'static [(String, String)] {
    static R: OnceLock<Vec<(String, String)>> = OnceLock::new();
    R.get_or_init(support::scenario_with_sentinel)
}

/// File mode on the same records, alerts without `emitted_at`: the reference.
fn expected() -> &'static Vec<String> {
    static E: OnceLock<Vec<String>> = OnceLock::new();
    E.get_or_init(|| {
        let lines: Vec<String> = records().iter().map(|(_, r)| r.clone()).collect();
        let alerts: Vec<String> = file_mode_lines(&lines, "parts-reference")
            .iter()
            .map(|l| strip(l))
            .collect();
        assert!(alerts.len() >= 3, "the scenario plants farms");
        alerts
    })
}

fn strip(line: &str) -> String {
    let mut v: serde_json::Value = serde_json::from_str(line).expect("alert json");
    v.as_object_mut().expect("object").remove("emitted_at");
    v.to_string()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("levee-parts-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Partition of a key, as the test producer assigns it (FNV-1a; any stable hash will do).
fn partition_of(key: &str, n: i32) -> i32 {
    let h = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    (h % n as u64) as i32
}

/// Records split by partition, in stream order within each.
fn by_partition(recs: &[(String, String)], n: i32) -> Vec<VecDeque<(String, Vec<u8>)>> {
    let mut q = vec![VecDeque::new(); n as usize];
    for (k, r) in recs {
        q[partition_of(k, n) as usize].push_back((k.clone(), r.clone().into_bytes()));
    }
    q
}

/// Write `queues` concurrently with skewed rates: every round writes each partition a burst,
/// partition k about k+1 times as many records as partition 0, so the partitions drift apart
/// in event time while none falls silent for long (a silent partition would turn idle).
fn produce_skewed(brokers: &str, topic: &str, mut queues: Vec<VecDeque<(String, Vec<u8>)>>) {
    let producer = TestProducer::new(brokers);
    let mut seed = 0x5eed_u64;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n.max(1)
    };
    let n = queues.len() as u64;
    let weight_sum = n * (n + 1) / 2;
    while queues.iter().any(|q| !q.is_empty()) {
        for (k, q) in queues.iter_mut().enumerate() {
            let share = (1_000 * (k as u64 + 1) / weight_sum).max(1);
            let burst: Vec<(String, Vec<u8>)> = (0..share / 2 + next(share))
                .filter_map(|_| q.pop_front())
                .collect();
            producer.queue(topic, Some(k as i32), &burst);
        }
        producer.flush();
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Feed {
    Backlog,
    Live,
}

/// One case: fresh topics, group and snapshot directory on a shared broker.
fn case(broker: &Broker, n: i32, feed: Feed, kill: bool) {
    let name = format!("p{n}-{feed:?}-{}", if kill { "kill" } else { "run" }).to_lowercase();
    let topics = Topics::create_with(broker, &name, n as u32);
    let dir = scratch(&name);
    let extra = [
        (
            "RUST_LOG",
            std::env::var("LEVEE_TEST_LOG").unwrap_or("warn".into()),
        ),
        ("LEVEE__KAFKA__SNAPSHOT_DIR", dir.display().to_string()),
        ("LEVEE__KAFKA__SNAPSHOT_INTERVAL_MS", "0".to_owned()),
        ("LEVEE__KAFKA__BATCH_MAX", "1000".to_owned()),
        ("LEVEE__KAFKA__PARTITION_IDLE_MS", "2000".to_owned()),
        // Eight partitions exercise pause/resume at every drift; fewer, the default
        // (pausing only under buffer pressure, which this small stream never reaches).
        (
            "LEVEE__KAFKA__ALIGN_ABOVE_BYTES",
            if n == 8 { "0" } else { "67108864" }.to_owned(),
        ),
        ("LEVEE__KAFKA__MAX_PARTITION_DRIFT_MS", "30000".to_owned()),
    ];
    let recs = records();
    let total = recs.len();
    let brokers = broker.brokers();
    let mut queues = by_partition(recs, n);
    let producer = match feed {
        Feed::Backlog => {
            for (p, q) in queues.iter().enumerate() {
                produce_records(
                    &brokers,
                    &topics.events,
                    Some(p as i32),
                    &Vec::from(q.clone()),
                );
            }
            None
        }
        Feed::Live => {
            // A small backlog in every partition, the rest written while the service runs.
            for (p, q) in queues.iter_mut().enumerate() {
                let head: Vec<_> = q.drain(..q.len() / 10).collect();
                produce_records(&brokers, &topics.events, Some(p as i32), &head);
            }
            let (b, t) = (brokers.clone(), topics.events.clone());
            Some(std::thread::spawn(move || produce_skewed(&b, &t, queues)))
        }
    };
    let group = format!("levee-{name}");
    let mut svc = Service::start_with(broker, &group, &topics, &extra);
    if kill {
        svc.wait_metric_at_least(
            "levee_records_total",
            (total / 2) as f64,
            Duration::from_secs(120),
        );
        svc.kill();
        assert!(
            dir.join("levee-snapshot.json").exists(),
            "{name}: a snapshot was written"
        );
        std::thread::sleep(Duration::from_millis(500));
        svc = Service::start_with(broker, &group, &topics, &extra);
    }
    if let Some(p) = producer {
        p.join().expect("producer");
    }
    svc.wait_metric(
        "levee_records_total",
        total as f64,
        Duration::from_secs(120),
    );
    let want = expected();
    // Until every file-mode alert has arrived (or the time is up: the comparison says what is missing).
    let got = broker.read_until(&topics.alerts, Duration::from_secs(120), |got| {
        let received: std::collections::BTreeSet<String> = got
            .iter()
            .map(|(_, v, _)| strip(&String::from_utf8_lossy(v)))
            .collect();
        want.iter().all(|w| received.contains(w))
    });
    // Order per alert id is what a consumer of the compacted topic sees; across ids the
    // interleaving follows partitions and batches.
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut duplicates = 0;
    for (_, v, _) in &got {
        let line = strip(&String::from_utf8_lossy(v));
        if seen.insert(line, 0).is_some() {
            duplicates += 1;
        }
    }
    let want_set: std::collections::BTreeSet<&String> = want.iter().collect();
    let got_set: std::collections::BTreeSet<&String> = seen.keys().collect();
    // Enough to tell which alert and how it differs; the whole lines go to a file.
    let short = |v: Vec<&&String>| -> Vec<String> {
        v.iter()
            .take(8)
            .map(|s| {
                let a: serde_json::Value = serde_json::from_str(s).expect("json");
                let n = a["accounts"].as_array().map_or(0, Vec::len);
                format!(
                    "{} rev {} accounts {n} window {} evidence {}",
                    a["alert_id"], a["revision"], a["window"], a["evidence"]
                )
            })
            .collect()
    };
    if want_set != got_set {
        let path = std::env::temp_dir().join(format!("levee-{name}-received.jsonl"));
        let text: String = got_set.iter().map(|l| format!("{l}\n")).collect();
        let _ = std::fs::write(&path, text);
        eprintln!("{name}: received alerts in {}", path.display());
        if let Some((_, body)) = svc.get("/metrics") {
            for l in body.lines().filter(|l| {
                l.starts_with("levee_late")
                    || l.starts_with("levee_reorder")
                    || l.starts_with("levee_kafka")
                    || l.starts_with("levee_partition")
                    || l.starts_with("levee_replayed")
            }) {
                eprintln!("  {l}");
            }
        }
    }
    let missing = short(want_set.difference(&got_set).collect());
    let extra = short(got_set.difference(&want_set).collect());
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{name}: alerts differ from file mode ({} expected, {} distinct received)\nmissing: {missing:#?}\nextra: {extra:#?}",
        want_set.len(),
        got_set.len()
    );
    assert!(
        kill || duplicates == 0,
        "{name}: {duplicates} duplicates without a crash"
    );
    for series in [
        "levee_dead_letters_total{reason=\"late\"}",
        "levee_late_events_total{outcome=\"out_of_order\"}",
        "levee_reorder_overflow_total",
    ] {
        assert_eq!(svc.metric(series), Some(0.0), "{name}: {series}");
    }
    assert_eq!(
        svc.metric("levee_kafka_partitions{scope=\"assigned\"}"),
        Some(f64::from(n)),
        "{name}"
    );
    if n == 8 && !kill {
        let pauses = svc.metric("levee_kafka_pauses_total").unwrap_or(0.0);
        assert!(
            pauses > 0.0,
            "{name}: partitions ahead were paused ({pauses})"
        );
    }
    assert!(
        svc.terminate(Duration::from_secs(30)).success(),
        "{name}: clean exit"
    );
    eprintln!(
        "{name}: {} alerts identical to file mode ({duplicates} replayed duplicates)",
        want.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn matrix(n: i32) {
    let broker = Broker::start();
    let t = Instant::now();
    for feed in [Feed::Backlog, Feed::Live] {
        for kill in [false, true] {
            case(&broker, n, feed, kill);
        }
    }
    eprintln!(
        "{n} partitions: 4 cases in {:.1} s",
        t.elapsed().as_secs_f64()
    );
}

#[test]
fn one_partition() {
    matrix(1);
}

#[test]
fn three_partitions() {
    matrix(3);
}

#[test]
fn eight_partitions() {
    matrix(8);
}

/// A second replica joins the group and leaves again: the partitions it held come back to
/// the first replica positioned where the first replica's state ends (not where the second
/// one committed), so every record is processed exactly once and the alerts are file mode's.
#[test]
fn partitions_taken_away_and_given_back_resume_exactly() {
    let broker = Broker::start();
    let n = 3;
    let topics = Topics::create_with(&broker, "rebalance", n as u32);
    let other = Topics {
        events: topics.events.clone(),
        alerts: "rebalance.other.alerts".into(),
        dead: "rebalance.other.dead".into(),
    };
    for t in [&other.alerts, &other.dead] {
        broker.create_topic(t, 1);
    }
    let recs = records();
    let brokers = broker.brokers();
    let half = recs.len() / 2;
    let produce = |part: &[(String, String)]| {
        for (p, q) in by_partition(part, n).iter().enumerate() {
            produce_records(
                &brokers,
                &topics.events,
                Some(p as i32),
                &Vec::from(q.clone()),
            );
        }
    };
    let extra = [("LEVEE__KAFKA__PARTITION_IDLE_MS", "2000".to_owned())];
    produce(&recs[..half]);
    let a = Service::start_with(&broker, "levee-rebalance", &topics, &extra);
    a.wait_metric("levee_records_total", half as f64, Duration::from_secs(60));

    // B takes some partitions (and reads them from the beginning into its own state).
    let b = Service::start_with(&broker, "levee-rebalance", &other, &extra);
    b.wait_metric_at_least(
        "levee_kafka_partitions{scope=\"assigned\"}",
        1.0,
        Duration::from_secs(60),
    );
    a.wait_metric_at_least(
        "levee_kafka_partitions{scope=\"assigned\"}",
        1.0,
        Duration::from_secs(60),
    );
    let a_held = a.metric("levee_kafka_partitions{scope=\"assigned\"}");
    assert!(
        a_held.is_some_and(|v| v < f64::from(n)),
        "A gave partitions away: {a_held:?}"
    );
    b.wait_metric_at_least("levee_records_total", 1.0, Duration::from_secs(60));
    assert!(b.terminate(Duration::from_secs(30)).success());

    // A gets everything back, then the rest of the stream arrives.
    a.wait_metric(
        "levee_kafka_partitions{scope=\"assigned\"}",
        f64::from(n),
        Duration::from_secs(60),
    );
    produce(&recs[half..]);
    a.wait_metric(
        "levee_records_total",
        recs.len() as f64,
        Duration::from_secs(120),
    );
    let want = expected();
    let got = broker.read_until(&topics.alerts, Duration::from_secs(120), |got| {
        got.len() >= want.len()
    });
    let got: Vec<String> = got
        .iter()
        .map(|(_, v, _)| strip(&String::from_utf8_lossy(v)))
        .collect();
    let (mut g, mut w) = (got.clone(), want.clone());
    g.sort();
    w.sort();
    assert_eq!(g.len(), w.len(), "one message per file-mode alert");
    assert!(g == w, "A's alerts are file mode's");
    for series in [
        "levee_replayed_records_skipped_total",
        "levee_late_events_total{outcome=\"out_of_order\"}",
        "levee_dead_letters_total{reason=\"late\"}",
    ] {
        assert_eq!(a.metric(series), Some(0.0), "{series}");
    }
    assert!(a.terminate(Duration::from_secs(30)).success());
}

/// Events older than lateness + grace within their own partition (the same account two
/// hours back) are dead-lettered, exactly those, and the alerts stay file mode's.
#[test]
fn truly_late_events_are_dead_lettered_on_three_partitions() {
    let broker = Broker::start();
    let n = 3;
    let topics = Topics::create_with(&broker, "late", n as u32);
    let mut recs: Vec<(String, String)> = Vec::new();
    let mut late: Vec<String> = Vec::new();
    for (i, (k, r)) in records().iter().enumerate() {
        recs.push((k.clone(), r.clone()));
        if i % 4_000 == 3_999 {
            let mut v: serde_json::Value = serde_json::from_str(r).expect("event json");
            let ts = v["ts"].as_i64().expect("ts");
            v["ts"] = serde_json::json!(ts - 2 * 3_600_000);
            late.push(v.to_string());
            recs.push((k.clone(), v.to_string()));
        }
    }
    assert!(late.len() >= 5);
    for (p, q) in by_partition(&recs, n).iter().enumerate() {
        produce_records(
            &broker.brokers(),
            &topics.events,
            Some(p as i32),
            &Vec::from(q.clone()),
        );
    }
    let extra = [("LEVEE__KAFKA__PARTITION_IDLE_MS", "2000".to_owned())];
    let svc = Service::start_with(&broker, "levee-late", &topics, &extra);
    svc.wait_metric(
        "levee_records_total",
        recs.len() as f64,
        Duration::from_secs(120),
    );
    let dead = broker.read(&topics.dead, late.len(), Duration::from_secs(60));
    let mut got: Vec<String> = dead
        .iter()
        .map(|(_, v, h)| {
            let reason = h
                .iter()
                .find(|(k, _)| k == "levee.reason")
                .map(|(_, v)| v.as_str());
            assert_eq!(reason, Some("late"));
            String::from_utf8_lossy(v).into_owned()
        })
        .collect();
    got.sort();
    late.sort();
    assert_eq!(got, late, "exactly the truly late events");
    let want = expected();
    let alerts = broker.read(&topics.alerts, want.len(), Duration::from_secs(60));
    let mut g: Vec<String> = alerts
        .iter()
        .map(|(_, v, _)| strip(&String::from_utf8_lossy(v)))
        .collect();
    let mut w = want.clone();
    g.sort();
    w.sort();
    assert!(g == w, "the dead-lettered events change no alert");
    assert_eq!(
        svc.metric("levee_dead_letters_total{reason=\"late\"}"),
        Some(late.len() as f64)
    );
    assert!(svc.terminate(Duration::from_secs(30)).success());
}
