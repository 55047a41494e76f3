//! The one drive loop: records from a [`Source`] through the [`Pipeline`] into a [`Sink`].
//!
//! File mode and service mode differ only in their source and sink. Per batch the loop
//! reads records, stamps `emitted_at` on the alerts they caused, hands alerts and dead
//! letters to the sink, waits until the sink has them acknowledged, and only then lets
//! the source commit (store offsets, snapshot): at-least-once output, in one place.

use crate::clock::Lane;
use crate::dead_letter::{DeadLetter, Position};
use crate::pipeline::{Counters, Pipeline};
use levee_model::{Alert, Reason};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What a source hands the pipeline: records, and changes to its lanes.
#[derive(Debug)]
pub struct Feed<'p> {
    pipeline: &'p mut Pipeline,
    alerts: Vec<Alert>,
    dead: Vec<DeadLetter>,
    records: usize,
}

impl Feed<'_> {
    /// One record read whole from `lane`.
    pub fn record(&mut self, lane: Lane, bytes: &[u8], pos: Position) {
        self.records += 1;
        self.pipeline
            .process(lane, bytes, pos, &mut self.alerts, &mut self.dead);
    }

    /// A record too long to read whole: its first bytes, dead-lettered as `too_long`.
    pub fn oversized(&mut self, prefix: &[u8], pos: Position) {
        self.records += 1;
        self.pipeline
            .reject(Reason::TooLong, "record", prefix, true, pos, &mut self.dead);
    }

    pub fn assign(&mut self, lane: Lane) {
        self.pipeline.assign_lane(lane);
    }

    pub fn revoke(&mut self, lane: Lane) {
        self.pipeline.revoke_lane(lane, &mut self.alerts);
    }

    pub fn set_idle(&mut self, lane: Lane, idle: bool) {
        self.pipeline.set_lane_idle(lane, idle, &mut self.alerts);
    }

    pub fn pipeline(&self) -> &Pipeline {
        self.pipeline
    }

    /// Records fed in this batch so far.
    pub fn records(&self) -> usize {
        self.records
    }
}

/// Whether a source has more to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Poll {
    More,
    /// End of input: the pipeline is finished (everything held released, detectors flushed).
    End,
}

/// Where records come from (a file, a consumer group).
pub trait Source {
    type Error;
    /// Feed up to `max` records (and any lane changes) into `feed`.
    fn read_batch(&mut self, feed: &mut Feed<'_>, max: usize) -> Result<Poll, Self::Error>;
    /// Everything the batch caused has been acknowledged by the sink: store progress.
    fn commit(&mut self, _pipeline: &Pipeline) -> Result<(), Self::Error> {
        Ok(())
    }
    /// Leaving the loop (end of input or shutdown): last progress, last commit.
    fn close(&mut self, _pipeline: &Pipeline) -> Result<(), Self::Error> {
        Ok(())
    }
    /// Bytes read so far, for progress reports.
    fn bytes_read(&self) -> u64 {
        0
    }
}

/// Where alerts and dead letters go (files, topics).
pub trait Sink {
    type Error;
    /// Hand over a batch's output (alerts already stamped with `emitted_at`).
    fn send(
        &mut self,
        alerts: &mut Vec<Alert>,
        dead: &mut Vec<DeadLetter>,
    ) -> Result<(), Self::Error>;
    /// Return once everything sent is durable (written, or acknowledged by the brokers).
    fn flush(&mut self) -> Result<(), Self::Error>;
}

/// One batch, for metrics and progress.
#[derive(Debug, Clone, Copy)]
pub struct BatchInfo {
    pub records: usize,
    pub elapsed: Duration,
    pub bytes_read: u64,
}

/// Run `source` through `pipeline` into `sink` until end of input or `stop`.
/// `on_batch` sees the pipeline after each batch's output is acknowledged.
pub fn drive<E, S: Source<Error = E>, K: Sink<Error = E>>(
    source: &mut S,
    sink: &mut K,
    pipeline: &mut Pipeline,
    batch_size: usize,
    stop: &AtomicBool,
    on_batch: &mut dyn FnMut(&Pipeline, BatchInfo),
) -> Result<Counters, E> {
    let mut alerts = Vec::new();
    let mut dead = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let mut feed = Feed {
            pipeline,
            alerts: std::mem::take(&mut alerts),
            dead: std::mem::take(&mut dead),
            records: 0,
        };
        let poll = source.read_batch(&mut feed, batch_size)?;
        let records = feed.records;
        (alerts, dead) = (feed.alerts, feed.dead);
        if poll == Poll::End {
            pipeline.finish(&mut alerts);
        }
        let now = now_ms();
        for a in &mut alerts {
            a.emitted_at = now;
        }
        if !alerts.is_empty() || !dead.is_empty() {
            sink.send(&mut alerts, &mut dead)?;
            debug_assert!(alerts.is_empty() && dead.is_empty(), "the sink takes all");
            sink.flush()?;
        }
        if records > 0 || poll == Poll::End {
            source.commit(pipeline)?;
        }
        on_batch(
            pipeline,
            BatchInfo {
                records,
                elapsed: started.elapsed(),
                bytes_read: source.bytes_read(),
            },
        );
        if poll == Poll::End {
            break;
        }
    }
    sink.flush()?;
    source.close(pipeline)?;
    Ok(pipeline.counters().clone())
}

/// Milliseconds since the epoch, wall clock. Used only to stamp `emitted_at`.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
