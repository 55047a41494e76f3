//! Bytes -> [`Event`]: zero-copy JSON decoding with contract validation and precise reasons.

use crate::event::{Body, EngageAction, Event, EventType, FollowAction, HotlistAction};
use crate::reason::Reason;
use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::Deserializer as _;
use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;
use std::net::IpAddr;

mod fast;

/// Contract limits. The defaults are the contract's; only `max_record_bytes` is ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A record longer than this is rejected (`too_long`) before parsing.
    pub max_record_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        // 20,000 characters of text, every one escaped as \uXXXX\uXXXX, plus the rest.
        Limits {
            max_record_bytes: 256 * 1024,
        }
    }
}

const MAX_ID_BYTES: usize = 128;
const MAX_UA_BYTES: usize = 512;
const MAX_IP_BYTES: usize = 64;
const MAX_TEXT_CHARS: usize = 20_000;
const MAX_TOPICS: usize = 32;

/// Why one record was rejected: a bounded [`Reason`] plus the field it concerns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct DecodeError {
    pub reason: Reason,
    /// The offending field name, or a short static description.
    pub detail: &'static str,
}

fn err(reason: Reason, detail: &'static str) -> DecodeError {
    DecodeError { reason, detail }
}

/// Decode and validate one record. Never panics; unknown fields are ignored.
pub fn decode<'a>(bytes: &'a [u8], limits: &Limits) -> Result<Event<'a>, DecodeError> {
    decode_text(bytes, limits).map(|(_, ev)| ev)
}

/// [`decode()`], also returning the record as the text it was validated to be.
pub fn decode_text<'a>(
    bytes: &'a [u8],
    limits: &Limits,
) -> Result<(&'a str, Event<'a>), DecodeError> {
    if bytes.len() > limits.max_record_bytes {
        return Err(err(Reason::TooLong, "record"));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| err(Reason::InvalidUtf8, "record"))?;
    let mut raw = Raw::default();
    if fast::scan_into(text, &mut raw).is_none() {
        raw = slow(text)?;
    }
    Ok((text, raw.validate()?))
}

/// The authoritative path: serde_json with a field-tracking visitor. Any record the
/// fast scanner declines comes here, and this decides its reason.
fn slow(text: &str) -> Result<Raw<'_>, DecodeError> {
    let failed = Cell::new(None);
    let mut de = serde_json::Deserializer::from_str(text);
    let raw = de
        .deserialize_map(RawVisitor { failed: &failed })
        .and_then(|raw| de.end().map(|()| raw))
        .map_err(|e| classify(&e, failed.get()))?;
    Ok(raw)
}

fn classify(e: &serde_json::Error, failed: Option<Failure>) -> DecodeError {
    match failed {
        Some(Failure::Duplicate(f)) => err(Reason::InvalidJson, f),
        Some(Failure::Field(f)) if e.is_data() => err(Reason::WrongType, f),
        _ if e.is_data() => err(Reason::NotObject, "record"),
        _ => err(Reason::InvalidJson, "record"),
    }
}

#[derive(Debug, Clone, Copy)]
enum Failure {
    Field(&'static str),
    Duplicate(&'static str),
}

/// A string that borrows from the input unless it had escapes.
struct Str<'a>(Cow<'a, str>);

impl<'de> de::Deserialize<'de> for Str<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// Every field of every type, before validation.
#[derive(Debug, Default, PartialEq)]
struct Raw<'a> {
    v: Option<i64>,
    kind: Option<Cow<'a, str>>,
    ts: Option<i64>,
    account: Option<Cow<'a, str>>,
    ip: Option<Cow<'a, str>>,
    device: Option<Cow<'a, str>>,
    ua: Option<Cow<'a, str>>,
    account_created: Option<i64>,
    name: Option<Cow<'a, str>>,
    post: Option<Cow<'a, str>>,
    text: Option<Cow<'a, str>>,
    topics: Option<Vec<Cow<'a, str>>>,
    reply_to: Option<Cow<'a, str>>,
    repost_of: Option<Cow<'a, str>>,
    action: Option<Cow<'a, str>>,
    author: Option<Cow<'a, str>>,
    target: Option<Cow<'a, str>>,
    topic: Option<Cow<'a, str>>,
    rank: Option<i64>,
}

struct RawVisitor<'s> {
    failed: &'s Cell<Option<Failure>>,
}

