//! Planted campaigns: one generator per alert kind, each recording its truth group.

use crate::rng::{exp, ms, poisson};
use crate::text::{
    expand, perturb, perturb_heavy, sentence, Template, GENERIC_COMMENTS, TEMPLATES,
};
use crate::world::{engage, post_body, Account, Post, World, DAY, HOUR, MINUTE};
use levee_model::{AlertKind, Body, EngageAction, FollowAction, HotlistAction, Ts};
use rand::seq::SliceRandom;
use rand::Rng;
use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr};

pub fn all(w: &mut World) {
    bot_farms(w);
    copy_campaigns(w);
    batch_registrations(w);
    zombie_inflation(w);
    hotlist_pushes(w);
    device_farms(w);
}

/// Event-time span of a group's activity.
#[derive(Debug, Clone, Copy)]
struct Span(Ts, Ts);

impl Span {
    fn new() -> Self {
        Span(Ts::MAX, Ts::MIN)
    }
    fn add(&mut self, t: Ts) -> Ts {
        self.0 = self.0.min(t);
        self.1 = self.1.max(t);
        t
    }
    fn pair(self) -> (Ts, Ts) {
        (self.0, self.1)
    }
}

/// `n` accounts created `age` (ms, drawn per account) before the scenario.
fn accounts(w: &mut World, n: usize, age: std::ops::Range<i64>) -> Vec<Account> {
    (0..n)
        .map(|_| {
            let a = w.rng.gen_range(age.clone());
            w.new_account(a, 1.0, 1.0)
        })
        .collect()
}

/// A post by an account outside the organic post feed (a paying client's promo).
fn client_post(w: &mut World, client: &Account, t: Ts) -> Post {
    let id = w.post_id();
    let text = sentence(&mut w.rng, 5, 18);
    w.emit(client, t, post_body(&id, text, vec![]));
    Post {
        id,
        author: usize::MAX,
        ts: t,
        appeal: 0.0,
    }
}

struct FarmSpec {
    variant: &'static str,
    size: usize,
    participation: f64,
    spread_s: f64,
    from: f64,
    to: f64,
}

/// Lockstep farms: the same targets within seconds to minutes, job after job.
fn bot_farms(w: &mut World) {
    let specs = [
        FarmSpec {
            variant: "tight",
            size: 40,
            participation: 0.92,
            spread_s: 30.0,
            from: 0.10,
            to: 0.70,
        },
        FarmSpec {
            variant: "tight",
            size: 25,
            participation: 0.87,
            spread_s: 20.0,
            from: 0.40,
            to: 0.95,
        },
        FarmSpec {
            variant: "stealthy",
            size: 30,
            participation: 0.70,
            spread_s: 120.0,
            from: 0.15,
            to: 0.85,
        },
        FarmSpec {
            variant: "stealthy",
            size: 50,
            participation: 0.62,
            spread_s: 120.0,
            from: 0.30,
            to: 0.90,
        },
    ];
    for spec in specs {
        let mut members = accounts(w, spec.size, 60 * DAY..400 * DAY);
        if spec.variant == "tight" {
            let pool: Vec<IpAddr> = (0..12).map(|_| w.random_ip()).collect();
            for m in &mut members {
                m.ip = *pool.choose(&mut w.rng).unwrap_or(&m.ip);
            }
        }
        let clients: Vec<Account> = (0..2)
            .map(|_| {
                let age = w.organic_age();
                let fame = w.fame();
                w.new_account(age, 1.0, fame)
            })
            .collect();
        let mut span = Span::new();
        let mut targets = Vec::new();
        let (from, to) = (w.at(spec.from), w.at(spec.to));
        let mut t = from;
        while t < to {
            let paid_organic = w.rng.gen_bool(0.3);
            let (post, author) = match w.pick_post(t).filter(|_| paid_organic) {
                Some(p) => {
                    let post = w.posts[p].clone();
                    let author = w.accounts[post.author].id.clone();
                    (post, author)
                }
                None => {
                    let c = clients
                        .choose(&mut w.rng)
                        .cloned()
                        .unwrap_or_else(|| members[0].clone());
                    (client_post(w, &c, t), c.id)
                }
            };
            targets.push(post.id.clone());
            for m in &members {
                if !w.rng.gen_bool(spec.participation) {
                    continue;
                }
                let at = span.add(t + ms(w.rng.gen_range(1.0..spec.spread_s)));
                let r: f64 = w.rng.gen();
                let (action, text) = if r < 0.75 {
                    (EngageAction::Like, None)
                } else if r < 0.9 {
                    (EngageAction::Repost, Some("转发微博".to_owned()))
                } else {
                    (
                        EngageAction::Comment,
                        Some((*GENERIC_COMMENTS.choose(&mut w.rng).unwrap_or(&"赞")).to_owned()),
                    )
                };
                w.emit(m, at, engage(action, &post, &author, text));
            }
            t += w.rng.gen_range(6 * MINUTE..14 * MINUTE);
        }
        // Everyone logs in now and then; stealthy farms also like popular posts as camouflage.
        let hours = (to - from) as f64 / HOUR as f64;
        for m in &members {
            for _ in 0..poisson(&mut w.rng, hours) + 1 {
                let at = w.rng.gen_range(from..to);
                w.emit(m, at, Body::Login);
            }
            if spec.variant == "stealthy" {
                for _ in 0..poisson(&mut w.rng, 6.0 * hours) {
                    let at = w.rng.gen_range(from..to);
                    if let Some(p) = w.pick_post(at) {
                        let post = w.posts[p].clone();
                        let author = w.accounts[post.author].id.clone();
                        w.emit(m, at, engage(EngageAction::Like, &post, &author, None));
                    }
                }
            }
        }
        w.accounts.extend(clients);
        w.plant(
            AlertKind::BotFarm,
            spec.variant,
            &members,
            targets,
            None,
            span.pair(),
        );
    }
}

