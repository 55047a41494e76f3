//! Text normalisation and features for near-duplicate detection of mixed Chinese/English text.
//!
//! One pass over the characters: URLs, @mentions and #hashtags are skipped (each
//! switchable); invisible characters (zero-width, format, control, variation selectors)
//! vanish without a trace; every other character is folded by Unicode NFKC (full width to
//! half width, compatibility forms) and case-folded. What is left is classified:
//!
//! - CJK characters (Han, kana, Hangul) form runs; a run yields its character bigrams
//!   (a lone character, its unigram). Whitespace, emoji and symbols inside a run do not
//!   break it, so `推荐 新款` and `推荐🔥新款` give the same bigrams as `推荐新款`.
//! - White space next to CJK text (between two CJK characters, or between a word and a
//!   CJK character) is a [`Token::Gap`]: no feature, but a place the chunker may cut, so
//!   words put in front of a Chinese clause (`手机 这款精华确实好用`) stay out of its chunk.
//!   The bigram across the gap goes with the part before it.
//! - Letters and digits form words; a word is one feature.
//! - Sentence punctuation (`, . ! ? ; :` after folding, `、 。`, quotes and brackets, new
//!   lines) ends a clause. Clauses are the unit a template is rebuilt from.
//!
//! A feature is a stable, seedless 64-bit hash (xxh3 of the word; a mix of the two code
//! points for a bigram), so fingerprints are the same in every process and snapshot.

use unicode_normalization::UnicodeNormalization;

/// What to strip before features are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Strip {
    pub urls: bool,
    pub mentions: bool,
    pub hashtags: bool,
}

/// One token, as the features are made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token<'a> {
    /// Two neighbouring CJK characters.
    Bigram(char, char),
    /// A CJK character standing alone.
    Unigram(char),
    /// A case-folded word of letters and digits.
    Word(&'a str),
    /// The end of a clause.
    Break,
    /// White space next to CJK text: not a feature, a place a clause may be cut.
    Gap,
}

impl Token<'_> {
    /// Whether it is a feature (not a [`Token::Break`] or [`Token::Gap`]).
    pub fn is_feature(&self) -> bool {
        !matches!(self, Token::Break | Token::Gap)
    }

    /// The feature hash (stable across processes; never called on a break or gap).
    pub fn hash(&self) -> u64 {
        match *self {
            Token::Bigram(a, b) => mix((u64::from(a as u32) << 32) | u64::from(b as u32)),
            Token::Unigram(a) => mix(u64::from(a as u32) | (1 << 63)),
            Token::Word(w) => xxhash_rust::xxh3::xxh3_64(w.as_bytes()),
            Token::Break | Token::Gap => 0,
        }
    }

    /// How the feature reads, for evidence.
    pub fn display(&self) -> String {
        match *self {
            Token::Bigram(a, b) => [a, b].iter().collect(),
            Token::Unigram(a) => a.to_string(),
            Token::Word(w) => w.to_owned(),
            Token::Break | Token::Gap => String::new(),
        }
    }
}

/// A stable 64-bit mixer (the murmur3 finalizer).
fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF      // hiragana, katakana
        | 0x3400..=0x4DBF    // CJK extension A
        | 0x4E00..=0x9FFF    // CJK unified ideographs
        | 0xAC00..=0xD7AF    // Hangul syllables
        | 0xF900..=0xFAFF    // compatibility ideographs (NFKC maps most away)
        | 0x20000..=0x2FA1F) // extensions B and beyond
}

/// Characters that vanish: zero-width, bidi and other format controls, variation selectors.
fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(c as u32,
            0x00AD | 0x034F | 0x061C | 0x115F | 0x1160 | 0x17B4 | 0x17B5 | 0x180B..=0x180F
            | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x206F | 0x3164 | 0xFE00..=0xFE0F
            | 0xFEFF | 0xFFA0 | 0xE0000..=0xE0FFF)
}

/// Punctuation that ends a clause (after folding to half width).
fn is_break(c: char) -> bool {
    matches!(
        c,
        ',' | '.'
            | '!'
            | '?'
            | ';'
            | ':'
            | '\n'
            | '"'
            | '('
            | ')'
            | '['
            | ']'
            | '、'
            | '。'
            | '…'
            | '“'
            | '”'
            | '‘'
            | '’'
            | '「'
            | '」'
            | '『'
            | '』'
            | '【'
            | '】'
            | '《'
            | '》'
            | '〈'
            | '〉'
    )
}

