//! Property tests: the decoder never panics, and what it accepts the JSON Schema accepts.

use levee_model::{decode, Limits};
use proptest::prelude::*;
use std::path::PathBuf;

fn validator() -> jsonschema::Validator {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/contract/event.schema.json");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p).expect("schema file"))
            .expect("schema json");
    jsonschema::validator_for(&s).expect("schema compiles")
}

const VALID: &[&str] = &[
    r#"{"type":"register","ts":1732000000000,"account":"u1001","ip":"203.0.113.7","device":"d-9f2","ua":"app/8.1 android/13","name":"小雨1023"}"#,
    r#"{"type":"post","ts":1732000005000,"account":"u7","post":"p55","text":"今天的发布会太精彩了 #新品#","topics":["新品"],"reply_to":"p1"}"#,
    r#"{"type":"engage","ts":1732000009000,"account":"u1001","action":"like","post":"p55","author":"u7","text":"转发微博"}"#,
    r#"{"type":"follow","ts":1732000012000,"account":"u1001","target":"u7","action":"unfollow"}"#,
    r#"{"type":"hotlist","ts":1732000015000,"account":"u1001","topic":"新品","action":"search","rank":3}"#,
    r#"{"v":1,"type":"login","ts":1732000016000,"account":"u1001","ip":"2001:db8::1","account_created":1731000000000}"#,
];

/// A JSON value that is likely to hit the interesting type mismatches.
fn any_json() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,140}".prop_map(Value::String),
        prop_oneof![
            Just("like"),
            Just("view"),
            Just("unfollow"),
            Just("engage"),
            Just("")
        ]
        .prop_map(|s| Value::String(s.to_owned())),
        prop::collection::vec(".{0,4}", 0..40).prop_map(Value::from),
    ]
}

const FIELDS: &[&str] = &[
    "v",
    "type",
    "ts",
    "account",
    "ip",
    "device",
    "ua",
    "account_created",
    "name",
    "post",
    "text",
    "topics",
    "reply_to",
    "repost_of",
    "action",
    "author",
    "target",
    "topic",
    "rank",
    "other",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        // Decoding is total: a value or a reason, never a panic.
        let _ = decode(&bytes, &Limits::default());
    }

    #[test]
    fn byte_mutations_of_valid_events_never_panic(
        idx in 0..VALID.len(), pos in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<bool>()
    ) {
        let mut b = VALID[idx].as_bytes().to_vec();
        let i = pos.index(b.len());
        if cut { b.truncate(i) } else { b[i] = byte }
        let _ = decode(&b, &Limits::default());
    }

    #[test]
    fn accepted_events_satisfy_the_schema_and_round_trip(
        idx in 0..VALID.len(), field in prop::sample::select(FIELDS), value in any_json(), remove in any::<bool>()
    ) {
        let mut obj: serde_json::Value = serde_json::from_str(VALID[idx]).expect("valid json");
        let map = obj.as_object_mut().expect("object");
        if remove { map.remove(field); } else { map.insert(field.to_owned(), value); }
        let text = obj.to_string();
        if let Ok(ev) = decode(text.as_bytes(), &Limits::default()) {
            prop_assert!(validator().is_valid(&obj), "decoder accepted what the schema rejects: {}", text);
            let again = ev.to_json();
            let back = decode(again.as_bytes(), &Limits::default()).expect("re-encoded event decodes");
            prop_assert_eq!(ev, back);
        }
    }
}
