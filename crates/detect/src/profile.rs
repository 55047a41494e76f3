//! The account profile: what the stream has shown about each account (creation time,
//! posting, activity), kept by the detectors' driver ([`crate::Detectors`]) and read,
//! never written, by detectors. The one cross-detector signal, so no detector depends
//! on another.
//!
//! 24 bytes a slot (a 64-bit key and 12 bytes of figures, padded); the
//! table grows by half at 7/8 load (10M accounts measured 384 MiB when it doubled,
//! `benches/alone.rs`). Accounts idle for `idle_ms` are forgotten on an hourly sweep; beyond `max_accounts` new accounts are
//! not profiled (counted).

use crate::detector::{key64, Budget, DetectorStats, Every, MapStats};
use crate::flat::{Entry, FlatMap};
use levee_model::{Body, EngageAction, Event, Ts};
use serde::{Deserialize, Serialize};

/// `[detectors.account_profile]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProfileConfig {
    /// Accounts profiled at once; beyond it, new accounts are not profiled (counted).
    pub max_accounts: usize,
    /// An account with no event for this long (event time) is forgotten.
    pub idle_ms: i64,
}

impl Default for ProfileConfig {
    fn default() -> Self {
        ProfileConfig {
            max_accounts: 10_000_000,
            idle_ms: 7 * 24 * 3_600_000,
        }
    }
}

impl ProfileConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.max_accounts == 0 || self.idle_ms <= 0 {
            return Err("account_profile: need max_accounts > 0, idle_ms > 0".into());
        }
        Ok(())
    }
}

const MINUTE: i64 = 60_000;

fn minutes(ts: Ts) -> u32 {
    u32::try_from((ts / MINUTE).max(1)).unwrap_or(u32::MAX)
}

/// One account.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountProfile {
    /// Creation time, minutes since the epoch; 0: unknown.
    created_min: u32,
    /// Last event, minutes since the epoch.
    last_min: u32,
    /// Posts and comments seen (saturating).
    posts: u16,
    /// Events seen (saturating).
    events: u16,
}

impl AccountProfile {
    /// When the account was created (to the minute): the events' `account_created`, or
    /// the registration seen.
    pub fn created(&self) -> Option<Ts> {
        (self.created_min > 0).then(|| i64::from(self.created_min) * MINUTE)
    }

    pub fn posts(&self) -> u16 {
        self.posts
    }

    pub fn events(&self) -> u16 {
        self.events
    }
}

/// Every profiled account; see the module docs.
#[derive(Debug, Serialize, Deserialize)]
pub struct Profiles {
    cfg: ProfileConfig,
    map: FlatMap<AccountProfile>,
    sweep: Every,
    cap_hits: u64,
}

impl Default for Profiles {
    fn default() -> Self {
        Profiles::new(ProfileConfig::default())
    }
}

impl Profiles {
    pub fn new(cfg: ProfileConfig) -> Self {
        Profiles {
            sweep: Every::new(3_600_000),
            cfg,
            map: FlatMap::default(),
            cap_hits: 0,
        }
    }

    /// Fold `ev` into its account's profile.
    pub fn observe(&mut self, ev: &Event<'_>) {
        let len = self.map.len();
        let p = match self.map.entry(key64(&ev.account)) {
            Entry::Occupied(p) => p,
            Entry::Vacant(_) if len >= self.cfg.max_accounts => {
                self.cap_hits += 1;
                return;
            }
            Entry::Vacant(v) => v.insert(AccountProfile::default()),
        };
        let created = match ev.body {
            Body::Register { .. } => Some(ev.ts),
            _ => ev.account_created,
        };
        if let Some(c) = created {
            p.created_min = minutes(c);
        }
        p.last_min = p.last_min.max(minutes(ev.ts));
        p.events = p.events.saturating_add(1);
        let content = match &ev.body {
            Body::Post { .. } => true,
            Body::Engage { action, .. } => *action == EngageAction::Comment,
            _ => false,
        };
        if content {
            p.posts = p.posts.saturating_add(1);
        }
    }

    /// The slot [`Profiles::observe`] will read for `ev` (see [`crate::Detector::lookahead`]).
    pub fn lookahead(&self, ev: &Event<'_>, want: &mut crate::detector::Lookahead) {
        want.want(self.map.slot_addr(key64(&ev.account)));
    }

    pub fn get(&self, account: &str) -> Option<AccountProfile> {
        self.map.get(key64(account)).copied()
    }

    /// Forget idle accounts (an hourly sweep of event time).
    pub fn on_tick(&mut self, watermark: Ts) {
        if self.sweep.due(watermark) {
            let horizon = minutes(watermark - self.cfg.idle_ms);
            self.map.retain(|_, p| p.last_min >= horizon);
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.len() == 0
    }

    pub fn stats(&self) -> DetectorStats {
        DetectorStats {
            maps: vec![MapStats {
                map: "accounts",
                entries: self.map.len() as u64,
                bytes: self.map.bytes(),
            }],
            cap_hits: self.cap_hits,
            budget: Budget::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use levee_model::{decode, Limits};

    fn ev(line: &str) -> Event<'static> {
        decode(line.as_bytes(), &Limits::default())
            .expect("valid")
            .into_owned()
    }

    #[test]
    fn profiles_fold_creation_posts_and_activity_and_forget_the_idle() {
        let mut p = Profiles::new(ProfileConfig {
            max_accounts: 2,
            idle_ms: 3_600_000,
        });
        p.observe(&ev(r#"{"type":"register","ts":600000,"account":"a"}"#));
        p.observe(&ev(
            r#"{"type":"follow","ts":660000,"account":"b","target":"a","account_created":120000}"#,
        ));
        p.observe(&ev(
            r#"{"type":"engage","ts":720000,"account":"b","action":"comment","post":"p","text":"hi"}"#,
        ));
        p.observe(&ev(r#"{"type":"login","ts":720000,"account":"c"}"#));
        let a = p.get("a").expect("profiled");
        assert_eq!((a.created(), a.posts(), a.events()), (Some(600_000), 0, 1));
        let b = p.get("b").expect("profiled");
        assert_eq!((b.created(), b.posts(), b.events()), (Some(120_000), 1, 2));
        assert_eq!(p.get("c"), None, "over max_accounts");
        assert_eq!(p.stats().cap_hits, 1);
        p.on_tick(600_000 + 3_600_000 + 90_000);
        assert_eq!(p.get("a"), None, "idle for an hour");
        assert!(p.get("b").is_some());
    }
}