/// The tokenizer's state: the open CJK run and the word being read.
#[derive(Debug, Default)]
struct Scan {
    word: String,
    /// The last CJK character of the open run, and whether the run has paired it yet.
    run: Option<(char, bool)>,
    /// Whether the clause has a feature yet.
    in_clause: bool,
    /// White space since the last feature (in a clause): whether that feature was CJK.
    space_after: Option<bool>,
}

impl Scan {
    fn end_word(&mut self, emit: &mut impl FnMut(Token<'_>)) {
        if !self.word.is_empty() {
            emit(Token::Word(&self.word));
            self.word.clear();
        }
    }

    fn end_run(&mut self, emit: &mut impl FnMut(Token<'_>)) {
        if let Some((c, false)) = self.run {
            emit(Token::Unigram(c));
        }
        self.run = None;
    }

    /// One character after invisible ones were dropped and NFKC applied.
    fn push(&mut self, c: char, emit: &mut impl FnMut(Token<'_>)) {
        if is_cjk(c) {
            self.end_word(emit);
            let space = self.space_after.take().is_some();
            if let Some((prev, _)) = self.run {
                emit(Token::Bigram(prev, c));
                if space {
                    emit(Token::Gap);
                }
                self.run = Some((c, true));
            } else {
                if space {
                    emit(Token::Gap);
                }
                self.run = Some((c, false));
            }
            self.in_clause = true;
        } else if c.is_alphanumeric() {
            self.end_run(emit);
            if self.space_after.take() == Some(true) {
                emit(Token::Gap);
            }
            self.in_clause = true;
            if c.is_ascii() {
                self.word.push(c.to_ascii_lowercase());
            } else {
                self.word.extend(c.to_lowercase());
            }
        } else if is_break(c) {
            self.end_word(emit);
            self.end_run(emit);
            emit(Token::Break);
            self.in_clause = false;
            self.space_after = None;
        } else {
            // Whitespace, emoji, symbols: end a word, not a CJK run.
            if c.is_whitespace() && self.in_clause && self.space_after.is_none() {
                self.space_after = Some(self.run.is_some());
            }
            self.end_word(emit);
        }
    }

    /// A character as it comes: invisible ones dropped, the rest folded by NFKC.
    fn feed(&mut self, c: char, emit: &mut impl FnMut(Token<'_>)) {
        match c as u32 {
            0x20..=0x7E => self.push(c, emit),
            0x4E00..=0x9FFF => self.push(c, emit),
            // Full-width ASCII: NFKC maps it to ASCII by this offset.
            0xFF01..=0xFF5E => self.push(char::from_u32(c as u32 - 0xFEE0).unwrap_or(' '), emit),
            _ if is_invisible(c) => {}
            _ => {
                for d in std::iter::once(c).nfkc() {
                    if !is_invisible(d) && !is_mark(d) {
                        self.push(d, emit);
                    }
                }
            }
        }
    }
}

/// Combining marks: dropped (a stray accent does not make a different text).
fn is_mark(c: char) -> bool {
    matches!(c as u32, 0x0300..=0x036F | 0x1AB0..=0x1AFF | 0x1DC0..=0x1DFF | 0x20D0..=0x20FF | 0xFE20..=0xFE2F)
}

/// Tokenize `text`: call `emit` for every feature token and clause break, in order.
pub fn tokens(text: &str, strip: Strip, mut emit: impl FnMut(Token<'_>)) {
    let mut scan = Scan::default();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        let skip = match c {
            'h' | 'H' | 'w' | 'W' if strip.urls => url_len(rest),
            '@' | '＠' if strip.mentions => mention_len(rest),
            '#' | '＃' if strip.hashtags => hashtag_len(rest),
            _ => 0,
        };
        if skip > 0 {
            scan.end_word(&mut emit);
            rest = &rest[skip..];
            continue;
        }
        scan.feed(c, &mut emit);
        rest = &rest[c.len_utf8()..];
    }
    scan.end_word(&mut emit);
    scan.end_run(&mut emit);
}

/// Bytes of a URL at the start of `s` (0 if none): a scheme or `www.`, up to white space
/// or the first non-ASCII character.
fn url_len(s: &str) -> usize {
    let b = s.as_bytes();
    let starts = |p: &[u8]| b.len() >= p.len() && b[..p.len()].eq_ignore_ascii_case(p);
    if !(starts(b"http://") || starts(b"https://") || starts(b"www.")) {
        return 0;
    }
    b.iter()
        .position(|&c| c.is_ascii_whitespace() || !c.is_ascii())
        .unwrap_or(b.len())
}

/// Bytes of an @mention at the start of `s`: the sign and the name, up to white space,
/// punctuation or a colon (`@name:` and `@名字 ` are both common).
fn mention_len(s: &str) -> usize {
    let sign = s.chars().next().map_or(1, char::len_utf8);
    let name = s[sign..]
        .char_indices()
        .find(|&(_, c)| c.is_whitespace() || (c != '_' && c != '-' && is_break_like(c)))
        .map_or(s.len() - sign, |(i, _)| i);
    if name == 0 {
        0
    } else {
        sign + name
    }
}

fn is_break_like(c: char) -> bool {
    is_break(c)
        || matches!(
            c,
            '，' | '：' | '！' | '？' | '；' | '@' | '＠' | '#' | '＃'
        )
}

/// Bytes of a hashtag at the start of `s`: Weibo's `#话题#` (closed within 64 characters on
/// the same line) or a Twitter-style `#word` up to white space or punctuation.
fn hashtag_len(s: &str) -> usize {
    let sign = s.chars().next().map_or(1, char::len_utf8);
    let body = &s[sign..];
    for (n, (i, c)) in body.char_indices().enumerate() {
        if n > 64 || c == '\n' {
            break;
        }
        if c == '#' || c == '＃' {
            return if i == 0 { 0 } else { sign + i + c.len_utf8() };
        }
    }
    let word = body
        .char_indices()
        .find(|&(_, c)| c.is_whitespace() || is_break_like(c))
        .map_or(body.len(), |(i, _)| i);
    if word == 0 {
        0
    } else {
        sign + word
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: Strip = Strip {
        urls: true,
        mentions: true,
        hashtags: true,
    };

    fn show(text: &str) -> String {
        let mut out = Vec::new();
        tokens(text, ALL, |t| {
            out.push(match t {
                Token::Break => "|".to_owned(),
                Token::Gap => "_".to_owned(),
                t => t.display(),
            })
        });
        out.join(" ")
    }

    #[test]
    fn tokens_of_mixed_text() {
        let cases = [
            ("今天天气", "今天 天天 天气"),
            ("Hello World!", "hello world |"),
            ("ＡＢＣ１２３，好", "abc123 | 好"),
            ("推荐 新款🔥手机", "推荐 荐新 _ 新款 款手 手机"),
            ("手机 这款精华，好", "手机 机这 _ 这款 款精 精华 | 好"),
            ("cat recommend 这款 tired", "cat recommend _ 这款 _ tired"),
            ("hello world 好", "hello world _ 好"),
            ("推\u{200b}荐\u{200d}新款", "推荐 荐新 新款"),
            ("看 https://t.cn/abc 这个", "看这 _ 这个"),
            ("@小明 你好#话题#呀", "你好 好呀"),
            ("#tag hello @bob: hi", "hello | hi"),
            ("ﬁne Café", "fine café"),
            ("【标题】我说", "| 标题 | 我说"),
            ("❤️👍", ""),
            ("", ""),
        ];
        for (text, want) in cases {
            assert_eq!(show(text), want, "{text:?}");
        }
    }

    #[test]
    fn width_case_and_invisibles_do_not_change_features() {
        let hashes = |s: &str| {
            let mut v = Vec::new();
            tokens(s, ALL, |t| v.push(t.hash()));
            v
        };
        assert_eq!(
            hashes("强烈推荐，拍照效果太好了！Share THIS"),
            hashes("强\u{200b}烈推荐,拍照效果\u{feff}太好了!ｓｈａｒｅ this")
        );
    }

    #[test]
    fn strip_switches_are_honoured() {
        let keep = Strip {
            urls: false,
            mentions: false,
            hashtags: false,
        };
        let mut v = Vec::new();
        tokens("@bob #x www.a.com", keep, |t| v.push(t.display()));
        assert_eq!(
            v,
            ["bob", "x", "www", "", "a", "", "com"].map(str::to_owned)
        );
    }
}
