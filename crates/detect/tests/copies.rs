//! `copies` behaviour, driven by text scripts through one `check()` helper.

use levee_detect::{DetectorStats, Detectors, DetectorsConfig};
use levee_model::{decode, Alert, Limits};

/// `(second, account, text)`: one post each.
type Script = Vec<(i64, String, String)>;

/// Background chatter so the rarity sketch has a population: `n` distinct sentences.
fn chatter(n: usize) -> Script {
    (0..n)
        .map(|i| {
            let text = format!(
                "organic note {i} about item{} and topic{}",
                i * 7 % 1013,
                i % 97
            );
            (i as i64 / 10, format!("bg{i}"), text)
        })
        .collect()
}

/// Run the script through the detectors of `cfg` (copies alone); return the alerts and
/// the detector's final stats.
fn check(cfg: &DetectorsConfig, script: Script) -> (Vec<Alert>, DetectorStats) {
    let mut d = Detectors::new(cfg);
    let mut out = Vec::new();
    let mut last = 0;
    for (i, (s, account, text)) in script.into_iter().enumerate() {
        if s > last {
            d.on_tick(s * 1000 - 10_000, &mut out);
            last = s;
        }
        let line = serde_json::json!({
            "type": "post", "ts": s * 1000, "account": account, "post": format!("p{i}"), "text": text
        })
        .to_string();
        let ev = decode(line.as_bytes(), &Limits::default()).expect("valid event");
        d.on_event(&ev, &mut out);
    }
    d.on_flush(&mut out);
    for a in &out {
        assert!(a.accounts.windows(2).all(|w| w[0] < w[1]), "sorted, unique");
        assert_eq!(a.kind.as_str(), "copy_campaign");
    }
    let stats = d
        .stats()
        .into_iter()
        .find(|(n, _)| *n == "copies")
        .map(|(_, s)| s);
    (out, stats.expect("copies runs"))
}

/// A templated text: `variant` picks synonyms, so copies differ but share most clauses.
fn template(variant: usize) -> String {
    let a = ["Huge", "Massive"][variant % 2];
    let b = ["phone", "laptop"][variant / 2 % 2];
    format!("{a} discount at ShopNow this week: every {b} is half price with fast delivery to your door. Click the link before stock runs out!")
}

#[test]
fn a_campaign_is_one_alert_with_few_revisions() {
    let mut script = chatter(3_000);
    for i in 0..40 {
        script.push((400 + i, format!("bot{i:02}"), template(i as usize)));
    }
    let (alerts, _) = check(&DetectorsConfig::only("copies"), script);
    let ids: std::collections::BTreeSet<&str> =
        alerts.iter().map(|a| a.alert_id.as_str()).collect();
    assert_eq!(ids.len(), 1, "one operation, one alert id");
    assert!(alerts.len() <= 5, "{} revisions", alerts.len());
    let last = alerts.last().expect("an alert");
    assert_eq!(last.accounts.len(), 40, "every copier is named");
    assert!(last.summary.contains("40 accounts"), "{}", last.summary);
}

#[test]
fn generic_comments_and_distinct_texts_never_alert() {
    let mut script = chatter(3_000);
    for i in 0..500 {
        let generic = ["哈哈哈", "转发微博", "+1", "支持", "👍👍", "lol"][i % 6];
        script.push((400 + i as i64, format!("fan{i}"), generic.to_owned()));
    }
    let (alerts, _) = check(&DetectorsConfig::only("copies"), script);
    assert!(alerts.is_empty(), "{alerts:?}");
}

