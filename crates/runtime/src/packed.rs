//! A decoded event packed behind its record in one string: release re-borrows, not re-decodes.
//!
//! Layout: the record's text, then the event's skeleton: its non-string fields and each
//! string field as `(offset, length)` into the record, every number a little-endian
//! base-64 varint of ASCII bytes (6 data bits; bit 6 set on all but the last byte), so
//! the whole is valid UTF-8 and no byte of it is checked again. An event whose strings
//! are not all slices of the record (one had a JSON escape) is not packed.

use levee_model::{Body, EngageAction, Event, FollowAction, HotlistAction};
use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const HAS_DEVICE: u128 = 1;
const HAS_UA: u128 = 1 << 1;
const HAS_CREATED: u128 = 1 << 2;
const HAS_IP4: u128 = 1 << 3;
const HAS_IP6: u128 = 1 << 4;
/// The body's optional fields, in declaration order.
const HAS_OPT: [u128; 2] = [1 << 5, 1 << 6];

/// Append the skeleton of `ev` (whose strings borrow from `record`) to `out`, or leave
/// `out` as it was and return `None` if a string of `ev` is not a slice of `record`.
pub fn pack_into(out: &mut String, record: &str, ev: &Event<'_>) -> Option<()> {
    let start = out.len();
    let mut w = Writer {
        out,
        base: record.as_ptr() as usize,
        len: record.len(),
    };
    let done = skeleton(&mut w, ev);
    if done.is_none() {
        out.truncate(start);
    }
    done
}

/// Write the skeleton of `ev` with `w` (see the module docs for the layout).
fn skeleton(w: &mut Writer<'_>, ev: &Event<'_>) -> Option<()> {
    let (tag, action, opts): (u128, u128, [bool; 2]) = match &ev.body {
        Body::Register { name } => (0, 0, [name.is_some(), false]),
        Body::Login => (1, 0, [false, false]),
        Body::Post {
            reply_to,
            repost_of,
            ..
        } => (2, 0, [reply_to.is_some(), repost_of.is_some()]),
        Body::Engage {
            action,
            author,
            text,
            ..
        } => (
            3,
            index(EngageAction::ALL, *action),
            [author.is_some(), text.is_some()],
        ),
        Body::Follow { action, .. } => (4, index(FollowAction::ALL, *action), [false, false]),
        Body::Hotlist { action, rank, .. } => (
            5,
            index(HotlistAction::ALL, *action),
            [rank.is_some(), false],
        ),
    };
    let mut flags = 0;
    for (has, bit) in [
        (ev.device.is_some(), HAS_DEVICE),
        (ev.ua.is_some(), HAS_UA),
        (ev.account_created.is_some(), HAS_CREATED),
        (matches!(ev.ip, Some(IpAddr::V4(_))), HAS_IP4),
        (matches!(ev.ip, Some(IpAddr::V6(_))), HAS_IP6),
        (opts[0], HAS_OPT[0]),
        (opts[1], HAS_OPT[1]),
    ] {
        if has {
            flags |= bit;
        }
    }
    w.num(tag);
    w.num(action);
    w.num(flags);
    match ev.ip {
        Some(IpAddr::V4(a)) => w.num(u128::from(u32::from(a))),
        Some(IpAddr::V6(a)) => w.num(u128::from(a)),
        None => {}
    }
    if let Some(c) = ev.account_created {
        w.num(zigzag(c));
    }
    w.str(&ev.account)?;
    w.opt(&ev.device)?;
    w.opt(&ev.ua)?;
    match &ev.body {
        Body::Register { name } => w.opt(name)?,
        Body::Login => {}
        Body::Post {
            post,
            text,
            topics,
            reply_to,
            repost_of,
        } => {
            w.str(post)?;
            w.str(text)?;
            w.list(topics)?;
            w.opt(reply_to)?;
            w.opt(repost_of)?;
        }
        Body::Engage {
            post,
            author,
            text,
            topics,
            ..
        } => {
            w.str(post)?;
            w.opt(author)?;
            w.opt(text)?;
            w.list(topics)?;
        }
        Body::Follow { target, .. } => w.str(target)?,
        Body::Hotlist { topic, rank, .. } => {
            w.str(topic)?;
            if let Some(r) = rank {
                w.num(u128::from(*r));
            }
        }
    }
    Some(())
}

