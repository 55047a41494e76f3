//! The organic world: a heavy-tailed background population and the hard negatives
//! (viral crowds, fan groups, breaking news, campus sign-ups, NAT and shared phones).

use crate::rng::{exp, lognormal, ms, pareto, poisson};
use crate::text::{human_name, sentence, GENERIC_COMMENTS};
use crate::world::{engage, World, DAY, HOUR, MINUTE};
use levee_model::{Body, EngageAction, FollowAction, HotlistAction, Ts};
use rand::seq::{IteratorRandom, SliceRandom};
use rand::Rng;
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

/// Trending-list entries of the organic world (index = usual rank - 1).
const ORGANIC_TOPICS: usize = 40;

#[derive(Debug, Clone, Copy)]
enum Slot {
    Engage(EngageAction),
    Follow,
    Hotlist,
}

/// The background population and its everyday activity.
pub fn background(w: &mut World) {
    let n = w.cfg.accounts.max(100);
    // Carrier-grade NAT: ~150 real users per shared address, 30% of the population.
    let cgnat: Vec<IpAddr> = (0..(n / 500).max(2))
        .map(|i| IpAddr::V4(Ipv4Addr::new(100, 64 + (i / 256) as u8, (i % 256) as u8, 1)))
        .collect();
    for _ in 0..n {
        let age = w.organic_age();
        let rate = lognormal(&mut w.rng, 3.0, 1.1).min(60.0);
        let fame = w.fame();
        let mut a = w.new_account(age, rate, fame);
        if w.rng.gen_bool(0.3) {
            a.ip = *cgnat.choose(&mut w.rng).unwrap_or(&a.ip);
        }
        w.accounts.push(a);
    }
    // Families: 2 to 4 accounts on one phone and one home address.
    let mut family = BTreeSet::new();
    for _ in 0..n * 8 / 100 / 3 {
        let head = w.rng.gen_range(0..n);
        for _ in 1..w.rng.gen_range(2..=4) {
            let j = w.rng.gen_range(0..n);
            let (device, ip) = (w.accounts[head].device.clone(), w.accounts[head].ip);
            w.accounts[j].device = device;
            w.accounts[j].ip = ip;
            family.extend([w.accounts[head].id.clone(), w.accounts[j].id.clone()]);
        }
    }
    w.cohort("family_devices", family);
    w.cohort(
        "cgnat_users",
        w.accounts
            .iter()
            .filter(|a| cgnat.contains(&a.ip))
            .map(|a| a.id.clone())
            .collect::<Vec<_>>(),
    );

    // Pass 1: sessions, posts, and slots for engagements (resolved once posts exist).
    let hours = f64::from(w.cfg.hours.max(1));
    let mut slots: Vec<(usize, Ts, Slot)> = Vec::new();
    for i in 0..n {
        let a = w.accounts[i].clone();
        for _ in 0..poisson(&mut w.rng, a.rate * hours / 5.0) {
            let mut t = w.rng.gen_range(w.start..w.end);
            w.emit(&a, t, Body::Login);
            for _ in 0..1 + poisson(&mut w.rng, 4.0) {
                t += ms(exp(&mut w.rng, 45.0)) + 1000;
                if t >= w.end {
                    break;
                }
                let r: f64 = w.rng.gen();
                if r < 0.07 {
                    let topics = if w.rng.gen_bool(0.2) {
                        vec![topic_name(w.rng.gen_range(0..ORGANIC_TOPICS))]
                    } else {
                        vec![]
                    };
                    let text = sentence(&mut w.rng, 3, 20);
                    let appeal = a.fame * pareto(&mut w.rng, 1.0, 1.5);
                    w.post(i, t, text, topics, appeal);
                    continue;
                }
                let slot = match r {
                    r if r < 0.61 => Slot::Engage(EngageAction::Like),
                    r if r < 0.70 => Slot::Engage(EngageAction::Comment),
                    r if r < 0.77 => Slot::Engage(EngageAction::Repost),
                    r if r < 0.82 => Slot::Engage(EngageAction::Favorite),
                    r if r < 0.85 => Slot::Engage(EngageAction::Share),
                    r if r < 0.91 => Slot::Follow,
                    _ => Slot::Hotlist,
                };
                slots.push((i, t, slot));
            }
        }
    }
    // Pass 2: engagements pick among posts that exist by then, by appeal and recency.
    for (i, t, slot) in slots {
        let a = w.accounts[i].clone();
        match slot {
            Slot::Engage(action) => {
                let Some(p) = w.pick_post(t) else { continue };
                let text = match action {
                    EngageAction::Comment => Some(comment(w)),
                    EngageAction::Repost if w.rng.gen_bool(0.4) => Some("转发微博".to_owned()),
                    _ => None,
                };
                let post = w.posts[p].clone();
                let author = w.accounts[post.author].id.clone();
                w.emit(&a, t, engage(action, &post, &author, text));
            }
            Slot::Follow => {
                let target = match w.pick_post(t) {
                    Some(p) if w.rng.gen_bool(0.7) => w.posts[p].author,
                    _ => w.rng.gen_range(0..n),
                };
                let action = if w.rng.gen_bool(0.05) {
                    FollowAction::Unfollow
                } else {
                    FollowAction::Follow
                };
                let target = Cow::Owned(w.accounts[target].id.clone());
                w.emit(&a, t, Body::Follow { target, action });
            }
            Slot::Hotlist => {
                // Zipf-like popularity over the list.
                let k = ((ORGANIC_TOPICS as f64).powf(w.rng.gen::<f64>()) as usize)
                    .saturating_sub(1)
                    .min(ORGANIC_TOPICS - 1);
                let action = *[
                    HotlistAction::View,
                    HotlistAction::View,
                    HotlistAction::View,
                    HotlistAction::Click,
                    HotlistAction::Click,
                    HotlistAction::Search,
                ]
                .choose(&mut w.rng)
                .unwrap_or(&HotlistAction::View);
                w.emit(
                    &a,
                    t,
                    Body::Hotlist {
                        topic: Cow::Owned(topic_name(k)),
                        action,
                        rank: Some(k as u32 + 1),
                    },
                );
            }
        }
    }
}

