//! A compact owned name (account, post, device): short names inline, longer ones on the heap.
//!
//! Platform ids are short (`u29208287`, a 19-digit Weibo mid, a device fingerprint): a
//! `Box<str>` costs its 16-byte pointer plus a heap chunk of at least 32 bytes for each.
//! [`Name`] is 24 bytes in place and allocates only beyond [`INLINE`] bytes. Serialized
//! as a plain string, so snapshots do not see the difference.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// The longest name kept inline, in bytes.
pub const INLINE: usize = 22;

/// An owned UTF-8 name; see the module docs.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Name {
    /// The first `len` bytes of `bytes` are the name (valid UTF-8, from a `&str`).
    Inline {
        len: u8,
        bytes: [u8; INLINE],
    },
    Heap(Box<str>),
}

impl Name {
    pub fn as_str(&self) -> &str {
        match self {
            Name::Inline { len, bytes } => {
                let s = std::str::from_utf8(&bytes[..usize::from(*len)]);
                debug_assert!(s.is_ok(), "inline names are copied from a &str whole");
                s.unwrap_or_default()
            }
            Name::Heap(s) => s,
        }
    }

    /// Heap bytes this name holds beyond its own size (with the allocator's header).
    pub fn heap_bytes(&self) -> usize {
        match self {
            Name::Inline { .. } => 0,
            Name::Heap(s) => s.len() + 16,
        }
    }
}

/// The empty name (an unused slot's).
impl Default for Name {
    fn default() -> Self {
        Name::Inline {
            len: 0,
            bytes: [0; INLINE],
        }
    }
}

impl From<&str> for Name {
    fn from(s: &str) -> Self {
        if s.len() <= INLINE {
            let mut bytes = [0; INLINE];
            bytes[..s.len()].copy_from_slice(s.as_bytes());
            // `s.len() <= INLINE` (22) fits a u8.
            Name::Inline {
                len: s.len() as u8,
                bytes,
            }
        } else {
            Name::Heap(s.into())
        }
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl Serialize for Name {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(Name::from(s.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(s: &str, inline: bool) {
        let n = Name::from(s);
        assert_eq!(n.as_str(), s);
        assert_eq!(matches!(n, Name::Inline { .. }), inline, "{s:?}");
        assert_eq!(n.heap_bytes() == 0, inline);
        let json = serde_json::to_string(&n).unwrap();
        assert_eq!(json, serde_json::to_string(s).unwrap());
        assert_eq!(serde_json::from_str::<Name>(&json).unwrap(), n);
    }

    #[test]
    fn short_names_are_inline_and_long_ones_on_the_heap() {
        assert_eq!(std::mem::size_of::<Name>(), 24);
        check("", true);
        check("u29208287", true);
        check("4998765432109876543", true);
        check("水军账号七号", true); // 18 bytes of CJK
        check("水军账号七号八", true); // 21 bytes
        check("水军账号七号八九", false); // 24 bytes
        check("d-140003262836-android-13", false);
        check("\"quoted\" \\ name", true);
    }
}
