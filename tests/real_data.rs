//! The real stream in `shared/data` (2021 German federal election, CooRTweet): it runs cleanly,
//! and what lockstep flags lies inside the co-sharing network a reference tool would build.

use flate2::read::GzDecoder;
use levee_model::EventType;
use levee_runtime::file::{run_jsonl, AlertWriter};
use levee_runtime::{LeveeConfig, Pipeline};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufReader, Read};
use std::path::PathBuf;

fn stream() -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/german_elections_2021.jsonl.gz");
    let mut bytes = Vec::new();
    GzDecoder::new(std::fs::File::open(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .read_to_end(&mut bytes)
        .expect("gunzip");
    bytes
}

/// The QUT coordination-network-toolkit's co-link network, rebuilt from its definition:
/// two accounts are linked once for every pair of their shares of the same object (URL
/// `url:`, or image `img:` when `prefix` is empty) less than 60 s apart; keep edges of
/// weight >= 2; return the components of the 4-core (sorted, largest first) and every
/// account of the network before the weight and core filters.
fn co_share_core(bytes: &[u8], prefix: &str) -> (Vec<BTreeSet<String>>, BTreeSet<String>) {
    let limits = levee_model::Limits::default();
    let mut by_object: HashMap<String, Vec<(i64, String)>> = HashMap::new();
    for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let ev = levee_model::decode(line, &limits).expect("the stream decodes");
        if let levee_model::Body::Engage { post, .. } = &ev.body {
            if post.starts_with(prefix) {
                let shares = by_object.entry(post.to_string()).or_default();
                shares.push((ev.ts, ev.account.to_string()));
            }
        }
    }
    let mut weight: HashMap<(String, String), u32> = HashMap::new();
    for shares in by_object.values_mut() {
        shares.sort();
        for (i, (t, a)) in shares.iter().enumerate() {
            for (u, b) in shares[i + 1..].iter().take_while(|(u, _)| u - t < 60_000) {
                debug_assert!(u >= t);
                if a != b {
                    let key = (a.min(b).clone(), a.max(b).clone());
                    *weight.entry(key).or_default() += 1;
                }
            }
        }
    }
    let network: BTreeSet<String> = weight
        .keys()
        .flat_map(|(a, b)| [a.clone(), b.clone()])
        .collect();
    let mut adj: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for ((a, b), _) in weight.iter().filter(|(_, w)| **w >= 2) {
        adj.entry(a.clone()).or_default().insert(b.clone());
        adj.entry(b.clone()).or_default().insert(a.clone());
    }
    loop {
        let weak: Vec<String> = adj
            .iter()
            .filter(|(_, n)| n.len() < 4)
            .map(|(a, _)| a.clone())
            .collect();
        if weak.is_empty() {
            break;
        }
        for a in weak {
            for b in adj.remove(&a).unwrap_or_default() {
                if let Some(n) = adj.get_mut(&b) {
                    n.remove(&a);
                }
            }
        }
    }
    let mut groups: Vec<BTreeSet<String>> = Vec::new();
    let mut seen: BTreeSet<&String> = BTreeSet::new();
    for start in adj.keys() {
        if !seen.insert(start) {
            continue;
        }
        let (mut group, mut stack) = (BTreeSet::new(), vec![start]);
        while let Some(a) = stack.pop() {
            group.insert(a.clone());
            for b in &adj[a] {
                if seen.insert(b) {
                    stack.push(b);
                }
            }
        }
        groups.push(group);
    }
    groups.sort_by_key(|g| std::cmp::Reverse(g.len()));
    (groups, network)
}

fn run(
    bytes: &[u8],
    cfg: &LeveeConfig,
) -> (levee_runtime::Counters, Vec<u8>, Vec<levee_model::Alert>) {
    let mut pipeline = Pipeline::new(cfg);
    let mut alerts = AlertWriter::new(Vec::new());
    let mut dead = Vec::new();
    let report = run_jsonl(
        BufReader::new(bytes),
        &mut alerts,
        &mut dead,
        &mut pipeline,
        cfg.runtime.max_record_bytes,
        4096,
        &mut |_, _| {},
    )
    .expect("io");
    let alerts = String::from_utf8(alerts.into_inner())
        .expect("utf8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("alert json"))
        .collect();
    (report.counters, dead, alerts)
}

/// The stream without its image shares: URL shares only, the toolkit's co_link input.
fn url_shares(bytes: &[u8]) -> Vec<u8> {
    let image = b"\"post\": \"img:";
    bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty() && !l.windows(image.len()).any(|w| w == image))
        .flat_map(|l| l.iter().copied().chain([b'\n']))
        .collect()
}