/// The event packed in `data` behind a record of `record_len` bytes, borrowing from it.
/// `None` if `data` is not what [`pack`] wrote.
pub fn unpack(data: &str, ts: i64, record_len: usize) -> Option<Event<'_>> {
    let record = data.get(..record_len)?;
    let mut r = Reader {
        bytes: data.as_bytes().get(record_len..)?,
        record,
    };
    let (tag, action, flags) = (r.num()?, r.num()?, r.num()?);
    let has = |bit: u128| flags & bit != 0;
    let ip = if has(HAS_IP4) {
        Some(IpAddr::V4(Ipv4Addr::from(u32::try_from(r.num()?).ok()?)))
    } else if has(HAS_IP6) {
        Some(IpAddr::V6(Ipv6Addr::from(r.num()?)))
    } else {
        None
    };
    let account_created = if has(HAS_CREATED) {
        Some(unzigzag(r.num()?)?)
    } else {
        None
    };
    let account = r.str()?;
    let device = r.opt(has(HAS_DEVICE))?;
    let ua = r.opt(has(HAS_UA))?;
    let [a, b] = HAS_OPT.map(has);
    let action = usize::try_from(action).ok()?;
    let body = match tag {
        0 => Body::Register { name: r.opt(a)? },
        1 => Body::Login,
        2 => Body::Post {
            post: r.str()?,
            text: r.str()?,
            topics: r.list()?,
            reply_to: r.opt(a)?,
            repost_of: r.opt(b)?,
        },
        3 => Body::Engage {
            action: *EngageAction::ALL.get(action)?,
            post: r.str()?,
            author: r.opt(a)?,
            text: r.opt(b)?,
            topics: r.list()?,
        },
        4 => Body::Follow {
            target: r.str()?,
            action: *FollowAction::ALL.get(action)?,
        },
        5 => Body::Hotlist {
            topic: r.str()?,
            action: *HotlistAction::ALL.get(action)?,
            rank: if a {
                Some(u32::try_from(r.num()?).ok()?)
            } else {
                None
            },
        },
        _ => return None,
    };
    debug_assert!(r.bytes.is_empty(), "the skeleton is read to its end");
    Some(Event {
        ts,
        account,
        ip,
        device,
        ua,
        account_created,
        body,
    })
}

fn index<T: PartialEq>(all: &[T], x: T) -> u128 {
    all.iter().position(|y| *y == x).unwrap_or(0) as u128
}

fn zigzag(v: i64) -> u128 {
    u128::from(((v << 1) ^ (v >> 63)) as u64)
}

fn unzigzag(v: u128) -> Option<i64> {
    let v = u64::try_from(v).ok()?;
    Some(((v >> 1) as i64) ^ -((v & 1) as i64))
}

struct Writer<'a> {
    out: &'a mut String,
    /// Where the record lies in memory, and its length.
    base: usize,
    len: usize,
}

