//! The pipeline over JSON Lines: nothing is lost, bad records become dead letters.

use levee_model::Reason;
use levee_runtime::file::{run_jsonl, AlertWriter, Line, LineReader};
use levee_runtime::{LeveeConfig, Pipeline};
use proptest::prelude::*;

/// Run `input` through file mode with default config; return (counters, dead letters as JSON).
fn check(input: &[u8]) -> (levee_runtime::Counters, Vec<serde_json::Value>) {
    let cfg = LeveeConfig::default();
    let mut p = Pipeline::new(&cfg);
    let mut alerts = AlertWriter::new(Vec::new());
    let mut dead = Vec::new();
    let mut batches = 0;
    let report = run_jsonl(
        input,
        &mut alerts,
        &mut dead,
        &mut p,
        1024,
        3,
        &mut |_, _| batches += 1,
    )
    .expect("in-memory io");
    assert!(batches >= 1, "on_batch runs at least at the end");
    let c = report.counters;
    assert_eq!(
        c.records,
        c.events_total() + c.dead_letters_total(),
        "every record is an event or a dead letter"
    );
    let dead: Vec<serde_json::Value> = String::from_utf8(dead)
        .expect("utf8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("dead letter is json"))
        .collect();
    assert_eq!(dead.len() as u64, c.dead_letters_total());
    (c, dead)
}

#[test]
fn bad_records_are_dead_lettered_with_position_reason_and_bytes() {
    let mut input = Vec::new();
    input.extend_from_slice(b"{\"type\":\"login\",\"ts\":100000,\"account\":\"a\"}\n");
    input.extend_from_slice(b"not json\n");
    input.extend_from_slice(b"\n   \n"); // blank lines are not records
    input.extend_from_slice(b"{\"type\":\"login\",\"ts\":100000,\"account\":\"b\"}\r\n");
    input.extend_from_slice(&[0xff, 0xfe, b'\n']);
    input.extend_from_slice(format!("{{\"pad\":\"{}\"}}\n", "x".repeat(5000)).as_bytes());
    input.extend_from_slice(b"{\"type\":\"login\",\"ts\":1000,\"account\":\"c\"}\n"); // behind watermark by > grace
    input.extend_from_slice(b"{\"type\":\"login\",\"ts\":60000,\"account\":\"d\"}"); // late within grace, no final newline
    let (c, dead) = check(&input);
    assert_eq!(c.records, 7);
    assert_eq!(c.events_total(), 3);
    assert_eq!(c.late_processed, 1);
    let got: Vec<(String, u64)> = dead
        .iter()
        .map(|d| {
            (
                d["reason"].as_str().unwrap_or("").to_owned(),
                d["line"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("invalid_json".into(), 2),
            ("invalid_utf8".into(), 6),
            ("too_long".into(), 7),
            ("late".into(), 8)
        ]
    );
    assert_eq!(dead[0]["raw"], "not json");
    assert_eq!(dead[1]["raw_base64"], "//4=");
    assert_eq!(dead[2]["truncated"], true);
    assert_eq!(
        dead[2]["raw"].as_str().map(str::len),
        Some(1024),
        "oversized records keep a bounded prefix"
    );
    assert_eq!(c.dead_letters[Reason::Late.index()], 1);
}

#[test]
fn line_reader_bounds_memory_on_huge_lines() {
    let mut input = vec![b'a'; 10_000_000];
    input.extend_from_slice(b"\nok\n");
    let mut r = LineReader::new(&input[..], 100);
    match r.next_line().expect("io") {
        Some((1, Line::Oversized(p))) => assert_eq!(p.len(), 100),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        r.next_line().expect("io"),
        Some((2, Line::Record(&b"ok"[..])))
    );
    assert_eq!(r.next_line().expect("io"), None);
    assert_eq!(r.bytes_read(), input.len() as u64);
}

#[test]
fn line_reader_gives_the_same_lines_whatever_its_buffer() {
    // Lines borrowed from the reader's buffer, or copied when they straddle its end:
    // the same lines, numbers and byte count either way.
    let input = b"one\r\n\n  \r\ntwo two\n0123456789abcdef\nthree\r\nlast".to_vec();
    let read = |capacity: usize| {
        let mut r = LineReader::new(std::io::BufReader::with_capacity(capacity, &input[..]), 12);
        let mut lines = Vec::new();
        while let Some((n, line)) = r.next_line().expect("io") {
            lines.push(format!("{n} {line:?}"));
        }
        (lines, r.bytes_read())
    };
    let (whole, bytes) = read(1 << 16);
    assert_eq!(
        whole,
        [
            "1 Record([111, 110, 101])",
            "4 Record([116, 119, 111, 32, 116, 119, 111])",
            "5 Oversized([48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 97, 98])",
            "6 Record([116, 104, 114, 101, 101])",
            "7 Record([108, 97, 115, 116])",
        ]
    );
    assert_eq!(bytes, input.len() as u64);
    for capacity in 1..40 {
        assert_eq!(
            read(capacity),
            (whole.clone(), bytes),
            "capacity {capacity}"
        );
    }
}

const VALID: &[&str] = &[
    r#"{"type":"register","ts":1732000000000,"account":"u1001","ip":"203.0.113.7","device":"d-9f2","name":"n"}"#,
    r#"{"type":"engage","ts":1732000009000,"account":"u1001","action":"like","post":"p55","author":"u7"}"#,
    r#"{"type":"hotlist","ts":1732000015000,"account":"u1001","topic":"t","action":"search"}"#,
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
    #[test]
    fn every_record_is_exactly_one_event_or_dead_letter(
        recs in prop::collection::vec(
            prop_oneof![
                prop::sample::select(VALID).prop_map(|s| s.as_bytes().to_vec()),
                prop::collection::vec(any::<u8>().prop_filter("no newline", |b| *b != b'\n'), 1..200),
                (prop::sample::select(VALID), any::<prop::sample::Index>(), any::<u8>()).prop_map(|(s, i, b)| {
                    let mut v = s.as_bytes().to_vec();
                    let k = i.index(v.len());
                    v[k] = if b == b'\n' { b' ' } else { b };
                    v
                }),
            ],
            1..40,
        )
    ) {
        let mut input = Vec::new();
        let mut non_blank = 0u64;
        for r in &recs {
            if !r.iter().all(u8::is_ascii_whitespace) { non_blank += 1; }
            input.extend_from_slice(r);
            input.push(b'\n');
        }
        let (c, _) = check(&input);
        prop_assert_eq!(c.records, non_blank);
    }
}

#[test]
fn the_reorder_buffer_stays_within_its_bound_and_counts_overflow() {
    let mut cfg = LeveeConfig::default();
    cfg.runtime.reorder_max_bytes = 16 * 1024;
    let mut p = Pipeline::new(&cfg);
    let (mut alerts, mut dead) = (Vec::new(), Vec::new());
    // Lane 0 stops at t0 and holds the watermark back; lane 1 runs an hour ahead.
    let t0 = 1_732_000_000_000_i64;
    let rec = |ts: i64, i: usize| format!(r#"{{"type":"login","ts":{ts},"account":"a{i}"}}"#);
    p.process(
        0,
        rec(t0, 0).as_bytes(),
        levee_runtime::Position::Line(0),
        &mut alerts,
        &mut dead,
    );
    let mut peak = 0;
    for i in 1..5_000 {
        let line = rec(t0 + i as i64 * 700, i);
        p.process(
            1,
            line.as_bytes(),
            levee_runtime::Position::Line(i as u64),
            &mut alerts,
            &mut dead,
        );
        peak = peak.max(p.held().0);
    }
    assert!(peak <= cfg.runtime.reorder_max_bytes, "held {peak} bytes");
    let c = p.counters();
    assert!(c.reorder_overflow > 4_000, "overflow is counted: {c:?}");
    assert_eq!(c.records, 5_000);
    assert_eq!(
        c.events_total() + c.dead_letters_total(),
        5_000,
        "nothing dropped"
    );
}
