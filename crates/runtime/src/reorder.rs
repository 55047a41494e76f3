//! The reorder buffer: accepted records held until the release watermark passes them.
//!
//! Records leave in canonical order, `(event time, record bytes)`, a function of the
//! events alone: the same set of events gives the detectors the same sequence whatever
//! the arrival order, partitioning or batch sizes. The buffer is bounded in bytes.

use levee_model::Ts;
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Bytes an entry costs besides its record (heap slot, allocation header): for the bound
/// and the metric, so that a flood of tiny records is bounded too.
pub const ENTRY_OVERHEAD: usize = 40;

/// One accepted record, already validated (UTF-8 JSON), waiting for release.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Held {
    pub ts: Ts,
    /// The record's bytes, as they arrived (a JSON string in snapshots).
    #[serde(with = "as_text")]
    pub record: Box<[u8]>,
}

/// Held records are valid UTF-8 (the decoder accepted them): snapshots store them as text.
mod as_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(bytes) {
            Ok(text) => s.serialize_str(text),
            Err(_) => Err(serde::ser::Error::custom("a held record is not UTF-8")),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Box<[u8]>, D::Error> {
        Ok(String::deserialize(d)?.into_bytes().into_boxed_slice())
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ReorderBuffer {
    heap: BinaryHeap<Reverse<Held>>,
    bytes: usize,
}

impl ReorderBuffer {
    pub fn push(&mut self, held: Held) {
        self.bytes += held.record.len() + ENTRY_OVERHEAD;
        self.heap.push(Reverse(held));
    }

    /// The oldest record, if its time is before `bound`.
    pub fn pop_before(&mut self, bound: Ts) -> Option<Held> {
        if self.heap.peek()?.0.ts >= bound {
            return None;
        }
        self.pop()
    }

    /// The oldest record, whatever its time.
    pub fn pop(&mut self) -> Option<Held> {
        let Reverse(h) = self.heap.pop()?;
        self.bytes -= h.record.len() + ENTRY_OVERHEAD;
        Some(h)
    }

    /// Bytes held (records plus per-entry overhead).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(ts: Ts, r: &str) -> Held {
        Held {
            ts,
            record: r.as_bytes().into(),
        }
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
            out.push((h.ts, String::from_utf8_lossy(&h.record).into_owned()));
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

    #[test]
    fn snapshots_hold_records_as_text() {
        let h = held(7, r#"{"a":"é"}"#);
        let json = serde_json::to_string(&h).expect("serialize");
        assert_eq!(json, r#"{"ts":7,"record":"{\"a\":\"é\"}"}"#);
        assert_eq!(serde_json::from_str::<Held>(&json).expect("deserialize"), h);
    }
}
