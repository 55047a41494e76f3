//! Tidy: the architecture's invariants that are about the code itself, checked on the source.
//!
//! Core crates do no IO and read no clock; detectors do not import each other and the seam
//! does not import the registry; every module says what it is; files stay readable; snapshot
//! state has no generic structs (the schema trace would see one instantiation only); metric
//! labels are the documented closed set; every invariant names a test that exists; the
//! only `unsafe` is the runtime's cache hint.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `.rs` file under `dir` (relative to the workspace root), sorted.
fn rust_files(dir: &str) -> Vec<PathBuf> {
    fn walk(p: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(p) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() && !path.ends_with("target") {
                walk(&path, out);
            } else if path.extension().is_some_and(|x| x == "rs") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&root().join(dir), &mut out);
    out.sort();
    assert!(!out.is_empty(), "no Rust files under {dir}");
    out
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Lines of code, without comments.
fn code(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.starts_with("//"))
}

fn all_sources() -> Vec<PathBuf> {
    ["crates", "tests"]
        .iter()
        .flat_map(|d| rust_files(d))
        .collect()
}

#[test]
fn core_crates_do_no_io_and_read_no_clock() {
    const FORBIDDEN: &[&str] = &[
        "std::fs",
        "std::env",
        "std::time",
        "std::thread",
        "std::process",
        "std::io::std",
        "TcpStream",
        "TcpListener",
        "UdpSocket",
        "Instant",
        "SystemTime",
        "File::",
        "println!",
        "eprintln!",
        "print!",
        "thread_rng",
        "RandomState",
        "std::collections::HashMap",
        "std::collections::HashSet",
        "rdkafka",
        "tokio",
    ];
    let mut bad = Vec::new();
    for dir in ["crates/model/src", "crates/detect/src"] {
        for f in rust_files(dir) {
            let text = read(&f);
            // Unit tests inside a module may build fixtures; the shipped code may not.
            let shipped = text.split("#[cfg(test)]").next().unwrap_or("");
            for (n, line) in code(shipped) {
                for word in FORBIDDEN.iter().filter(|w| line.contains(*w)) {
                    bad.push(format!("{}:{n}: {word}", f.display()));
                }
            }
        }
    }
    assert!(
        bad.is_empty(),
        "IO, clocks, randomly seeded hashers or printing in a core crate:\n{}",
        bad.join("\n")
    );
}