/// Near-identical text from many accounts: posts and comments from perturbed templates.
fn copy_campaigns(w: &mut World) {
    for (k, (size, from, as_comments)) in
        [(60usize, 0.2, false), (40, 0.45, true), (45, 0.65, false)]
            .into_iter()
            .enumerate()
    {
        let template = TEMPLATES[k % TEMPLATES.len()];
        copy_campaign(w, k, template, (size, from, as_comments), Level::Medium);
    }
}

/// How hard a copy campaign works to look unlike itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    /// Synonyms, width, zero-width characters, emoji, a cut tail (`text::perturb`).
    Medium,
    /// All of that, and clauses reordered and a few words of filler in front.
    Heavy,
}

/// One copy campaign from `template`: `size` accounts posting (or commenting, spread over
/// organic posts) 1 to 3 copies each within two hours from fraction `from` of the scenario.
fn copy_campaign(
    w: &mut World,
    k: usize,
    template: Template,
    (size, from, as_comments): (usize, f64, bool),
    level: Level,
) {
    let members = accounts(w, size, 10 * DAY..800 * DAY);
    let topic = format!("t-campaign-{k}");
    let mut span = Span::new();
    let mut targets = Vec::new();
    let t0 = w.at(from);
    for m in &members {
        for _ in 0..w.rng.gen_range(1..=3) {
            let at = span.add(t0 + w.rng.gen_range(0..2 * HOUR));
            let base = expand(&mut w.rng, &template);
            let text = match level {
                Level::Medium => perturb(&mut w.rng, &base),
                Level::Heavy => perturb_heavy(&mut w.rng, &base),
            };
            match w.pick_post(at).filter(|_| as_comments) {
                Some(p) => {
                    let post = w.posts[p].clone();
                    let author = w.accounts[post.author].id.clone();
                    targets.push(post.id.clone());
                    w.emit(
                        m,
                        at,
                        engage(EngageAction::Comment, &post, &author, Some(text)),
                    );
                }
                None => {
                    let id = w.post_id();
                    w.emit(m, at, post_body(&id, text, vec![topic.clone()]));
                }
            }
        }
    }
    targets.sort();
    targets.dedup();
    let topic = (!as_comments).then_some(topic);
    let variant = match level {
        Level::Medium => template.lang.to_owned(),
        Level::Heavy => format!("{}_heavy", template.lang),
    };
    w.plant(
        AlertKind::CopyCampaign,
        &variant,
        &members,
        targets,
        topic,
        span.pair(),
    );
}

/// Heavily perturbed copy campaigns (English posts, Chinese comments), from templates of their
/// own. Called last, on a random stream of its own, so earlier events stay as they were.
pub fn heavy_copy_campaigns(w: &mut World) {
    for (k, spec) in [(3usize, (50, 0.3, false)), (4, (50, 0.55, true))] {
        let template = TEMPLATES[k];
        copy_campaign(w, k, template, spec, Level::Heavy);
    }
}

