//! Copy-campaign throughput and memory: texts of about 100 characters (Chinese and English,
//! some from templates) through the `copies` detector alone, on one core. Prints texts/s
//! and the window's bytes per 1M indexed texts. `cargo bench -p levee-detect --bench copies`.

use levee_detect::{Detectors, DetectorsConfig};
use levee_model::{decode, Limits};
use std::time::Instant;

/// A deterministic generator (xorshift), so every run measures the same texts.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// About 100 characters: 50 CJK characters from a 3,000-character range, or 16 English
    /// words from a 5,000-word vocabulary, with punctuation every few words.
    fn text(&mut self) -> String {
        let mut s = String::new();
        if self.next() % 10 < 6 {
            for i in 0..50 {
                let c = char::from_u32(0x4E00 + (self.next() % 3_000) as u32).unwrap_or('字');
                s.push(c);
                if i % 12 == 11 {
                    s.push('，');
                }
            }
        } else {
            for i in 0..16 {
                s.push_str(&format!("w{} ", self.next() % 5_000));
                if i % 6 == 5 {
                    s.push_str(", ");
                }
            }
        }
        s
    }
}

fn main() {
    let n: usize = std::env::var("LEVEE_BENCH_TEXTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400_000);
    let mut g = Gen(0x9E37_79B9_7F4A_7C15);
    let lines: Vec<String> = (0..n)
        .map(|i| {
            // One text in twenty is a copy of one of 50 templates, with an edit.
            let text = if i % 20 == 0 {
                let t = g.next() % 50;
                let mut tg = Gen(t + 1);
                format!("{}{}", tg.text(), g.next() % 10)
            } else {
                g.text()
            };
            serde_json::json!({"type": "post", "ts": 1_732_000_000_000i64 + i as i64 * 10,
                "account": format!("u{}", g.next() % 1_000_000), "post": format!("p{i}"), "text": text})
            .to_string()
        })
        .collect();
    let events: Vec<_> = lines
        .iter()
        .map(|l| decode(l.as_bytes(), &Limits::default()).expect("valid"))
        .collect();
    let mut d = Detectors::new(&DetectorsConfig::only("copies"));
    let mut out = Vec::new();
    let start = Instant::now();
    for (i, ev) in events.iter().enumerate() {
        d.on_event(ev, &mut out);
        if i % 1_000 == 999 {
            d.on_tick(ev.ts - 10_000, &mut out);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let stats = d
        .stats()
        .into_iter()
        .next()
        .map(|(_, s)| s)
        .expect("copies");
    let texts = stats.map("texts").map_or(0, |m| m.entries);
    let window: u64 = ["texts", "clauses", "index"]
        .iter()
        .filter_map(|m| stats.map(m))
        .map(|m| m.bytes)
        .sum();
    println!("copies: {n} texts of ~100 characters in {secs:.2} s: {:.0} texts/s (fingerprint, index lookup and insert, clustering)", n as f64 / secs);
    println!(
        "window: {texts} texts indexed, {:.1} chunks a text, {} MiB (texts, chunks, index): {:.0} MiB per 1M texts; sketch {} MiB; {} alerts",
        stats.map("clauses").map_or(0, |m| m.entries) as f64 / texts.max(1) as f64,
        window >> 20,
        window as f64 / texts.max(1) as f64 * 1e6 / (1 << 20) as f64,
        stats.map("sketch").map_or(0, |m| m.bytes >> 20),
        out.len()
    );
}