#[test]
fn detectors_do_not_import_each_other_and_the_seam_does_not_import_the_registry() {
    let src = root().join("crates/detect/src");
    let seam = ["detector", "findings", "flat", "name", "profile", "ring"];
    let shared = [
        "detector", "findings", "flat", "name", "profile", "ring", "registry", "lib",
    ];
    let detectors: Vec<String> = std::fs::read_dir(&src)
        .expect("detect/src")
        .flatten()
        .filter_map(|e| {
            let name = e
                .file_name()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_owned();
            (!shared.contains(&name.as_str())).then_some(name)
        })
        .collect();
    assert!(detectors.len() >= 2, "found detectors {detectors:?}");
    let mut bad = Vec::new();
    for f in rust_files("crates/detect/src") {
        let rel = f
            .strip_prefix(&src)
            .expect("under src")
            .to_string_lossy()
            .to_string();
        let module = rel.split(['/', '.']).next().unwrap_or("").to_owned();
        let text = read(&f);
        for (n, line) in code(&text) {
            let imports = |m: &str| {
                line.contains(&format!("crate::{m}"))
                    || line.contains(&format!("crate::{{{m}"))
                    || line.contains(&format!("super::{m}"))
            };
            for other in detectors.iter().filter(|d| **d != module) {
                let camel: String = other
                    .split('_')
                    .map(|p| p[..1].to_uppercase() + &p[1..])
                    .collect();
                if module != "registry"
                    && module != "lib"
                    && (imports(other) || line.contains(&format!("crate::{camel}")))
                {
                    bad.push(format!("{rel}:{n} imports detector {other}"));
                }
            }
            if seam.contains(&module.as_str())
                && (imports("registry") || line.contains("AnyDetector"))
            {
                bad.push(format!("{rel}:{n}: the seam imports the registry"));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn every_module_says_what_it_is_and_stays_readable() {
    let mut bad = Vec::new();
    for f in all_sources() {
        let text = read(&f);
        if !text.starts_with("//!") {
            bad.push(format!("{}: does not open with a `//!` line", f.display()));
        }
        let lines = text.lines().count();
        if lines > 800 {
            bad.push(format!("{}: {lines} lines (split it)", f.display()));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn snapshot_state_has_no_generic_structs() {
    // serde-reflection names a generic struct once for every instantiation, so the snapshot
    // schema would not see the others change. Generic state serializes anonymously instead
    // (see `Interner` in lockstep).
    let mut bad = Vec::new();
    for dir in ["crates/detect/src", "crates/runtime/src"] {
        for f in rust_files(dir) {
            let text = read(&f);
            let lines: Vec<&str> = text.lines().collect();
            for (i, l) in lines.iter().enumerate() {
                let allowed = i > 0 && lines[i - 1].contains("tidy: not traced");
                let derives_serde = l.contains("#[derive(") && l.contains("Serialize") && !allowed;
                let next = lines[i + 1..].iter().find(|n| {
                    !n.trim_start().starts_with("#[") && !n.trim_start().starts_with("//")
                });
                if let Some(n) = next.filter(|_| derives_serde) {
                    let n = n
                        .trim_start()
                        .trim_start_matches("pub ")
                        .trim_start_matches("pub(crate) ");
                    if (n.starts_with("struct ") || n.starts_with("enum "))
                        && n.contains('<')
                        && !n.contains("<'")
                    {
                        bad.push(format!("{}:{}: {n}", f.display(), i + 2));
                    }
                }
            }
        }
    }
    assert!(
        bad.is_empty(),
        "generic serialized state:\n{}",
        bad.join("\n")
    );
}

/// The label names declared in `metrics.rs`: `counter_vec(name, help, "label")` and `&["a", "b"]`.
fn metric_labels() -> Vec<String> {
    let text = read(&root().join("crates/runtime/src/metrics.rs"));
    let mut labels = Vec::new();
    let quoted =
        |s: &str| -> Vec<String> { s.split('"').skip(1).step_by(2).map(str::to_owned).collect() };
    let mut in_counter_vec = 0;
    for line in text.lines().map(str::trim) {
        if line.contains("with_label_values") {
            continue;
        }
        if line.starts_with("let ") && line.contains("counter_vec(") {
            in_counter_vec = 1;
            let q = quoted(line);
            if q.len() == 3 {
                labels.push(q[2].clone());
                in_counter_vec = 0;
            }
            continue;
        }
        if in_counter_vec > 0 && line.starts_with('"') {
            in_counter_vec += 1;
            if in_counter_vec == 4 {
                labels.extend(quoted(line));
                in_counter_vec = 0;
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("&[\"") {
            labels.extend(quoted(&format!("\"{rest}")));
        }
    }
    labels.sort();
    labels.dedup();
    labels
}

#[test]
fn metric_labels_are_the_documented_closed_set() {
    let labels = metric_labels();
    assert!(labels.contains(&"detector".to_owned()), "parsed {labels:?}");
    let doc = read(&root().join("docs/architecture.md"));
    let line = doc
        .lines()
        .find(|l| l.starts_with("Metric labels:"))
        .expect("docs/architecture.md lists `Metric labels: ...`");
    let mut documented: Vec<String> = line
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    documented.sort();
    assert_eq!(
        labels, documented,
        "metrics.rs labels vs docs/architecture.md"
    );
    for forbidden in [
        "account", "ip", "address", "topic", "post", "device", "alert_id",
    ] {
        assert!(
            !labels.iter().any(|l| l == forbidden),
            "unbounded label {forbidden}"
        );
    }
}

#[test]
fn every_invariant_names_a_test_that_exists() {
    let doc = read(&root().join("docs/architecture.md"));
    let invariants: Vec<&str> = doc
        .lines()
        .filter(|l| l.starts_with("**Invariant:**"))
        .collect();
    assert!(
        invariants.len() >= 10,
        "found {} invariants",
        invariants.len()
    );
    let sources: String = all_sources().iter().map(|f| read(f)).collect();
    let mut bad = Vec::new();
    for inv in invariants {
        let Some((_, tests)) = inv.rsplit_once("Tests:") else {
            bad.push(format!("names no test: {inv}"));
            continue;
        };
        let names: Vec<&str> = tests.split('`').skip(1).step_by(2).collect();
        if names.is_empty() {
            bad.push(format!("names no test: {inv}"));
        }
        for name in names {
            let test = name.rsplit("::").next().unwrap_or(name);
            if !sources.contains(&format!("fn {test}(")) {
                bad.push(format!("no test `{test}` for: {inv}"));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn the_only_unsafe_code_is_the_runtimes_cache_hint() {
    const HINT: &str = "crates/runtime/src/prefetch.rs";
    // Spelled in halves so that this test does not find itself.
    let (block, func) = (concat!("unsafe", " {"), concat!("unsafe", " fn"));
    let mut bad = Vec::new();
    for f in all_sources() {
        let rel = f.strip_prefix(root()).unwrap_or(&f).display().to_string();
        let rel = rel.trim_start_matches("../").to_string();
        let text = read(&f);
        for (n, line) in code(&text) {
            let unsafe_block = line.contains(block) || line.contains(func);
            if unsafe_block && !rel.ends_with(HINT) {
                bad.push(format!("{rel}:{n}: unsafe code outside {HINT}"));
            }
        }
        let lib = rel.ends_with("src/lib.rs") || rel.ends_with("src/main.rs");
        if lib && !rel.contains("crates/runtime/") && !text.contains("#![forbid(unsafe_code)]") {
            bad.push(format!("{rel}: does not forbid unsafe code"));
        }
    }
    let hint = read(&root().join(HINT));
    let blocks = code(&hint).filter(|(_, l)| l.contains(block)).count();
    assert_eq!(blocks, 1, "{HINT} has one unsafe block, its prefetch");
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