/// Accounts raised in a batch: one /24 or a few proxies, shared or sequential devices, name templates.
fn batch_registrations(w: &mut World) {
    // A: a shared /24, sequential device ids, "小雨<n>" names, one client build, 15 minutes.
    let t0 = w.at(0.2);
    let base: u64 = w.rng.gen_range(100_000_000..900_000_000);
    let name_base: u32 = w.rng.gen_range(1000..9000);
    let mut members = Vec::new();
    let mut span = Span::new();
    for k in 0..80u32 {
        let reg = span.add(t0 + i64::from(k) * 11_000 + w.rng.gen_range(0..3000));
        let mut a = w.new_account(0, 1.0, 1.0);
        a.created = reg;
        a.ip = IpAddr::V4(Ipv4Addr::new(203, 0, 113, w.rng.gen_range(1..255)));
        a.device = format!("d-{:012}", base + u64::from(k));
        a.ua = "app/8.1 android/13";
        w.emit(
            &a,
            reg,
            Body::Register {
                name: Some(Cow::Owned(format!("小雨{}", name_base + k))),
            },
        );
        members.push(a);
    }
    after_registration(w, &members, &mut span);
    w.plant(
        AlertKind::BatchRegistration,
        "subnet_sequential",
        &members,
        vec![],
        None,
        span.pair(),
    );

    // B: five proxies, three shared phones, "jenny_<4 digits>" names, 30 minutes.
    let t0 = w.at(0.55);
    let proxies: Vec<IpAddr> = (0..5).map(|_| w.random_ip()).collect();
    let phones: Vec<String> = (0..3).map(|_| w.device_id()).collect();
    let mut members = Vec::new();
    let mut span = Span::new();
    for _ in 0..60 {
        let reg = span.add(t0 + w.rng.gen_range(0..30 * MINUTE));
        let mut a = w.new_account(0, 1.0, 1.0);
        a.created = reg;
        a.ip = *proxies.choose(&mut w.rng).unwrap_or(&a.ip);
        a.device = phones.choose(&mut w.rng).cloned().unwrap_or_default();
        a.ua = if w.rng.gen_bool(0.5) {
            "app/8.1 android/13"
        } else {
            "app/8.0 android/12"
        };
        let name = format!("jenny_{:04}", w.rng.gen_range(0..10_000));
        w.emit(
            &a,
            reg,
            Body::Register {
                name: Some(Cow::Owned(name)),
            },
        );
        members.push(a);
    }
    after_registration(w, &members, &mut span);
    w.plant(
        AlertKind::BatchRegistration,
        "proxy_shared_device",
        &members,
        vec![],
        None,
        span.pair(),
    );
}

/// A stealthy batch: 50 accounts in 8 minutes through proxies (a fresh address each),
/// random clients and devices, one name template (`user_` + 6 hex).
pub fn stealthy_batch(w: &mut World) {
    let t0 = w.at(0.45);
    let mut members = Vec::new();
    let mut span = Span::new();
    for _ in 0..50 {
        let reg = span.add(t0 + w.rng.gen_range(0..8 * MINUTE));
        let mut a = w.new_account(0, 1.0, 1.0);
        a.created = reg;
        let name = format!("user_{:06x}", w.rng.gen_range(0..0x100_0000u32));
        w.emit(
            &a,
            reg,
            Body::Register {
                name: Some(Cow::Owned(name)),
            },
        );
        members.push(a);
    }
    after_registration(w, &members, &mut span);
    w.plant(
        AlertKind::BatchRegistration,
        "stealthy_proxies",
        &members,
        vec![],
        None,
        span.pair(),
    );
}

fn after_registration(w: &mut World, members: &[Account], span: &mut Span) {
    for a in members {
        for _ in 0..w.rng.gen_range(1..=3) {
            let at = span.add(a.created + w.rng.gen_range(MINUTE..2 * HOUR));
            if at < w.end {
                w.emit(a, at, Body::Login);
            }
        }
    }
}

/// Hollow accounts (days old, no history, never posting) inflating one account and one post.
fn zombie_inflation(w: &mut World) {
    let pool: Vec<IpAddr> = (0..30).map(|_| w.random_ip()).collect();
    let hollow = |w: &mut World, n: usize| -> Vec<Account> {
        let mut v = accounts(w, n, DAY..7 * DAY);
        for a in &mut v {
            a.ip = *pool.choose(&mut w.rng).unwrap_or(&a.ip);
        }
        v
    };
    // A: 250 follows of one seller account within an hour.
    let target = w.accounts[w.rng.gen_range(0..w.accounts.len())].id.clone();
    let zombies = hollow(w, 250);
    let t0 = w.at(0.35);
    let mut span = Span::new();
    for z in &zombies {
        let at = span.add(t0 + w.rng.gen_range(0..HOUR));
        w.emit(
            z,
            at,
            Body::Follow {
                target: Cow::Owned(target.clone()),
                action: FollowAction::Follow,
            },
        );
    }
    w.plant(
        AlertKind::ZombieInflation,
        "follow",
        &zombies,
        vec![target],
        None,
        span.pair(),
    );

    // B: 200 likes (and some reposts) of one post within 40 minutes.
    let t0 = w.at(0.7);
    let Some(p) = w.pick_post(t0) else { return };
    let post = w.posts[p].clone();
    let author = w.accounts[post.author].id.clone();
    let zombies = hollow(w, 200);
    let mut span = Span::new();
    for z in &zombies {
        let at = span.add(t0 + w.rng.gen_range(0..40 * MINUTE));
        w.emit(z, at, engage(EngageAction::Like, &post, &author, None));
        if w.rng.gen_bool(0.3) {
            let at = span.add(at + ms(exp(&mut w.rng, 20.0)) + 500);
            w.emit(
                z,
                at,
                engage(
                    EngageAction::Repost,
                    &post,
                    &author,
                    Some("转发微博".to_owned()),
                ),
            );
        }
    }
    w.plant(
        AlertKind::ZombieInflation,
        "like",
        &zombies,
        vec![post.id.clone()],
        None,
        span.pair(),
    );
}

