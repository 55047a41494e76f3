//! File helpers shared by the subcommands: alert loading, scoring files, lazy output files.

use anyhow::Context;
use levee_model::Alert;
use levee_sim::eval::{evaluate, EvalReport};
use levee_sim::Truth;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Read every alert (all revisions) from a JSON Lines file.
pub fn read_alerts(path: &Path) -> anyhow::Result<Vec<Alert>> {
    let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in BufReader::new(f).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        out.push(
            serde_json::from_str(&line)
                .with_context(|| format!("{}:{}: not an alert", path.display(), i + 1))?,
        );
    }
    Ok(out)
}

pub fn evaluate_files(truth: &Path, alerts: &Path) -> anyhow::Result<EvalReport> {
    let t: Truth = serde_json::from_str(
        &std::fs::read_to_string(truth).with_context(|| format!("reading {}", truth.display()))?,
    )
    .with_context(|| format!("{} is not a truth file", truth.display()))?;
    Ok(evaluate(&t, &read_alerts(alerts)?))
}

/// A file created on first write, so a clean run leaves no empty dead-letter file.
#[derive(Debug)]
pub struct LazyFile {
    path: PathBuf,
    file: Option<BufWriter<File>>,
}

impl LazyFile {
    pub fn new(path: PathBuf) -> Self {
        LazyFile { path, file: None }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn written(&self) -> bool {
        self.file.is_some()
    }
}

impl Write for LazyFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.file.is_none() {
            self.file = Some(BufWriter::new(File::create(&self.path)?));
        }
        match self.file.as_mut() {
            Some(f) => f.write(buf),
            None => Ok(0),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.as_mut().map_or(Ok(()), Write::flush)
    }
}

/// Standard input when `path` is `-`, otherwise the file.
pub fn open_input(path: &Path) -> anyhow::Result<(Box<dyn BufRead>, Option<u64>)> {
    if path == Path::new("-") {
        return Ok((
            Box::new(BufReader::with_capacity(1 << 16, std::io::stdin())),
            None,
        ));
    }
    let f = File::open(path).with_context(|| format!("opening input {}", path.display()))?;
    let len = f.metadata().ok().map(|m| m.len());
    Ok((Box::new(BufReader::with_capacity(1 << 16, f)), len))
}

/// Standard output when `path` is `-`, otherwise a new file.
pub fn open_output(path: &Path) -> anyhow::Result<Box<dyn Write>> {
    if path == Path::new("-") {
        return Ok(Box::new(BufWriter::new(std::io::stdout())));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    Ok(Box::new(BufWriter::new(File::create(path).with_context(
        || format!("creating {}", path.display()),
    )?)))
}
