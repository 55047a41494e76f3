//! Levee's wire contract: typed engagement events and alerts (contract v1).
//!
//! This crate is the single place that knows the byte formats fixed by
//! `shared/contract/`: [`decode()`] turns raw bytes into a borrowed [`Event`]
//! or a [`DecodeError`] with a bounded [`Reason`] code, [`Event`] encodes back
//! to the same JSON, and [`Alert`] is what detectors emit. It does no IO and
//! knows nothing of detectors, Kafka or files.
#![forbid(unsafe_code)]

mod alert;
mod decode;
mod event;
mod reason;

pub use alert::{fnv1a64, stable_id, Alert, AlertKind, Severity, Window, ALERT_CONTRACT_VERSION};
pub use decode::{decode, decode_text, DecodeError, Limits};
pub use event::{Body, EngageAction, Event, EventType, FollowAction, HotlistAction, Ts};
pub use reason::Reason;