/// A narrow, young, synchronized population pushing a topic up the trending list.
fn hotlist_pushes(w: &mut World) {
    for (k, (size, from, every, minutes, spread_s)) in [
        (120usize, 0.4, 5 * MINUTE, 60, 20.0),
        (80, 0.75, 3 * MINUTE, 45, 30.0),
    ]
    .into_iter()
    .enumerate()
    {
        let members = accounts(w, size, DAY..30 * DAY);
        let topic = format!("t-push-{k}");
        let t0 = w.at(from);
        let mut span = Span::new();
        for m in &members {
            // Logging in beforehand is preparation: the push starts with its first search.
            let at = t0 - w.rng.gen_range(MINUTE..10 * MINUTE);
            w.emit(m, at, Body::Login);
        }
        let bursts = minutes * MINUTE / every;
        for b in 0..bursts {
            let burst = t0 + b * every;
            let rank = (40 - b * 40 / bursts).max(1) as u32;
            for m in &members {
                if !w.rng.gen_bool(0.7) {
                    continue;
                }
                let at = span.add(burst + ms(w.rng.gen_range(0.0..spread_s)));
                w.emit(
                    m,
                    at,
                    Body::Hotlist {
                        topic: Cow::Owned(topic.clone()),
                        action: HotlistAction::Search,
                        rank: None,
                    },
                );
                let at = span.add(at + ms(w.rng.gen_range(2.0..10.0)));
                w.emit(
                    m,
                    at,
                    Body::Hotlist {
                        topic: Cow::Owned(topic.clone()),
                        action: HotlistAction::Click,
                        rank: Some(rank),
                    },
                );
            }
        }
        w.plant(
            AlertKind::HotlistManipulation,
            "search_click_bursts",
            &members,
            vec![],
            Some(topic),
            span.pair(),
        );
    }
}

/// Many accounts on a few phones (group-control software), each logging in and liking
/// regularly. The first farm rotates its accounts over its phones and addresses at
/// every login; the second keeps each account on one phone, the phones sharing two
/// addresses.
fn device_farms(w: &mut World) {
    for (variant, size, phones, from, to) in [
        ("rotating_phones", 60usize, 4usize, 0.2, 0.8),
        ("few_phones", 36, 3, 0.5, 0.95),
    ] {
        let rotating = variant == "rotating_phones";
        let mut members = accounts(w, size, 30 * DAY..300 * DAY);
        let devices: Vec<String> = (0..phones).map(|_| w.device_id()).collect();
        let ips: Vec<IpAddr> = (0..2).map(|_| w.random_ip()).collect();
        for (i, m) in members.iter_mut().enumerate() {
            m.device = devices[i % phones].clone();
            m.ip = ips[i % 2];
        }
        let (from, to) = (w.at(from), w.at(to));
        let mut span = Span::new();
        for m in &mut members {
            let mut t = from + w.rng.gen_range(0..30 * MINUTE);
            while t < to {
                if rotating {
                    m.device = devices[w.rng.gen_range(0..phones)].clone();
                    m.ip = ips[w.rng.gen_range(0..2)];
                }
                w.emit(m, span.add(t), Body::Login);
                for _ in 0..w.rng.gen_range(1..=3) {
                    let at = t + w.rng.gen_range(2_000..60_000);
                    if let Some(p) = w.pick_post(at) {
                        let post = w.posts[p].clone();
                        let author = w.accounts[post.author].id.clone();
                        w.emit(
                            m,
                            span.add(at),
                            engage(EngageAction::Like, &post, &author, None),
                        );
                    }
                }
                t += w.rng.gen_range(15 * MINUTE..30 * MINUTE);
            }
        }
        w.plant(
            AlertKind::DeviceFarm,
            variant,
            &members,
            devices,
            None,
            span.pair(),
        );
    }
}
