//! `batch_registration` behaviour, driven by registration scripts through one `check()` helper.

use levee_detect::{BatchRegistrationConfig, DetectorStats, Detectors, DetectorsConfig};
use levee_model::{decode, Alert, Limits};

/// One sign-up.
#[derive(Clone)]
struct Reg {
    ts_ms: i64,
    account: String,
    name: String,
    device: String,
    ip: String,
    ua: String,
}

/// A deterministic stream of pseudo-random numbers (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const CLIENTS: [&str; 5] = [
    "app/8.1 android/13",
    "app/8.1 ios/17.2",
    "app/8.0 android/12",
    "web/chrome 124",
    "web/safari 17",
];
const HUMAN: [&str; 8] = ["王", "李", "张", "刘", "陈", "杨", "赵", "黄"];
const GIVEN: [&str; 8] = ["伟", "芳", "娜", "敏", "静", "丽", "强", "磊"];

/// What varies between sign-ups of one script.
struct Shape<'a> {
    prefix: &'a str,
    /// Seconds between the first and the last sign-up.
    over_s: i64,
    name: &'a dyn Fn(&mut Rng, u32) -> String,
    device: &'a dyn Fn(&mut Rng, u32) -> String,
    ip: &'a dyn Fn(&mut Rng, u32) -> String,
    ua: &'a dyn Fn(&mut Rng, u32) -> String,
}

fn human(r: &mut Rng, _: u32) -> String {
    format!(
        "{}{}{}",
        HUMAN[r.below(8) as usize],
        GIVEN[r.below(8) as usize],
        GIVEN[r.below(8) as usize]
    )
}
fn own_device(r: &mut Rng, _: u32) -> String {
    format!("d-{:012x}", r.next() >> 16)
}
fn anywhere(r: &mut Rng, _: u32) -> String {
    format!(
        "{}.{}.{}.{}",
        1 + r.below(220),
        r.below(256),
        r.below(256),
        1 + r.below(254)
    )
}
fn any_client(r: &mut Rng, _: u32) -> String {
    CLIENTS[r.below(5) as usize].to_owned()
}

/// `n` sign-ups of accounts `<prefix><i>` from `start_s`, spread evenly over `over_s`.
fn script(r: &mut Rng, start_s: i64, n: u32, s: &Shape<'_>) -> Vec<Reg> {
    (0..n)
        .map(|i| Reg {
            ts_ms: start_s * 1000 + i64::from(i) * s.over_s * 1000 / i64::from(n.max(1)),
            account: format!("{}{i:05}", s.prefix),
            name: (s.name)(r, i),
            device: (s.device)(r, i),
            ip: (s.ip)(r, i),
            ua: (s.ua)(r, i),
        })
        .collect()
}

/// Everyday sign-ups: `per_hour` an hour for `hours` from 0, human names, from anywhere.
fn everyday(r: &mut Rng, per_hour: u32, hours: u32) -> Vec<Reg> {
    script(
        r,
        0,
        per_hour * hours,
        &Shape {
            prefix: "org",
            over_s: i64::from(hours) * 3600,
            name: &human,
            device: &own_device,
            ip: &anywhere,
            ua: &any_client,
        },
    )
}

/// `(alert_id, revision, accounts, summary)` per alert, and the detector's stats.
type Got = Vec<(String, u32, Vec<String>, String)>;

/// Run `regs` (in time order, a tick every 10 s) through batch_registration alone.
fn check(regs: Vec<Reg>) -> Got {
    run(BatchRegistrationConfig::default(), regs).0
}

fn run(cfg: BatchRegistrationConfig, mut regs: Vec<Reg>) -> (Got, DetectorStats) {
    regs.sort_by_key(|r| r.ts_ms);
    let mut all = DetectorsConfig::only("batch_registration");
    all.batch_registration = cfg;
    let mut d = Detectors::new(&all);
    let mut out: Vec<Alert> = Vec::new();
    let mut tick = 0;
    for r in regs {
        while tick + 10_000 <= r.ts_ms {
            tick += 10_000;
            d.on_tick(tick, &mut out);
        }
        let line = serde_json::json!({
            "type": "register", "ts": r.ts_ms, "account": r.account, "name": r.name,
            "device": r.device, "ip": r.ip, "ua": r.ua,
        })
        .to_string();
        let ev = decode(line.as_bytes(), &Limits::default()).expect("valid event");
        d.on_event(&ev, &mut out);
    }
    d.on_flush(&mut out);
    let stats = d
        .stats()
        .into_iter()
        .find(|(n, _)| *n == "batch_registration")
        .map(|(_, s)| s)
        .expect("batch_registration runs");
    let got = out
        .into_iter()
        .map(|a| {
            assert_eq!(a.kind.as_str(), "batch_registration");
            assert!(a.accounts.windows(2).all(|w| w[0] < w[1]), "sorted, unique");
            (a.alert_id, a.revision, a.accounts, a.summary)
        })
        .collect();
    (got, stats)
}

