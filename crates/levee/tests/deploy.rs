//! Deployment artefacts checked offline: the Helm chart (lint, render, Kubernetes schemas,
//! custom resources, and what the objects must agree on with Levee's own configuration),
//! the Prometheus rules (promtool check and unit tests, runbooks) and the Grafana dashboard.
//! The rules' and the dashboard's queries are evaluated against a live Prometheus scraping
//! `levee serve` in `observability.rs`.

mod support;

use levee_runtime::LeveeConfig;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::promql;
use support::tools::{self, run};

fn repo(path: &str) -> PathBuf {
    support::workspace().join(path)
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("levee-deploy-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// The chart rendered with `values` files (in order): the output directory and its objects.
fn render(name: &str, values: &[PathBuf]) -> (PathBuf, Vec<Value>) {
    let out = scratch(name);
    run(Command::new(tools::python_bin().join("python"))
        .arg(repo("crates/levee/tests/deploy/render.py"))
        .arg(repo("deploy/helm/levee"))
        .arg(&out)
        .args(values));
    let lint: Value = read_json(&out.join("lint.json"));
    let findings: Vec<&Value> = lint["messages"]
        .as_array()
        .expect("lint messages")
        .iter()
        .filter(|m| m["severity"].as_u64() != Some(1))
        .collect();
    assert!(findings.is_empty(), "helm lint --strict: {findings:?}");
    assert_eq!(lint["errors"].as_array().map(Vec::len), Some(0), "{lint}");
    let objects = read_json(&out.join("manifests.json"))
        .as_array()
        .expect("objects")
        .iter()
        .map(|o| o["object"].clone())
        .collect();
    (out, objects)
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn kubernetes_validate(file: &Path, version: &str) -> std::process::Output {
    Command::new(tools::python_bin().join("kubernetes-validate"))
        .args(["--strict", "--quiet", "-k", version])
        .arg(file)
        .output()
        .expect("run kubernetes-validate")
}

/// Validate the Prometheus-operator objects of `manifests` with the npm package's schemas.
fn validate_crds(manifests: &Path) -> std::process::Output {
    let dir = tools::node_dir();
    std::fs::copy(
        repo("crates/levee/tests/deploy/crds.mjs"),
        dir.join("crds.mjs"),
    )
    .expect("copy crds.mjs");
    Command::new("node")
        .arg(dir.join("crds.mjs"))
        .arg(manifests)
        .output()
        .expect("run node")
}

fn one<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    let mut of_kind = objects.iter().filter(|o| o["kind"] == kind);
    let first = of_kind.next().unwrap_or_else(|| panic!("no {kind}"));
    assert!(of_kind.next().is_none(), "more than one {kind}");
    first
}

/// Levee's configuration as the pod would load it: the ConfigMap's file, then the container's
/// environment (values taken from Secrets read as `from-secret`).
fn pod_config(objects: &[Value], dir: &Path) -> (LeveeConfig, Vec<(String, String)>) {
    let toml = one(objects, "ConfigMap")["data"]["levee.toml"]
        .as_str()
        .expect("levee.toml in the ConfigMap");
    let file = dir.join("levee.toml");
    std::fs::write(&file, toml).expect("write levee.toml");
    let container = &one(objects, "StatefulSet")["spec"]["template"]["spec"]["containers"][0];
    let env: Vec<(String, String)> = container["env"]
        .as_array()
        .expect("env")
        .iter()
        .map(|e| {
            let value = match e["value"].as_str() {
                Some(v) => v.to_owned(),
                None => {
                    assert!(e["valueFrom"]["secretKeyRef"]["name"].is_string(), "{e}");
                    "from-secret".to_owned()
                }
            };
            (e["name"].as_str().expect("name").to_owned(), value)
        })
        .collect();
    let levee_env = env
        .iter()
        .filter(|(k, _)| k.starts_with("LEVEE__"))
        .cloned();
    let cfg = LeveeConfig::load(Some(&file), levee_env)
        .unwrap_or_else(|e| panic!("the pod's configuration does not load: {e}"));
    (cfg, env)
}

/// What the objects must agree on with each other and with Levee's configuration.
fn check_objects(objects: &[Value], dir: &Path) -> LeveeConfig {
    let config_map = one(objects, "ConfigMap");
    assert_eq!(
        config_map["data"]["levee.toml"].as_str(),
        Some(
            std::fs::read_to_string(repo("config/levee.toml"))
                .expect("config")
                .as_str()
        ),
        "the ConfigMap is config/levee.toml, unchanged"
    );
    let (cfg, _) = pod_config(objects, dir);
    let sts = one(objects, "StatefulSet");
    let pod = &sts["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(
        sts["spec"]["replicas"], 1,
        "state is not partitioned across replicas"
    );
    // Probes on the service's endpoints, on the port it listens on.
    let port = cfg.http.listen.rsplit(':').next().expect("port");
    assert_eq!(c["ports"][0]["containerPort"].to_string(), port);
    assert_eq!(c["ports"][0]["name"], "http");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["startupProbe"]["httpGet"]["path"], "/healthz");
    // Shutdown: the grace period covers the flush bound.
    let grace = pod["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("grace");
    assert!(
        grace * 1000 > cfg.kafka.shutdown_timeout_ms,
        "grace {grace} s <= shutdown_timeout_ms {}",
        cfg.kafka.shutdown_timeout_ms
    );
    // Non-root, read-only root filesystem; snapshots on the volume.
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    let limit = quantity(
        c["resources"]["limits"]["memory"]
            .as_str()
            .expect("memory limit"),
    );
    let bound = memory_bound(config_map["data"]["levee.toml"].as_str().expect("toml"));
    assert!(
        limit >= bound,
        "memory limit {limit} is below the configured bounds' sum {bound}"
    );
    assert!(
        quantity(
            c["resources"]["requests"]["memory"]
                .as_str()
                .expect("request")
        ) <= limit
    );
    let state_mount = c["volumeMounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .find(|m| m["name"] == "state")
        .expect("state volume mounted");
    assert_eq!(
        state_mount["mountPath"].as_str(),
        Some(cfg.kafka.snapshot_dir.as_str())
    );
    assert_eq!(
        sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"],
        "state"
    );
    // Service, ServiceMonitor and PodDisruptionBudget select the pod and its http port.
    let pod_labels = &sts["spec"]["template"]["metadata"]["labels"];
    let selects = |selector: &Value| {
        selector
            .as_object()
            .expect("selector")
            .iter()
            .all(|(k, v)| &pod_labels[k] == v)
    };
    let service = one(objects, "Service");
    assert!(selects(&service["spec"]["selector"]));
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "http");
    assert!(selects(
        &one(objects, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"]
    ));
    let monitor = one(objects, "ServiceMonitor");
    let service_labels = &service["metadata"]["labels"];
    assert!(monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("matchLabels")
        .iter()
        .all(|(k, v)| &service_labels[k] == v));
    assert_eq!(
        monitor["spec"]["endpoints"][0]["port"],
        service["spec"]["ports"][0]["name"]
    );
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");
    // The PrometheusRule carries deploy/prometheus/rules.yml.
    let rule_names: Vec<&str> = one(objects, "PrometheusRule")["spec"]["groups"][0]["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .filter_map(|r| r["alert"].as_str())
        .collect();
    assert_eq!(rule_names, alert_names());
    // Topics: the three of the configuration, required fields, alerts compacted, retention stated.
    let topics: Vec<&Value> = objects
        .iter()
        .filter(|o| o["kind"] == "KafkaTopic")
        .collect();
    let mut names: Vec<&str> = topics
        .iter()
        .map(|t| t["spec"]["topicName"].as_str().expect("topicName"))
        .collect();
    names.sort_unstable();
    let mut want = vec![
        cfg.kafka.events_topic.as_str(),
        cfg.kafka.alerts_topic.as_str(),
        cfg.kafka.dead_letter_topic.as_str(),
    ];
    want.sort_unstable();
    assert_eq!(names, want);
    for t in &topics {
        assert_eq!(t["apiVersion"], "kafka.strimzi.io/v1beta2");
        assert!(t["metadata"]["name"].is_string(), "{t}");
        assert!(
            t["metadata"]["labels"]["strimzi.io/cluster"].is_string(),
            "{t}"
        );
        assert!(t["spec"]["partitions"].as_u64() >= Some(1), "{t}");
        assert!(t["spec"]["replicas"].as_u64() >= Some(1), "{t}");
        let retention = t["spec"]["config"]["retention.ms"]
            .as_str()
            .expect("retention.ms");
        assert!(
            retention.parse::<u64>().is_ok_and(|ms| ms >= 3_600_000),
            "{t}"
        );
        let compacted = t["spec"]["config"]["cleanup.policy"]
            .as_str()
            .is_some_and(|p| p.contains("compact"));
        assert_eq!(
            compacted,
            t["spec"]["topicName"] == cfg.kafka.alerts_topic.as_str(),
            "{t}"
        );
    }
    cfg
}

/// A Kubernetes memory quantity (`512Mi`, `4Gi`) in bytes.
fn quantity(q: &str) -> u64 {
    let (n, unit) = q.split_at(q.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(q.len()));
    let n: u64 = n.parse().unwrap_or_else(|_| panic!("quantity {q}"));
    n << match unit {
        "" => 0,
        "Ki" => 10,
        "Mi" => 20,
        "Gi" => 30,
        _ => panic!("unit of {q}"),
    }
}

/// What the configuration bounds memory to: every detector's `max_state_bytes`, the reorder
/// buffer, the account profile at its cap (40.3 bytes an account, docs/benchmarks.md) and
/// librdkafka's fetch queue (128 MiB, `queued.max.messages.kbytes`).
fn memory_bound(toml: &str) -> u64 {
    let value = |key: &str| -> Vec<u64> {
        toml.lines()
            .filter_map(|l| {
                l.strip_prefix(key)?
                    .trim()
                    .strip_prefix('=')?
                    .trim()
                    .parse()
                    .ok()
            })
            .collect()
    };
    let budgets: u64 = value("max_state_bytes").iter().sum();
    assert_eq!(value("max_state_bytes").len(), 6, "one budget per detector");
    let profile = value("max_accounts").last().copied().expect("profile cap") * 41;
    budgets + value("reorder_max_bytes")[0] + profile + (128 << 20)
}

/// The alert names of deploy/prometheus/rules.yml, in order.
fn alert_names() -> Vec<String> {
    promql::rules().into_iter().map(|(name, _)| name).collect()
}

#[test]
fn the_chart_lints_renders_and_validates_with_defaults_and_the_example_overlay() {
    for (name, values) in [
        ("defaults", vec![]),
        (
            "production",
            vec![repo("deploy/helm/examples/production.yaml")],
        ),
    ] {
        let (dir, objects) = render(name, &values);
        for version in ["1.33.0", "1.37.0"] {
            let o = kubernetes_validate(&dir.join("core.yaml"), version);
            assert!(
                o.status.success(),
                "{name}: kubernetes-validate --strict -k {version}:\n{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
        }
        let o = validate_crds(&dir.join("manifests.json"));
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "{name}: {out}{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            out.contains("valid ServiceMonitor") && out.contains("valid PrometheusRule"),
            "{out}"
        );
        let cfg = check_objects(&objects, &dir);
        if name == "production" {
            // The overlay's cluster settings arrive through the environment layer.
            assert_eq!(cfg.kafka.brokers, "platform-kafka-bootstrap.kafka.svc:9093");
            assert_eq!(cfg.kafka.properties["security.protocol"], "SASL_SSL");
            assert_eq!(cfg.kafka.properties["sasl.password"], "from-secret");
            assert_eq!(cfg.detectors.device_farm.min_accounts, 25);
        } else {
            assert!(cfg.kafka.properties.is_empty());
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn each_deployment_check_can_fail() {
    // Values outside the schema: a second replica.
    let dir = scratch("bad-values");
    let values = dir.join("two.yaml");
    std::fs::write(&values, "replicas: 2\n").expect("values");
    let o = Command::new(tools::python_bin().join("python"))
        .arg(repo("crates/levee/tests/deploy/render.py"))
        .arg(repo("deploy/helm/levee"))
        .arg(dir.join("out"))
        .arg(&values)
        .output()
        .expect("render");
    assert!(!o.status.success(), "a second replica must be refused");
    assert!(String::from_utf8_lossy(&o.stderr).contains("replicas"));
    // An unknown field in a core object.
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec:\n  ports: [{port: 80}]\n  selectr: {app: x}\n",
    )
    .expect("write");
    assert!(!kubernetes_validate(&bad, "1.33.0").status.success());
    // A ServiceMonitor against its schema.
    let monitor = dir.join("monitor.json");
    std::fs::write(
        &monitor,
        r#"[{"object": {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
            "metadata": {"name": "x"},
            "spec": {"selector": {}, "endpoints": [{"port": "http", "interval": "15 seconds"}]}}}]"#,
    )
    .expect("write");
    assert!(!validate_crds(&monitor).status.success());
    // A rule that does not parse.
    let rules = dir.join("rules.yml");
    std::fs::write(
        &rules,
        "groups:\n  - name: x\n    rules:\n      - alert: X\n        expr: rate(levee_records_total[5m] > 0\n",
    )
    .expect("write");
    let o = Command::new(tools::prometheus("promtool"))
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .expect("promtool");
    assert!(!o.status.success());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_rules_pass_promtool_and_each_fires_in_a_unit_test_and_has_a_runbook() {
    let promtool = tools::prometheus("promtool");
    let out = run(Command::new(&promtool)
        .args(["check", "rules"])
        .arg(repo("deploy/prometheus/rules.yml")));
    let names = alert_names();
    assert!(
        out.contains(&format!("SUCCESS: {} rules found", names.len())),
        "{out}"
    );
    run(Command::new(&promtool)
        .args(["test", "rules"])
        .arg(repo("deploy/prometheus/rules_test.yml")));
    let tests = std::fs::read_to_string(repo("deploy/prometheus/rules_test.yml")).expect("tests");
    let lines: Vec<&str> = tests.lines().map(str::trim).collect();
    let operations = std::fs::read_to_string(repo("docs/operations.md")).expect("operations.md");
    let rules = std::fs::read_to_string(repo("deploy/prometheus/rules.yml")).expect("rules");
    for name in &names {
        // Fires: an `alertname: X` case whose expected alerts are listed (not `exp_alerts: []`).
        let fires = lines.windows(3).any(|w| {
            w[0] == format!("alertname: {name}")
                && w[1] == "exp_alerts:"
                && w[2].starts_with("- exp_labels:")
        });
        assert!(
            fires,
            "{name}: no unit test in rules_test.yml makes it fire"
        );
        let anchor = name.to_lowercase();
        assert!(
            rules.contains(&format!("docs/operations.md#{anchor}\"")),
            "{name}: runbook_url is not docs/operations.md#{anchor}"
        );
        assert!(
            operations.lines().any(|l| l == format!("### {name}")),
            "docs/operations.md has no runbook section `### {name}`"
        );
    }
}

#[test]
fn the_dashboard_is_well_formed_and_covers_the_service() {
    let d = promql::dashboard();
    assert_eq!(d["uid"], "levee");
    let panels = d["panels"].as_array().expect("panels");
    let mut ids: Vec<u64> = panels
        .iter()
        .map(|p| p["id"].as_u64().expect("id"))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), panels.len(), "panel ids are unique");
    for p in panels {
        let g = &p["gridPos"];
        assert!(
            g["x"].as_u64().expect("x") + g["w"].as_u64().expect("w") <= 24,
            "{p}"
        );
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", p["title"]);
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{}", p["title"]);
        for t in targets {
            assert!(t["refId"].is_string() && t["expr"].is_string(), "{t}");
        }
    }
    let all: String = promql::dashboard_queries()
        .into_iter()
        .map(|(_, e)| e + "\n")
        .collect();
    for needed in [
        "levee_events_total",
        "levee_consumer_lag_records",
        "levee_watermark_lag_seconds",
        "levee_dead_letters_total",
        "levee_alerts_total",
        "levee_batch_duration_seconds_bucket",
        "levee_detector_state_bytes",
        "levee_detector_cap_hits_total",
    ] {
        assert!(all.contains(needed), "no panel shows {needed}");
    }
}

#[test]
fn queries_are_split_into_selectors_and_thresholds() {
    let q = r#"sum by (le) (rate(levee_a_bucket{x="1"}[5m])) / ignoring (s) levee_b > 0.5"#;
    assert_eq!(
        promql::selectors(q),
        [r#"levee_a_bucket{x="1"}"#, "levee_b"]
    );
    assert_eq!(
        promql::threshold_lhs(q),
        Some(r#"sum by (le) (rate(levee_a_bucket{x="1"}[5m])) / ignoring (s) levee_b"#)
    );
    assert_eq!(promql::threshold_lhs("a > 0 and b > 1"), None);
    assert_eq!(promql::threshold_lhs("absent(levee_x)"), None);
    assert_eq!(promql::rules().len(), alert_names().len());
}
