//! First sightings: pairs seen co-engaging on one target only, in a bounded, set-associative table.
//!
//! Most co-engagements are coincidences that never recur. Giving each one an exact map
//! entry made memory grow with the population; here a pair waits in a fixed-size slot
//! (24 bytes) until it co-engages on a second target, when it is admitted to the exact
//! pair map with its first sighting's evidence intact (time, post degree, gap). Nothing
//! is approximated while the table has room: an entry is exact, keyed by the full pair.
//! Each pair may sit in either of two buckets (two-choice hashing: tables fill to ~90%
//! before both are full). When both are full of live entries the table doubles, up to
//! `max_slots`; beyond that the entry seen longest ago is overwritten (counted: the
//! pair's next sighting starts over). Expiry is lazy: an entry older than the cutoff of
//! the last sweep is free.
//!
//! A slot keeps its times in milliseconds after the table's `base` (32 bits: 49 days);
//! the base moves forward, every slot with it, once in ~24 days of event time. The
//! config bounds what the narrow fields hold (`single_pair_ttl_ms` < 2^31, degrees and
//! gaps < 2^16), so a sighting comes out as it went in.

use levee_model::Ts;
use serde::{Deserialize, Serialize};

/// Entries per bucket.
const WAYS: usize = 4;
/// The table starts this small and doubles under pressure.
const MIN_SLOTS: usize = 1 << 12;
/// How far behind the newest time the base is set (the longest time-to-live it serves).
pub const BASE_LAG_MS: Ts = 1 << 31;

/// One pair's first sighting, as the detector sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sighting {
    pub key: u64,
    pub first: Ts,
    /// `last - first`, ms.
    pub last_delta: u32,
    /// The post's engagement count when the pair was seen on it (its weight follows).
    pub degree: u32,
    pub target: u32,
    pub gap_ms: u32,
}

impl Sighting {
    pub fn last(&self) -> Ts {
        self.first + Ts::from(self.last_delta)
    }
}

/// A sighting in the table: times after the table's base. `key == 0` is an empty slot
/// (a pair key is never 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Slot {
    key: u64,
    /// `first - base`, ms.
    first: u32,
    last_delta: u32,
    target: u32,
    degree: u16,
    gap_ms: u16,
}

impl Slot {
    /// Milliseconds after the base of the last sighting.
    fn last(&self) -> u64 {
        u64::from(self.first) + u64::from(self.last_delta)
    }

    /// Holds a pair not expired at `cutoff`, times counted from `base`.
    fn live(&self, base: Ts, cutoff: Ts) -> bool {
        self.key != 0 && base.saturating_add(self.last() as Ts) >= cutoff
    }
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct Sightings {
    slots: Vec<Slot>,
    max_slots: usize,
    /// The time slots count from.
    base: Ts,
    /// Entries last seen before this are free (the single-pair cutoff of the last sweep).
    cutoff: Ts,
    /// Non-empty slots (live or expired).
    occupied: usize,
    /// Live entries overwritten because the table was full at `max_slots` (or frozen).
    pub overwritten: u64,
    /// No growth while set (the detector is over its memory budget): a full bucket
    /// overwrites its oldest entry, as at the bound.
    pub frozen: bool,
}

/// The two buckets (first slot index of each) `key` may live in.
fn buckets_of(key: u64, slots: usize) -> [usize; 2] {
    debug_assert!(slots.is_power_of_two() && slots >= 2 * WAYS);
    // splitmix64's finalizer: every key bit reaches every hash bit (pair keys are two
    // small ids side by side, which a bare multiply would map onto few buckets).
    let mut h = key ^ (key >> 30);
    h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94D0_49BB_1331_11EB);
    h ^= h >> 31;
    let b = |h: u64| (h as usize & (slots - 1)) & !(WAYS - 1);
    let (b1, b2) = (b(h), b(h >> 32));
    // Distinct buckets, so that two choices are two.
    [b1, if b2 == b1 { b1 ^ WAYS } else { b2 }]
}

