//! Config layering: defaults -> file -> `LEVEE__*` environment, with unknown keys rejected.

use levee_runtime::{ConfigError, LeveeConfig};
use std::io::Write;

fn file(text: &str) -> tempfile_path::TempPath {
    tempfile_path::write(text)
}

/// A tiny temp-file helper (no extra dependency).
mod tempfile_path {
    use super::*;
    pub struct TempPath(pub std::path::PathBuf);
    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    pub fn write(text: &str) -> TempPath {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("levee-cfg-{}-{n}.toml", std::process::id()));
        let mut f = std::fs::File::create(&p).expect("create temp config");
        f.write_all(text.as_bytes()).expect("write temp config");
        TempPath(p)
    }
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults_then_file_then_env() {
    let d = LeveeConfig::load(None, env(&[])).expect("defaults load");
    assert_eq!(d, LeveeConfig::default());
    assert_eq!(d.runtime.allowed_lateness_ms, 10_000);

    let f =
        file("[runtime]\nallowed_lateness_ms = 5000\n[detectors.device_farm]\nmin_accounts = 12\n");
    let c = LeveeConfig::load(Some(&f.0), env(&[])).expect("file loads");
    assert_eq!(
        (
            c.runtime.allowed_lateness_ms,
            c.detectors.device_farm.min_accounts
        ),
        (5000, 12)
    );
    assert_eq!(c.runtime.late_grace_ms, 60_000, "unset keys keep defaults");

    let c = LeveeConfig::load(
        Some(&f.0),
        env(&[
            ("LEVEE__RUNTIME__ALLOWED_LATENESS_MS", "2000"),
            ("LEVEE__DETECTORS__DEVICE_FARM__ENABLED", "false"),
            ("OTHER", "ignored"),
        ]),
    )
    .expect("env overlays");
    assert_eq!(c.runtime.allowed_lateness_ms, 2000, "env beats file");
    assert!(!c.detectors.device_farm.enabled);
    assert_eq!(
        c.detectors.device_farm.min_accounts, 12,
        "file value kept where env is silent"
    );
}

#[test]
fn librdkafka_properties_from_file_and_environment() {
    let f = file("[kafka.properties]\n\"sasl.mechanisms\" = \"SCRAM-SHA-512\"\n");
    let c = LeveeConfig::load(
        Some(&f.0),
        env(&[
            ("LEVEE__KAFKA__PROPERTIES__SECURITY_PROTOCOL", "SASL_SSL"),
            ("LEVEE__KAFKA__PROPERTIES__FETCH_WAIT_MAX_MS", "100"),
            ("LEVEE__KAFKA__BROKERS", "k1:9093,k2:9093"),
        ]),
    )
    .expect("loads");
    assert_eq!(c.kafka.brokers, "k1:9093,k2:9093");
    assert_eq!(
        c.kafka
            .properties
            .get("sasl.mechanisms")
            .map(String::as_str),
        Some("SCRAM-SHA-512")
    );
    assert_eq!(
        c.kafka
            .properties
            .get("security.protocol")
            .map(String::as_str),
        Some("SASL_SSL")
    );
    assert_eq!(
        c.kafka
            .properties
            .get("fetch.wait.max.ms")
            .map(String::as_str),
        Some("100"),
        "a number-looking property stays a string"
    );
}

#[test]
fn the_shipped_config_file_is_the_defaults() {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/levee.toml");
    let c = LeveeConfig::load(Some(&p), env(&[])).expect("config/levee.toml loads");
    assert_eq!(
        c,
        LeveeConfig::default(),
        "config/levee.toml documents the defaults exactly"
    );
}

#[test]
fn mistakes_are_clear_errors() {
    let typo = file("[runtime]\nallowed_latenes_ms = 5\n");
    let e = LeveeConfig::load(Some(&typo.0), env(&[])).expect_err("unknown key");
    assert!(e.to_string().contains("allowed_latenes_ms"), "{e}");

    let bad_toml = file("[runtime\n");
    assert!(matches!(
        LeveeConfig::load(Some(&bad_toml.0), env(&[])),
        Err(ConfigError::Parse { .. })
    ));

    let e = LeveeConfig::load(None, env(&[("LEVEE__RUNTIME__TICK_INTERVAL_MS", "soon")]))
        .expect_err("wrong type");
    assert!(
        e.to_string().contains("tick_interval_ms") || e.to_string().contains("invalid type"),
        "{e}"
    );

    let e = LeveeConfig::load(None, env(&[("LEVEE__RUNTIME__TICK_INTERVAL_MS", "0")]))
        .expect_err("out of range");
    assert!(e.to_string().contains("tick_interval_ms"), "{e}");

    // Each detector validates its own section; the message names it.
    for (var, value, section) in [
        (
            "LEVEE__DETECTORS__LOCKSTEP__CORE_K",
            "0",
            "detectors.lockstep",
        ),
        (
            "LEVEE__DETECTORS__DEVICE_FARM__MIN_ACCOUNTS",
            "1",
            "detectors.device_farm",
        ),
        (
            "LEVEE__DETECTORS__LOCKSTEP__FINDINGS__MAX_FINDINGS",
            "0",
            "detectors.lockstep: findings",
        ),
    ] {
        let e = LeveeConfig::load(None, env(&[(var, value)])).expect_err("invalid detector value");
        assert!(e.to_string().contains(section), "{var}: {e}");
    }
    let e = LeveeConfig::load(
        None,
        env(&[("LEVEE__DETECTORS__LOCKSTEP__FINDINGS__MAX_FINDING", "3")]),
    )
    .expect_err("typo in a nested section");
    assert!(e.to_string().contains("max_finding"), "{e}");

    let missing = std::path::Path::new("/nonexistent/levee.toml");
    assert!(matches!(
        LeveeConfig::load(Some(missing), env(&[])),
        Err(ConfigError::Read { .. })
    ));
}
