//! The event clock: watermark, late-event classification and tick scheduling.

use levee_model::Ts;
use serde::{Deserialize, Serialize};

/// How an event's time relates to the watermark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeliness {
    /// At or after the watermark.
    OnTime,
    /// Behind the watermark but within the grace bound: processed and counted.
    Late,
    /// Behind the watermark by more than the grace bound: dead-lettered (`late`).
    TooLate,
}

/// Watermark = max event time seen - allowed lateness. Monotonic by construction.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventClock {
    lateness: i64,
    grace: i64,
    tick_interval: i64,
    max_ts: Option<Ts>,
    next_tick: Ts,
}

impl EventClock {
    pub fn new(lateness_ms: i64, grace_ms: i64, tick_interval_ms: i64) -> Self {
        debug_assert!(lateness_ms >= 0 && grace_ms >= 0 && tick_interval_ms > 0);
        EventClock {
            lateness: lateness_ms,
            grace: grace_ms,
            tick_interval: tick_interval_ms,
            max_ts: None,
            next_tick: Ts::MIN,
        }
    }

    /// The current watermark, or `None` before the first event.
    pub fn watermark(&self) -> Option<Ts> {
        self.max_ts.map(|m| m.saturating_sub(self.lateness))
    }

    /// Classify `ts` against the current watermark, then advance the clock with it.
    /// Too-late events do not advance the clock (they are not processed).
    pub fn observe(&mut self, ts: Ts) -> Timeliness {
        let t = match self.watermark() {
            Some(wm) if ts < wm.saturating_sub(self.grace) => return Timeliness::TooLate,
            Some(wm) if ts < wm => Timeliness::Late,
            _ => Timeliness::OnTime,
        };
        self.max_ts = Some(self.max_ts.map_or(ts, |m| m.max(ts)));
        t
    }

    /// If the watermark has crossed the next tick boundary, return it (once) and
    /// schedule the following boundary. A gap of many intervals yields one tick.
    pub fn due_tick(&mut self) -> Option<Ts> {
        let wm = self.watermark()?;
        if wm < self.next_tick {
            return None;
        }
        self.next_tick = (wm.div_euclid(self.tick_interval) + 1).saturating_mul(self.tick_interval);
        debug_assert!(self.next_tick > wm);
        Some(wm)
    }

    /// End of input: close the lateness window, the watermark becomes the newest event time.
    pub fn close(&mut self) -> Option<Ts> {
        self.lateness = 0;
        self.max_ts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_and_ticks() {
        let mut c = EventClock::new(10_000, 60_000, 1_000);
        assert_eq!(c.due_tick(), None, "no tick before any event");
        assert_eq!(c.observe(100_000), Timeliness::OnTime);
        assert_eq!(c.due_tick(), Some(90_000));
        assert_eq!(c.due_tick(), None, "one tick per boundary");
        assert_eq!(
            c.observe(95_000),
            Timeliness::OnTime,
            "within lateness is on time"
        );
        assert_eq!(c.observe(89_999), Timeliness::Late);
        assert_eq!(
            c.observe(30_000),
            Timeliness::Late,
            "exactly at the grace bound"
        );
        assert_eq!(c.observe(29_999), Timeliness::TooLate);
        assert_eq!(
            c.watermark(),
            Some(90_000),
            "late events do not move the watermark"
        );
        assert_eq!(c.observe(100_999), Timeliness::OnTime);
        assert_eq!(
            c.due_tick(),
            None,
            "watermark 90,999 has not reached 91,000"
        );
        assert_eq!(c.observe(500_000), Timeliness::OnTime);
        assert_eq!(c.due_tick(), Some(490_000), "a gap gives a single tick");
        assert_eq!(c.close(), Some(500_000));
        assert_eq!(c.watermark(), Some(500_000));
    }
}
