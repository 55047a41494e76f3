//! Fault injection with librdkafka's in-process mock cluster: the service rides out a broker outage.

mod support;

use rdkafka::mocking::MockCluster;
use std::time::Duration;
use support::{produce_to, Service, Topics};

fn logins(range: std::ops::Range<u32>) -> Vec<(String, Vec<u8>)> {
    range
        .map(|i| {
            (
                format!("u{i}"),
                format!(
                    r#"{{"type":"login","ts":{},"account":"u{i}"}}"#,
                    1_732_000_000_000u64 + u64::from(i) * 100
                )
                .into_bytes(),
            )
        })
        .collect()
}

#[test]
fn a_broker_outage_loses_nothing_and_stalls_nothing() {
    let mock = MockCluster::new(1).expect("mock cluster");
    let topics = Topics {
        events: "f.events".into(),
        alerts: "f.alerts".into(),
        dead: "f.dead".into(),
    };
    for t in [&topics.events, &topics.alerts, &topics.dead] {
        mock.create_topic(t, 1, 1).expect("create topic");
    }
    let brokers = mock.bootstrap_servers();
    produce_to(&brokers, &topics.events, &logins(0..500));
    // No commit before the outage (60 s auto-commit), and an outage longer than the 6 s
    // session: the group is lost and resumes at offset 0, replaying what the state holds.
    let dir = std::env::temp_dir().join(format!("levee-faults-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let config = dir.join("levee.toml");
    std::fs::write(
        &config,
        "[kafka.properties]\n\"auto.commit.interval.ms\" = \"60000\"\n",
    )
    .expect("config");
    let mut svc = Service::start_at(
        &brokers,
        "levee-faults",
        &topics,
        &[("LEVEE_TEST_CONFIG", config.display().to_string())],
    );
    svc.wait_metric("levee_records_total", 500.0, Duration::from_secs(60));

    // The broker goes away: the service keeps running.
    mock.broker_down(-1).expect("broker down");
    std::thread::sleep(Duration::from_secs(8));
    assert!(
        svc.child.try_wait().expect("status").is_none(),
        "the service survived the outage"
    );
    let outage =
        svc.metric("levee_errors_total{error_type=\"broker_unreachable\",stage=\"consume\"}");
    assert!(
        outage.is_some_and(|n| n >= 1.0),
        "the outage is counted: {outage:?}"
    );
    mock.broker_up(-1).expect("broker up");

    // It picks up where it was: everything produced after the outage is processed once.
    produce_to(&brokers, &topics.events, &logins(500..1000));
    svc.wait_metric("levee_records_total", 1000.0, Duration::from_secs(60));
    assert_eq!(
        svc.metric("levee_events_total{type=\"login\"}"),
        Some(1000.0)
    );
    assert!(svc.terminate(Duration::from_secs(30)).success());
    let _ = std::fs::remove_dir_all(&dir);
}
