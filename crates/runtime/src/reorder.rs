//! The reorder buffer: accepted records held until the release watermark passes them.
//!
//! Records leave in canonical order, `(event time, record bytes)`, a function of the
//! events alone: the same set of events gives the detectors the same sequence whatever
//! the arrival order, partitioning or batch sizes. The buffer is bounded in bytes. It is a
//! calendar queue: ~1 s buckets of event time, each sorted once when it is the oldest.
//! A bucket keeps its records in one arena string, each with its decoded event packed
//! behind it (see [`crate::packed`]): holding a record allocates nothing of its own, and
//! release re-borrows the event instead of decoding it again.

use levee_model::{Event, Ts};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// Bytes an entry costs besides its record and skeleton (its slot in a bucket): for the
/// bound and the metric, so that a flood of tiny records is bounded too.
pub const ENTRY_OVERHEAD: usize = std::mem::size_of::<Slot>();

/// One held record: where it lies in its bucket's arena.
#[derive(Debug, Clone, Copy)]
struct Slot {
    ts: Ts,
    at: usize,
    /// The record's length; the skeleton, if any, follows it up to `len`.
    record_len: u32,
    /// Record and skeleton. Equal to `record_len` if nothing is packed (a string had an
    /// escape, or the record came from a snapshot): release then decodes.
    len: u32,
}

impl Slot {
    fn cost(&self) -> usize {
        self.len as usize + ENTRY_OVERHEAD
    }
}

/// A released record, borrowed from the buffer until the next call on it.
#[derive(Debug, Clone, Copy)]
pub struct Released<'a> {
    pub ts: Ts,
    /// Record and skeleton.
    data: &'a str,
    record_len: usize,
}

impl<'a> Released<'a> {
    /// The record as it arrived.
    pub fn record(&self) -> &'a str {
        self.data.get(..self.record_len).unwrap_or_default()
    }

    /// The event, re-borrowed from the record, if it was packed.
    pub fn event(&self) -> Option<Event<'a>> {
        if self.data.len() == self.record_len {
            return None;
        }
        let ev = crate::packed::unpack(self.data, self.ts, self.record_len);
        debug_assert!(ev.is_some(), "a packed event unpacks");
        ev
    }
}

/// Records released together: those of one bucket before the release bound, in order.
/// Borrowed from the buffer for the length of the call that gets it.
#[derive(Debug, Clone, Copy)]
pub struct Run<'a> {
    bucket: &'a Bucket,
    slots: &'a [Slot],
}

impl<'a> Run<'a> {
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The `i`th record of the run.
    pub fn get(&self, i: usize) -> Option<Released<'a>> {
        self.slots.get(i).map(|s| self.bucket.released(*s))
    }

    /// Ask the cache for the `i`th record's lines (its record and skeleton), if there is
    /// one: held ~70 s of event time, it has left the cache by release.
    pub fn prefetch(&self, i: usize) {
        if let Some(s) = self.slots.get(i) {
            let data = self.bucket.data.as_bytes().get(s.at..).unwrap_or_default();
            crate::prefetch::prefetch_bytes(data, (s.len as usize).div_ceil(64));
        }
    }
}

/// Width of a release bucket: records are grouped by `ts >> BUCKET_BITS` (~1 s) and
/// each bucket is sorted once, when it becomes the oldest.
pub(crate) const BUCKET_BITS: u32 = 10;

/// Records of one ~1 s slice of event time. Once `sorted`, ascending by `(ts, record)`,
/// and `slots[next..]` are still held.
#[derive(Debug, Default)]
struct Bucket {
    data: String,
    slots: Vec<Slot>,
    next: usize,
    sorted: bool,
}

impl Bucket {
    fn record(&self, s: &Slot) -> &str {
        self.data
            .get(s.at..s.at + s.record_len as usize)
            .unwrap_or_default()
    }

    fn cmp(&self, a: &Slot, b: &Slot) -> Ordering {
        a.ts.cmp(&b.ts)
            .then_with(|| self.record(a).cmp(self.record(b)))
    }

    fn sort_once(&mut self) {
        if !self.sorted {
            let mut slots = std::mem::take(&mut self.slots);
            slots.sort_unstable_by(|a, b| self.cmp(a, b));
            self.slots = slots;
            self.sorted = true;
        }
    }

    /// Add the record whose text is `data[at..]` (just appended).
    fn add(&mut self, ts: Ts, at: usize, record_len: usize) -> Slot {
        debug_assert!(
            u32::try_from(self.data.len() - at).is_ok(),
            "records are bounded by max_record_bytes (at most 2^30)"
        );
        let slot = Slot {
            ts,
            at,
            record_len: u32::try_from(record_len).unwrap_or(u32::MAX),
            len: u32::try_from(self.data.len() - at).unwrap_or(u32::MAX),
        };
        if self.sorted {
            // A record behind a bucket already being released (out of order): keep it sorted.
            let pos =
                self.next + self.slots[self.next..].partition_point(|x| self.cmp(x, &slot).is_lt());
            self.slots.insert(pos, slot);
        } else {
            self.slots.push(slot);
        }
        slot
    }

