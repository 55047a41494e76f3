//! The engagement event model (contract v1), borrowed from its input bytes where possible.

use serde::ser::{Serialize, SerializeMap, Serializer};
use std::borrow::Cow;
use std::net::IpAddr;

/// Event time: milliseconds since the Unix epoch, UTC.
pub type Ts = i64;

/// One decoded, validated engagement event.
///
/// Strings borrow from the decoded bytes unless they contained JSON escapes;
/// call [`Event::into_owned`] to keep one beyond its buffer.
#[derive(Debug, Clone, PartialEq)]
pub struct Event<'a> {
    pub ts: Ts,
    pub account: Cow<'a, str>,
    pub ip: Option<IpAddr>,
    pub device: Option<Cow<'a, str>>,
    pub ua: Option<Cow<'a, str>>,
    pub account_created: Option<Ts>,
    pub body: Body<'a>,
}

/// The type-specific part of an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Body<'a> {
    Register {
        name: Option<Cow<'a, str>>,
    },
    Login,
    Post {
        post: Cow<'a, str>,
        text: Cow<'a, str>,
        topics: Vec<Cow<'a, str>>,
        reply_to: Option<Cow<'a, str>>,
        repost_of: Option<Cow<'a, str>>,
    },
    Engage {
        action: EngageAction,
        post: Cow<'a, str>,
        author: Option<Cow<'a, str>>,
        text: Option<Cow<'a, str>>,
        topics: Vec<Cow<'a, str>>,
    },
    Follow {
        target: Cow<'a, str>,
        action: FollowAction,
    },
    Hotlist {
        topic: Cow<'a, str>,
        action: HotlistAction,
        rank: Option<u32>,
    },
}

/// The six event types, as a fieldless enum for counting and labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    Register,
    Login,
    Post,
    Engage,
    Follow,
    Hotlist,
}

impl EventType {
    pub const ALL: [EventType; 6] = [
        EventType::Register,
        EventType::Login,
        EventType::Post,
        EventType::Engage,
        EventType::Follow,
        EventType::Hotlist,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Register => "register",
            EventType::Login => "login",
            EventType::Post => "post",
            EventType::Engage => "engage",
            EventType::Follow => "follow",
            EventType::Hotlist => "hotlist",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        EventType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

macro_rules! str_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident => $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($variant),+ }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $s),+ }
            }
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($s => Some($name::$variant),)+ _ => None }
            }
        }
    };
}

str_enum!(
    /// `engage.action`.
    EngageAction { Like => "like", Repost => "repost", Comment => "comment", Favorite => "favorite", Share => "share" }
);
str_enum!(
    /// `follow.action` (defaults to `follow`).
    FollowAction { Follow => "follow", Unfollow => "unfollow" }
);
str_enum!(
    /// `hotlist.action`.
    HotlistAction { View => "view", Click => "click", Search => "search" }
);

impl<'a> Event<'a> {
    pub fn event_type(&self) -> EventType {
        match self.body {
            Body::Register { .. } => EventType::Register,
            Body::Login => EventType::Login,
            Body::Post { .. } => EventType::Post,
            Body::Engage { .. } => EventType::Engage,
            Body::Follow { .. } => EventType::Follow,
            Body::Hotlist { .. } => EventType::Hotlist,
        }
    }

    /// Detach from the input buffer.
    pub fn into_owned(self) -> Event<'static> {
        self.map_strs(&mut |c| Cow::Owned(c.into_owned()))
    }

    /// The same event with every string field passed through `f`, always in the same
    /// order (account, device, ua, then the body's fields in declaration order, topics
    /// in order). Two calls on events of the same shape visit the same fields.
    pub fn map_strs<'b>(self, f: &mut impl FnMut(Cow<'a, str>) -> Cow<'b, str>) -> Event<'b> {
        let account = f(self.account);
        let device = self.device.map(&mut *f);
        let ua = self.ua.map(&mut *f);
        let body = match self.body {
            Body::Register { name } => Body::Register {
                name: name.map(&mut *f),
            },
            Body::Login => Body::Login,
            Body::Post {
                post,
                text,
                topics,
                reply_to,
                repost_of,
            } => Body::Post {
                post: f(post),
                text: f(text),
                topics: topics.into_iter().map(&mut *f).collect(),
                reply_to: reply_to.map(&mut *f),
                repost_of: repost_of.map(&mut *f),
            },
            Body::Engage {
                action,
                post,
                author,
                text,
                topics,
            } => Body::Engage {
                action,
                post: f(post),
                author: author.map(&mut *f),
                text: text.map(&mut *f),
                topics: topics.into_iter().map(&mut *f).collect(),
            },
            Body::Follow { target, action } => Body::Follow {
                target: f(target),
                action,
            },
            Body::Hotlist {
                topic,
                action,
                rank,
            } => Body::Hotlist {
                topic: f(topic),
                action,
                rank,
            },
        };
        Event {
            ts: self.ts,
            account,
            ip: self.ip,
            device,
            ua,
            account_created: self.account_created,
            body,
        }
    }

    /// The contract JSON for this event (one line, no trailing newline).
    pub fn to_json(&self) -> String {
        // Serializing plain strings, integers and arrays into a String cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl Serialize for Event<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("type", self.event_type().as_str())?;
        m.serialize_entry("ts", &self.ts)?;
        m.serialize_entry("account", &self.account)?;
        if let Some(ip) = &self.ip {
            m.serialize_entry("ip", &ip.to_string())?;
        }
        if let Some(d) = &self.device {
            m.serialize_entry("device", d)?;
        }
        if let Some(u) = &self.ua {
            m.serialize_entry("ua", u)?;
        }
        if let Some(c) = &self.account_created {
            m.serialize_entry("account_created", c)?;
        }
        match &self.body {
            Body::Register { name } => {
                if let Some(n) = name {
                    m.serialize_entry("name", n)?;
                }
            }
            Body::Login => {}
            Body::Post {
                post,
                text,
                topics,
                reply_to,
                repost_of,
            } => {
                m.serialize_entry("post", post)?;
                m.serialize_entry("text", text)?;
                if !topics.is_empty() {
                    m.serialize_entry("topics", topics)?;
                }
                if let Some(r) = reply_to {
                    m.serialize_entry("reply_to", r)?;
                }
                if let Some(r) = repost_of {
                    m.serialize_entry("repost_of", r)?;
                }
            }
            Body::Engage {
                action,
                post,
                author,
                text,
                topics,
            } => {
                m.serialize_entry("action", action.as_str())?;
                m.serialize_entry("post", post)?;
                if let Some(a) = author {
                    m.serialize_entry("author", a)?;
                }
                if let Some(t) = text {
                    m.serialize_entry("text", t)?;
                }
                if !topics.is_empty() {
                    m.serialize_entry("topics", topics)?;
                }
            }
            Body::Follow { target, action } => {
                m.serialize_entry("target", target)?;
                if *action != FollowAction::Follow {
                    m.serialize_entry("action", action.as_str())?;
                }
            }
            Body::Hotlist {
                topic,
                action,
                rank,
            } => {
                m.serialize_entry("topic", topic)?;
                m.serialize_entry("action", action.as_str())?;
                if let Some(r) = rank {
                    m.serialize_entry("rank", r)?;
                }
            }
        }
        m.end()
    }
}