#[test]
fn a_headline_quoted_in_own_words_is_not_a_campaign() {
    let mut script = chatter(3_000);
    // Each reader's own words: words of their own (not one sentence with numbers swapped,
    // which is itself a template a few bits from its copies).
    let word = |seed: usize| -> String {
        let mut x = (seed as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) + 1;
        (0..3)
            .map(|_| {
                x ^= x >> 29;
                x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
                let c = b"bdfgklmnprstvz"[(x % 14) as usize] as char;
                let v = b"aeiou"[(x / 14 % 5) as usize] as char;
                format!("{c}{v}")
            })
            .collect()
    };
    for i in 0..100usize {
        let own: Vec<String> = (0..7).map(|j| word(i * 16 + j)).collect();
        let own = own.join(" ");
        let text = format!("{own}: \"City council approves new subway line to the airport\"");
        script.push((400 + i as i64, format!("reader{i}"), text));
    }
    let (alerts, _) = check(&DetectorsConfig::only("copies"), script);
    assert!(alerts.is_empty(), "{alerts:?}");
}

#[test]
fn a_flood_of_one_text_stays_bounded_and_is_counted() {
    let mut cfg = DetectorsConfig::only("copies");
    cfg.copies.max_bucket = 64;
    cfg.copies.max_texts = 500;
    let mut script = chatter(3_000);
    for i in 0..2_000 {
        script.push((400 + i / 100, format!("flood{i}"), template(0)));
    }
    // A text at the contract's 20,000-character limit is fingerprinted on max_text_bytes.
    script.push((500, "huge".into(), "字".repeat(19_000)));
    let (alerts, stats) = check(&cfg, script);
    assert!(!alerts.is_empty(), "the flood is a campaign");
    let texts = stats.map("texts").expect("texts reported");
    assert!(texts.entries <= 500, "{texts:?}");
    assert!(stats.cap_hits > 0, "the caps bit and were counted");
    assert!(stats.bytes() < 64 << 20, "{} bytes", stats.bytes());
}

/// Forty accounts post `text(i)` after the chatter: how many the (one) alert names.
fn named_of_40(cfg: &DetectorsConfig, text: impl Fn(usize) -> String) -> usize {
    let mut script = chatter(3_000);
    for i in 0..40 {
        script.push((400 + i as i64, format!("bot{i:02}"), text(i)));
    }
    let (alerts, _) = check(cfg, script);
    let ids: std::collections::BTreeSet<&str> =
        alerts.iter().map(|a| a.alert_id.as_str()).collect();
    assert!(ids.len() <= 1, "one operation, {} alert ids", ids.len());
    alerts.last().map_or(0, |a| a.accounts.len())
}

/// The heavy disguise: a few filler words in front, the first clause moved to the end, the
/// tail sometimes cut. Chunks a few bits off the template's still count (`loose_hamming`).
#[test]
fn a_template_behind_filler_words_and_reordered_clauses_is_still_found() {
    let filler = [
        "honestly",
        "wow so",
        "just saying",
        "ok listen",
        "guys",
        "real talk",
    ];
    let heavy = |i: usize| {
        let t = template(i);
        let (first, rest) = t.split_once(':').expect("a clause");
        let mut s = format!("{} {}, {}", filler[i % filler.len()], rest.trim(), first);
        if i.is_multiple_of(3) {
            s.truncate(s.len() * 4 / 5);
        }
        s
    };
    let named = |loose: u32| {
        let mut cfg = DetectorsConfig::only("copies");
        cfg.copies.loose_hamming = loose;
        named_of_40(&cfg, heavy)
    };
    let (strict, loose) = (named(0), named(8));
    assert_eq!(loose, 40, "every copier named with loose_hamming 8");
    assert!(
        loose > strict,
        "loose {loose} vs index matches only {strict}"
    );
}

/// A deterministic stream of numbers for the scripts below (splitmix64).
fn pick(seed: u64, n: usize) -> usize {
    let mut x = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((x ^ (x >> 31)) % n as u64) as usize
}