pub fn topic_name(k: usize) -> String {
    format!("t-trend-{k:02}")
}

fn comment(w: &mut World) -> String {
    if w.rng.gen_bool(0.35) {
        (*GENERIC_COMMENTS.choose(&mut w.rng).unwrap_or(&"支持")).to_owned()
    } else {
        sentence(&mut w.rng, 2, 12)
    }
}

/// Organic behaviour that looks coordinated and must not be flagged.
pub fn hard_negatives(w: &mut World) {
    viral_post(w);
    fan_group(w);
    breaking_news(w);
    campus_wave(w);
}

/// `count` distinct organic accounts, chosen at random (in a stable order).
fn crowd(w: &mut World, count: usize, ok: impl Fn(&crate::world::Account) -> bool) -> Vec<usize> {
    let eligible: Vec<usize> = (0..w.accounts.len())
        .filter(|&i| ok(&w.accounts[i]))
        .collect();
    let mut c = eligible.into_iter().choose_multiple(&mut w.rng, count);
    c.sort_unstable();
    c
}

/// A celebrity post liked by thousands within minutes.
fn viral_post(w: &mut World) {
    let t0 = w.at(0.25);
    let star = w.rng.gen_range(0..w.accounts.len());
    let pid = w.post(
        star,
        t0,
        "我们结婚啦！谢谢大家一直以来的支持 ❤️".to_owned(),
        vec![],
        50_000.0,
    );
    let post = w.posts[w.posts.len() - 1].clone();
    debug_assert_eq!(post.id, pid);
    let star_id = w.accounts[star].id.clone();
    let fans = crowd(w, (w.accounts.len() / 6).min(3000), |_| true);
    let mut ids = Vec::new();
    for i in fans {
        let a = w.accounts[i].clone();
        let t = t0 + ms(exp(&mut w.rng, 240.0)) + 2000;
        w.emit(&a, t, engage(EngageAction::Like, &post, &star_id, None));
        if w.rng.gen_bool(0.15) {
            let text = comment(w);
            let at = t + ms(exp(&mut w.rng, 30.0));
            w.emit(
                &a,
                at,
                engage(EngageAction::Repost, &post, &star_id, Some(text)),
            );
        }
        ids.push(a.id);
    }
    w.cohort("viral_crowd", ids);
}

