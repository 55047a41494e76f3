//! The simulated world: accounts, posts, the event log and the truth being recorded.

use crate::rng::{lognormal, pareto, Ids, SimRng};
use crate::truth::{Cohort, Group, Truth};
use crate::{EventSink, ScenarioConfig};
use levee_model::{AlertKind, Body, EngageAction, Event, Ts};
use rand::distributions::{Distribution, WeightedIndex};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::borrow::Cow;
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const HOUR: i64 = 3_600_000;
pub const MINUTE: i64 = 60_000;
pub const DAY: i64 = 24 * HOUR;

/// Client strings, weighted like a real app population.
pub const UAS: &[(&str, u32)] = &[
    ("app/8.1 android/13", 30),
    ("app/8.1 ios/17.2", 25),
    ("app/8.0 android/12", 12),
    ("app/7.9 ios/16.5", 8),
    ("web/chrome 124", 10),
    ("web/safari 17", 6),
    ("app/8.1 harmonyos/4", 6),
    ("web/firefox 125", 3),
];

#[derive(Debug, Clone)]
pub struct Account {
    pub id: String,
    pub created: Ts,
    pub ip: IpAddr,
    pub device: String,
    pub ua: &'static str,
    /// Mean events per hour.
    pub rate: f64,
    /// How much attention this account's posts get.
    pub fame: f64,
}

#[derive(Debug, Clone)]
pub struct Post {
    pub id: String,
    pub author: usize,
    pub ts: Ts,
    pub appeal: f64,
}

pub struct World<'a> {
    pub cfg: ScenarioConfig,
    pub rng: SimRng,
    /// Draws each event's arrival delay, in emission order (its own stream, so the
    /// world's draws do not depend on it).
    arrival_rng: SimRng,
    sink: &'a mut dyn EventSink,
    pub ids: Ids,
    pub start: Ts,
    pub end: Ts,
    /// Organic accounts. Planted accounts are created by `planted` and never stored here.
    pub accounts: Vec<Account>,
    pub posts: Vec<Post>,
    pub groups: Vec<Group>,
    pub cohorts: Vec<Cohort>,
    post_index: Option<PostIndex>,
    ua_dist: WeightedIndex<u32>,
}

/// Posts bucketed by hour with appeal-weighted samplers, for choosing what people engage with.
#[derive(Debug)]
struct PostIndex {
    buckets: Vec<(Vec<usize>, Option<WeightedIndex<f64>>)>,
}

impl<'a> World<'a> {
    pub fn new(cfg: ScenarioConfig, sink: &'a mut dyn EventSink) -> Self {
        let rng = SimRng::seed_from_u64(cfg.seed);
        let arrival_rng = SimRng::seed_from_u64(cfg.seed.rotate_left(7) ^ 0x5eed_0dd3);
        let start = cfg.start_ts;
        let end = start + i64::from(cfg.hours.max(1)) * HOUR;
        let ua_dist = WeightedIndex::new(UAS.iter().map(|(_, w)| *w))
            .unwrap_or_else(|_| unreachable!("static weights"));
        World {
            cfg,
            rng,
            arrival_rng,
            sink,
            ids: Ids::default(),
            start,
            end,
            accounts: Vec::new(),
            posts: Vec::new(),
            groups: Vec::new(),
            cohorts: Vec::new(),
            post_index: None,
            ua_dist,
        }
    }

    /// Run `f` with a random stream of its own (derived from the seed and `salt`), so that
    /// what it draws does not shift what is drawn after it.
    pub fn with_stream(&mut self, salt: u64, f: impl FnOnce(&mut Self)) {
        let own = SimRng::seed_from_u64(self.cfg.seed ^ salt.rotate_left(17));
        let saved = std::mem::replace(&mut self.rng, own);
        f(self);
        self.rng = saved;
    }

    /// Event time at fraction `f` of the scenario.
    pub fn at(&self, f: f64) -> Ts {
        self.start + ((self.end - self.start) as f64 * f) as Ts
    }