/// Six clauses, each in one of four wordings drawn per copy: two copies share a clause or
/// two, mostly short of a link, yet every wording recurs across the campaign.
fn synonym_template(i: usize) -> String {
    const CLAUSES: [[&str; 4]; 6] = [
        [
            "grab the zentrix blender today before summer prices climb",
            "order your zentrix blender now while warehouse stock lasts",
            "pick up a zentrix blender quickly during this weekend promotion",
            "zentrix blenders are finally back on shelves across every region",
        ],
        [
            "it crushes frozen mango effortlessly without any stalling or noise",
            "frozen mango turns silky within seconds even straight from freezer",
            "even frozen mango becomes velvet smooth after one short pulse",
            "ice and mango vanish into cream faster than promised anywhere",
        ],
        [
            "our family kitchen loves every smoothie recipe from its booklet",
            "my whole household adores breakfast shakes made before school runs",
            "the kids request peanut shakes daily after football practice ends",
            "grandma blends kale juice each morning beside her garden window",
        ],
        [
            "shipping arrived before tuesday lunch in sturdy recycled cardboard packaging",
            "delivery showed up early monday with tracking updates every hour",
            "the courier came within twenty hours carrying two spare gaskets",
            "my parcel landed overnight intact despite heavy winter storms nearby",
        ],
        [
            "the motor hums quietly compared with others costing twice as much",
            "cleaning takes barely half a minute under warm running tap water",
            "glass jug feels sturdy and heavy yet pours cleanly without drips",
            "six speeds cover soups through sorbet plus crushed nuts and seeds",
        ],
        [
            "coupon zenblend saves plenty when entered at final checkout screen",
            "promo zenblend cuts the price further for returning loyal members",
            "use zenblend at checkout to unlock free express shipping upgrades",
            "zenblend code still works tonight for orders placed before midnight",
        ],
    ];
    let parts: Vec<&str> = CLAUSES
        .iter()
        .enumerate()
        .map(|(c, v)| v[pick((i * 8 + c) as u64, 4)])
        .collect();
    parts.join(". ")
}

#[test]
fn a_template_whose_copies_share_few_clauses_pair_by_pair_is_still_found() {
    // 3,000 texts of chatter cap a word's weight at ~8 nats (a stream of millions: ~14),
    // so the link bound is scaled down with the population here.
    let named = |min_repeat_info: f64| {
        let mut cfg = DetectorsConfig::only("copies");
        cfg.copies.min_link_info = 24.0;
        cfg.copies.min_repeat_info = min_repeat_info;
        named_of_40(&cfg, synonym_template)
    };
    // With repeats counted only inside a cluster (no chunk carries 1,000 nats), pairs short
    // of a link leave copies out.
    let (found, inside_only) = (named(24.0), named(1_000.0));
    // The first copies arrive before their clauses recur; one is left out at most.
    assert!(found >= 39, "{found} of 40 copiers named by default");
    assert!(found >= 2 * inside_only, "{found} vs {inside_only}");
}

#[test]
fn chatter_from_a_small_vocabulary_is_not_a_campaign() {
    use rand_chacha::rand_core::SeedableRng;
    // The simulator's organic sentences (3 to 12 words from 50 a language) from 100,000
    // accounts, the window of a 300k-account stream: short phrases recur by chance.
    let small = |min_info: f64| {
        let mut cfg = DetectorsConfig::only("copies");
        cfg.copies.min_repeat_info = min_info;
        cfg.copies.min_link_info = min_info;
        let mut script = chatter(3_000);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for i in 0..400_000usize {
            let text = levee_sim::text::sentence(&mut rng, 3, 12);
            script.push((400 + i as i64 / 40, format!("person{i}"), text));
        }
        check(&cfg, script).0
    };
    let alerts = small(40.0);
    assert!(
        alerts.is_empty(),
        "{:?}",
        alerts.first().map(|a| &a.summary)
    );
    // The bounds are what keep them out: with every shared chunk counted and linking,
    // chance repeats make "copies" of this chatter.
    assert!(
        !small(0.0).is_empty(),
        "chance repeats alert without the bounds"
    );
}