/// Sixty real fans engaging every post of one idol, minutes to hours later.
fn fan_group(w: &mut World) {
    let idol = w.rng.gen_range(0..w.accounts.len());
    let idol_id = w.accounts[idol].id.clone();
    let fans = crowd(w, 60, |a| a.id != idol_id);
    let mut t = w.at(0.03);
    let stop = w.at(0.95);
    while t < stop {
        let text = sentence(&mut w.rng, 4, 16);
        w.post(idol, t, text, vec![], 800.0);
        let post = w.posts[w.posts.len() - 1].clone();
        for &f in &fans {
            if !w.rng.gen_bool(0.85) {
                continue;
            }
            let a = w.accounts[f].clone();
            let seen = t + ms(lognormal(&mut w.rng, 12.0 * 60.0, 1.0)).max(20_000);
            w.emit(&a, seen, engage(EngageAction::Like, &post, &idol_id, None));
            if w.rng.gen_bool(0.3) {
                let text = comment(w);
                let at = seen + ms(exp(&mut w.rng, 60.0));
                w.emit(
                    &a,
                    at,
                    engage(EngageAction::Comment, &post, &idol_id, Some(text)),
                );
            }
        }
        t += w.rng.gen_range(20 * MINUTE..40 * MINUTE);
    }
    let ids: Vec<String> = fans.iter().map(|&i| w.accounts[i].id.clone()).collect();
    w.cohort("fan_group", ids);
}

/// Breaking news: thousands of diverse, old accounts search one topic within half an hour.
fn breaking_news(w: &mut World) {
    let t0 = w.at(0.5);
    let old = w.start - 90 * DAY;
    let crowd_ix = crowd(w, (w.accounts.len() / 6).min(3000), |a| a.created < old);
    let topic = "t-breaking-news".to_owned();
    let mut ids = Vec::new();
    for i in crowd_ix {
        let a = w.accounts[i].clone();
        let t = t0 + ms(exp(&mut w.rng, 480.0));
        w.emit(
            &a,
            t,
            Body::Hotlist {
                topic: Cow::Owned(topic.clone()),
                action: HotlistAction::Search,
                rank: None,
            },
        );
        if w.rng.gen_bool(0.6) {
            let dt = ms(exp(&mut w.rng, 20.0)) + 1000;
            w.emit(
                &a,
                t + dt,
                Body::Hotlist {
                    topic: Cow::Owned(topic.clone()),
                    action: HotlistAction::Click,
                    rank: Some(1),
                },
            );
        }
        ids.push(a.id);
    }
    w.cohort("news_crowd", ids);
}

/// Many real people post one news headline, each in their own words around it: organic
/// quoting, which shares a phrase and is not a copy campaign. Called last, on a random
/// stream of its own, so earlier events stay as they were.
pub fn news_quoting(w: &mut World) {
    const HEADLINES: &[&str] = &[
        "央行宣布下调存款准备金率零点五个百分点",
        "City council approves new subway line to the airport",
    ];
    let t0 = w.at(0.6);
    let n = (w.accounts.len() / 60).clamp(50, 400);
    let old = w.start - 90 * DAY;
    let quoters = crowd(w, n, |a| a.created < old);
    let mut ids = Vec::new();
    for i in quoters {
        let a = w.accounts[i].clone();
        let headline = HEADLINES[usize::from(w.rng.gen_bool(0.3))];
        let own = sentence(&mut w.rng, 10, 20);
        let text = match w.rng.gen_range(0..3) {
            0 => format!("{own}【{headline}】"),
            1 => format!("【{headline}】{own}"),
            _ => format!("{own}: \"{headline}\""),
        };
        let t = t0 + ms(exp(&mut w.rng, 900.0));
        w.post(i, t, text, vec![], a.fame);
        ids.push(a.id);
    }
    w.cohort("news_quoters", ids);
}