    pub fn ua(&mut self) -> &'static str {
        UAS[self.ua_dist.sample(&mut self.rng)].0
    }

    pub fn account_id(&mut self) -> String {
        self.ids.fresh(&mut self.rng, "u", 8)
    }

    pub fn post_id(&mut self) -> String {
        self.ids.fresh(&mut self.rng, "p", 10)
    }

    pub fn device_id(&mut self) -> String {
        self.ids.fresh(&mut self.rng, "d-", 12)
    }

    /// A residential-looking address: mostly IPv4 across many /16s, some IPv6.
    pub fn random_ip(&mut self) -> IpAddr {
        if self.rng.gen_bool(0.1) {
            IpAddr::V6(Ipv6Addr::new(
                0x2408,
                self.rng.gen(),
                self.rng.gen(),
                self.rng.gen(),
                0,
                0,
                0,
                self.rng.gen_range(1..0xffff),
            ))
        } else {
            let first = *[
                36u8, 39, 58, 59, 60, 61, 101, 106, 110, 111, 112, 113, 114, 115, 116, 117, 119,
                120, 121, 122, 123, 124, 125, 180, 182, 183, 218, 219, 220, 221, 222, 223,
            ]
            .choose(&mut self.rng)
            .unwrap_or(&36);
            IpAddr::V4(Ipv4Addr::new(
                first,
                self.rng.gen(),
                self.rng.gen(),
                self.rng.gen_range(1..255),
            ))
        }
    }

    /// A new account that looks organic; `age_ms` is how long before the start it was created.
    pub fn new_account(&mut self, age_ms: i64, rate: f64, fame: f64) -> Account {
        let id = self.account_id();
        let ip = self.random_ip();
        let device = self.device_id();
        let ua = self.ua();
        Account {
            id,
            created: self.start - age_ms,
            ip,
            device,
            ua,
            rate,
            fame,
        }
    }

    /// An organic account's age: heavy-tailed, mostly months to years, a few weeks old.
    pub fn organic_age(&mut self) -> i64 {
        if self.rng.gen_bool(0.05) {
            self.rng.gen_range(DAY..30 * DAY)
        } else {
            (lognormal(&mut self.rng, 400.0, 0.8) * DAY as f64)
                .clamp(30.0 * DAY as f64, 4000.0 * DAY as f64) as i64
        }
    }

    /// Record an event by `a` at `ts`: hand it to the sink with its arrival time (event
    /// time plus a bounded random delay; a few are late by 15 to 45 s).
    pub fn emit(&mut self, a: &Account, ts: Ts, body: Body<'static>) {
        let created = (a.created <= ts).then_some(a.created);
        let late = self
            .arrival_rng
            .gen_bool(self.cfg.late_fraction.clamp(0.0, 1.0));
        let delay = if late {
            self.arrival_rng.gen_range(15_000..45_000)
        } else {
            self.arrival_rng.gen_range(0..self.cfg.disorder_ms.max(1))
        };
        let event = Event {
            ts,
            account: Cow::Owned(a.id.clone()),
            ip: Some(a.ip),
            device: Some(Cow::Owned(a.device.clone())),
            ua: Some(Cow::Borrowed(a.ua)),
            account_created: created,
            body,
        };
        self.sink.push(ts + delay, event);
    }

    /// Publish a post by organic account `author` (index) and return its id.
    pub fn post(
        &mut self,
        author: usize,
        ts: Ts,
        text: String,
        topics: Vec<String>,
        appeal: f64,
    ) -> String {
        let id = self.post_id();
        let a = self.accounts[author].clone();
        self.emit(&a, ts, post_body(&id, text, topics));
        self.posts.push(Post {
            id: id.clone(),
            author,
            ts,
            appeal,
        });
        self.post_index = None;
        id
    }

    /// A post published before `ts`, chosen by appeal and recency; `None` if there is none yet.
    pub fn pick_post(&mut self, ts: Ts) -> Option<usize> {
        if self.post_index.is_none() {
            self.post_index = Some(self.build_index());
        }
        let hour = ((ts - self.start) / HOUR).max(0) as usize;
        let r: f64 = self.rng.gen();
        let mut h = if r < 0.55 {
            hour
        } else if r < 0.85 {
            hour.saturating_sub(1)
        } else {
            self.rng.gen_range(0..=hour)
        };
        let idx = self.post_index.as_ref()?;
        h = h.min(idx.buckets.len().saturating_sub(1));
        loop {
            if let (posts, Some(dist)) = &idx.buckets[h] {
                let p = posts[dist.sample(&mut self.rng)];
                if self.posts[p].ts < ts {
                    return Some(p);
                }
            }
            if h == 0 {
                return None;
            }
            h -= 1;
        }
    }

    fn build_index(&self) -> PostIndex {
        let hours = ((self.end - self.start) / HOUR + 1) as usize;
        let mut buckets: Vec<Vec<usize>> = vec![Vec::new(); hours];
        for (i, p) in self.posts.iter().enumerate() {
            let h = ((p.ts - self.start) / HOUR).clamp(0, hours as i64 - 1) as usize;
            buckets[h].push(i);
        }
        let buckets = buckets
            .into_iter()
            .map(|b| {
                let dist = WeightedIndex::new(b.iter().map(|&i| self.posts[i].appeal)).ok();
                (b, dist)
            })
            .collect();
        PostIndex { buckets }
    }

    /// Record a planted group.
    pub fn plant(
        &mut self,
        kind: AlertKind,
        variant: &str,
        accounts: &[Account],
        targets: Vec<String>,
        topic: Option<String>,
        span: (Ts, Ts),
    ) {
        let n = self.groups.iter().filter(|g| g.kind == kind).count() + 1;
        let mut ids: Vec<String> = accounts.iter().map(|a| a.id.clone()).collect();
        ids.sort();
        self.groups.push(crate::Group {
            id: format!("{}-{n}", kind.as_str()),
            kind,
            variant: variant.to_owned(),
            accounts: ids,
            targets,
            topic,
            start: span.0,
            end: span.1,
        });
    }

    /// Record an organic cohort.
    pub fn cohort(&mut self, name: &str, accounts: impl IntoIterator<Item = String>) {
        let set: BTreeSet<String> = accounts.into_iter().collect();
        self.cohorts.push(Cohort {
            name: name.to_owned(),
            accounts: set.into_iter().collect(),
        });
    }

    pub fn fame(&mut self) -> f64 {
        pareto(&mut self.rng, 1.0, 1.2).min(10_000.0)
    }

    pub fn finish(self) -> Truth {
        Truth {
            seed: self.cfg.seed,
            start: self.start,
            end: self.end,
            organic_accounts: self.accounts.len(),
            groups: self.groups,
            cohorts: self.cohorts,
        }
    }
}

pub fn post_body(id: &str, text: String, topics: Vec<String>) -> Body<'static> {
    Body::Post {
        post: Cow::Owned(id.to_owned()),
        text: Cow::Owned(text),
        topics: topics.into_iter().map(Cow::Owned).collect(),
        reply_to: None,
        repost_of: None,
    }
}

pub fn engage(
    action: EngageAction,
    post: &Post,
    author: &str,
    text: Option<String>,
) -> Body<'static> {
    Body::Engage {
        action,
        post: Cow::Owned(post.id.clone()),
        author: Some(Cow::Owned(author.to_owned())),
        text: text.map(Cow::Owned),
        topics: Vec::new(),
    }
}