impl<'de> Visitor<'de> for RawVisitor<'_> {
    type Value = Raw<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an event object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw<'de>, A::Error> {
        let mut raw = Raw::default();
        let failed = self.failed;
        // Reads the value of `field` into `slot`, remembering the field if it fails.
        fn put<'de, A: MapAccess<'de>, T: de::Deserialize<'de>>(
            map: &mut A,
            failed: &Cell<Option<Failure>>,
            field: &'static str,
            slot: &mut Option<T>,
        ) -> Result<(), A::Error> {
            if slot.is_some() {
                failed.set(Some(Failure::Duplicate(field)));
                return Err(de::Error::custom("duplicate field"));
            }
            failed.set(Some(Failure::Field(field)));
            *slot = Some(map.next_value::<T>()?);
            failed.set(None);
            Ok(())
        }
        fn put_str<'de, A: MapAccess<'de>>(
            map: &mut A,
            failed: &Cell<Option<Failure>>,
            field: &'static str,
            slot: &mut Option<Cow<'de, str>>,
        ) -> Result<(), A::Error> {
            let mut s: Option<Str<'de>> = slot.take().map(Str);
            let r = put(map, failed, field, &mut s);
            *slot = s.map(|s| s.0);
            r
        }
        while let Some(key) = map.next_key::<Str<'de>>()? {
            match key.0.as_ref() {
                "v" => put(&mut map, failed, "v", &mut raw.v)?,
                "type" => put_str(&mut map, failed, "type", &mut raw.kind)?,
                "ts" => put(&mut map, failed, "ts", &mut raw.ts)?,
                "account" => put_str(&mut map, failed, "account", &mut raw.account)?,
                "ip" => put_str(&mut map, failed, "ip", &mut raw.ip)?,
                "device" => put_str(&mut map, failed, "device", &mut raw.device)?,
                "ua" => put_str(&mut map, failed, "ua", &mut raw.ua)?,
                "account_created" => put(
                    &mut map,
                    failed,
                    "account_created",
                    &mut raw.account_created,
                )?,
                "name" => put_str(&mut map, failed, "name", &mut raw.name)?,
                "post" => put_str(&mut map, failed, "post", &mut raw.post)?,
                "text" => put_str(&mut map, failed, "text", &mut raw.text)?,
                "topics" => {
                    let mut t: Option<Vec<Str<'de>>> = None;
                    if raw.topics.is_some() {
                        failed.set(Some(Failure::Duplicate("topics")));
                        return Err(de::Error::custom("duplicate field"));
                    }
                    put(&mut map, failed, "topics", &mut t)?;
                    raw.topics = t.map(|v| v.into_iter().map(|s| s.0).collect());
                }
                "reply_to" => put_str(&mut map, failed, "reply_to", &mut raw.reply_to)?,
                "repost_of" => put_str(&mut map, failed, "repost_of", &mut raw.repost_of)?,
                "action" => put_str(&mut map, failed, "action", &mut raw.action)?,
                "author" => put_str(&mut map, failed, "author", &mut raw.author)?,
                "target" => put_str(&mut map, failed, "target", &mut raw.target)?,
                "topic" => put_str(&mut map, failed, "topic", &mut raw.topic)?,
                "rank" => put(&mut map, failed, "rank", &mut raw.rank)?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(raw)
    }
}

/// An id: required or not, 1 to 128 bytes.
fn id<'a>(v: Option<Cow<'a, str>>, field: &'static str) -> Result<Cow<'a, str>, DecodeError> {
    let v = v.ok_or(err(Reason::MissingField, field))?;
    opt_id(Some(v), field).map(|v| v.unwrap_or_default())
}

fn opt_id<'a>(
    v: Option<Cow<'a, str>>,
    field: &'static str,
) -> Result<Option<Cow<'a, str>>, DecodeError> {
    match v {
        Some(s) if s.is_empty() => Err(err(Reason::InvalidValue, field)),
        Some(s) if s.len() > MAX_ID_BYTES => Err(err(Reason::TooLong, field)),
        other => Ok(other),
    }
}

fn max_bytes<'a>(
    v: Option<Cow<'a, str>>,
    max: usize,
    field: &'static str,
) -> Result<Option<Cow<'a, str>>, DecodeError> {
    match v {
        Some(s) if s.len() > max => Err(err(Reason::TooLong, field)),
        other => Ok(other),
    }
}

