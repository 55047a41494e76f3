//! Event time across input lanes: per-lane clocks, the release watermark, and tick boundaries.
//!
//! A *lane* is one ordered input: a Kafka partition, or the one file of file mode. Each
//! lane keeps its own newest event time, and an event is judged late only against its
//! own lane. The release watermark is the minimum over the lanes that hold it back
//! (assigned and not idle), minus the hold (`allowed_lateness + late_grace`): no event
//! any such lane still accepts can be older than it, so everything older may be handed
//! to the detectors in canonical order. Idle lanes (caught up and silent, decided by the
//! runtime) do not hold it back; when every lane is idle the newest lane alone sets it.

use levee_model::Ts;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An input lane: a Kafka partition number, or 0 for a file.
pub type Lane = i32;

/// How an event's time relates to its own lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeliness {
    /// Within `allowed_lateness` of the lane's newest event (or newer).
    OnTime,
    /// Behind that, but within `late_grace` more: processed in order and counted.
    Late,
    /// Older than the lane's newest event by more than lateness plus grace: dead-lettered.
    TooLate,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct LaneClock {
    newest: Option<Ts>,
    /// Set by the runtime; a restored lane is unassigned until the source assigns it again.
    #[serde(skip)]
    assigned: bool,
    #[serde(skip)]
    idle: bool,
}

/// Per-lane event time and the release watermark derived from it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Lanes {
    lateness: i64,
    grace: i64,
    lanes: BTreeMap<Lane, LaneClock>,
    /// Cached release watermark; `None` while some holding lane has seen nothing.
    #[serde(skip)]
    cached: Option<Option<Ts>>,
}

impl Lanes {
    pub fn new(lateness_ms: i64, grace_ms: i64) -> Self {
        debug_assert!(lateness_ms >= 0 && grace_ms >= 0);
        Lanes {
            lateness: lateness_ms,
            grace: grace_ms,
            lanes: BTreeMap::new(),
            cached: None,
        }
    }

    /// How far behind its lane's newest event an event may be and still be processed in order.
    pub fn hold(&self) -> i64 {
        self.lateness.saturating_add(self.grace)
    }

    /// Classify `ts` against its lane and advance that lane (too-late events do not advance it).
    /// A record makes its lane assigned and not idle.
    pub fn observe(&mut self, lane: Lane, ts: Ts) -> Timeliness {
        let hold = self.hold();
        let lateness = self.lateness;
        let l = self.lanes.entry(lane).or_default();
        let t = match l.newest {
            Some(n) if ts < n.saturating_sub(hold) => return Timeliness::TooLate,
            Some(n) if ts < n.saturating_sub(lateness) => Timeliness::Late,
            _ => Timeliness::OnTime,
        };
        let was = (l.newest, l.assigned, l.idle);
        l.newest = Some(l.newest.map_or(ts, |n| n.max(ts)));
        l.assigned = true;
        l.idle = false;
        if was != (l.newest, l.assigned, l.idle) {
            self.invalidate_if_bound_moves(was.0, was.1, was.2);
        }
        t
    }

    /// The source now reads `lane` (a Kafka assignment). Until it sends a record or turns
    /// idle, a lane with no history holds the release watermark back.
    pub fn assign(&mut self, lane: Lane) {
        let l = self.lanes.entry(lane).or_default();
        l.assigned = true;
        l.idle = false;
        self.cached = None;
    }

    /// The source no longer reads `lane`: it stops holding the watermark back (its
    /// history is kept, so a later re-assignment judges lateness as before).
    pub fn revoke(&mut self, lane: Lane) {
        if let Some(l) = self.lanes.get_mut(&lane) {
            l.assigned = false;
            self.cached = None;
        }
    }

    /// Mark `lane` idle (caught up and silent) or not. Idle lanes do not hold the watermark.
    pub fn set_idle(&mut self, lane: Lane, idle: bool) {
        if let Some(l) = self.lanes.get_mut(&lane) {
            if l.idle != idle {
                l.idle = idle;
                self.cached = None;
            }
        }
    }

    /// The release watermark: every event a holding lane can still accept is at or after it.
    pub fn watermark(&mut self) -> Option<Ts> {
        if let Some(c) = self.cached {
            return c;
        }
        let w = self.compute();
        self.cached = Some(w);
        w
    }

    fn compute(&self) -> Option<Ts> {
        let mut min: Option<Ts> = None;
        let mut newest: Option<Ts> = None;
        let mut holding = false;
        for l in self.lanes.values().filter(|l| l.assigned) {
            newest = newest.max(l.newest);
            if l.idle {
                continue;
            }
            holding = true;
            let n = l.newest?; // a holding lane that has seen nothing blocks release
            min = Some(min.map_or(n, |m| m.min(n)));
        }
        let base = if holding { min } else { newest };
        base.map(|b| b.saturating_sub(self.hold()))
    }

    /// A lane moved: the cached minimum changes only if that lane could have been the minimum.
    fn invalidate_if_bound_moves(&mut self, old: Option<Ts>, was_assigned: bool, was_idle: bool) {
        let Some(Some(w)) = self.cached else {
            self.cached = None;
            return;
        };
        let was_min = old.is_none_or(|o| o.saturating_sub(self.hold()) <= w);
        if was_min || !was_assigned || was_idle {
            self.cached = None;
        }
    }

