//! Test tools fetched once into `target/tools/`: Prometheus and promtool (Debian's
//! `prometheus` package, unpacked, not installed), a Python venv with `helm-python-sdk`
//! (renders and lints the chart offline) and `kubernetes-validate`, and the npm package
//! `@kubernetes-models/prometheus-operator` (ServiceMonitor and PrometheusRule schemas).
//!
//! Nothing is skipped when a tool is missing: it is fetched, and a failed fetch fails the test
//! with the command that failed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// The pinned versions: the test suite checks against these.
pub const HELM_SDK: &str = "helm-python-sdk==0.2.2";
pub const KUBERNETES_VALIDATE: &str = "kubernetes-validate==1.37.0";
pub const PROMETHEUS_OPERATOR_MODELS: &str = "@kubernetes-models/prometheus-operator@6.0.0";

static PROMETHEUS: Mutex<()> = Mutex::new(());
static PYTHON: Mutex<()> = Mutex::new(());
static NODE: Mutex<()> = Mutex::new(());

fn tools() -> PathBuf {
    super::workspace().join("target/tools")
}

/// Run `cmd` to completion; panic with its output if it fails.
pub fn run(cmd: &mut Command) -> String {
    let o = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{cmd:?} failed ({}):\n{out}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// Make `dir` by running `fill` on it, then mark it complete; a directory left unmarked by an
/// interrupted fetch is made again. (Made in place, not renamed: a venv's scripts name their
/// own path.)
fn fetch_once(dir: &Path, fill: impl FnOnce(&Path)) {
    let done = dir.join(".complete");
    if done.exists() {
        return;
    }
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("create a tools directory");
    fill(dir);
    std::fs::write(&done, "").expect("mark the tool complete");
}

/// `prometheus` or `promtool` from Debian's `prometheus` package (2.42; static Go binaries
/// that need only libc), downloaded with `apt-get download` and unpacked with `dpkg-deb -x`.
pub fn prometheus(binary: &str) -> PathBuf {
    let dir = tools().join("prometheus");
    let _guard = PROMETHEUS.lock().unwrap_or_else(|e| e.into_inner());
    fetch_once(&dir, |part| {
        let download = || {
            Command::new("apt-get")
                .args(["download", "prometheus"])
                .current_dir(part)
                .status()
                .is_ok_and(|s| s.success())
        };
        if !download() {
            // A machine whose package lists were never fetched.
            run(Command::new("apt-get").args(["update", "-qq"]));
            assert!(download(), "apt-get download prometheus failed");
        }
        let deb = std::fs::read_dir(part)
            .expect("read download dir")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "deb"))
            .expect("the downloaded .deb");
        run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(part));
    });
    let bin = dir.join("usr/bin").join(binary);
    assert!(bin.exists(), "{} is not in the package", bin.display());
    bin
}

/// A Python virtual environment with the chart tools; returns the directory of its binaries.
pub fn python_bin() -> PathBuf {
    let dir = tools().join("venv");
    let _guard = PYTHON.lock().unwrap_or_else(|e| e.into_inner());
    fetch_once(&dir, |part| {
        run(Command::new("python3").args(["-m", "venv"]).arg(part));
        run(Command::new(part.join("bin/python")).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            HELM_SDK,
            KUBERNETES_VALIDATE,
        ]));
    });
    dir.join("bin")
}

/// A directory with `node_modules` holding the Prometheus-operator models; scripts that
/// import them must be copied into it (ES modules resolve packages from their own path).
pub fn node_dir() -> PathBuf {
    let dir = tools().join("npm");
    let _guard = NODE.lock().unwrap_or_else(|e| e.into_inner());
    fetch_once(&dir, |part| {
        std::fs::write(part.join("package.json"), "{\"private\": true}\n").expect("package.json");
        run(Command::new("npm")
            .args([
                "install",
                "--silent",
                "--no-audit",
                "--no-fund",
                PROMETHEUS_OPERATOR_MODELS,
            ])
            .current_dir(part));
    });
    dir
}