fn text_ok<'a>(v: Option<Cow<'a, str>>) -> Result<Option<Cow<'a, str>>, DecodeError> {
    match v {
        // A char is at most 4 bytes: only long texts need counting.
        Some(s) if s.len() > MAX_TEXT_CHARS && s.chars().count() > MAX_TEXT_CHARS => {
            Err(err(Reason::TooLong, "text"))
        }
        other => Ok(other),
    }
}

fn topics_ok(v: Option<Vec<Cow<'_, str>>>) -> Result<Vec<Cow<'_, str>>, DecodeError> {
    let v = v.unwrap_or_default();
    if v.len() > MAX_TOPICS {
        return Err(err(Reason::TooLong, "topics"));
    }
    for t in &v {
        if t.is_empty() {
            return Err(err(Reason::InvalidValue, "topics"));
        }
        if t.len() > MAX_ID_BYTES {
            return Err(err(Reason::TooLong, "topics"));
        }
    }
    Ok(v)
}

fn non_negative(v: Option<i64>, field: &'static str) -> Result<Option<i64>, DecodeError> {
    match v {
        Some(x) if x < 0 => Err(err(Reason::InvalidValue, field)),
        other => Ok(other),
    }
}

fn action<T>(
    v: Option<Cow<'_, str>>,
    parse: fn(&str) -> Option<T>,
) -> Result<Option<T>, DecodeError> {
    match v {
        None => Ok(None),
        Some(s) => parse(&s)
            .map(Some)
            .ok_or(err(Reason::UnknownAction, "action")),
    }
}

impl<'a> Raw<'a> {
    fn validate(self) -> Result<Event<'a>, DecodeError> {
        if self.v.is_some_and(|v| v != 1) {
            return Err(err(Reason::UnsupportedVersion, "v"));
        }
        let kind = self.kind.ok_or(err(Reason::MissingField, "type"))?;
        let kind = EventType::parse(&kind).ok_or(err(Reason::UnknownType, "type"))?;
        let ts = non_negative(self.ts, "ts")?.ok_or(err(Reason::MissingField, "ts"))?;
        let account = id(self.account, "account")?;
        let ip = match max_bytes(self.ip, MAX_IP_BYTES, "ip")? {
            None => None,
            Some(s) => Some(
                s.parse::<IpAddr>()
                    .map_err(|_| err(Reason::InvalidValue, "ip"))?,
            ),
        };
        let device = max_bytes(self.device, MAX_ID_BYTES, "device")?;
        let ua = max_bytes(self.ua, MAX_UA_BYTES, "ua")?;
        let account_created = non_negative(self.account_created, "account_created")?;
        let body = match kind {
            EventType::Register => Body::Register {
                name: max_bytes(self.name, MAX_ID_BYTES, "name")?,
            },
            EventType::Login => Body::Login,
            EventType::Post => Body::Post {
                post: id(self.post, "post")?,
                text: text_ok(self.text)?.ok_or(err(Reason::MissingField, "text"))?,
                topics: topics_ok(self.topics)?,
                reply_to: opt_id(self.reply_to, "reply_to")?,
                repost_of: opt_id(self.repost_of, "repost_of")?,
            },
            EventType::Engage => Body::Engage {
                action: action(self.action, EngageAction::parse)?
                    .ok_or(err(Reason::MissingField, "action"))?,
                post: id(self.post, "post")?,
                author: opt_id(self.author, "author")?,
                text: text_ok(self.text)?,
                topics: topics_ok(self.topics)?,
            },
            EventType::Follow => Body::Follow {
                target: id(self.target, "target")?,
                action: action(self.action, FollowAction::parse)?.unwrap_or(FollowAction::Follow),
            },
            EventType::Hotlist => Body::Hotlist {
                action: action(self.action, HotlistAction::parse)?
                    .ok_or(err(Reason::MissingField, "action"))?,
                topic: id(self.topic, "topic")?,
                rank: match self.rank {
                    None => None,
                    Some(r) => {
                        Some(u32::try_from(r).map_err(|_| err(Reason::InvalidValue, "rank"))?)
                    }
                },
            },
        };
        Ok(Event {
            ts,
            account,
            ip,
            device,
            ua,
            account_created,
            body,
        })
    }
}
