//! Text for the simulator: organic sentences, generic comments, names, campaign templates
//! and the perturbations copy campaigns use to dodge exact matching.

use crate::rng::SimRng;
use rand::seq::SliceRandom;
use rand::Rng;

const ZH_WORDS: &[&str] = &[
    "今天",
    "天气",
    "真的",
    "不错",
    "我们",
    "一起",
    "去",
    "吃饭",
    "电影",
    "好看",
    "工作",
    "太累了",
    "周末",
    "计划",
    "旅行",
    "北京",
    "上海",
    "朋友",
    "推荐",
    "这家",
    "咖啡",
    "味道",
    "一般",
    "新闻",
    "看到",
    "觉得",
    "有点",
    "意思",
    "明天",
    "考试",
    "加油",
    "学习",
    "音乐",
    "演唱会",
    "门票",
    "抢不到",
    "猫咪",
    "可爱",
    "下雨",
    "地铁",
    "好挤",
    "晚饭",
    "做了",
    "红烧肉",
    "手机",
    "没电",
    "比赛",
    "赢了",
    "篮球",
    "跑步",
];
const EN_WORDS: &[&str] = &[
    "today",
    "the",
    "weather",
    "is",
    "really",
    "nice",
    "we",
    "went",
    "to",
    "a",
    "movie",
    "and",
    "it",
    "was",
    "great",
    "work",
    "so",
    "tired",
    "weekend",
    "plans",
    "trip",
    "friends",
    "recommend",
    "this",
    "coffee",
    "place",
    "news",
    "think",
    "interesting",
    "tomorrow",
    "exam",
    "music",
    "concert",
    "tickets",
    "cat",
    "cute",
    "rain",
    "subway",
    "crowded",
    "dinner",
    "cooked",
    "phone",
    "battery",
    "game",
    "won",
    "basketball",
    "running",
    "honestly",
    "finally",
    "again",
];

/// Short comments that thousands of real users write independently.
pub const GENERIC_COMMENTS: &[&str] = &[
    "哈哈哈",
    "哈哈哈哈哈",
    "支持",
    "转发微博",
    "好",
    "赞",
    "太好了",
    "加油",
    "路过",
    "沙发",
    "+1",
    "lol",
    "same",
    "nice",
    "❤️",
    "👍",
    "哈哈",
    "真的假的",
    "冲",
    "好看",
];

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡",
];
const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "洋", "艳", "勇", "军", "杰", "娟", "涛", "明",
    "超", "霞", "平", "刚",
];
const EN_NAMES: &[&str] = &[
    "alex", "sam", "jordan", "lee", "chris", "taylor", "morgan", "jamie", "casey", "riley", "kai",
    "yuki",
];
const HOBBIES: &[&str] = &[
    "爱吃鱼",
    "的日常",
    "不想上班",
    "_official",
    "在路上",
    "小可爱",
    "2000",
    "_cn",
    "睡不醒",
    "",
];

