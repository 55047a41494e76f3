//! Dead letters: a rejected record's original bytes, where it came from, and why.

use base64::Engine as _;
use levee_model::Reason;
use serde_json::json;

/// Where a record came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position {
    /// 1-based line of a JSON Lines input.
    Line(u64),
    /// A Kafka record (the topic is the configured events topic).
    Kafka { partition: i32, offset: i64 },
}

/// One rejected record. Nothing is lost: the bytes are kept as they arrived
/// (only a record over `max_record_bytes` is truncated to that length).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub reason: Reason,
    /// The field concerned, or `record`.
    pub detail: &'static str,
    pub position: Position,
    pub raw: Vec<u8>,
    /// True if `raw` was cut at `max_record_bytes`.
    pub truncated: bool,
}

impl DeadLetter {
    /// One JSON line: `{"reason","detail","line","raw"|"raw_base64","truncated"?}`.
    /// `raw` holds the record as text when it is UTF-8, otherwise `raw_base64` holds the bytes.
    pub fn to_json(&self) -> String {
        let mut v = json!({"reason": self.reason.as_str(), "detail": self.detail});
        match self.position {
            Position::Line(line) => v["line"] = json!(line),
            Position::Kafka { partition, offset } => {
                v["partition"] = json!(partition);
                v["offset"] = json!(offset);
            }
        }
        match std::str::from_utf8(&self.raw) {
            Ok(s) => v["raw"] = json!(s),
            Err(_) => {
                v["raw_base64"] = json!(base64::engine::general_purpose::STANDARD.encode(&self.raw))
            }
        }
        if self.truncated {
            v["truncated"] = json!(true);
        }
        v.to_string()
    }
}