/// Four clauses of five words, each in one of four wordings. Copy 0 is wording 0
/// throughout; copies 1 to 12 change one clause of it (they link to copy 0: one cluster
/// holding every wording); the rest follow a parity code (the fourth wording follows from
/// the first three), so two of them share at most two clauses and most share half of
/// their clauses or less with any one earlier copy, yet each clause recurs in the cluster.
fn parity_template(i: usize) -> String {
    const CLAUSES: [[&str; 4]; 4] = [
        [
            "huge sale at shopnow today",
            "massive discount at shopnow tonight",
            "big savings at shopnow now",
            "special deal at shopnow weekend",
        ],
        [
            "every laptop is half price",
            "each phone costs half now",
            "all tablets are fifty off",
            "any camera is deeply cut",
        ],
        [
            "fast delivery to your door",
            "free shipping to your home",
            "quick courier to your office",
            "express parcel to your flat",
        ],
        [
            "click the link before stock",
            "tap the button while supplies",
            "follow the url until midnight",
            "open the page before closing",
        ],
    ];
    let w = match i {
        0 => [0; 4],
        1..=12 => {
            let mut w = [0; 4];
            w[(i - 1) / 3] = (i - 1) % 3 + 1;
            w
        }
        _ => {
            let j = i - 12;
            let (a, b, c) = (j % 4, j / 4 % 4, j / 16 % 4);
            [a, b, c, (a + b + c) % 4]
        }
    };
    let parts: Vec<&str> = (0..4).map(|k| CLAUSES[k][w[k]]).collect();
    parts.join(", ")
}

#[test]
fn copies_that_share_half_with_any_other_are_found_through_their_cluster() {
    let clauses = |i: usize| {
        parity_template(i)
            .split(", ")
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    for i in 13..40 {
        for j in 13..i {
            let shared = clauses(i).iter().filter(|c| clauses(j).contains(c)).count();
            assert!(shared <= 2, "{i} / {j}");
        }
    }
    let found = named_of_40(&DetectorsConfig::only("copies"), parity_template);
    assert!(found >= 38, "{found} of 40 copiers named");
}

/// A few words put in front of a template's first clause, different for every copy and
/// with no gap to cut at (English): its first chunk is still the template's without them.
#[test]
fn words_put_in_front_of_the_first_clause_do_not_hide_it() {
    let a = ["went", "so", "we", "ok", "real", "hey", "wow", "look"];
    let b = ["", " work", " friends", " talk", " guys"];
    let text = |i: usize| {
        format!(
            "{}{} every laptop is half price with fast delivery to your door at shopnow, click the link before stock runs out",
            a[i % a.len()],
            b[i / a.len() % b.len()]
        )
    };
    let found = named_of_40(&DetectorsConfig::only("copies"), text);
    assert_eq!(found, 40, "every copier named");
}

/// The heavy-disguise Chinese campaign of `levee gen --seed 7` (92 texts of 50 accounts:
/// synonyms, filler words in front, zero-width characters, tails cut mid-clause), after
/// 10,000 texts of chatter. Two copies cut short in their last clause (`坚持用了一周皮`) are
/// named only through `tail_hamming`.
#[test]
fn copies_cut_short_mid_clause_are_named() {
    let named = |tail_hamming: u32| {
        let mut script = chatter(10_000);
        let start = script.last().map_or(0, |s| s.0) + 10;
        let data = include_str!("data/zh_heavy_seed7.jsonl");
        for line in data.lines() {
            let (s, account, text): (i64, String, String) =
                serde_json::from_str(line).expect("fixture line");
            script.push((start + s, account, text));
        }
        let mut cfg = DetectorsConfig::only("copies");
        cfg.copies.tail_hamming = tail_hamming;
        let (alerts, _) = check(&cfg, script);
        let names: std::collections::BTreeSet<&str> = alerts
            .iter()
            .flat_map(|a| a.accounts.iter().map(String::as_str))
            .collect();
        names.len()
    };
    let (with, without) = (named(12), named(0));
    assert_eq!(
        with,
        without + 2,
        "{with} named, {without} without the rule"
    );
    assert!(with >= 49, "{with} of 50");
}
