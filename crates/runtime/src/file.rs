//! File mode: JSON Lines in, JSON Lines alerts and dead letters out.

use crate::dead_letter::{DeadLetter, Position};
use crate::pipeline::{event_labels, kind_labels, reason_labels, Counters, Pipeline};
use levee_model::{Alert, Reason};
use std::fmt;
use std::io::{self, BufRead, Read, Write};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Reads `\n`-separated records without ever holding more than `max` bytes of one.
#[derive(Debug)]
pub struct LineReader<R> {
    inner: R,
    max: usize,
    buf: Vec<u8>,
    line: u64,
    bytes: u64,
}

/// One line of input.
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    Record(&'a [u8]),
    /// Longer than `max`: the first `max` bytes; the rest was skipped.
    Oversized(&'a [u8]),
}

impl<R: BufRead> LineReader<R> {
    pub fn new(inner: R, max: usize) -> Self {
        LineReader {
            inner,
            max,
            buf: Vec::with_capacity(1024),
            line: 0,
            bytes: 0,
        }
    }

    /// Bytes consumed so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes
    }

    /// The next non-blank line and its 1-based number, or `None` at end of input.
    pub fn next_line(&mut self) -> io::Result<Option<(u64, Line<'_>)>> {
        loop {
            self.buf.clear();
            let n = (&mut self.inner)
                .take(self.max as u64 + 1)
                .read_until(b'\n', &mut self.buf)?;
            if n == 0 {
                return Ok(None);
            }
            self.bytes += n as u64;
            self.line += 1;
            let had_newline = self.buf.last() == Some(&b'\n');
            if !had_newline && self.buf.len() > self.max {
                self.bytes += self.inner.skip_until(b'\n')? as u64;
                self.buf.truncate(self.max);
                return Ok(Some((self.line, Line::Oversized(&self.buf))));
            }
            if had_newline {
                self.buf.pop();
            }
            if self.buf.last() == Some(&b'\r') {
                self.buf.pop();
            }
            if !self.buf.iter().all(u8::is_ascii_whitespace) {
                return Ok(Some((self.line, Line::Record(&self.buf))));
            }
        }
    }
}

/// Writes alerts as JSON Lines, stamping `emitted_at` with the wall clock.
#[derive(Debug)]
pub struct AlertWriter<W: Write> {
    out: W,
}

impl<W: Write> AlertWriter<W> {
    pub fn new(out: W) -> Self {
        AlertWriter { out }
    }

    pub fn write(&mut self, alert: &mut Alert) -> io::Result<()> {
        alert.emitted_at = now_ms();
        serde_json::to_writer(&mut self.out, alert)?;
        self.out.write_all(b"\n")
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Milliseconds since the epoch, wall clock. Used only to stamp `emitted_at`.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// What a file-mode run did.
#[derive(Debug, Clone)]
pub struct Report {
    pub counters: Counters,
    pub bytes: u64,
    pub elapsed: Duration,
}

impl Report {
    pub fn events_per_second(&self) -> f64 {
        self.counters.records as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.counters;
        let list = |labels: &[&str], counts: &[u64]| -> String {
            let parts: Vec<String> = labels
                .iter()
                .zip(counts)
                .filter(|(_, n)| **n > 0)
                .map(|(l, n)| format!("{l}={n}"))
                .collect();
            if parts.is_empty() {
                "none".to_owned()
            } else {
                parts.join(" ")
            }
        };
        writeln!(
            f,
            "records      {} ({:.1} MB) in {:.2} s: {:.0} records/s",
            c.records,
            self.bytes as f64 / 1e6,
            self.elapsed.as_secs_f64(),
            self.events_per_second()
        )?;
        writeln!(
            f,
            "events       {} ({})",
            c.events_total(),
            list(&event_labels(), &c.events)
        )?;
        writeln!(
            f,
            "late         {} processed within grace",
            c.late_processed
        )?;
        writeln!(
            f,
            "dead letters {} ({})",
            c.dead_letters_total(),
            list(&reason_labels(), &c.dead_letters)
        )?;
        write!(
            f,
            "alerts       {} ({})",
            c.alerts_total(),
            list(&kind_labels(), &c.alerts)
        )
    }
}

/// Run `pipeline` over JSON Lines from `input`, writing alerts and dead letters.
/// `on_batch(pipeline, bytes_read)` is called every `batch_size` records and at the end.
pub fn run_jsonl<R: BufRead, A: Write, D: Write>(
    input: R,
    alerts: &mut AlertWriter<A>,
    dead: &mut D,
    pipeline: &mut Pipeline,
    max_record_bytes: usize,
    batch_size: usize,
    on_batch: &mut dyn FnMut(&Pipeline, u64),
) -> io::Result<Report> {
    let start = Instant::now();
    let mut reader = LineReader::new(input, max_record_bytes);
    let mut alert_buf: Vec<Alert> = Vec::new();
    let mut dead_buf: Vec<DeadLetter> = Vec::new();
    let mut in_batch = 0usize;
    while let Some((line, rec)) = reader.next_line()? {
        match rec {
            Line::Record(bytes) => {
                pipeline.process(bytes, Position::Line(line), &mut alert_buf, &mut dead_buf)
            }
            Line::Oversized(prefix) => pipeline.reject(
                Reason::TooLong,
                "record",
                prefix,
                true,
                Position::Line(line),
                &mut dead_buf,
            ),
        }
        drain(alerts, dead, &mut alert_buf, &mut dead_buf)?;
        in_batch += 1;
        if in_batch == batch_size {
            in_batch = 0;
            on_batch(pipeline, reader.bytes_read());
        }
    }
    pipeline.finish(&mut alert_buf);
    drain(alerts, dead, &mut alert_buf, &mut dead_buf)?;
    alerts.flush()?;
    dead.flush()?;
    on_batch(pipeline, reader.bytes_read());
    Ok(Report {
        counters: pipeline.counters().clone(),
        bytes: reader.bytes_read(),
        elapsed: start.elapsed(),
    })
}

fn drain<A: Write, D: Write>(
    alerts: &mut AlertWriter<A>,
    dead: &mut D,
    a: &mut Vec<Alert>,
    d: &mut Vec<DeadLetter>,
) -> io::Result<()> {
    for mut alert in a.drain(..) {
        alerts.write(&mut alert)?;
    }
    for dl in d.drain(..) {
        dead.write_all(dl.to_json().as_bytes())?;
        dead.write_all(b"\n")?;
    }
    Ok(())
}
