//! The fast path: a strict scanner for the common shape of an event record.
//!
//! It accepts only a flat JSON object whose known fields have their contract
//! types, whose strings have no escapes or control characters, whose numbers
//! are plain integers and whose unknown fields hold plain strings. Anything
//! else (escapes, floats, nesting, duplicates, wrong types, bad syntax) makes
//! it return `None`, and the serde path decides. So the scanner may decline
//! any record, but must never accept one the serde path would read
//! differently; `tests/fast_path.rs` checks exactly that.

use super::Raw;
use std::borrow::Cow;

/// Scan `text` into a [`Raw`], or `None` to leave it to the serde path.
#[cfg(test)]
pub(super) fn scan(text: &str) -> Option<Raw<'_>> {
    let mut raw = Raw::default();
    scan_into(text, &mut raw).map(|()| raw)
}

/// [`scan`] into `raw` (empty on entry): no copy of the record's fields on the way out.
/// On `None`, `raw` holds whatever was read before the scanner declined.
pub(super) fn scan_into<'a>(text: &'a str, raw: &mut Raw<'a>) -> Option<()> {
    let mut s = Scanner {
        text,
        b: text.as_bytes(),
        i: 0,
    };
    s.ws();
    s.eat(b'{')?;
    s.ws();
    if s.peek()? == b'}' {
        s.i += 1;
    } else {
        loop {
            let key = s.string()?;
            s.ws();
            s.eat(b':')?;
            s.ws();
            s.field(key, raw)?;
            s.ws();
            match s.next()? {
                b',' => s.ws(),
                b'}' => break,
                _ => return None,
            }
        }
    }
    s.ws();
    (s.i == s.b.len()).then_some(())
}

/// Where the first `"`, `\\` or control character of `b` is: eight bytes a step (SWAR),
/// then byte by byte.
fn string_end(b: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut at = 0;
    for chunk in b.chunks_exact(8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
        // Bytes equal to a quote or a backslash, or below 0x20 (the last test holds for
        // ASCII bytes; a byte of 0x80 or more has its high bit cleared by `!x`).
        let hits = zero(x ^ (ONES * u64::from(b'"')))
            | zero(x ^ (ONES * u64::from(b'\\')))
            | (x.wrapping_sub(ONES * 0x20) & !x & HIGH);
        if hits != 0 {
            return Some(at + (hits.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    b[at..]
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .map(|i| at + i)
}

struct Scanner<'a> {
    text: &'a str,
    b: &'a [u8],
    i: usize,
}

/// Store `v` in an empty slot; a duplicate key declines.
fn set<T>(slot: &mut Option<T>, v: T) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(v);
    Some(())
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    /// A string without escapes or control characters, borrowed from the input.
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.i;
        let len = string_end(&self.b[start..])?;
        self.i = start + len;
        self.eat(b'"')?;
        // Both ends sit next to ASCII quotes, so they are char boundaries of valid UTF-8.
        self.text.get(start..start + len)
    }

    /// A JSON integer (no fraction or exponent) that fits an i64.
    fn integer(&mut self) -> Option<i64> {
        let start = self.i;
        let neg = self.peek()? == b'-';
        if neg {
            self.i += 1;
        }
        let digits = self.i;
        let mut v: i64 = 0;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            // At most 18 digits are kept (checked below): no overflow before that.
            v = v.wrapping_mul(10).wrapping_add(i64::from(c - b'0'));
            self.i += 1;
        }
        let n = self.i - digits;
        // serde_json reads "-0" as a float, and rejects leading zeros: leave both to it.
        if n == 0 || n > 18 || ((n > 1 || neg) && self.b[digits] == b'0') {
            return None;
        }
        if let Some(b'.' | b'e' | b'E') = self.peek() {
            return None;
        }
        debug_assert_eq!(
            self.text.get(start..self.i)?.parse::<i64>().ok(),
            Some(if neg { -v } else { v })
        );
        Some(if neg { -v } else { v })
    }

    fn strings(&mut self) -> Option<Vec<Cow<'a, str>>> {
        self.eat(b'[')?;
        self.ws();
        let mut v = Vec::new();
        if self.peek()? == b']' {
            self.i += 1;
            return Some(v);
        }
        loop {
            v.push(Cow::Borrowed(self.string()?));
            self.ws();
            match self.next()? {
                b',' => self.ws(),
                b']' => return Some(v),
                _ => return None,
            }
        }
    }

    fn field(&mut self, key: &str, raw: &mut Raw<'a>) -> Option<()> {
        let slot = match key {
            "v" => return set(&mut raw.v, self.integer()?),
            "ts" => return set(&mut raw.ts, self.integer()?),
            "account_created" => return set(&mut raw.account_created, self.integer()?),
            "rank" => return set(&mut raw.rank, self.integer()?),
            "topics" => return set(&mut raw.topics, self.strings()?),
            "type" => &mut raw.kind,
            "account" => &mut raw.account,
            "ip" => &mut raw.ip,
            "device" => &mut raw.device,
            "ua" => &mut raw.ua,
            "name" => &mut raw.name,
            "post" => &mut raw.post,
            "text" => &mut raw.text,
            "reply_to" => &mut raw.reply_to,
            "repost_of" => &mut raw.repost_of,
            "action" => &mut raw.action,
            "author" => &mut raw.author,
            "target" => &mut raw.target,
            "topic" => &mut raw.topic,
            _ => {
                // Unknown field: only a plain string is skipped here.
                self.string()?;
                return Some(());
            }
        };
        set(slot, Cow::Borrowed(self.string()?))
    }
}

