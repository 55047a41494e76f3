//! The `levee` binary as a user runs it: gen -> run -> eval, stdin/stdout, errors.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn levee(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_levee"))
        .args(args)
        .current_dir(cwd)
        .env_remove("RUST_LOG")
        .output()
        .expect("spawn levee")
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("levee-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn gen_run_eval_round_trip() {
    let d = scratch("roundtrip");
    let o = levee(
        &[
            "gen",
            "--seed",
            "3",
            "--accounts",
            "1500",
            "--hours",
            "2",
            "--out",
            "sc",
        ],
        &d,
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = levee(
        &[
            "run",
            "--input",
            "sc/events.jsonl",
            "--alerts",
            "alerts.jsonl",
            "--metrics-out",
            "m.prom",
        ],
        &d,
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let summary = text(&o.stderr);
    assert!(summary.contains("dead letters 0"), "{summary}");
    assert!(
        !d.join("dead-letters.jsonl").exists(),
        "no dead-letter file for a clean run"
    );
    let alerts = std::fs::read_to_string(d.join("alerts.jsonl")).expect("alerts written");
    let n_alerts = alerts.lines().count();
    assert!(n_alerts > 0);
    let metrics = std::fs::read_to_string(d.join("m.prom")).expect("metrics written");
    let counted: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("levee_alerts_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(
        counted, n_alerts as u64,
        "levee_alerts_total sums to the alert lines written: {metrics}"
    );

    let o = levee(
        &[
            "eval",
            "--truth",
            "sc/truth.json",
            "--alerts",
            "alerts.jsonl",
        ],
        &d,
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let table = text(&o.stdout);
    assert!(
        table.contains("account precision") && table.contains("device_farm"),
        "{table}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("eval.json")).expect("eval.json"))
            .expect("json");
    assert_eq!(report["alerts"].as_u64(), Some(n_alerts as u64));
    let df = report["kinds"]
        .as_array()
        .and_then(|k| k.iter().find(|k| k["kind"] == "device_farm"))
        .cloned()
        .expect("device_farm row");
    assert!(
        df["groups"].as_u64().is_some_and(|n| n >= 2),
        "the demo plants device farms: {df}"
    );
    assert_eq!(
        df["groups_detected"], df["groups"],
        "both planted device farms are found"
    );
}

#[test]
fn stdin_to_stdout_with_dead_letters() {
    let d = scratch("stdin");
    let mut child = Command::new(env!("CARGO_BIN_EXE_levee"))
        .args([
            "run",
            "--input",
            "-",
            "--alerts",
            "-",
            "--dead-letters",
            "bad.jsonl",
        ])
        .current_dir(&d)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    for i in 0..24 {
        writeln!(
            stdin,
            r#"{{"type":"login","ts":{},"account":"bot{i:02}","device":"shared-phone"}}"#,
            1_000_000 + i
        )
        .expect("write");
    }
    writeln!(stdin, r#"{{"type":"login","ts":"soon","account":"x"}}"#).expect("write");
    writeln!(stdin, "garbage").expect("write");
    drop(stdin);
    let o = child.wait_with_output().expect("wait");
    assert!(o.status.success(), "{}", text(&o.stderr));
    let alert: serde_json::Value =
        serde_json::from_str(text(&o.stdout).lines().next().expect("one alert")).expect("json");
    assert_eq!(alert["kind"], "device_farm");
    assert_eq!(alert["accounts"].as_array().map(Vec::len), Some(24));
    let dead: Vec<serde_json::Value> = std::fs::read_to_string(d.join("bad.jsonl"))
        .expect("dead letters")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(dead.len(), 2);
    assert_eq!(
        (
            dead[0]["reason"].as_str(),
            dead[0]["detail"].as_str(),
            dead[0]["line"].as_u64()
        ),
        (Some("wrong_type"), Some("ts"), Some(25))
    );
    assert_eq!(
        (dead[1]["reason"].as_str(), dead[1]["raw"].as_str()),
        (Some("invalid_json"), Some("garbage"))
    );
}

#[test]
fn configuration_mistakes_fail_clearly() {
    let d = scratch("config");
    std::fs::write(d.join("in.jsonl"), "").expect("write");
    std::fs::write(
        d.join("bad.toml"),
        "[detectors.device_farm]\nmin_acounts = 3\n",
    )
    .expect("write");
    let o = levee(
        &[
            "run", "--input", "in.jsonl", "--alerts", "a.jsonl", "--config", "bad.toml",
        ],
        &d,
    );
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("min_acounts"),
        "{}",
        text(&o.stderr)
    );
    let o = levee(
        &["run", "--input", "missing.jsonl", "--alerts", "a.jsonl"],
        &d,
    );
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("missing.jsonl"),
        "{}",
        text(&o.stderr)
    );
}