#[test]
fn lockstep_finds_the_co_link_core_and_nothing_outside_the_network() {
    let bytes = stream();
    // The toolkit's co_link network (URLs), as quoted in issue 9.
    let (links, network) = co_share_core(&bytes, "url:");
    let sizes: Vec<usize> = links.iter().map(BTreeSet::len).collect();
    assert_eq!(sizes.iter().sum::<usize>(), 131, "{sizes:?}");
    assert_eq!(&sizes[..8], &[40, 22, 19, 9, 8, 7, 6, 5]);
    let link_core: BTreeSet<&String> = links.iter().flatten().collect();
    // On the same input as the toolkit (URL shares), with defaults.
    let (_, _, alerts) = run(&url_shares(&bytes), &LeveeConfig::default());
    let flagged: BTreeSet<&String> = alerts.iter().flat_map(|a| &a.accounts).collect();
    let outside: Vec<_> = flagged.iter().filter(|a| !network.contains(**a)).collect();
    assert!(outside.is_empty(), "flagged outside co_link: {outside:?}");
    let found = flagged.iter().filter(|a| link_core.contains(*a)).count();
    let per_group: Vec<(usize, usize)> = links
        .iter()
        .map(|g| (g.len(), g.iter().filter(|a| flagged.contains(a)).count()))
        .collect();
    eprintln!(
        "URL shares: {} flagged, {found} of the 131 in the co_link 4-core; per group {per_group:?}",
        flagged.len()
    );
    // 101 of 131 measured (77%); the groups left out share the minute at the rate and
    // the spread of gaps of the simulator's fans (docs/detectors/lockstep.md, "On the
    // real stream").
    assert!(found >= 99, "{found} of 131: {per_group:?}");
    assert!(
        flagged.len() - found <= 3,
        "{} off the core",
        flagged.len() - found
    );
    // Levee pairs every shared object, URLs and images alike: on the whole stream what it
    // flags lies in the co-share 4-core (URLs and images).
    let (shares, _) = co_share_core(&bytes, "");
    let core: BTreeSet<&String> = shares.iter().flatten().collect();
    assert_eq!(core.len(), 179);
    let (_, _, alerts) = run(&bytes, &LeveeConfig::default());
    let flagged: BTreeSet<&String> = alerts.iter().flat_map(|a| &a.accounts).collect();
    let off_core = flagged.iter().filter(|a| !core.contains(*a)).count();
    eprintln!(
        "all shares: {} flagged, {off_core} outside the co-share 4-core",
        flagged.len()
    );
    assert!(
        off_core <= 2,
        "{off_core} flagged outside the co-share 4-core"
    );
}

#[test]
fn german_elections_stream_runs_without_dead_letters() {
    let bytes = stream();
    let cfg = LeveeConfig::default();
    let (c, dead, alerts) = run(&bytes, &cfg);
    let c = &c;
    // The data README: 289,824 events, time-ordered, posts and shares only.
    assert_eq!(c.records, 289_824);
    assert_eq!(
        c.dead_letters_total(),
        0,
        "{}",
        String::from_utf8_lossy(&dead[..dead.len().min(2000)])
    );
    assert_eq!(
        c.events[EventType::Post.index()],
        218_971,
        "one post event per source post"
    );
    assert_eq!(
        c.events[EventType::Post.index()] + c.events[EventType::Engage.index()],
        289_824
    );
    assert_eq!(c.late_processed, 0, "the stream is time-ordered");
    // No device fields here, so only the lockstep detector can speak: the source's authors
    // found coordinated link sharing in this data, and Levee finds such a group too.
    assert!(
        !alerts.is_empty(),
        "expected at least one coordinated link-sharing group"
    );
    let text = String::from_utf8_lossy(&bytes);
    for a in &alerts {
        assert_eq!(a.kind, levee_model::AlertKind::BotFarm);
        // Two or more targets, or one engaged together in separate waves.
        assert!(a.accounts.len() >= 5 && !a.targets.is_empty(), "{a:?}");
        for acc in &a.accounts {
            assert!(
                text.contains(&format!("\"account\": \"{acc}\"")),
                "{acc} is not in the stream"
            );
        }
    }
}