impl Sightings {
    pub fn new(max_slots: usize) -> Self {
        Sightings {
            max_slots: max_slots.next_power_of_two().max(MIN_SLOTS),
            cutoff: Ts::MIN,
            ..Sightings::default()
        }
    }

    /// Holds a pair not yet expired at the cutoff (an empty slot never does).
    fn live(&self, s: &Slot) -> bool {
        s.live(self.base, self.cutoff)
    }

    fn find(&self, key: u64) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let [b1, b2] = buckets_of(key, self.slots.len());
        (b1..b1 + WAYS)
            .chain(b2..b2 + WAYS)
            .find(|i| self.slots[*i].key == key && self.live(&self.slots[*i]))
    }

    fn sighting(&self, s: &Slot) -> Sighting {
        Sighting {
            key: s.key,
            first: self.base + Ts::from(s.first),
            last_delta: s.last_delta,
            degree: u32::from(s.degree),
            target: s.target,
            gap_ms: u32::from(s.gap_ms),
        }
    }

    /// The live first sighting of `key`, if any.
    pub fn get(&self, key: u64) -> Option<Sighting> {
        Some(self.sighting(&self.slots[self.find(key)?]))
    }

    /// The pair of `key` (live) was seen again at `ts`.
    pub fn see(&mut self, key: u64, ts: Ts) {
        self.fit(ts);
        let Some(i) = self.find(key) else { return };
        let s = &mut self.slots[i];
        let (first, last) = (u64::from(s.first), s.last());
        let t = (ts - self.base) as u64;
        let (first, last) = (first.min(t), last.max(t));
        s.first = first as u32;
        s.last_delta = u32::try_from(last - first).unwrap_or(u32::MAX);
    }

    /// Read the first word of both buckets of `key` and return it: a pass of these over
    /// all partners of an engagement before the real lookups lets their cache misses
    /// overlap (independent loads), instead of one stalled miss per lookup.
    pub fn touch(&self, key: u64) -> u64 {
        if self.slots.is_empty() {
            return 0;
        }
        let [b1, b2] = buckets_of(key, self.slots.len());
        self.slots[b1].key ^ self.slots[b2].key
    }

    /// Forget `key` (it was admitted to the exact map).
    pub fn remove(&mut self, key: u64) {
        if let Some(i) = self.find(key) {
            self.slots[i] = Slot::default();
            self.occupied -= 1;
        }
    }

    /// Make `ts` representable: within 32 bits of milliseconds after the base. When it is
    /// not (every ~24 days of event time, or on a first sighting), slots last seen more
    /// than `BASE_LAG_MS` before `ts` are dropped (past any time-to-live the config allows)
    /// and the base moves to the earliest first time kept, but no more than 37 days before
    /// `ts`: a first time before that (a sighting on one post spanning weeks) is clamped.
    fn fit(&mut self, ts: Ts) {
        if self.occupied == 0 {
            // Nothing to move (no scan: an emptied table of millions of slots stays cheap).
            self.base = ts.saturating_sub(BASE_LAG_MS);
            return;
        }
        if ts >= self.base && ts - self.base <= Ts::from(u32::MAX) {
            return;
        }
        let (old, oldest) = (self.base, ts.saturating_sub(BASE_LAG_MS));
        let at = |rel: u64| old.saturating_add(rel as Ts);
        let kept = self
            .slots
            .iter()
            .filter(|s| s.key != 0 && at(s.last()) >= oldest);
        let earliest = kept.map(|s| at(u64::from(s.first))).min().unwrap_or(oldest);
        // At most 37 days back: the next move is at least 12 days of event time away.
        let base = earliest.clamp(ts.saturating_sub(BASE_LAG_MS + (1 << 30)), ts);
        let end = base.saturating_add(Ts::from(u32::MAX));
        for s in self.slots.iter_mut().filter(|s| s.key != 0) {
            let (first, last) = (at(u64::from(s.first)), at(s.last()));
            if last < oldest {
                *s = Slot::default();
                self.occupied -= 1;
                continue;
            }
            let first = first.clamp(base, end);
            let last = last.clamp(first, end);
            s.first = (first - base) as u32;
            s.last_delta = (last - first) as u32;
        }
        self.base = base;
    }

    /// Record a first sighting (its key must not be live in the table).
    pub fn insert(&mut self, s: Sighting) {
        debug_assert!(s.key != 0);
        debug_assert!(s.degree <= u32::from(u16::MAX) && s.gap_ms <= u32::from(u16::MAX));
        if self.slots.is_empty() {
            self.slots = vec![Slot::default(); MIN_SLOTS.min(self.max_slots)];
        }
        self.fit(s.first);
        self.fit(s.last());
        let first = s.first.max(self.base);
        let slot = Slot {
            key: s.key,
            first: (first - self.base) as u32,
            last_delta: u32::try_from(s.last() - first).unwrap_or(u32::MAX),
            target: s.target,
            degree: u16::try_from(s.degree).unwrap_or(u16::MAX),
            gap_ms: u16::try_from(s.gap_ms).unwrap_or(u16::MAX),
        };
        self.put(slot);
    }

    fn put(&mut self, s: Slot) {
        loop {
            let [b1, b2] = buckets_of(s.key, self.slots.len());
            // The emptier of the two buckets (greedy two-choice keeps buckets even).
            let free = |b: usize| {
                (b..b + WAYS)
                    .filter(|i| !self.live(&self.slots[*i]))
                    .count()
            };
            let b = if free(b2) > free(b1) { b2 } else { b1 };
            if let Some(i) = (b..b + WAYS).find(|i| !self.live(&self.slots[*i])) {
                if self.slots[i].key == 0 {
                    self.occupied += 1;
                }
                self.slots[i] = s;
                return;
            }
            if self.slots.len() < self.max_slots && !self.frozen {
                self.grow();
                continue;
            }
            // Full at the bound: overwrite the entry seen longest ago.
            let i = (b1..b1 + WAYS)
                .chain(b2..b2 + WAYS)
                .min_by_key(|i| (self.slots[*i].last(), self.slots[*i].key))
                .unwrap_or(b1);
            self.slots[i] = s;
            self.overwritten += 1;
            return;
        }
    }

    /// Double the table (more if a live entry finds both its buckets full), up to `max_slots`.
    /// Live entries move straight from the old table to the new one: at the last doubling
    /// the two tables are the peak of the detector's memory, with no third copy.
    fn grow(&mut self) {
        let mut len = self.slots.len().max(MIN_SLOTS);
        let mut old = std::mem::take(&mut self.slots);
        loop {
            len = (len * 2).min(self.max_slots);
            self.slots = vec![Slot::default(); len];
            self.occupied = 0;
            let mut lost = Vec::new();
            let (base, cutoff) = (self.base, self.cutoff);
            for s in old.iter().filter(|s| s.live(base, cutoff)) {
                if !self.place(*s) {
                    lost.push(*s);
                }
            }
            if lost.is_empty() || len >= self.max_slots {
                // At the bound, what does not fit is lost, and counted.
                self.overwritten += lost.len() as u64;
                return;
            }
            // Rare: a bucket pair overflowed; start over, larger, with every live entry.
            old = std::mem::take(&mut self.slots);
            old.append(&mut lost);
        }
    }

    /// Put a live entry in a free slot of one of its buckets; false if both are full.
    fn place(&mut self, s: Slot) -> bool {
        let [b1, b2] = buckets_of(s.key, self.slots.len());
        let free = |b: usize| (b..b + WAYS).filter(|i| self.slots[*i].key == 0).count();
        let b = if free(b2) > free(b1) { b2 } else { b1 };
        match (b..b + WAYS).find(|i| self.slots[*i].key == 0) {
            Some(i) => {
                self.slots[i] = s;
                self.occupied += 1;
                true
            }
            None => false,
        }
    }

    /// From now on, entries last seen before `cutoff` are free.
    pub fn expire_before(&mut self, cutoff: Ts) {
        self.cutoff = self.cutoff.max(cutoff);
    }

    /// `(non-empty slots, bytes allocated)`.
    pub fn size(&self) -> (usize, usize) {
        (
            self.occupied,
            self.slots.len() * std::mem::size_of::<Slot>(),
        )
    }

    fn entries(&self) -> impl Iterator<Item = Sighting> + '_ {
        self.slots
            .iter()
            .filter(|s| self.live(s))
            .map(|s| self.sighting(s))
    }
}