    fn released(&self, s: Slot) -> Released<'_> {
        Released {
            ts: s.ts,
            data: self
                .data
                .get(s.at..s.at + s.len as usize)
                .unwrap_or_default(),
            record_len: s.record_len as usize,
        }
    }

    fn is_spent(&self) -> bool {
        self.sorted && self.next == self.slots.len()
    }

    fn held(&self) -> impl Iterator<Item = Released<'_>> {
        self.slots
            .get(self.next..)
            .unwrap_or_default()
            .iter()
            .map(|s| self.released(*s))
    }
}

/// A calendar queue: buckets of ~1 s of event time in a small ordered map (the hold is
/// lateness + grace, ~70 buckets), each sorted when it becomes the oldest. Cheaper than
/// one binary heap over every held record (a pop there costs log n cache misses).
#[derive(Debug, Default)]
pub struct ReorderBuffer {
    buckets: BTreeMap<Ts, Bucket>,
    /// Spent buckets, cleared, whose arenas the next new buckets reuse.
    spare: Vec<Bucket>,
    /// The oldest bucket may be spent (its last record was released): retire it first.
    retire: bool,
    len: usize,
    bytes: usize,
}

/// Spent buckets kept for reuse (each keeps its arena's capacity).
const SPARE_BUCKETS: usize = 4;
/// A spent bucket whose arena grew beyond this (a burst) is freed, not kept.
const SPARE_MAX_BYTES: usize = 8 << 20;

/// The snapshot form of a held record.
#[derive(Serialize, Deserialize)]
#[serde(rename = "Held")]
struct HeldText<'a> {
    ts: Ts,
    #[serde(borrow)]
    record: Cow<'a, str>,
}

/// The snapshot form: every held record, in no particular order.
#[derive(Serialize, Deserialize)]
#[serde(rename = "ReorderBuffer")]
struct Stored<'a> {
    #[serde(borrow)]
    held: Vec<HeldText<'a>>,
}

impl Serialize for ReorderBuffer {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let held = self
            .buckets
            .values()
            .flat_map(Bucket::held)
            .map(|r| HeldText {
                ts: r.ts,
                record: Cow::Borrowed(r.record()),
            })
            .collect();
        Stored { held }.serialize(s)
    }
}

impl<'de> Deserialize<'de> for ReorderBuffer {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let stored = Stored::deserialize(d)?;
        let mut b = ReorderBuffer::default();
        for h in stored.held {
            b.push_bare(h.ts, &h.record);
        }
        Ok(b)
    }
}

impl ReorderBuffer {
    /// Hold `record`, decoded as `ev` (whose strings borrow from `record`).
    pub fn push(&mut self, record: &str, ev: &Event<'_>) {
        self.hold(ev.ts, record, Some(ev));
    }

    /// Hold a record without its decoded event (decoded again at release).
    pub fn push_bare(&mut self, ts: Ts, record: &str) {
        self.hold(ts, record, None);
    }

    /// Append `record` to its bucket's arena, and `ev`'s skeleton behind it if given.
    fn hold(&mut self, ts: Ts, record: &str, ev: Option<&Event<'_>>) {
        let key = ts >> BUCKET_BITS;
        let spare = &mut self.spare;
        // In-order input lands in the newest bucket: reach it without a search.
        let bucket = match self.buckets.last_entry().filter(|e| *e.key() == key) {
            Some(newest) => newest.into_mut(),
            None => self
                .buckets
                .entry(key)
                .or_insert_with(|| spare.pop().unwrap_or_default()),
        };
        let at = bucket.data.len();
        bucket.data.push_str(record);
        if let Some(ev) = ev {
            // An event with an escaped string is not packed: release decodes it again.
            let _ = crate::packed::pack_into(&mut bucket.data, record, ev);
        }
        let slot = bucket.add(ts, at, record.len());
        self.bytes += slot.cost();
        self.len += 1;
    }

