//! A real Prometheus (Debian's package) scrapes a running `levee serve` on loopback while it
//! works through a backlog, a restart from its snapshot and a live producer on a 3-partition
//! topic of the test broker;
//! every query of the Grafana dashboard and every expression of the alerting rules is then
//! evaluated through Prometheus's HTTP API and must return data.

mod support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{free_port, http_get, promql, tools, Broker, Service, TestProducer, Topics};

/// A Prometheus server scraping one target every second; killed on drop.
struct Prometheus {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Prometheus {
    fn start(target_port: u16) -> Prometheus {
        let dir = std::env::temp_dir().join(format!("levee-prometheus-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("prometheus dir");
        let rules = support::workspace().join("deploy/prometheus/rules.yml");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [{rules:?}]\n\
             scrape_configs:\n  - job_name: levee\n    static_configs:\n      - targets: [\"127.0.0.1:{target_port}\"]\n"
        );
        std::fs::write(dir.join("prometheus.yml"), config).expect("prometheus.yml");
        let port = free_port();
        let child = Command::new(tools::prometheus("prometheus"))
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start prometheus");
        let p = Prometheus { child, port, dir };
        let t = Instant::now();
        while http_get(p.port, "/-/ready").is_none_or(|(status, _)| !status.contains(" 200 ")) {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "prometheus not ready"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        p
    }

    /// GET an API path: the `data` of a successful answer, or the error Prometheus gave.
    fn api(&self, path: &str) -> Result<Value, String> {
        let (status, body) = http_get(self.port, path).ok_or("no answer")?;
        let v: Value = serde_json::from_str(&body).map_err(|e| format!("{status}: {e}: {body}"))?;
        if v["status"] != "success" {
            return Err(format!("{status}: {body}"));
        }
        Ok(v["data"].clone())
    }

    /// Evaluate `query` now: the number of series (or the scalar) it returns.
    fn count(&self, query: &str) -> Result<usize, String> {
        let data = self.api(&format!("/api/v1/query?query={}", encode(query)))?;
        match data["resultType"].as_str() {
            Some("vector" | "matrix") => Ok(data["result"].as_array().map_or(0, Vec::len)),
            Some("scalar") => Ok(1),
            other => Err(format!("result type {other:?}")),
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Percent-encode a query parameter.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// What must hold of each query once the service has run a while: `(what, query, needs data)`.
fn checks() -> Vec<(String, String, bool)> {
    let mut out = Vec::new();
    for (title, q) in promql::dashboard_queries() {
        out.push((format!("panel {title:?}"), promql::as_sent(&q, "1m"), true));
    }
    let variable = &promql::dashboard()["templating"]["list"][1]["definition"];
    let metric = variable
        .as_str()
        .and_then(|d| d.strip_prefix("label_values("))
        .and_then(|d| d.split(',').next())
        .expect("the instance variable's metric");
    out.push(("variable instance".into(), metric.to_owned(), true));
    for (name, expr) in promql::rules() {
        // The whole expression must evaluate (it is empty unless the alert fires)...
        out.push((format!("rule {name}"), expr.clone(), false));
        // ...every metric it names must be exported, with the labels it selects...
        for s in promql::selectors(&expr) {
            out.push((format!("rule {name}, selector"), s, true));
        }
        // ...and a threshold's left side must have data.
        if let Some(lhs) = promql::threshold_lhs(&expr) {
            out.push((
                format!("rule {name}, left of threshold"),
                lhs.to_owned(),
                true,
            ));
        }
    }
    out
}

/// The failures among `checks`, as messages.
fn failures(prom: &Prometheus, checks: &[(String, String, bool)]) -> Vec<String> {
    checks
        .iter()
        .filter_map(|(what, q, needs_data)| match prom.count(q) {
            Err(e) => Some(format!("{what}: `{q}`: {e}")),
            Ok(0) if *needs_data => Some(format!("{what}: `{q}` returned no data")),
            Ok(_) => None,
        })
        .collect()
}

fn snapshot_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("levee-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn keyed(lines: &[(String, String)]) -> Vec<(String, Vec<u8>)> {
    lines
        .iter()
        .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
        .collect()
}

#[test]
fn prometheus_scrapes_the_service_and_every_panel_and_rule_query_has_data() {
    let lines = support::scenario_with_sentinel();
    let (backlog, live) = lines.split_at(lines.len() * 2 / 3);
    let broker = Broker::start();
    let topics = Topics::create_with(&broker, "obs", 3);
    let mut first = keyed(backlog);
    // Bad input, so the dead-letter series have something to count.
    first.push(("bad".into(), b"not json".to_vec()));
    first.push(("bad".into(), br#"{"ts": 1, "type": "engage"}"#.to_vec()));
    broker.produce(&topics.events, &first);

    let snapshots = snapshot_dir("obs-snapshots");
    let settings = |port: u16| {
        [
            (
                "LEVEE__KAFKA__SNAPSHOT_DIR",
                snapshots.display().to_string(),
            ),
            ("LEVEE__KAFKA__SNAPSHOT_INTERVAL_MS", "1000".into()),
            ("LEVEE__HTTP__LISTEN", format!("127.0.0.1:{port}")),
        ]
    };
    let port = free_port();
    let start = || {
        let mut svc = Service::start_with(&broker, "levee-obs", &topics, &settings(port));
        svc.http_port = port;
        svc
    };
    let first_run = start();
    let prom = Prometheus::start(port);
    first_run.wait_metric(
        "levee_records_total",
        first.len() as f64,
        Duration::from_secs(120),
    );
    // A restart in between, as a rolling update does it: SIGTERM (final snapshot), then a
    // new process on the same volume and port that resumes from the snapshot.
    assert!(first_run.terminate(Duration::from_secs(60)).success());
    let svc = start();
    svc.wait_metric(
        "levee_snapshot_restores_total{outcome=\"restored\"}",
        1.0,
        Duration::from_secs(60),
    );

    // A live producer while Prometheus scrapes: the rest of the stream in slices.
    let producer = TestProducer::new(&broker.brokers());
    for chunk in live.chunks(live.len() / 20 + 1) {
        producer.send(&topics.events, None, &keyed(chunk));
        std::thread::sleep(Duration::from_millis(300));
    }
    svc.wait_metric_at_least(
        "levee_alerts_total{kind=\"bot_farm\"}",
        1.0,
        Duration::from_secs(120),
    );
    svc.wait_metric_at_least(
        "levee_snapshot_writes_total{outcome=\"written\"}",
        1.0,
        Duration::from_secs(60),
    );

    let checks = checks();
    assert!(checks.len() > 40, "{} checks", checks.len());
    // Consumer lag is reported every 5 s and rates need two scrapes: retry for a while.
    let t = Instant::now();
    let mut failed = failures(&prom, &checks);
    while !failed.is_empty() && t.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_secs(1));
        failed = failures(&prom, &checks);
    }
    assert!(
        failed.is_empty(),
        "queries without data:\n{}",
        failed.join("\n")
    );

    // The target is up, and Prometheus loaded and evaluated every rule without error.
    assert_eq!(prom.count("up{job=\"levee\"} == 1"), Ok(1));
    let groups = prom.api("/api/v1/rules").expect("rules");
    let rules: Vec<&Value> = groups["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().expect("rules"))
        .collect();
    assert_eq!(rules.len(), promql::rules().len());
    for r in rules {
        assert_eq!(r["health"], "ok", "{r}");
        assert!(r["lastError"].as_str().is_none_or(str::is_empty), "{r}");
    }

    // An unknown metric fails the same check (the test can fail).
    let bogus = [(
        "bogus".to_owned(),
        "levee_no_such_metric_total".to_owned(),
        true,
    )];
    assert_eq!(failures(&prom, &bogus).len(), 1);
    drop(prom);
    svc.kill();
    let _ = std::fs::remove_dir_all(Path::new(&snapshots));
}
