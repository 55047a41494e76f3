//! File mode: JSON Lines in, JSON Lines alerts and dead letters out.

use crate::dead_letter::{DeadLetter, Position};
use crate::drive::{drive, Feed, Poll, Sink, Source};
use crate::pipeline::{event_labels, kind_labels, reason_labels, Counters, Pipeline};
use levee_model::Alert;
use std::fmt;
use std::io::{self, BufRead, Read, Write};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

/// Reads `\n`-separated records without ever holding more than `max` bytes of one.
#[derive(Debug)]
pub struct LineReader<R> {
    inner: R,
    max: usize,
    /// A line that did not lie whole in `inner`'s buffer, copied.
    buf: Vec<u8>,
    /// Bytes of `inner`'s buffer that the last line borrowed: consumed on the next call.
    borrowed: usize,
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
            borrowed: 0,
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
            self.inner.consume(std::mem::take(&mut self.borrowed));
            // Most lines lie whole in the reader's buffer: borrow them there, no copy.
            let avail = self.inner.fill_buf()?;
            let within = &avail[..avail.len().min(self.max.saturating_add(1))];
            if let Some(n) = memchr::memchr(b'\n', within) {
                let record = trim_cr(&within[..n]);
                let blank = record.iter().all(u8::is_ascii_whitespace);
                self.bytes += n as u64 + 1;
                self.line += 1;
                if blank {
                    self.inner.consume(n + 1);
                    continue;
                }
                let len = record.len();
                self.borrowed = n + 1;
                // The same buffer again (nothing consumed, so nothing is read).
                let avail = self.inner.fill_buf()?;
                return Ok(Some((self.line, Line::Record(&avail[..len]))));
            }
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
            let len = trim_cr(&self.buf).len();
            self.buf.truncate(len);
            if !self.buf.iter().all(u8::is_ascii_whitespace) {
                return Ok(Some((self.line, Line::Record(&self.buf))));
            }
        }
    }
}

/// `line` without one trailing carriage return.
fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Writes alerts as JSON Lines (the drive loop has stamped `emitted_at`).
#[derive(Debug)]
pub struct AlertWriter<W: Write> {
    out: W,
}

impl<W: Write> AlertWriter<W> {
    pub fn new(out: W) -> Self {
        AlertWriter { out }
    }

    pub fn write(&mut self, alert: &Alert) -> io::Result<()> {
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

pub use crate::drive::now_ms;

/// What a file-mode run did.
#[derive(Debug, Clone)]
pub struct Report {
    pub counters: Counters,
    pub bytes: u64,
    pub elapsed: Duration,
    /// Most bytes and records the reorder buffer held at a batch boundary.
    pub held_peak: (usize, usize),
    /// The process's peak resident memory at the end of the run (Linux `VmHWM`).
    pub peak_rss: Option<u64>,
}

/// The process's peak resident set size in bytes, from `/proc/self/status` (`None` off Linux).
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
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
            "late         {} processed within grace, {} out of order",
            c.late_processed, c.out_of_order
        )?;
        writeln!(
            f,
            "reorder      peak {:.1} MB ({} records) held for the watermark, {} released early",
            self.held_peak.0 as f64 / 1e6,
            self.held_peak.1,
            c.reorder_overflow
        )?;
        if let Some(rss) = self.peak_rss {
            writeln!(f, "memory       peak RSS {:.1} MB", rss as f64 / 1e6)?;
        }
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

/// JSON Lines in: one lane (0), records numbered by line.
#[derive(Debug)]
pub struct FileSource<R> {
    reader: LineReader<R>,
}

impl<R: BufRead> FileSource<R> {
    pub fn new(input: R, max_record_bytes: usize) -> Self {
        FileSource {
            reader: LineReader::new(input, max_record_bytes),
        }
    }
}

impl<R: BufRead> Source for FileSource<R> {
    type Error = io::Error;

    fn read_batch(&mut self, feed: &mut Feed<'_>, max: usize) -> io::Result<Poll> {
        while feed.records() < max {
            match self.reader.next_line()? {
                None => return Ok(Poll::End),
                Some((line, Line::Record(bytes))) => feed.record(0, bytes, Position::Line(line)),
                Some((line, Line::Oversized(prefix))) => {
                    feed.oversized(prefix, Position::Line(line))
                }
            }
        }
        Ok(Poll::More)
    }

    fn bytes_read(&self) -> u64 {
        self.reader.bytes_read()
    }
}

/// JSON Lines out: alerts to one writer, dead letters to another.
#[derive(Debug)]
pub struct JsonlSink<'a, A: Write, D: Write> {
    pub alerts: &'a mut AlertWriter<A>,
    pub dead: &'a mut D,
}

impl<A: Write, D: Write> Sink for JsonlSink<'_, A, D> {
    type Error = io::Error;

    fn send(&mut self, alerts: &mut Vec<Alert>, dead: &mut Vec<DeadLetter>) -> io::Result<()> {
        for a in alerts.drain(..) {
            self.alerts.write(&a)?;
        }
        for d in dead.drain(..) {
            self.dead.write_all(d.to_json().as_bytes())?;
            self.dead.write_all(b"\n")?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.alerts.flush()?;
        self.dead.flush()
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
    let mut source = FileSource::new(input, max_record_bytes);
    let mut sink = JsonlSink { alerts, dead };
    let never = AtomicBool::new(false);
    let mut held_peak = (0, 0);
    let counters = drive(
        &mut source,
        &mut sink,
        pipeline,
        batch_size,
        &never,
        &mut |p, b| {
            let held = p.held();
            held_peak = (held_peak.0.max(held.0), held_peak.1.max(held.1));
            on_batch(p, b.bytes_read)
        },
    )?;
    Ok(Report {
        counters,
        bytes: source.bytes_read(),
        elapsed: start.elapsed(),
        held_peak,
        peak_rss: peak_rss_bytes(),
    })
}