/// The accounts of the last revision of each alert id, in id order of first appearance.
fn finals(got: &Got) -> Vec<(String, Vec<String>)> {
    let mut ids: Vec<(String, Vec<String>)> = Vec::new();
    for (id, _, accounts, _) in got {
        match ids.iter_mut().find(|(i, _)| i == id) {
            Some(e) => e.1 = accounts.clone(),
            None => ids.push((id.clone(), accounts.clone())),
        }
    }
    ids
}

fn with_prefix(accounts: &[String], prefix: &str) -> usize {
    accounts.iter().filter(|a| a.starts_with(prefix)).count()
}

#[test]
fn a_stealthy_proxy_batch_is_one_alert_from_its_name_template() {
    let mut r = Rng(1);
    let mut regs = everyday(&mut r, 60, 4);
    regs.extend(script(
        &mut r,
        2 * 3600,
        40,
        &Shape {
            prefix: "bot",
            over_s: 300,
            name: &|r, _| format!("user_{:06x}", r.below(1 << 24)),
            device: &own_device,
            ip: &anywhere,
            ua: &any_client,
        },
    ));
    let got = check(regs);
    let ids = finals(&got);
    assert_eq!(ids.len(), 1, "one operation, one id: {got:?}");
    assert_eq!(with_prefix(&ids[0].1, "bot"), 40);
    assert_eq!(with_prefix(&ids[0].1, "org"), 0, "no everyday sign-up");
    assert!(
        got.len() <= 5,
        "revisions only on material change: {}",
        got.len()
    );
    let summary = &got[got.len() - 1].3;
    assert!(
        summary.starts_with("40 accounts registered within 5 minutes: names following the template user_<6 hex digits> (40 of 40)"),
        "{summary}"
    );
}

#[test]
fn a_campus_wave_from_one_block_with_human_names_and_varied_clients_is_not_a_batch() {
    let mut r = Rng(2);
    let mut regs = everyday(&mut r, 60, 4);
    regs.extend(script(
        &mut r,
        2 * 3600,
        150,
        &Shape {
            prefix: "stu",
            over_s: 3600,
            name: &human,
            device: &own_device,
            ip: &|r, _| format!("202.120.2.{}", 1 + r.below(254)),
            ua: &any_client,
        },
    ));
    assert_eq!(check(regs), vec![]);
}

#[test]
fn one_block_with_one_client_build_and_sequential_devices_is_a_batch() {
    let mut r = Rng(3);
    let mut regs = everyday(&mut r, 60, 4);
    regs.extend(script(
        &mut r,
        2 * 3600,
        30,
        &Shape {
            prefix: "sub",
            over_s: 600,
            name: &human,
            device: &|_, i| format!("d-{:012}", 500_000 + i),
            ip: &|r, _| format!("203.0.113.{}", 1 + r.below(254)),
            ua: &|_, _| "app/7.2 android/9".to_owned(),
        },
    ));
    let ids = finals(&check(regs));
    assert_eq!(ids.len(), 1);
    assert_eq!(with_prefix(&ids[0].1, "sub"), 30);
    assert_eq!(with_prefix(&ids[0].1, "org"), 0);
}

#[test]
fn one_phone_registering_many_accounts_is_a_batch() {
    let mut r = Rng(4);
    let mut regs = everyday(&mut r, 60, 4);
    regs.extend(script(
        &mut r,
        2 * 3600,
        20,
        &Shape {
            prefix: "dev",
            over_s: 1200,
            name: &human,
            device: &|_, _| "d-farmphone01".to_owned(),
            ip: &anywhere,
            ua: &any_client,
        },
    ));
    let ids = finals(&check(regs));
    assert_eq!(ids.len(), 1);
    assert_eq!(ids[0].1.len(), 20);
    assert_eq!(with_prefix(&ids[0].1, "dev"), 20);
}