    /// Newest event time over all lanes.
    pub fn newest(&self) -> Option<Ts> {
        self.lanes.values().filter_map(|l| l.newest).max()
    }

    /// `(lane, newest event time)` of every assigned lane.
    pub fn assigned(&self) -> impl Iterator<Item = (Lane, Option<Ts>, bool)> + '_ {
        self.lanes
            .iter()
            .filter(|(_, l)| l.assigned)
            .map(|(k, l)| (*k, l.newest, l.idle))
    }

    /// Assigned lanes whose newest event is more than `drift_ms` ahead of the slowest
    /// holding lane: the source should pause them until the others catch up.
    pub fn ahead(&self, drift_ms: i64) -> Vec<Lane> {
        let slowest = self
            .lanes
            .values()
            .filter(|l| l.assigned && !l.idle)
            .map(|l| l.newest)
            .min();
        let Some(slowest) = slowest else {
            return Vec::new();
        };
        // A holding lane with no record yet: everyone else waits for its first one.
        let floor = slowest.unwrap_or(Ts::MIN);
        self.lanes
            .iter()
            .filter(|(_, l)| {
                l.assigned && l.newest.is_some_and(|n| n > floor.saturating_add(drift_ms))
            })
            .map(|(k, _)| *k)
            .collect()
    }
}

/// Tick boundaries: every multiple of the interval, in event-time order with the events.
/// Detectors receive one tick per boundary the released stream crosses, so the ticks are
/// a function of the released events and the watermark alone, never of batch sizes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ticker {
    interval: i64,
    /// The last boundary ticked.
    last: Option<Ts>,
}

/// A gap longer than this many intervals is crossed with this many ticks at its end
/// (an event years ahead must not make millions of empty ticks).
pub const MAX_GAP_TICKS: i64 = 1_000_000;

impl Ticker {
    pub fn new(interval_ms: i64) -> Self {
        debug_assert!(interval_ms > 0);
        Ticker {
            interval: interval_ms,
            last: None,
        }
    }

    /// Boundaries in `(last, upto]`, oldest first, marking them ticked.
    pub fn due(&mut self, upto: Ts) -> impl Iterator<Item = Ts> {
        let i = self.interval;
        let top = upto.div_euclid(i).saturating_mul(i);
        let first = match self.last {
            Some(l) if l >= top => top.saturating_add(i), // nothing due
            Some(l) => l
                .saturating_add(i)
                .max(top.saturating_sub((MAX_GAP_TICKS - 1) * i)),
            None => top,
        };
        if self.last.is_none_or(|l| l < top) {
            self.last = Some(top);
        }
        (0..)
            .map(move |k: i64| first.saturating_add(k.saturating_mul(i)))
            .take_while(move |b| *b <= top)
    }

    pub fn last(&self) -> Option<Ts> {
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lateness_is_judged_per_lane() {
        let mut l = Lanes::new(10_000, 60_000);
        assert_eq!(l.watermark(), None, "nothing seen");
        assert_eq!(l.observe(0, 1_000_000), Timeliness::OnTime);
        assert_eq!(l.watermark(), Some(930_000));
        // Lane 1 far behind lane 0 is not late: lateness is per lane.
        assert_eq!(l.observe(1, 100_000), Timeliness::OnTime);
        assert_eq!(l.watermark(), Some(30_000), "the slowest lane holds it");
        assert_eq!(l.observe(1, 89_999), Timeliness::Late);
        assert_eq!(
            l.observe(1, 30_000),
            Timeliness::Late,
            "exactly lateness + grace"
        );
        assert_eq!(l.observe(1, 29_999), Timeliness::TooLate);
        l.set_idle(1, true);
        assert_eq!(
            l.watermark(),
            Some(930_000),
            "an idle lane does not hold it"
        );
        assert_eq!(
            l.ahead(60_000),
            Vec::<Lane>::new(),
            "idle lanes are not the slowest"
        );
        l.set_idle(1, false);
        assert_eq!(l.ahead(60_000), vec![0], "lane 0 runs ahead of lane 1");
        l.revoke(1);
        assert_eq!(
            l.watermark(),
            Some(930_000),
            "a revoked lane does not hold it"
        );
        l.assign(2);
        assert_eq!(
            l.watermark(),
            None,
            "a new lane holds it until its first record"
        );
        l.set_idle(2, true);
        l.set_idle(0, true);
        assert_eq!(
            l.watermark(),
            Some(930_000),
            "all idle: the newest lane sets it"
        );
    }

    #[test]
    fn ticks_cover_every_boundary_once() {
        let mut t = Ticker::new(1_000);
        assert_eq!(t.due(5_500).collect::<Vec<_>>(), vec![5_000]);
        assert_eq!(t.due(5_900).count(), 0);
        assert_eq!(t.due(8_000).collect::<Vec<_>>(), vec![6_000, 7_000, 8_000]);
        assert_eq!(t.due(7_000).count(), 0, "never backwards");
        let n = t.due(8_000 + 10 * MAX_GAP_TICKS * 1_000).count() as i64;
        assert_eq!(n, MAX_GAP_TICKS, "a huge gap is capped");
    }
}