/// An organic sentence of `n` words in Chinese or English.
pub fn sentence(rng: &mut SimRng, min: usize, max: usize) -> String {
    let n = rng.gen_range(min..=max);
    if rng.gen_bool(0.7) {
        (0..n)
            .map(|_| *ZH_WORDS.choose(rng).unwrap_or(&""))
            .collect::<String>()
    } else {
        (0..n)
            .map(|_| *EN_WORDS.choose(rng).unwrap_or(&""))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A human-chosen nickname: varied shapes, no shared template.
pub fn human_name(rng: &mut SimRng) -> String {
    match rng.gen_range(0..4) {
        0 => format!(
            "{}{}{}",
            SURNAMES.choose(rng).unwrap_or(&""),
            GIVEN.choose(rng).unwrap_or(&""),
            GIVEN.choose(rng).unwrap_or(&"")
        ),
        1 => format!(
            "{}{}",
            EN_NAMES.choose(rng).unwrap_or(&""),
            rng.gen_range(1..2030)
        ),
        2 => format!(
            "{}{}",
            GIVEN.choose(rng).unwrap_or(&""),
            HOBBIES.choose(rng).unwrap_or(&"")
        ),
        _ => format!(
            "{}_{}",
            EN_NAMES.choose(rng).unwrap_or(&""),
            SURNAMES.choose(rng).unwrap_or(&"")
        ),
    }
}

/// A copy-campaign template: fixed text with swappable synonyms (`{a|b|c}`).
#[derive(Debug, Clone, Copy)]
pub struct Template {
    pub text: &'static str,
    pub lang: &'static str,
}

pub const TEMPLATES: &[Template] = &[
    Template { text: "{强烈|真心|极力}推荐{星耀|星耀牌}新款手机，{拍照|影像}效果{太好了|绝了|一流}，{性价比|价格}{超高|很香}，大家{赶紧|快去}入手！", lang: "zh" },
    Template { text: "{Vote|Support} Candidate Reyes on Sunday: the {only|one} leader who will {fix|rebuild} our economy and {protect|defend} our families. {Share|Spread} this!", lang: "en" },
    Template { text: "{某某|这个}明星{又|再次}{被|遭}黑了，{真相|事实}是{他|她}一直在做{公益|慈善}，{请|希望}大家{不要|别}{信谣|传谣}！", lang: "zh" },
    Template { text: "{Huge|Massive} {sale|discount} at ShopNow {today|this week}: {every|each} {phone|laptop} is {half price|50% off} with {free|fast} delivery to your door. {Click|Tap} the link {now|today} before {stock|it} runs out!", lang: "en" },
    Template { text: "{家人们|姐妹们}，{这款|这个}{面霜|精华}{真的|确实}{好用|绝绝子}，{用了|坚持用了}{一周|七天}皮肤{变好了|嫩了很多}，{链接|入口}在{评论区|主页}，{冲|快冲}！", lang: "zh" },
];

/// Expand a template choosing one alternative per `{...}` group.
pub fn expand(rng: &mut SimRng, t: &Template) -> String {
    let mut out = String::new();
    let mut rest = t.text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').map_or(rest.len(), |c| open + c);
        let alts: Vec<&str> = rest[open + 1..close].split('|').collect();
        out.push_str(alts.choose(rng).unwrap_or(&""));
        rest = rest.get(close + 1..).unwrap_or("");
    }
    out.push_str(rest);
    out
}

const EMOJI: &[&str] = &["🔥", "👍", "💯", "❤️", "😍", "!!", "🙏"];

/// Perturb campaign text the way copy farms do: emoji, punctuation width,
/// zero-width characters, truncation. Each applied with some probability.
pub fn perturb(rng: &mut SimRng, text: &str) -> String {
    let mut s: String = text.to_owned();
    if rng.gen_bool(0.5) {
        // Punctuation width: full-width <-> half-width.
        s = s
            .chars()
            .map(|c| match c {
                '，' => ',',
                '！' => '!',
                ',' => '，',
                '!' => '！',
                ':' => '：',
                '.' => '。',
                other => other,
            })
            .collect();
    }
    if rng.gen_bool(0.4) {
        // Zero-width spaces or joiners sprinkled between characters.
        let zw = if rng.gen_bool(0.5) {
            '\u{200b}'
        } else {
            '\u{200d}'
        };
        let every = rng.gen_range(3..9);
        s = s
            .chars()
            .enumerate()
            .flat_map(|(i, c)| {
                if i % every == every - 1 {
                    vec![c, zw]
                } else {
                    vec![c]
                }
            })
            .collect();
    }
    if rng.gen_bool(0.3) {
        // Truncation: keep 60 to 95% of the characters.
        let n = s.chars().count();
        let keep = (n as f64 * rng.gen_range(0.6..0.95)) as usize;
        s = s.chars().take(keep).collect();
    }
    for _ in 0..rng.gen_range(0..3) {
        s.push_str(EMOJI.choose(rng).unwrap_or(&""));
    }
    if rng.gen_bool(0.3) {
        s = format!("{} {}", EMOJI.choose(rng).unwrap_or(&""), s);
    }
    s
}

/// A heavier disguise: the clauses in another order (the first moved to the end), a few
/// words of filler in front, then everything [`perturb`] does.
pub fn perturb_heavy(rng: &mut SimRng, text: &str) -> String {
    let mut s = text.to_owned();
    if rng.gen_bool(0.5) {
        let cut = s
            .char_indices()
            .find(|&(_, c)| matches!(c, '，' | ',' | ':' | '：'))
            .map(|(i, c)| (i, i + c.len_utf8()));
        if let Some((i, j)) = cut {
            s = format!("{}，{}", s[j..].trim_start(), &s[..i]);
        }
    }
    if rng.gen_bool(0.5) {
        let filler = sentence(rng, 1, 2);
        s = format!("{filler} {s}");
    }
    perturb(rng, &s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn expand_picks_one_alternative_per_group() {
        let mut rng = SimRng::seed_from_u64(1);
        let t = Template {
            text: "a{b|c}d{e}",
            lang: "en",
        };
        for _ in 0..20 {
            let s = expand(&mut rng, &t);
            assert!(s == "abde" || s == "acde", "{s}");
        }
    }

    #[test]
    fn perturbations_keep_most_of_the_text() {
        let mut rng = SimRng::seed_from_u64(2);
        let base = expand(&mut rng, &TEMPLATES[0]);
        let changed = (0..50).filter(|_| perturb(&mut rng, &base) != base).count();
        assert!(
            changed > 25,
            "most copies differ from the template ({changed}/50)"
        );
    }
}
