//! Service mode against a real Kafka-protocol broker (tansu) on loopback.

mod support;

use levee_model::{Alert, AlertKind};
use std::collections::BTreeMap;
use std::time::Duration;
use support::{Broker, Service, Topics};

/// The shared test scenario's records (a sentinel a day later closes every window).
fn scenario_lines() -> Vec<String> {
    support::scenario_with_sentinel()
        .into_iter()
        .map(|(_, r)| r)
        .collect()
}

/// File mode on the same lines: the reference alerts.
fn file_mode(lines: &[String], name: &str) -> Vec<Alert> {
    support::file_mode_lines(lines, &format!("kafka-{name}"))
        .iter()
        .map(|l| serde_json::from_str(l).expect("alert"))
        .collect()
}

fn identity(a: &Alert) -> (String, u32, Vec<String>) {
    (a.alert_id.clone(), a.revision, a.accounts.clone())
}

#[test]
fn service_mode_matches_file_mode_and_counts_what_it_read() {
    let lines = scenario_lines();
    let expected = file_mode(&lines, "e2e");
    assert!(!expected.is_empty());
    let broker = Broker::start();
    let topics = Topics::create(&broker, "e2e");
    let records: Vec<(String, Vec<u8>)> = lines
        .iter()
        .map(|l| ("k".to_owned(), l.clone().into_bytes()))
        .collect();
    broker.produce(&topics.events, &records);

    let svc = Service::start(&broker, "levee-e2e", &topics);
    let got = broker.read(&topics.alerts, expected.len(), Duration::from_secs(120));
    let alerts: Vec<Alert> = got
        .iter()
        .map(|(_, v, _)| serde_json::from_slice(v).expect("alert json"))
        .collect();
    assert_eq!(
        alerts.iter().map(identity).collect::<Vec<_>>(),
        expected.iter().map(identity).collect::<Vec<_>>()
    );
    assert!(
        got.iter()
            .zip(&alerts)
            .all(|((k, _, _), a)| k == &a.alert_id),
        "alerts are keyed by alert_id"
    );

    // Metrics, scraped while the service runs, match what was sent.
    svc.wait_metric(
        "levee_records_total",
        records.len() as f64,
        Duration::from_secs(30),
    );
    assert_eq!(
        svc.metric("levee_dead_letters_total{reason=\"invalid_json\"}"),
        Some(0.0)
    );
    let by_kind: f64 = AlertKind::ALL
        .iter()
        .map(|k| {
            let m = format!("levee_alerts_total{{kind=\"{}\"}}", k.as_str());
            svc.metric(&m)
                .unwrap_or_else(|| panic!("{m} is exported, at 0 if never emitted"))
        })
        .sum();
    assert_eq!(by_kind, expected.len() as f64);
    for d in levee_runtime::LeveeConfig::default().detectors.names() {
        let m = format!("levee_detector_state_bytes{{detector=\"{d}\",map=\"findings\"}}");
        assert!(svc.metric(&m).is_some(), "{m} is exported");
    }
    assert_eq!(
        svc.metric("levee_kafka_partitions{scope=\"topic\"}"),
        Some(1.0)
    );
    assert_eq!(
        svc.metric("levee_kafka_partitions{scope=\"assigned\"}"),
        Some(1.0)
    );
    svc.wait_metric(
        "levee_consumer_lag_records{partition=\"0\"}",
        0.0,
        Duration::from_secs(30),
    );
    assert_eq!(
        svc.get("/healthz").map(|r| r.0),
        Some("HTTP/1.1 200 OK".to_owned())
    );
    assert_eq!(
        svc.get("/readyz").map(|r| r.0),
        Some("HTTP/1.1 200 OK".to_owned())
    );

    let status = svc.terminate(Duration::from_secs(30));
    assert!(status.success(), "graceful shutdown exits 0: {status:?}");
}

