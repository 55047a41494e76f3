//! Name templates: the shape a registration script gives the names it invents.
//!
//! A script names its accounts from a stem and a counter or random suffix: `小雨1023`,
//! `jenny_0423`, `user_a3f9e1`. A name's template is its stem (case-folded) and the
//! shape of its suffix:
//! - after the last separator (`_`, `.`, `-`, space), a run of hex digits, 3 or more
//!   holding a digit or 6 or more letters: `user_` + `<6 hex digits>` (random hex is
//!   sometimes all digits, so digits alone are the same shape here);
//! - otherwise a trailing run of 2 or more digits: `小雨` + `<4 digits>`;
//! - otherwise no suffix: the template is the whole name (a human name matches only
//!   the same name).

use crate::detector::key64;

/// The suffix shape of a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tail {
    None,
    /// `len` decimal digits; `value` their number (saturating), for the sequence check.
    Digits {
        len: u8,
        value: u64,
    },
    /// `len` hex digits after a separator; `value` their number if all are decimal digits.
    Hex {
        len: u8,
        value: Option<u64>,
    },
}

/// A name's template: see the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template<'a> {
    /// The stem as written (not folded), a prefix of the name.
    pub stem: &'a str,
    pub tail: Tail,
}

const SEPARATORS: [char; 4] = ['_', '.', '-', ' '];
/// Suffixes longer than this are counted as this long (keeps `len` in a byte).
const MAX_TAIL: usize = 64;

impl<'a> Template<'a> {
    pub fn of(name: &'a str) -> Self {
        let name = name.trim();
        if let Some(i) = name.rfind(SEPARATORS) {
            let (stem, tail) = name.split_at(i + 1);
            let hex = tail.bytes().all(|b| b.is_ascii_hexdigit());
            let digit = tail.bytes().any(|b| b.is_ascii_digit());
            if hex && (tail.len() >= 6 || (digit && tail.len() >= 3)) {
                let value = match digits(tail) {
                    Tail::Digits { value, .. } if tail.bytes().all(|b| b.is_ascii_digit()) => {
                        Some(value)
                    }
                    _ => None,
                };
                let len = tail.len().min(MAX_TAIL) as u8;
                return Template {
                    stem,
                    tail: Tail::Hex { len, value },
                };
            }
        }
        let digits_from = name
            .bytes()
            .rposition(|b| !b.is_ascii_digit())
            .map_or(0, |p| p + 1);
        if name.len() - digits_from >= 2 {
            let (stem, tail) = name.split_at(digits_from);
            return Template {
                stem,
                tail: digits(tail),
            };
        }
        Template {
            stem: name,
            tail: Tail::None,
        }
    }

    /// A stable key: the folded stem and the suffix shape (not its value).
    pub fn key(&self) -> u64 {
        let shape = match self.tail {
            Tail::None => String::new(),
            Tail::Digits { len, .. } => format!("\u{0}d{len}"),
            Tail::Hex { len, .. } => format!("\u{0}x{len}"),
        };
        key64(&format!("{}{shape}", self.stem.to_lowercase()))
    }

    /// How a moderator reads it: `小雨<4 digits>`, `user_<6 hex>`.
    pub fn render(&self) -> String {
        match self.tail {
            Tail::None => self.stem.to_owned(),
            Tail::Digits { len, .. } => format!("{}<{len} digits>", self.stem),
            Tail::Hex { len, .. } => format!("{}<{len} hex digits>", self.stem),
        }
    }

    /// The suffix's number, for digit suffixes.
    pub fn number(&self) -> Option<u64> {
        match self.tail {
            Tail::Digits { value, .. } => Some(value),
            Tail::Hex { value, .. } => value,
            Tail::None => None,
        }
    }
}

fn digits(s: &str) -> Tail {
    let value = s.bytes().fold(0u64, |v, b| {
        v.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    });
    Tail::Digits {
        len: s.len().min(MAX_TAIL) as u8,
        value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, rendered: &str) {
        assert_eq!(
            Template::of(name).render(),
            rendered,
            "template of {name:?}"
        );
    }

    #[test]
    fn scripts_share_a_template_humans_do_not() {
        check("小雨1023", "小雨<4 digits>");
        check("jenny_0423", "jenny_<4 hex digits>");
        check("user_a3f9e1", "user_<6 hex digits>");
        check("user_abcdef", "user_<6 hex digits>");
        check("wei_face", "wei_face");
        assert_eq!(
            Template::of("user_a3f9e1").key(),
            Template::of("user_093721").key(),
            "random hex that happens to be all digits keeps the shape"
        );
        assert_eq!(Template::of("jenny_0423").number(), Some(423));
        check("Lucy1998", "Lucy<4 digits>");
        check("Lucy7", "Lucy7");
        check("王小明", "王小明");
        check("wei_zhang", "wei_zhang");
        check("123456", "<6 digits>");
        check("", "");
        assert_eq!(
            Template::of("User_A3F9E1").key(),
            Template::of("user_09bc2d").key()
        );
        assert_ne!(
            Template::of("user_a3f9e1").key(),
            Template::of("user_a3f9").key()
        );
        assert_ne!(Template::of("小雨1023").key(), Template::of("小雨").key());
        assert_eq!(Template::of("小雨1023").number(), Some(1023));
    }
}
