//! The reorder buffer: accepted records held until the release watermark passes them.
//!
//! Records leave in canonical order, `(event time, record bytes)`, a function of the
//! events alone: the same set of events gives the detectors the same sequence whatever
//! the arrival order, partitioning or batch sizes. The buffer is bounded in bytes. It is a
//! calendar queue: ~1 s buckets of event time, each sorted once when it is the oldest.

use levee_model::{Event, Ts};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// Bytes an entry costs besides its record and skeleton (its slot in a bucket, the
/// allocation's header): for the bound and the metric, so that a flood of tiny records
/// is bounded too.
pub const ENTRY_OVERHEAD: usize = 48;

/// One accepted record, already validated (UTF-8 JSON), waiting for release, with its
/// decoded event packed behind it (see [`crate::packed`]) so that release need not decode
/// it again. Ordered by `(ts, record)`; snapshots keep only those two.
#[derive(Debug, Clone)]
pub struct Held {
    pub ts: Ts,
    /// The record's length in `data`, or `u32::MAX` if nothing is packed behind it (a
    /// string had an escape, or the record came from a snapshot): release then decodes.
    record_len: u32,
    data: Box<str>,
}

/// The snapshot form of a held record.
#[derive(Serialize, Deserialize)]
#[serde(rename = "Held")]
struct HeldText<'a> {
    ts: Ts,
    #[serde(borrow)]
    record: Cow<'a, str>,
}

impl Serialize for Held {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        HeldText {
            ts: self.ts,
            record: Cow::Borrowed(self.record()),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Held {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let h = HeldText::deserialize(d)?;
        Ok(Held::bare(h.ts, &h.record))
    }
}

impl Held {
    /// Hold `record`, decoded as `ev` (whose strings borrow from `record`).
    pub fn new(record: &str, ev: &Event<'_>) -> Held {
        match (crate::packed::pack(record, ev), u32::try_from(record.len())) {
            (Some(data), Ok(len)) if len != u32::MAX => Held {
                ts: ev.ts,
                record_len: len,
                data,
            },
            _ => Held::bare(ev.ts, record),
        }
    }

    /// A record held without its decoded event (decoded again at release).
    pub fn bare(ts: Ts, record: &str) -> Held {
        Held {
            ts,
            record_len: u32::MAX,
            data: record.into(),
        }
    }

    /// The record as it arrived.
    pub fn record(&self) -> &str {
        if self.record_len == u32::MAX {
            &self.data
        } else {
            self.data
                .get(..self.record_len as usize)
                .unwrap_or_default()
        }
    }

    /// The event, re-borrowed from the record if it was packed.
    pub fn event(&self) -> Option<Event<'_>> {
        if self.record_len == u32::MAX {
            return None;
        }
        let ev = crate::packed::unpack(&self.data, self.ts, self.record_len as usize);
        debug_assert!(ev.is_some(), "a packed event unpacks");
        ev
    }

    /// Bytes this entry costs: record, skeleton and the per-entry overhead.
    fn cost(&self) -> usize {
        self.data.len() + ENTRY_OVERHEAD
    }
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        (self.ts, self.record()) == (other.ts, other.record())
    }
}

impl Eq for Held {}

impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Held {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.ts, self.record()).cmp(&(other.ts, other.record()))
    }
}

/// Width of a release bucket: records are grouped by `ts >> BUCKET_BITS` (~1 s) and
/// each bucket is sorted once, when it becomes the oldest.
const BUCKET_BITS: u32 = 10;

/// Records of one ~1 s slice of event time. `sorted`: descending by `(ts, record)`,
/// so that the oldest is last and leaves with `Vec::pop`.
#[derive(Debug, Default)]
struct Bucket {
    items: Vec<Held>,
    sorted: bool,
}

/// A calendar queue: buckets of ~1 s of event time in a small ordered map (the hold is
/// lateness + grace, ~70 buckets), each sorted when it becomes the oldest. Cheaper than
/// one binary heap over every held record (a pop there costs log n cache misses).
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(from = "Stored", into = "Stored")]
pub struct ReorderBuffer {
    buckets: BTreeMap<Ts, Bucket>,
    len: usize,
    bytes: usize,
}

/// The snapshot form: every held record, in no particular order.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename = "ReorderBuffer")]
struct Stored {
    held: Vec<Held>,
}

impl From<Stored> for ReorderBuffer {
    fn from(s: Stored) -> Self {
        let mut b = ReorderBuffer::default();
        for h in s.held {
            b.push(h);
        }
        b
    }
}

impl From<ReorderBuffer> for Stored {
    fn from(b: ReorderBuffer) -> Self {
        Stored {
            held: b.buckets.into_values().flat_map(|k| k.items).collect(),
        }
    }
}