/// Snapshot form: the bound, the cutoff, the overwrite count and the live entries only.
#[derive(Serialize, Deserialize)]
#[serde(rename = "Sightings")]
struct Repr {
    max_slots: usize,
    cutoff: Ts,
    overwritten: u64,
    live: Vec<Sighting>,
}

impl Serialize for Sightings {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let live: Vec<Sighting> = self.entries().collect();
        Repr {
            max_slots: self.max_slots,
            cutoff: self.cutoff,
            overwritten: self.overwritten,
            live,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Sightings {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let r = Repr::deserialize(d)?;
        let mut t = Sightings::new(r.max_slots);
        t.cutoff = r.cutoff;
        for s in r.live.into_iter().filter(|s| s.key != 0) {
            t.insert(s);
        }
        t.overwritten = r.overwritten;
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(key: u64, first: Ts) -> Sighting {
        Sighting {
            key,
            first,
            target: 7,
            ..Sighting::default()
        }
    }

    #[test]
    fn exact_while_there_is_room_then_bounded() {
        let mut t = Sightings::new(1 << 15);
        for k in 1..=10_000u64 {
            t.insert(s(k, k as Ts));
        }
        assert_eq!(
            t.overwritten, 0,
            "the table grows instead of losing entries"
        );
        assert!((1..=10_000u64).all(|k| t.get(k).is_some_and(|e| e.first == k as Ts)));
        assert_eq!(t.size().0, 10_000);
        for k in 10_001..=60_000u64 {
            t.insert(s(k, k as Ts));
        }
        assert_eq!(t.size().1, (1 << 15) * 24, "never beyond max_slots");
        assert!(t.overwritten >= 60_000 - (1 << 15), "losses are counted");
        assert!(t.get(60_000).is_some(), "the newest is kept");

        t.expire_before(59_000);
        assert!(t.get(58_999).is_none() && t.get(59_000).is_some());
        t.remove(59_000);
        assert!(t.get(59_000).is_none());
    }

    #[test]
    fn times_come_out_exact_as_the_base_moves_forward() {
        const DAY: Ts = 86_400_000;
        let mut t = Sightings::new(1 << 12);
        let t0 = 1_732_000_000_123;
        t.insert(s(1, t0));
        t.insert(Sighting {
            degree: 500,
            gap_ms: 60_000,
            ..s(2, t0 + 10 * DAY)
        });
        t.see(2, t0 + 20 * DAY + 7);
        // 40 days on the base moves (beyond the 32-bit span): the entry last seen 40 days
        // ago goes, the one seen 20 days ago stays whole (nothing expired it: no sweep ran).
        t.insert(s(3, t0 + 40 * DAY));
        assert!(t.get(1).is_none(), "last seen before the new base");
        assert_eq!(
            t.get(2),
            Some(Sighting {
                key: 2,
                first: t0 + 10 * DAY,
                last_delta: (10 * DAY + 7) as u32,
                degree: 500,
                gap_ms: 60_000,
                target: 7,
            })
        );
        assert_eq!(
            t.get(3).map(|e| (e.first, e.last())),
            Some((t0 + 40 * DAY, t0 + 40 * DAY))
        );
    }

    #[test]
    fn snapshots_keep_live_entries_only() {
        let mut t = Sightings::new(1 << 12);
        for k in 1..=100u64 {
            t.insert(s(k, k as Ts * 10));
        }
        t.expire_before(500);
        let json = serde_json::to_string(&t).expect("serialize");
        let back: Sightings = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back.size().0, 51);
        assert!(back.get(50).is_some() && back.get(49).is_none());
    }
}
