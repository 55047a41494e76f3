//! Near-duplicate pairs side by side: Levee's chunk decision (`NearDuplicates`, the same rule
//! as the `copies` detector) against exact Jaccard similarity of the same feature sets, on a
//! slice of the default simulated scenario (campaign texts among organic ones). Writes the
//! feature sets and the exact pairs for the MinHash LSH reference (`copies_minhash.py`).
//! `cargo bench -p levee-detect --bench copies_pairs`.

use levee_detect::{CopiesConfig, NearDuplicates};
use levee_model::Body;
use levee_sim::{generate, ScenarioConfig};
use std::collections::BTreeSet;
use std::io::Write;
use std::time::Instant;

/// Texts at least this similar (exact Jaccard of distinct features) are near-duplicates.
const JACCARD: f64 = 0.5;
/// Texts with fewer distinct features are left out of the sample (generic comments).
const MIN_FEATURES: usize = 8;

fn jaccard(a: &[u64], b: &[u64]) -> f64 {
    let (mut i, mut j, mut both) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                both += 1;
                i += 1;
                j += 1;
            }
        }
    }
    both as f64 / (a.len() + b.len() - both) as f64
}

fn main() {
    let s = generate(&ScenarioConfig::default());
    let (start, end) = (s.truth.start, s.truth.end);
    let at = |f: f64| start + ((end - start) as f64 * f) as i64;
    let planted: BTreeSet<&str> = s
        .truth
        .groups
        .iter()
        .filter(|g| g.kind == levee_model::AlertKind::CopyCampaign)
        .flat_map(|g| g.accounts.iter().map(String::as_str))
        .collect();
    let mut texts: Vec<(i64, String, bool)> = s
        .events
        .iter()
        .filter_map(|e| {
            let copy = planted.contains(e.account.as_ref());
            match &e.body {
                Body::Post { text, .. } => Some((e.ts, text.to_string(), copy)),
                Body::Engage { text: Some(t), .. } => Some((e.ts, t.to_string(), copy)),
                _ => None,
            }
        })
        .collect();
    texts.sort_by_key(|t| t.0);
    let mut nd = NearDuplicates::new(&CopiesConfig::default());
    let (from, to) = (at(0.15), at(0.35));
    let mut sample: Vec<(String, Vec<u64>)> = Vec::new();
    let mut campaign = Vec::new();
    for (ts, text, copy) in &texts {
        if *ts < from {
            nd.warm(text);
        } else if *ts < to {
            let f = nd.features(text);
            if f.len() >= MIN_FEATURES {
                sample.push((text.clone(), f));
                campaign.push(*copy);
            }
        }
    }
    // Levee: file the sample in order; the links it reports are its pairs.
    let t0 = Instant::now();
    let mut filed_to_sample = Vec::new();
    let mut levee: BTreeSet<(usize, usize)> = BTreeSet::new();
    for (k, (text, _)) in sample.iter().enumerate() {
        if let Some(links) = nd.add(text) {
            for l in links {
                levee.insert((filed_to_sample[l], k));
            }
            filed_to_sample.push(k);
        }
    }
    let levee_secs = t0.elapsed().as_secs_f64();
    // Exact Jaccard over every pair.
    let t1 = Instant::now();
    let mut truth: BTreeSet<(usize, usize)> = BTreeSet::new();
    for i in 0..sample.len() {
        for j in i + 1..sample.len() {
            if jaccard(&sample[i].1, &sample[j].1) >= JACCARD {
                truth.insert((i, j));
            }
        }
    }
    let exact_secs = t1.elapsed().as_secs_f64();
    let hit = levee.intersection(&truth).count();
    println!(
        "sample: {} texts (>= {MIN_FEATURES} features) of the default scenario between 15% and 35% of its span; {} filed by Levee",
        sample.len(),
        filed_to_sample.len()
    );
    println!(
        "exact Jaccard >= {JACCARD}: {} pairs ({exact_secs:.2} s for all pairs)",
        truth.len()
    );
    println!(
        "levee: {} pairs, precision {:.3}, recall {:.3}; {:.0} texts/s (features, chunks, lookups, links)",
        levee.len(),
        hit as f64 / levee.len().max(1) as f64,
        hit as f64 / truth.len().max(1) as f64,
        sample.len() as f64 / levee_secs
    );
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("copies_pairs");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let mut f =
        std::io::BufWriter::new(std::fs::File::create(dir.join("features.jsonl")).expect("create"));
    for (_, feats) in &sample {
        writeln!(f, "{}", serde_json::to_string(feats).expect("json")).expect("write");
    }
    let pairs: Vec<(usize, usize)> = truth.iter().copied().collect();
    let levee_pairs: Vec<(usize, usize)> = levee.iter().copied().collect();
    std::fs::write(
        dir.join("pairs.json"),
        serde_json::json!({"truth": pairs, "levee": levee_pairs}).to_string(),
    )
    .expect("write");
    let both = |p: &&(usize, usize)| campaign[p.0] && campaign[p.1];
    let tc = truth.iter().filter(both).count();
    let lc = levee.iter().filter(both).count();
    let hc = levee.intersection(&truth).filter(both).count();
    println!(
        "between campaign texts ({} in the sample): exact {tc} pairs, levee {lc}, of them exact {hc} (recall {:.3}); organic or mixed: exact {}, levee {}",
        campaign.iter().filter(|c| **c).count(),
        hc as f64 / tc.max(1) as f64,
        truth.len() - tc,
        levee.len() - lc
    );
    println!("wrote {}", dir.display());
}