/// Everyday sign-ups: 2% of the population a day, spread over the scenario, from
/// anywhere; three in ten keep the platform's default name (`用户` + 10 digits), the
/// rest pick a human one. Each then looks around a little.
pub fn sign_ups(w: &mut World) {
    let n = (w.accounts.len() as f64 * 0.02 * f64::from(w.cfg.hours) / 24.0) as usize;
    let mut defaults = Vec::new();
    for _ in 0..n {
        let reg = w.rng.gen_range(w.start..w.end);
        let mut a = w.new_account(0, 1.0, 1.0);
        a.created = reg;
        let name = if w.rng.gen_bool(0.3) {
            defaults.push(a.id.clone());
            format!("用户{:010}", w.rng.gen_range(0..10_000_000_000u64))
        } else {
            human_name(&mut w.rng)
        };
        w.emit(
            &a,
            reg,
            Body::Register {
                name: Some(Cow::Owned(name)),
            },
        );
        let mut t = reg;
        for _ in 0..w.rng.gen_range(0..4) {
            t += ms(exp(&mut w.rng, 900.0)) + 5_000;
            if t >= w.end {
                break;
            }
            match w.pick_post(t) {
                Some(p) if w.rng.gen_bool(0.6) => {
                    let post = w.posts[p].clone();
                    let author = w.accounts[post.author].id.clone();
                    w.emit(&a, t, engage(EngageAction::Like, &post, &author, None));
                }
                _ => w.emit(&a, t, Body::Login),
            }
        }
    }
    w.cohort("default_name_sign_ups", defaults);
}

/// A celebrity's viral moment: thousands of real followers within half an hour, one in
/// ten of them signing up just now to follow (new, never posting: hollow by the
/// profile, and still no inflation).
pub fn celebrity_follows(w: &mut World) {
    let t0 = w.at(0.6);
    let star = w.accounts[w.rng.gen_range(0..w.accounts.len())].id.clone();
    let n = (w.accounts.len() / 6).min(3000);
    let fans = crowd(w, n * 9 / 10, |a| a.id != star);
    let mut followers: Vec<crate::world::Account> =
        fans.iter().map(|&i| w.accounts[i].clone()).collect();
    for _ in 0..n / 10 {
        let reg = t0 + w.rng.gen_range(0..30 * MINUTE);
        let mut a = w.new_account(0, 1.0, 1.0);
        a.created = reg;
        let name = human_name(&mut w.rng);
        w.emit(
            &a,
            reg,
            Body::Register {
                name: Some(Cow::Owned(name)),
            },
        );
        followers.push(a);
    }
    let mut ids = Vec::new();
    for a in &followers {
        let t = t0.max(a.created) + ms(exp(&mut w.rng, 400.0)) + 1000;
        w.emit(
            a,
            t,
            Body::Follow {
                target: Cow::Owned(star.clone()),
                action: FollowAction::Follow,
            },
        );
        ids.push(a.id.clone());
    }
    w.cohort("celebrity_followers", ids);
}

/// 150 students sign up from one campus /24 within an hour, then use the app normally.
fn campus_wave(w: &mut World) {
    let t0 = w.at(0.3);
    let mut ids = Vec::new();
    let mut members: Vec<usize> = Vec::new();
    let mut names = BTreeMap::new();
    for _ in 0..150 {
        let reg = t0 + w.rng.gen_range(0..HOUR);
        let fame = w.fame();
        let mut a = w.new_account(0, 2.0, fame);
        a.created = reg;
        a.ip = IpAddr::V4(Ipv4Addr::new(202, 120, 2, w.rng.gen_range(1..255)));
        let name = human_name(&mut w.rng);
        names.insert(a.id.clone(), name.clone());
        w.emit(
            &a,
            reg,
            Body::Register {
                name: Some(Cow::Owned(name)),
            },
        );
        ids.push(a.id.clone());
        w.accounts.push(a);
        members.push(w.accounts.len() - 1);
    }
    for &i in &members {
        let a = w.accounts[i].clone();
        let mut t = a.created + ms(exp(&mut w.rng, 300.0));
        for _ in 0..w.rng.gen_range(2..10) {
            t += ms(exp(&mut w.rng, 600.0)) + 5_000;
            if t >= w.end {
                break;
            }
            if w.rng.gen_bool(0.3) {
                let classmate = w.accounts[*members.choose(&mut w.rng).unwrap_or(&i)]
                    .id
                    .clone();
                w.emit(
                    &a,
                    t,
                    Body::Follow {
                        target: Cow::Owned(classmate),
                        action: FollowAction::Follow,
                    },
                );
            } else if let Some(p) = w.pick_post(t) {
                let post = w.posts[p].clone();
                let author = w.accounts[post.author].id.clone();
                w.emit(&a, t, engage(EngageAction::Like, &post, &author, None));
            }
        }
    }
    w.cohort("campus_wave", ids);
}