#[test]
fn poison_messages_go_to_the_dead_letter_topic_and_never_stall() {
    let broker = Broker::start();
    let topics = Topics::create(&broker, "poison");
    let mut records: Vec<(String, Vec<u8>)> = Vec::new();
    let bad: Vec<(Vec<u8>, &str)> = vec![
        (b"not json".to_vec(), "invalid_json"),
        (
            br#"{"type":"login","ts":1732000000000}"#.to_vec(),
            "missing_field",
        ),
        (vec![0xff, 0xfe, 0x00], "invalid_utf8"),
        (
            br#"{"type":"logout","ts":1732000000000,"account":"a"}"#.to_vec(),
            "unknown_type",
        ),
        (
            br#"{"v":2,"type":"login","ts":1732000000000,"account":"a"}"#.to_vec(),
            "unsupported_version",
        ),
    ];
    for i in 0..200u32 {
        let good = format!(
            r#"{{"type":"login","ts":{},"account":"u{i}","device":"dev{}"}}"#,
            1_732_000_000_000u64 + u64::from(i) * 1000,
            i % 50
        );
        records.push((format!("u{i}"), good.into_bytes()));
        if i % 40 == 0 {
            let (b, _) = &bad[(i / 40) as usize];
            records.push(("bad".to_owned(), b.clone()));
        }
    }
    broker.produce(&topics.events, &records);
    let svc = Service::start(&broker, "levee-poison", &topics);
    let dead = broker.read(&topics.dead, bad.len(), Duration::from_secs(60));
    assert_eq!(dead.len(), bad.len());
    for ((_, payload, headers), (raw, reason)) in dead.iter().zip(&bad) {
        assert_eq!(payload, raw, "the original bytes");
        let h = |k: &str| headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(h("levee.reason").as_deref(), Some(*reason));
        assert_eq!(h("levee.topic").as_deref(), Some(topics.events.as_str()));
        assert!(h("levee.offset").is_some_and(|o| o.parse::<i64>().is_ok()));
    }
    svc.wait_metric(
        "levee_events_total{type=\"login\"}",
        200.0,
        Duration::from_secs(30),
    );
    assert_eq!(
        svc.metric("levee_dead_letters_total{reason=\"invalid_json\"}"),
        Some(1.0)
    );
    assert!(svc.terminate(Duration::from_secs(30)).success());
}