#[cfg(test)]
mod tests {
    use super::super::slow;
    use super::{scan, string_end};
    use proptest::prelude::*;

    const VALID: &[&str] = &[
        r#"{"type":"register","ts":1732000000000,"account":"u1001","ip":"203.0.113.7","device":"d-9f2","ua":"app/8.1 android/13","name":"小雨1023"}"#,
        r#"{"type":"post","ts":1732000005000,"account":"u7","post":"p55","text":"今天的发布会太精彩了 #新品#","topics":["新品", "b"],"reply_to":"p1"}"#,
        r#" { "v" : 1 , "type":"engage","ts":0,"account":"u1001","action":"like","post":"p55","author":"u7","x":"y"} "#,
        r#"{"type":"follow","ts":1732000012000,"account":"u1001","target":"u7","action":"unfollow","topics":[]}"#,
        r#"{"type":"hotlist","ts":1732000015000,"account":"u1001","topic":"新品","action":"search","rank":3}"#,
        r#"{}"#,
    ];

    /// The property: if the scanner accepts, the serde path gives the very same fields.
    fn agree(text: &str) -> Result<(), TestCaseError> {
        if let Some(fast) = scan(text) {
            let slow = slow(text);
            prop_assert_eq!(Ok(fast), slow, "fast path accepted {:?}", text);
        }
        Ok(())
    }

    #[test]
    fn common_records_take_the_fast_path() {
        for v in VALID {
            assert!(scan(v).is_some(), "declined {v}");
            agree(v).expect("agrees");
        }
        for declined in [
            r#"{"type":"login","ts":1,"account":"a\"b"}"#,
            r#"{"type":"login","ts":1.0,"account":"a"}"#,
            r#"{"type":"login","ts":1,"account":"a","extra":{"n":1}}"#,
            r#"{"type":"login","type":"login","ts":1,"account":"a"}"#,
            r#"{"type":"login","ts":01,"account":"a"}"#,
            r#"{"type":"login","ts":-0,"account":"a"}"#,
            r#"{"type":"login","ts":1,"account":"a",}"#,
            r#"{"type":"login","ts":1,"account":"a"} x"#,
            r#"{"type":"login","ts":"1","account":"a"}"#,
        ] {
            assert!(scan(declined).is_none(), "accepted {declined}");
        }
    }

    fn json_fragment() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("\"s\"".to_owned()),
            Just("\"a\\\"b\"".to_owned()),
            Just("-0".to_owned()),
            Just("007".to_owned()),
            Just("1e3".to_owned()),
            Just("99999999999999999999".to_owned()),
            Just("[\"x\",\"y\"]".to_owned()),
            Just("[1]".to_owned()),
            Just("{}".to_owned()),
            Just("null".to_owned()),
            Just("true".to_owned()),
            any::<i64>().prop_map(|i| i.to_string()),
            "[ -~]{0,12}".prop_map(|s| format!("\"{s}\"")),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

        #[test]
        fn byte_mutations_agree(idx in 0..VALID.len(), pos in any::<prop::sample::Index>(), byte in prop::sample::select(&b"\"\\{}[],: -0123456789.eEtrufalsn\t\x01"[..])) {
            let mut b = VALID[idx].as_bytes().to_vec();
            let i = pos.index(b.len());
            b[i] = byte;
            if let Ok(text) = std::str::from_utf8(&b) {
                agree(text)?;
            }
        }

        #[test]
        fn field_edits_agree(
            idx in 0..VALID.len(),
            key in prop::sample::select(&["v", "type", "ts", "account", "ip", "topics", "rank", "text", "unknown", "ts\\u0073"][..]),
            value in json_fragment(),
            append in any::<bool>(),
        ) {
            let base = VALID[idx].trim();
            let body = base.trim_start_matches('{').trim_end_matches('}').trim();
            let field = format!("\"{key}\":{value}");
            let text = match (body.is_empty(), append) {
                (true, _) => format!("{{{field}}}"),
                (false, true) => format!("{{{body},{field}}}"),
                (false, false) => format!("{{{field},{body}}}"),
            };
            agree(&text)?;
        }

        #[test]
        fn string_end_is_the_first_quote_backslash_or_control(
            v in prop::collection::vec(prop::sample::select(&b"ab\"\\\x00\x1f\x20\x7f\x80\xff~!"[..]), 0..40)
        ) {
            let want = v.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20);
            prop_assert_eq!(string_end(&v), want);
        }

        #[test]
        fn truncations_agree(idx in 0..VALID.len(), cut in any::<prop::sample::Index>()) {
            let s = VALID[idx];
            let mut i = cut.index(s.len());
            while !s.is_char_boundary(i) { i -= 1; }
            agree(&s[..i])?;
        }
    }
}