impl Clone for ReorderBuffer {
    fn clone(&self) -> Self {
        let mut b = ReorderBuffer::default();
        for h in self.buckets.values().flat_map(|k| &k.items) {
            b.push(h.clone());
        }
        b
    }
}

impl ReorderBuffer {
    pub fn push(&mut self, held: Held) {
        self.bytes += held.cost();
        self.len += 1;
        let bucket = self.buckets.entry(held.ts >> BUCKET_BITS).or_default();
        if bucket.sorted {
            // A record behind a bucket already being released (out of order): keep it sorted.
            let at = bucket.items.partition_point(|x| x > &held);
            bucket.items.insert(at, held);
        } else {
            bucket.items.push(held);
        }
    }

    /// The oldest record, if its time is before `bound`.
    pub fn pop_before(&mut self, bound: Ts) -> Option<Held> {
        let mut first = self.buckets.first_entry()?;
        if first.key() << BUCKET_BITS >= bound {
            return None;
        }
        let bucket = first.get_mut();
        if !bucket.sorted {
            bucket.items.sort_unstable_by(|a, b| b.cmp(a));
            bucket.sorted = true;
        }
        if bucket.items.last()?.ts >= bound {
            return None;
        }
        self.take_oldest()
    }

    /// The oldest record, whatever its time.
    pub fn pop(&mut self) -> Option<Held> {
        let bucket = self.buckets.values_mut().next()?;
        if !bucket.sorted {
            bucket.items.sort_unstable_by(|a, b| b.cmp(a));
            bucket.sorted = true;
        }
        self.take_oldest()
    }

    /// Pop the last item of the first (sorted) bucket, dropping the bucket when empty.
    fn take_oldest(&mut self) -> Option<Held> {
        let mut first = self.buckets.first_entry()?;
        debug_assert!(
            first.get().sorted,
            "the oldest bucket is sorted before a pop"
        );
        let h = first.get_mut().items.pop()?;
        if first.get().items.is_empty() {
            first.remove();
        }
        self.len -= 1;
        self.bytes -= h.cost();
        Some(h)
    }

    /// Recompute the byte count (after a restore: restored entries have nothing packed).
    pub fn recount(&mut self) {
        self.bytes = self
            .buckets
            .values()
            .flat_map(|b| &b.items)
            .map(Held::cost)
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

    fn held(ts: Ts, r: &str) -> Held {
        Held::bare(ts, r)
    }

    #[test]
    fn releases_in_time_then_content_order() {
        let mut b = ReorderBuffer::default();
        for (ts, r) in [(5, "b"), (3, "z"), (5, "a"), (9, "x")] {
            b.push(held(ts, r));
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
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let ts = bound + (x >> 40) as Ts % 70_000 - if i % 97 == 0 { 3_000 } else { 0 };
            let r = format!("r{}", (x >> 20) % 50);
            all.push((ts, r.clone()));
            b.push(held(ts, &r));
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

    #[test]
    fn snapshots_hold_records_as_text() {
        let h = held(7, r#"{"a":"é"}"#);
        let json = serde_json::to_string(&h).expect("serialize");
        assert_eq!(json, r#"{"ts":7,"record":"{\"a\":\"é\"}"}"#);
        assert_eq!(serde_json::from_str::<Held>(&json).expect("deserialize"), h);
    }

    #[test]
    fn a_held_event_comes_back_identical_without_decoding() {
        let limits = levee_model::Limits::default();
        for r in [
            r#"{"type":"engage","ts":5,"account":"a","action":"like","post":"p","author":"u","topics":["t1","t2"],"device":"d","ua":"x"}"#,
            r#"{"type":"post","ts":5,"account":"a","post":"p","text":"hi","topics":[],"reply_to":"q"}"#,
            r#"{"type":"register","ts":5,"account":"a","name":"n","ip":"203.0.113.7"}"#,
            r#"{"type":"hotlist","ts":5,"account":"a","topic":"t","action":"search","rank":3}"#,
            r#"{"type":"follow","ts":5,"account":"a","target":"b"}"#,
            r#"{"type":"login","ts":5,"account":"esc\u0061ped"}"#,
        ] {
            let want = levee_model::decode(r.as_bytes(), &limits).expect("valid");
            let h = Held::new(r, &want);
            let escaped = r.contains('\\');
            let cost = h.cost();
            match h.event() {
                Some(got) => assert_eq!(got, want, "{r}"),
                None => assert!(escaped, "only an unescaped copy falls back: {r}"),
            }
            assert!(cost >= r.len() + ENTRY_OVERHEAD);
        }
    }
}