#[test]
fn state_survives_sigkill_through_snapshots() {
    let lines = scenario_lines();
    let expected = file_mode(&lines, "crash");
    let broker = Broker::start();
    let topics = Topics::create(&broker, "crash");
    let records: Vec<(String, Vec<u8>)> = lines
        .iter()
        .map(|l| ("k".to_owned(), l.clone().into_bytes()))
        .collect();
    let half = records.len() / 2;
    let dir = std::env::temp_dir().join(format!("levee-snap-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // A killed member holds its partitions until its session times out: keep that short.
    std::fs::create_dir_all(&dir).expect("snapshot dir");
    let config = dir.join("levee.toml");
    std::fs::write(&config, "[kafka.properties]\n\"session.timeout.ms\" = \"6000\"\n\"heartbeat.interval.ms\" = \"1000\"\n").expect("config");
    let extra = [
        ("LEVEE_TEST_CONFIG", config.display().to_string()),
        ("LEVEE__KAFKA__SNAPSHOT_DIR", dir.display().to_string()),
        ("LEVEE__KAFKA__SNAPSHOT_INTERVAL_MS", "0".to_owned()),
        ("LEVEE__KAFKA__BATCH_MAX", "2000".to_owned()),
    ];

    // First half, then SIGKILL once all of it is processed and acknowledged.
    broker.produce(&topics.events, &records[..half]);
    let svc = Service::start_with(&broker, "levee-crash", &topics, &extra);
    svc.wait_metric("levee_records_total", half as f64, Duration::from_secs(60));
    svc.kill();
    assert!(
        dir.join("levee-snapshot.json").exists(),
        "a snapshot was written"
    );

    // Second half, restart: groups spanning the crash must come out as in file mode.
    broker.produce(&topics.events, &records[half..]);
    let svc = Service::start_with(&broker, "levee-crash", &topics, &extra);
    svc.wait_metric(
        "levee_records_total",
        records.len() as f64,
        Duration::from_secs(60),
    );
    let got = broker.read(&topics.alerts, expected.len(), Duration::from_secs(60));
    let mut seen: BTreeMap<(String, u32), Vec<String>> = BTreeMap::new();
    let mut duplicates = 0;
    for (_, v, _) in &got {
        let a: Alert = serde_json::from_slice(v).expect("alert");
        if let Some(prev) = seen.insert((a.alert_id.clone(), a.revision), a.accounts.clone()) {
            assert_eq!(
                prev, a.accounts,
                "a repeated (alert_id, revision) must be identical"
            );
            duplicates += 1;
        }
    }
    let want: BTreeMap<(String, u32), Vec<String>> = expected
        .iter()
        .map(|a| ((a.alert_id.clone(), a.revision), a.accounts.clone()))
        .collect();
    assert_eq!(
        seen, want,
        "every file-mode alert arrives, and nothing else"
    );
    assert_eq!(
        duplicates, 0,
        "the snapshot covered every acknowledged record: nothing was replayed"
    );
    assert_eq!(
        svc.metric("levee_snapshot_restores_total{outcome=\"restored\"}"),
        Some(1.0)
    );
    assert!(svc.terminate(Duration::from_secs(30)).success());

    // An upgrade changed a state field: the final snapshot no longer fits this binary. The
    // service must start anyway, say why, replay the topic and re-emit identical alerts.
    let path = dir.join("levee-snapshot.json");
    let mut snap: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("final snapshot")).expect("json");
    let counters = snap["pipeline"]["counters"].take();
    snap["pipeline"]["counters_v2"] = counters;
    snap["schema"] = "0000000000000000".into();
    std::fs::write(&path, snap.to_string()).expect("write changed snapshot");
    let svc = Service::start_with(&broker, "levee-crash", &topics, &extra);
    svc.wait_metric(
        "levee_records_total",
        records.len() as f64,
        Duration::from_secs(60),
    );
    assert_eq!(
        svc.metric("levee_snapshot_restores_total{outcome=\"schema\"}"),
        Some(1.0)
    );
    let again = broker.read(&topics.alerts, 2 * expected.len(), Duration::from_secs(60));
    assert_eq!(
        again.len(),
        2 * expected.len(),
        "the replay re-emits every alert"
    );
    for (_, v, _) in &again[got.len()..] {
        let a: Alert = serde_json::from_slice(v).expect("alert");
        assert_eq!(
            want.get(&(a.alert_id.clone(), a.revision)),
            Some(&a.accounts),
            "a replayed alert is identical to the first emission"
        );
    }
    assert!(svc.terminate(Duration::from_secs(30)).success());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_replica_that_sees_part_of_the_topic_says_so() {
    let broker = Broker::start();
    let topics = Topics::create(&broker, "split");
    let events = "split.events2";
    broker.create_topic(events, 2);
    let topics = Topics {
        events: events.to_owned(),
        ..topics
    };
    let a = Service::start(&broker, "levee-split", &topics);
    a.wait_metric(
        "levee_kafka_partitions{scope=\"assigned\"}",
        2.0,
        Duration::from_secs(60),
    );
    // A second replica in the same group: each now sees one of the two partitions.
    let b = Service::start(&broker, "levee-split", &topics);
    for svc in [&a, &b] {
        svc.wait_metric(
            "levee_kafka_partitions{scope=\"assigned\"}",
            1.0,
            Duration::from_secs(60),
        );
        assert_eq!(
            svc.metric("levee_kafka_partitions{scope=\"topic\"}"),
            Some(2.0)
        );
    }
    assert!(a.terminate(Duration::from_secs(30)).success());
    assert!(b.terminate(Duration::from_secs(30)).success());
}

#[test]
fn a_snapshot_that_cannot_be_written_is_counted_and_the_service_goes_on() {
    let lines = scenario_lines();
    let expected = file_mode(&lines, "snapfail");
    let broker = Broker::start();
    let topics = Topics::create_with(&broker, "snapfail", 3);
    let dir = std::env::temp_dir().join(format!("levee-snapfail-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // The snapshot's temporary file cannot be created: a directory stands in its place.
    std::fs::create_dir_all(dir.join("levee-snapshot.json.tmp")).expect("blocker");
    let records: Vec<(String, Vec<u8>)> = support::scenario_with_sentinel()
        .into_iter()
        .map(|(k, l)| (k, l.into_bytes()))
        .collect();
    broker.produce(&topics.events, &records);
    let svc = Service::start_with(
        &broker,
        "levee-snapfail",
        &topics,
        &[
            ("LEVEE__KAFKA__SNAPSHOT_DIR", dir.display().to_string()),
            ("LEVEE__KAFKA__SNAPSHOT_INTERVAL_MS", "0".to_owned()),
        ],
    );
    // Every alert of file mode still arrives: the failed snapshots cost nothing but the snapshot.
    let got = broker.read(&topics.alerts, expected.len(), Duration::from_secs(120));
    assert_eq!(got.len(), expected.len());
    svc.wait_metric_at_least(
        "levee_snapshot_writes_total{outcome=\"failed\"}",
        2.0,
        Duration::from_secs(30),
    );
    let failed = svc
        .metric("levee_snapshot_writes_total{outcome=\"failed\"}")
        .expect("failed");
    assert_eq!(
        svc.metric("levee_errors_total{error_type=\"write_failed\",stage=\"snapshot\"}"),
        Some(failed)
    );
    assert_eq!(
        svc.metric("levee_snapshot_writes_total{outcome=\"written\"}"),
        Some(0.0)
    );
    assert!(svc
        .get("/healthz")
        .is_some_and(|(s, _)| s.contains(" 200 ")));
    svc.kill();
    let _ = std::fs::remove_dir_all(&dir);
}