    /// Hand every record before `bound` to `f` in [`Run`]s, oldest first: what popping
    /// the oldest record while it is before `bound` would give, without a search per record.
    pub fn release_before(&mut self, bound: Ts, mut f: impl FnMut(Run<'_>)) {
        loop {
            self.drop_spent();
            let Some(mut first) = self.buckets.first_entry() else {
                return;
            };
            if *first.key() << BUCKET_BITS >= bound {
                return;
            }
            let bucket = first.get_mut();
            bucket.sort_once();
            // Sorted by `(ts, record)`, so the records before the bound lead.
            let start = bucket.next;
            let run = start..start + bucket.slots[start..].partition_point(|s| s.ts < bound);
            bucket.next = run.end;
            self.len -= run.len();
            self.bytes -= bucket.slots[run.clone()]
                .iter()
                .map(Slot::cost)
                .sum::<usize>();
            let bucket = &*bucket;
            if !run.is_empty() {
                f(Run {
                    bucket,
                    slots: &bucket.slots[run],
                });
            }
            if !bucket.is_spent() {
                return; // the bound lies within this bucket
            }
        }
    }

    /// The oldest record, if its time is before `bound` (one at a time: the tests'
    /// reference for [`Self::release_before`]).
    #[cfg(test)]
    pub fn pop_before(&mut self, bound: Ts) -> Option<Released<'_>> {
        self.take_oldest(Some(bound))
    }