#[test]
fn a_common_default_name_is_judged_against_its_own_baseline() {
    let default_name = |r: &mut Rng, _: u32| format!("用户{:010}", r.below(10_000_000_000));
    let mut r = Rng(5);
    // 80 an hour keep the platform's default name: 40 per window, above min_batch.
    let mut regs = script(
        &mut r,
        0,
        80 * 5,
        &Shape {
            prefix: "org",
            over_s: 5 * 3600,
            name: &default_name,
            device: &own_device,
            ip: &anywhere,
            ua: &any_client,
        },
    );
    assert_eq!(check(regs.clone()), vec![], "the everyday rate is no batch");
    // Ten times that rate for half an hour is.
    regs.extend(script(
        &mut r,
        3 * 3600,
        400,
        &Shape {
            prefix: "bot",
            over_s: 1800,
            name: &default_name,
            device: &own_device,
            ip: &anywhere,
            ua: &any_client,
        },
    ));
    let ids = finals(&check(regs));
    assert_eq!(ids.len(), 1);
    let (bots, everyday) = (with_prefix(&ids[0].1, "bot"), with_prefix(&ids[0].1, "org"));
    assert!(bots >= 380, "{bots} of the 400 bots");
    // The 40 everyday ones during the burst look the same; few after it join.
    assert!(everyday <= 50, "{everyday} everyday sign-ups swept in");
}

#[test]
fn nothing_is_judged_before_the_warm_up_and_everything_after() {
    let batch = |r: &mut Rng, at: i64| {
        script(
            r,
            at,
            30,
            &Shape {
                prefix: "bot",
                over_s: 300,
                name: &|r, _| format!("user_{:06x}", r.below(1 << 24)),
                device: &own_device,
                ip: &anywhere,
                ua: &any_client,
            },
        )
    };
    let mut r = Rng(6);
    let mut early = everyday(&mut r, 60, 3);
    early.extend(batch(&mut r, 600));
    assert_eq!(
        check(early.clone()),
        vec![],
        "no baseline yet in the first hour"
    );
    let cfg = BatchRegistrationConfig {
        warmup_ms: 0,
        ..BatchRegistrationConfig::default()
    };
    assert_eq!(
        finals(&run(cfg, early).0).len(),
        1,
        "without a warm-up it is seen"
    );
}

#[test]
fn the_same_input_gives_the_same_alerts() {
    let make = || {
        let mut r = Rng(7);
        let mut regs = everyday(&mut r, 60, 4);
        regs.extend(script(
            &mut r,
            7000,
            40,
            &Shape {
                prefix: "bot",
                over_s: 900,
                name: &|_, i| format!("小雨{}", 1000 + i),
                device: &own_device,
                ip: &|r, _| format!("203.0.113.{}", 1 + r.below(254)),
                ua: &|_, _| "app/8.1 android/13".to_owned(),
            },
        ));
        regs
    };
    let a = check(make());
    assert!(!a.is_empty());
    assert!(a[a.len() - 1].3.contains("numbered in sequence"), "{:?}", a);
    assert_eq!(a, check(make()));
}

#[test]
fn a_flood_of_sign_ups_is_bounded_and_counted() {
    let mut r = Rng(8);
    let regs = script(
        &mut r,
        0,
        50_000,
        &Shape {
            prefix: "x",
            over_s: 600,
            name: &|r, _| format!("n{:x}q", r.next()),
            device: &own_device,
            ip: &anywhere,
            ua: &any_client,
        },
    );
    let cfg = BatchRegistrationConfig {
        max_registrations: 5_000,
        max_keys: 8_000,
        ..BatchRegistrationConfig::default()
    };
    let (got, stats) = run(cfg, regs);
    assert_eq!(got, vec![]);
    assert!(
        stats.cap_hits > 40_000,
        "refusals counted: {}",
        stats.cap_hits
    );
    let regs = stats.map("registrations").expect("reported");
    let keys = stats.map("keys").expect("reported");
    assert!(regs.entries <= 5_000, "{regs:?}");
    assert!(keys.entries <= 8_000, "{keys:?}");
    assert!(stats.bytes() < 8 << 20, "{} bytes", stats.bytes());
}