impl Writer<'_> {
    fn num(&mut self, mut v: u128) {
        loop {
            let low = (v & 0x3f) as u8;
            v >>= 6;
            if v == 0 {
                self.out.push(char::from(low));
                return;
            }
            self.out.push(char::from(low | 0x40));
        }
    }

    #[allow(clippy::ptr_arg)] // a `Cow::Owned` string is what refuses packing
    fn str(&mut self, s: &Cow<'_, str>) -> Option<()> {
        let Cow::Borrowed(s) = s else { return None };
        let at = (s.as_ptr() as usize).checked_sub(self.base)?;
        if at.checked_add(s.len())? > self.len {
            return None;
        }
        self.num(at as u128);
        self.num(s.len() as u128);
        Some(())
    }

    fn opt(&mut self, s: &Option<Cow<'_, str>>) -> Option<()> {
        s.as_ref().map_or(Some(()), |s| self.str(s))
    }

    fn list(&mut self, v: &[Cow<'_, str>]) -> Option<()> {
        self.num(v.len() as u128);
        v.iter().try_for_each(|s| self.str(s))
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    record: &'a str,
}

impl<'a> Reader<'a> {
    fn num(&mut self) -> Option<u128> {
        if let Some(v) = self.small() {
            return Some(v as u128);
        }
        let mut v = 0u128;
        for shift in (0..128).step_by(6) {
            let (&b, rest) = self.bytes.split_first()?;
            self.bytes = rest;
            v |= u128::from(b & 0x3f).checked_shl(shift)?;
            if b & 0x40 == 0 {
                return Some(v);
            }
        }
        None
    }

    /// A number of at most 60 bits (an offset, a length, a count): the common case
    /// without 128-bit arithmetic.
    fn small(&mut self) -> Option<usize> {
        let mut v = 0u64;
        for (k, &b) in self.bytes.iter().take(10).enumerate() {
            v |= u64::from(b & 0x3f) << (6 * k);
            if b & 0x40 == 0 {
                self.bytes = &self.bytes[k + 1..];
                return usize::try_from(v).ok();
            }
        }
        None
    }

    fn str(&mut self) -> Option<Cow<'a, str>> {
        let at = self.small()?;
        let len = self.small()?;
        self.record.get(at..at.checked_add(len)?).map(Cow::Borrowed)
    }

    fn opt(&mut self, present: bool) -> Option<Option<Cow<'a, str>>> {
        if present {
            self.str().map(Some)
        } else {
            Some(None)
        }
    }

    fn list(&mut self) -> Option<Vec<Cow<'a, str>>> {
        let n = self.small()?;
        // Each entry takes at least two bytes: a corrupt count cannot allocate much.
        let mut v = Vec::with_capacity(n.min(self.bytes.len() / 2));
        for _ in 0..n {
            v.push(self.str()?);
        }
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `record` followed by the skeleton of `ev`, as the reorder buffer stores it.
    fn pack(record: &str, ev: &Event<'_>) -> Option<String> {
        let mut out = String::from(record);
        pack_into(&mut out, record, ev)?;
        Some(out)
    }

    /// Pack each record's decoded event and check it comes back identical.
    fn check(records: &[&str]) {
        let limits = levee_model::Limits::default();
        for r in records {
            let want = levee_model::decode(r.as_bytes(), &limits).expect("valid");
            match pack(r, &want) {
                Some(data) => {
                    assert!(data.starts_with(r), "the record leads");
                    assert!(
                        data.len() < r.len() + 64,
                        "{} bytes of skeleton",
                        data.len() - r.len()
                    );
                    assert_eq!(unpack(&data, want.ts, r.len()), Some(want), "{r}");
                }
                None => assert!(r.contains('\\'), "only escaped strings are not packed: {r}"),
            }
        }
    }

    #[test]
    fn every_event_type_comes_back_identical() {
        check(&[
            r#"{"type":"engage","ts":5,"account":"a","action":"like","post":"p","author":"u","topics":["t1","t2"],"device":"d","ua":"x"}"#,
            r#"{"type":"engage","ts":5,"account":"a","action":"share","post":"p","text":"t","ip":"2001:db8::ff"}"#,
            r#"{"type":"post","ts":5,"account":"a","post":"p","text":"hi","topics":[],"reply_to":"q","account_created":86400000}"#,
            r#"{"type":"post","ts":5,"account":"a","post":"p","text":"","repost_of":"r","topics":["x"]}"#,
            r#"{"type":"register","ts":5,"account":"a","name":"n","ip":"203.0.113.7"}"#,
            r#"{"type":"register","ts":0,"account":"a"}"#,
            r#"{"type":"hotlist","ts":5,"account":"a","topic":"t","action":"search","rank":3}"#,
            r#"{"type":"hotlist","ts":5,"account":"a","topic":"t","action":"view"}"#,
            r#"{"type":"follow","ts":5,"account":"a","target":"b","action":"unfollow"}"#,
            r#"{"type":"login","ts":5,"account":"a","account_created":1700000000000}"#,
            r#"{"type":"login","ts":5,"account":"esc\u0061ped"}"#,
        ]);
    }

    #[test]
    fn numbers_round_trip_at_their_extremes() {
        for v in [0, 1, -1, 63, 64, i64::MIN, i64::MAX] {
            assert_eq!(unzigzag(zigzag(v)), Some(v));
        }
        let mut out = String::new();
        let mut w = Writer {
            out: &mut out,
            base: 0,
            len: 0,
        };
        for v in [0, 63, 64, u128::from(u64::MAX), u128::MAX] {
            w.num(v);
        }
        assert!(w.out.is_ascii());
        let mut r = Reader {
            bytes: w.out.as_bytes(),
            record: "",
        };
        for v in [0, 63, 64, u128::from(u64::MAX), u128::MAX] {
            assert_eq!(r.num(), Some(v));
        }
        assert_eq!(r.num(), None);
    }

    #[test]
    fn a_damaged_skeleton_is_refused_not_misread() {
        let r = r#"{"type":"follow","ts":5,"account":"a","target":"b"}"#;
        let ev = levee_model::decode(r.as_bytes(), &levee_model::Limits::default()).expect("ok");
        let data = pack(r, &ev).expect("packs");
        for cut in r.len()..data.len() {
            assert_eq!(unpack(&data[..cut], 5, r.len()), None, "cut at {cut}");
        }
    }
}