    /// The oldest record, whatever its time.
    pub fn pop(&mut self) -> Option<Released<'_>> {
        self.take_oldest(None)
    }

    /// Release the next record of the oldest bucket (sorting it first), if before `bound`.
    fn take_oldest(&mut self, bound: Option<Ts>) -> Option<Released<'_>> {
        if self.retire {
            self.drop_spent();
        }
        let mut first = self.buckets.first_entry()?;
        if bound.is_some_and(|b| *first.key() << BUCKET_BITS >= b) {
            return None;
        }
        let bucket = first.get_mut();
        bucket.sort_once();
        let slot = *bucket.slots.get(bucket.next)?;
        if bound.is_some_and(|b| slot.ts >= b) {
            return None;
        }
        bucket.next += 1;
        self.retire = bucket.is_spent();
        self.len -= 1;
        self.bytes -= slot.cost();
        Some(first.into_mut().released(slot))
    }

    /// Retire the oldest buckets once every record of theirs left (their arenas lived
    /// until then: what was released last borrows from them).
    fn drop_spent(&mut self) {
        self.retire = false;
        while let Some(first) = self.buckets.first_entry() {
            if !first.get().is_spent() {
                return;
            }
            let mut b = first.remove();
            if self.spare.len() < SPARE_BUCKETS && b.data.capacity() <= SPARE_MAX_BYTES {
                b.data.clear();
                b.slots.clear();
                b.next = 0;
                b.sorted = false;
                self.spare.push(b);
            }
        }
    }

    /// Recompute the byte count (after a restore: restored entries have nothing packed).
    pub fn recount(&mut self) {
        self.bytes = self
            .buckets
            .values()
            .flat_map(|b| &b.slots[b.next..])
            .map(Slot::cost)
            .sum();
    }

    /// Bytes held (records, packed events and per-entry overhead).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_in_time_then_content_order() {
        let mut b = ReorderBuffer::default();
        for (ts, r) in [(5, "b"), (3, "z"), (5, "a"), (9, "x")] {
            b.push_bare(ts, r);
        }
        assert_eq!(b.bytes(), 4 * (1 + ENTRY_OVERHEAD));
        let mut out = Vec::new();
        while let Some(h) = b.pop_before(9) {
            out.push((h.ts, h.record().to_string()));
        }
        assert_eq!(
            out,
            vec![(3, "z".into()), (5, "a".into()), (5, "b".into())],
            "ties broken by content, the bound is exclusive"
        );
        assert_eq!(b.len(), 1);
        assert_eq!(b.pop().map(|h| h.ts), Some(9));
        assert_eq!((b.bytes(), b.is_empty()), (0, true));
    }

    /// The next number of a 64-bit linear congruential sequence (test input).
    fn lcg(x: u64) -> u64 {
        x.wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407)
    }

    /// Against a plain sort: interleaved pushes and releases, records behind a bucket being
    /// released, ties, negative times, and a snapshot round trip in the middle.
    #[test]
    fn releases_in_canonical_order_across_buckets() {
        let mut b = ReorderBuffer::default();
        let mut all: Vec<(Ts, String)> = Vec::new();
        let mut out: Vec<(Ts, String)> = Vec::new();
        let mut x: u64 = 7;
        let mut bound = -5_000;
        for i in 0..5_000 {
            x = lcg(x);
            let ts = bound + (x >> 40) as Ts % 70_000 - if i % 97 == 0 { 3_000 } else { 0 };
            let r = format!("r{}", (x >> 20) % 50);
            all.push((ts, r.clone()));
            b.push_bare(ts, &r);
            if i % 50 == 0 {
                bound += 1_500;
                while let Some(h) = b.pop_before(bound) {
                    assert!(h.ts < bound);
                    out.push((h.ts, h.record().to_string()));
                }
            }
            if i == 2_500 {
                let json = serde_json::to_string(&b).expect("serialize");
                b = serde_json::from_str(&json).expect("deserialize");
            }
        }
        while let Some(h) = b.pop() {
            out.push((h.ts, h.record().to_string()));
        }
        assert_eq!((b.len(), b.bytes()), (0, 0));
        assert_eq!(out.len(), all.len());
        // Each release is sorted, and nothing released is newer than a later release's
        // records, except records that arrived behind the bound (counted as out of order).
        let mut sorted = out.clone();
        sorted.sort();
        all.sort();
        assert_eq!(sorted, all, "every record leaves exactly once");
        let inversions = out.windows(2).filter(|w| w[0] > w[1]).count();
        assert!(inversions <= all.len() / 97 + 1, "{inversions} inversions");
    }

    fn records(run: Run<'_>) -> Vec<(Ts, String)> {
        assert!(!run.is_empty(), "no empty runs");
        (0..run.len())
            .filter_map(|i| run.get(i))
            .map(|h| (h.ts, h.record().to_string()))
            .collect()
    }

    /// Releasing in runs gives what releasing one record at a time gives, at every bound.
    #[test]
    fn a_run_releases_what_single_pops_release() {
        let (mut runs, mut pops) = (ReorderBuffer::default(), ReorderBuffer::default());
        let mut x: u64 = 11;
        let mut bound = 0;
        for i in 0..4_000 {
            x = lcg(x);
            // Mostly in order, some behind the bound, ties and spread over many buckets.
            let ts = bound + (x >> 40) as Ts % 9_000 - if i % 13 == 0 { 2_000 } else { 0 };
            let r = format!("r{}", (x >> 20) % 40);
            runs.push_bare(ts, &r);
            pops.push_bare(ts, &r);
            if i % 25 == 0 {
                bound += 700;
                let mut a = Vec::new();
                runs.release_before(bound, |run| a.extend(records(run)));
                let mut b = Vec::new();
                while let Some(h) = pops.pop_before(bound) {
                    b.push((h.ts, h.record().to_string()));
                }
                assert_eq!(a, b, "at bound {bound}");
                assert_eq!((runs.len(), runs.bytes()), (pops.len(), pops.bytes()));
            }
        }
        let mut a = Vec::new();
        runs.release_before(Ts::MAX, |run| a.extend(records(run)));
        let mut b = Vec::new();
        while let Some(h) = pops.pop() {
            b.push((h.ts, h.record().to_string()));
        }
        assert_eq!(a, b);
        assert!(!a.is_empty());
        assert_eq!((runs.len(), runs.bytes()), (0, 0));
    }

    #[test]
    fn snapshots_hold_records_as_text() {
        let limits = levee_model::Limits::default();
        let r = r#"{"type":"login","ts":7,"account":"é"}"#;
        let mut b = ReorderBuffer::default();
        b.push(
            r,
            &levee_model::decode(r.as_bytes(), &limits).expect("valid"),
        );
        let json = serde_json::to_string(&b).expect("serialize");
        assert_eq!(
            json,
            r#"{"held":[{"ts":7,"record":"{\"type\":\"login\",\"ts\":7,\"account\":\"é\"}"}]}"#
        );
        let mut back: ReorderBuffer = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(
            back.pop().map(|h| (h.ts, h.record().to_owned())),
            Some((7, r.into()))
        );
    }

    #[test]
    fn a_held_event_comes_back_identical_without_decoding() {
        let limits = levee_model::Limits::default();
        let records = [
            r#"{"type":"engage","ts":5,"account":"a","action":"like","post":"p","author":"u","topics":["t1","t2"],"device":"d","ua":"x"}"#,
            r#"{"type":"post","ts":5,"account":"a","post":"p","text":"hi","topics":[],"reply_to":"q"}"#,
            r#"{"type":"register","ts":5,"account":"a","name":"n","ip":"203.0.113.7"}"#,
            r#"{"type":"hotlist","ts":5,"account":"a","topic":"t","action":"search","rank":3}"#,
            r#"{"type":"follow","ts":5,"account":"a","target":"b"}"#,
            r#"{"type":"login","ts":5,"account":"esc\u0061ped"}"#,
        ];
        let mut b = ReorderBuffer::default();
        for r in records {
            b.push(
                r,
                &levee_model::decode(r.as_bytes(), &limits).expect("valid"),
            );
        }
        assert!(b.bytes() >= records.iter().map(|r| r.len() + ENTRY_OVERHEAD).sum());
        let mut n = 0;
        while let Some(h) = b.pop() {
            let want = levee_model::decode(h.record().as_bytes(), &limits).expect("valid");
            match h.event() {
                Some(got) => assert_eq!(got, want, "{}", h.record()),
                None => assert!(
                    h.record().contains('\\'),
                    "only an unescaped copy falls back: {}",
                    h.record()
                ),
            }
            n += 1;
        }
        assert_eq!((n, b.len(), b.bytes()), (records.len(), 0, 0));
    }
}
