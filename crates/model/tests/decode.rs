//! Decoder tests: every reason code, the contract's examples, and the JSON Schema.

use levee_model::{decode, Body, EngageAction, Event, Limits, Reason};
use std::path::PathBuf;

fn contract(file: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/contract")
        .join(file);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

fn schema() -> jsonschema::Validator {
    let s: serde_json::Value =
        serde_json::from_str(&contract("event.schema.json")).expect("schema json");
    jsonschema::validator_for(&s).expect("schema compiles")
}

/// What a case expects: `Ok(event type)` or `Err((reason, field))`.
type Expected = Result<&'static str, (Reason, &'static str)>;

/// The one helper: decode `input` and compare with `expected`.
fn check(input: &str, expected: Expected) {
    let got = decode(input.as_bytes(), &Limits::default());
    match (&got, expected) {
        (Ok(ev), Ok(ty)) => assert_eq!(ev.event_type().as_str(), ty, "input: {input}"),
        (Err(e), Err((reason, field))) => {
            assert_eq!((e.reason, e.detail), (reason, field), "input: {input}")
        }
        _ => panic!("input {input}: got {got:?}, expected {expected:?}"),
    }
}

#[test]
fn every_reason_code() {
    use Reason::*;
    let cases: &[(&str, Expected)] = &[
        (r#"{"type":"login","ts":1,"account":"a"}"#, Ok("login")),
        (
            r#"{"v":1,"type":"login","ts":1,"account":"a","extra":{"x":[1,2]}}"#,
            Ok("login"),
        ),
        (
            "{\"type\":\"login\",\"ts\":1,\"account\":\"\u{00e9}\"}",
            Ok("login"),
        ),
        (
            r#"{"type":"login","ts":1,"account":"a"#,
            Err((InvalidJson, "record")),
        ),
        (
            r#"{"type":"login","ts":1,"account":"a"} x"#,
            Err((InvalidJson, "record")),
        ),
        (
            r#"{"type":"login","type":"login","ts":1,"account":"a"}"#,
            Err((InvalidJson, "type")),
        ),
        (r#"[1,2]"#, Err((NotObject, "record"))),
        (r#""login""#, Err((NotObject, "record"))),
        (r#"{"ts":1,"account":"a"}"#, Err((MissingField, "type"))),
        (
            r#"{"type":"login","account":"a"}"#,
            Err((MissingField, "ts")),
        ),
        (r#"{"type":"login","ts":1}"#, Err((MissingField, "account"))),
        (
            r#"{"type":"post","ts":1,"account":"a","post":"p"}"#,
            Err((MissingField, "text")),
        ),
        (
            r#"{"type":"engage","ts":1,"account":"a","post":"p"}"#,
            Err((MissingField, "action")),
        ),
        (
            r#"{"type":"follow","ts":1,"account":"a"}"#,
            Err((MissingField, "target")),
        ),
        (
            r#"{"type":"hotlist","ts":1,"account":"a","action":"view"}"#,
            Err((MissingField, "topic")),
        ),
        (
            r#"{"type":"login","ts":"1","account":"a"}"#,
            Err((WrongType, "ts")),
        ),
        (
            r#"{"type":"login","ts":1.5,"account":"a"}"#,
            Err((WrongType, "ts")),
        ),
        (
            r#"{"type":"login","ts":1,"account":7}"#,
            Err((WrongType, "account")),
        ),
        (
            r#"{"type":"login","ts":1,"account":"a","ip":null}"#,
            Err((WrongType, "ip")),
        ),
        (
            r#"{"type":"post","ts":1,"account":"a","post":"p","text":"","topics":"t"}"#,
            Err((WrongType, "topics")),
        ),
        (
            r#"{"type":"login","ts":-1,"account":"a"}"#,
            Err((InvalidValue, "ts")),
        ),
        (
            r#"{"type":"login","ts":1,"account":""}"#,
            Err((InvalidValue, "account")),
        ),
        (
            r#"{"type":"login","ts":1,"account":"a","ip":"300.1.1.1"}"#,
            Err((InvalidValue, "ip")),
        ),
        (
            r#"{"type":"hotlist","ts":1,"account":"a","topic":"t","action":"view","rank":-3}"#,
            Err((InvalidValue, "rank")),
        ),
        (
            r#"{"type":"logout","ts":1,"account":"a"}"#,
            Err((UnknownType, "type")),
        ),
        (
            r#"{"type":"engage","ts":1,"account":"a","post":"p","action":"dislike"}"#,
            Err((UnknownAction, "action")),
        ),
        (
            r#"{"type":"follow","ts":1,"account":"a","target":"b","action":"block"}"#,
            Err((UnknownAction, "action")),
        ),
        (
            r#"{"type":"hotlist","ts":1,"account":"a","topic":"t","action":"like"}"#,
            Err((UnknownAction, "action")),
        ),
        (
            r#"{"v":2,"type":"login","ts":1,"account":"a"}"#,
            Err((UnsupportedVersion, "v")),
        ),
        (
            r#"{"v":"1","type":"login","ts":1,"account":"a"}"#,
            Err((WrongType, "v")),
        ),
    ];
    for (input, expected) in cases {
        check(input, *expected);
    }
}

#[test]
fn limits_are_enforced_at_the_boundary() {
    use Reason::*;
    let id128 = "x".repeat(128);
    let ok = format!(r#"{{"type":"login","ts":1,"account":"{id128}"}}"#);
    check(&ok, Ok("login"));
    check(
        &format!(r#"{{"type":"login","ts":1,"account":"{id128}y"}}"#),
        Err((TooLong, "account")),
    );
    check(
        &format!(
            r#"{{"type":"login","ts":1,"account":"a","ua":"{}"}}"#,
            "u".repeat(513)
        ),
        Err((TooLong, "ua")),
    );
    // 20,000 characters of 3-byte text is fine; one more is not.
    let text = "字".repeat(20_000);
    check(
        &format!(r#"{{"type":"post","ts":1,"account":"a","post":"p","text":"{text}"}}"#),
        Ok("post"),
    );
    check(
        &format!(r#"{{"type":"post","ts":1,"account":"a","post":"p","text":"{text}字"}}"#),
        Err((TooLong, "text")),
    );
    let topics: Vec<String> = (0..33).map(|i| format!("\"t{i}\"")).collect();
    check(
        &format!(
            r#"{{"type":"post","ts":1,"account":"a","post":"p","text":"","topics":[{}]}}"#,
            topics.join(",")
        ),
        Err((TooLong, "topics")),
    );
    let huge = format!(
        r#"{{"type":"login","ts":1,"account":"a","pad":"{}"}}"#,
        "z".repeat(300_000)
    );
    check(&huge, Err((TooLong, "record")));
}

#[test]
fn invalid_utf8_is_its_own_reason() {
    let mut bytes = br#"{"type":"login","ts":1,"account":"a"#.to_vec();
    bytes.extend_from_slice(&[0xff, 0xfe]);
    bytes.extend_from_slice(br#""}"#);
    let e = decode(&bytes, &Limits::default()).expect_err("invalid utf-8 must be rejected");
    assert_eq!(e.reason, Reason::InvalidUtf8);
}

#[test]
fn strings_without_escapes_borrow_from_the_input() {
    let input = br#"{"type":"engage","ts":5,"account":"u1","action":"like","post":"p9","author":"u\u0032"}"#;
    let ev = decode(input, &Limits::default()).expect("valid");
    assert!(matches!(ev.account, std::borrow::Cow::Borrowed("u1")));
    match ev.body {
        Body::Engage {
            action,
            post,
            author,
            ..
        } => {
            assert_eq!(action, EngageAction::Like);
            assert!(matches!(post, std::borrow::Cow::Borrowed("p9")));
            assert_eq!(author.as_deref(), Some("u2"), "escapes are decoded");
        }
        other => panic!("wrong body {other:?}"),
    }
}

fn contract_examples() -> Vec<String> {
    let md = contract("events.md");
    let block = md
        .split("```json")
        .nth(1)
        .expect("events.md has a json block");
    let block = block.split("```").next().unwrap_or_default();
    block
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_contract_example_decodes_and_round_trips() {
    let examples = contract_examples();
    assert_eq!(examples.len(), 5, "events.md lists five examples");
    let validator = schema();
    for line in &examples {
        let ev =
            decode(line.as_bytes(), &Limits::default()).unwrap_or_else(|e| panic!("{line}: {e}"));
        let again = ev.to_json();
        let back: Event<'_> = decode(again.as_bytes(), &Limits::default()).expect("re-decodes");
        assert_eq!(ev, back);
        let original: serde_json::Value = serde_json::from_str(line).expect("json");
        let encoded: serde_json::Value = serde_json::from_str(&again).expect("json");
        assert_eq!(original, encoded, "encoding preserves every contract field");
        assert!(
            validator.is_valid(&encoded),
            "{again} fails event.schema.json"
        );
    }
}
