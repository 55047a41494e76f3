//! `copies`: copy campaigns, many accounts posting or commenting near-identical text.
//!
//! Every post and text-bearing engagement is normalised and cut into clauses ([`text`]);
//! each clause's features are weighted by rarity and fingerprinted with a 64-bit SimHash
//! ([`fingerprint`]). Clauses that carry enough information go into a multi-index over a
//! sliding event-time window ([`index`]). A new text links to every earlier text of another
//! account that has a clause within `max_hamming` bits of one of its own when the clauses
//! they share carry enough of either text, or to a cluster whose texts together share
//! enough of it; links merge clusters ([`cluster`], [`link`]). A text *qualifies* its
//! account as a member once most of its features (`min_coverage`) lie in clauses that
//! other accounts repeated: a template with synonyms swapped or the tail cut still
//! qualifies, while a person quoting a headline in their own words does not (their words
//! are theirs alone). A cluster with `min_accounts` members is a campaign: one finding,
//! re-emitted on material change.
//!
//! See `docs/detectors/copies.md`.

mod chunk;
mod cluster;
mod config;
mod fingerprint;
mod index;
mod link;
mod probe;
mod text;

use crate::detector::{key64, Budget, Detector, DetectorKind, DetectorStats, Every, MapStats};
use crate::findings::{Figure, Findings};
use crate::flat::Halves;
use crate::name::Name;
use crate::profile::Profiles;
use crate::ring::Ring;
use chunk::{
    linked, loose_masks, masked_feats, masked_info, nats, shared_chunks, template_features,
    Chunker, MAX_CHUNKS,
};
use cluster::{push_bounded, Clusters, NONE, SAMPLES, SAMPLE_CHARS};
pub use config::CopiesConfig;
use fingerprint::{Rarity, SimHash};
use index::Index;
use levee_model::{stable_id, Alert, AlertKind, Body, Event, Ts};
pub use probe::NearDuplicates;
use serde::{Deserialize, Serialize};
use text::Strip;

/// A text's chunks are bits of a `u16` (`TextRec::repeated`, link masks).
const _: () = assert!(MAX_CHUNKS <= 16);
/// Matches taken per clause lookup (newest first).
const MAX_MATCHES: usize = 64;
/// Text sequence numbers in index entries: 28 bits, four for the chunk.
const SEQ_MASK: u32 = (1 << 28) - 1;
/// Targets, posts and topics listed per campaign.
const MAX_LIST: usize = 20;

/// The longest prefix of `s` of at most 255 bytes (ids are at most 128) that ends on a
/// char boundary.
fn short(s: &str) -> usize {
    let mut n = s.len().min(usize::from(u8::MAX));
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    n
}

/// One indexed text: 44 bytes, its names in the name ring.
#[derive(Debug, Default, Serialize, Deserialize)]
struct TextRec {
    ts: Halves,
    /// [`key64`] of its account.
    account: Halves,
    /// The whole text's fingerprint.
    fp: Halves,
    /// Its account's name and then its target's (the post commented on, or the text's
    /// own post): `name_len + target_len` bytes from absolute offset `names_at` (its low 32
    /// bits) of the name ring.
    names_at: u32,
    name_len: u8,
    target_len: u8,
    comment: bool,
    /// Its account was counted as a member of its cluster.
    qualified: bool,
    /// Its cluster id (any node; `find` gives the root), or [`NONE`].
    cluster: u32,
    /// Its clauses: `n_clauses` from absolute index `first_clause` (its low 32 bits) of the
    /// clause ring.
    first_clause: u32,
    n_clauses: u8,
    /// Bit `i`: clause `i` was repeated by another account.
    repeated: u16,
}

const _: () = assert!(std::mem::size_of::<TextRec>() == 44);

impl TextRec {
    fn ts(&self) -> Ts {
        self.ts.get() as Ts
    }
}

/// One chunk of a held text: 12 bytes (the fingerprint in halves, so not padded to 16).
#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize)]
struct ClauseRec {
    fp: Halves,
    /// Distinct features (coverage counts them).
    feats: u16,
    /// Information in whole nats.
    info: u16,
}

impl ClauseRec {
    fn fp(&self) -> u64 {
        self.fp.get()
    }
}

const _: () = assert!(std::mem::size_of::<ClauseRec>() == 12);

/// Per-event buffers, kept to avoid allocating.
#[derive(Debug, Default)]
pub(super) struct Scratch {
    /// The chunks' fingerprints, in text order.
    pub(super) fps: Vec<u64>,
    /// Index hits: `(earlier text's offset, its chunk, our chunk)`.
    pub(super) hits: Vec<(usize, u8, u8)>,
    pub(super) links: Vec<usize>,
    pub(super) weak: Vec<(usize, u16, u16)>,
    /// Weak partners by their cluster: `(root, index into weak)`.
    pub(super) by_root: Vec<(u32, usize)>,
}

/// See the module docs.
#[derive(Debug, Serialize, Deserialize)]
pub struct Copies {
    cfg: CopiesConfig,
    rarity: Rarity,
    texts: Ring<TextRec>,
    /// Sequence number of `texts[0]`.
    base: u64,
    clauses: Ring<ClauseRec>,
    /// Absolute index of `clauses[0]`.
    clause_base: u64,
    /// The held texts' account and target names, in text order (ids are at most 128 bytes).
    names: Ring<u8>,
    /// Absolute offset of `names[0]`.
    names_base: u64,
    /// Rebuilt from `texts` and `clauses` after a restore.
    #[serde(skip)]
    index: Index,
    clusters: Clusters,
    findings: Findings,
    sweep: Every,
    /// Cluster bytes as of the last sweep.
    cluster_bytes: u64,
    cap_hits: u64,
    budget: Budget,
    #[serde(skip)]
    chunker: Chunker,
    #[serde(skip)]
    scratch: Scratch,
}

impl DetectorKind for Copies {
    const NAME: &'static str = "copies";
    const VERSION: u32 = 1;
    const ALERT_KIND: AlertKind = AlertKind::CopyCampaign;
    type Config = CopiesConfig;

    fn new(cfg: CopiesConfig) -> Self {
        Copies {
            rarity: Rarity::new(cfg.sketch_width_bits, cfg.sketch_half_life_texts),
            texts: Ring::new(),
            base: 0,
            clauses: Ring::new(),
            clause_base: 0,
            names: Ring::new(),
            names_base: 0,
            index: Index::new(cfg.max_hamming, cfg.max_bucket),
            clusters: Clusters::default(),
            findings: Findings::new(cfg.findings.clone()),
            sweep: Every::new((cfg.window_ms / 2).max(1)),
            cluster_bytes: 0,
            cap_hits: 0,
            budget: Budget::new(cfg.max_state_bytes),
            chunker: Chunker::default(),
            scratch: Scratch::default(),
            cfg,
        }
    }
}

/// What the config strips before features are taken.
fn strip(cfg: &CopiesConfig) -> Strip {
    Strip {
        urls: cfg.strip_urls,
        mentions: cfg.strip_mentions,
        hashtags: cfg.strip_hashtags,
    }
}

/// The longest prefix of `s` within `max` bytes, cut at a character boundary.
fn clip(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Whether an index entry's text is still held: `alive(at)` for `base` and `len`.
fn alive(base: u64, len: usize) -> impl Fn(u32) -> bool {
    let base = base as u32 & SEQ_MASK;
    move |at| ((at >> 4).wrapping_sub(base) & SEQ_MASK) < len as u32
}

/// The ring offset of an index entry's text.
fn offset(base: u64, at: u32) -> usize {
    ((at >> 4).wrapping_sub(base as u32 & SEQ_MASK) & SEQ_MASK) as usize
}

impl Copies {
    fn strip(&self) -> Strip {
        strip(&self.cfg)
    }

    fn on_text(
        &mut self,
        ev: &Event<'_>,
        text: &str,
        target: &str,
        comment: bool,
        topic: Option<&str>,
    ) {
        let text = clip(text, self.cfg.max_text_bytes);
        let weigh = self.rarity.texts() >= self.cfg.warmup_texts;
        let strip = self.strip();
        let min_info = self.cfg.min_clause_info;
        let info = self
            .chunker
            .read(text, strip, &mut self.rarity, weigh, min_info);
        if self.chunker.evidence.is_empty() || info < self.cfg.min_text_info {
            return;
        }
        if !self.budget.admits() {
            return;
        }
        if self.texts.len() >= self.cfg.max_texts {
            self.pop_oldest();
            self.cap_hits += 1;
        }
        if !self.index.is_built() {
            self.rebuild_index();
        }
        let evidence = std::mem::take(&mut self.chunker.evidence);
        let account = ev.account.as_ref();
        let key = key64(account);
        let seq = self.base + self.texts.len() as u64;
        let mut whole = SimHash::default();
        let (mut repeated, mut s) = (0u16, std::mem::take(&mut self.scratch));
        s.hits.clear();
        s.links.clear();
        s.weak.clear();
        let live = alive(self.base, self.texts.len());
        s.fps.clear();
        for (i, c) in evidence.iter().enumerate() {
            whole.merge(&c.sums);
            let fp = c.sums.fingerprint();
            s.fps.push(fp);
            let (hits, base) = (&mut s.hits, self.base);
            let full = |at: u32| {
                let chunk = self.chunk(offset(base, at), (at & 15) as usize);
                debug_assert!(chunk.is_some(), "a live entry's chunk is held");
                chunk.map_or(0, |(fp, _)| fp)
            };
            self.index.lookup(fp, MAX_MATCHES, &live, full, |at, _| {
                hits.push((offset(base, at), (at & 15) as u8, i as u8));
            });
        }
        // Per earlier text of another account: which of our chunks matched which of its.
        s.hits.sort_unstable_by_key(|&(off, _, mine)| (off, mine));
        let total_a: u64 = evidence.iter().map(|c| u64::from(c.feats)).sum();
        let min_link = nats(self.cfg.min_link_info);
        let loose = self.cfg.loose_hamming;
        // The first chunk without its first words, computed when first needed.
        let mut lead: Option<([u64; 3], usize)> = None;
        for (off, mine, theirs) in shared_chunks(&s.hits) {
            if self.texts[off].account.get() == key {
                continue;
            }
            let (mut mine, mut theirs) = (mine, theirs);
            if mine & 1 == 0 {
                // Words put in front of the first clause: it may be theirs without them.
                let (variants, n) = *lead.get_or_insert_with(|| self.chunker.lead_variants());
                let bound = loose.max(self.cfg.max_hamming);
                let (_, mb) = loose_masks(&variants[..n], self.chunk_fps(off).as_slice(), bound);
                if mb != 0 {
                    mine |= 1;
                    theirs |= mb;
                }
            }
            let share = |mine: u16, theirs: u16| {
                let (shared_b, total_b) = self.feats(off, theirs);
                let shared_a = masked_feats(&evidence, mine);
                masked_info(&evidence, mine) >= min_link
                    && linked(
                        (shared_a, total_a),
                        (shared_b, total_b),
                        self.cfg.link_share,
                    )
            };
            let mut is_link = share(mine, theirs);
            if !is_link && loose > 0 {
                // Texts that share a chunk: their other chunks may be the template's behind
                // filler words, reordered or cut, a few bits off.
                let (ma, mb) = loose_masks(&s.fps, self.chunk_fps(off).as_slice(), loose);
                if (mine | ma, theirs | mb) != (mine, theirs) {
                    mine |= ma;
                    theirs |= mb;
                    is_link = share(mine, theirs);
                }
            }
            let tail = self.cfg.tail_hamming;
            if !is_link && tail > 0 && mine != 0 {
                // A copy cut short: our last chunk, unmatched, may be the start of their
                // chunk after the last one we share, a longer one.
                let last = evidence.len() - 1;
                let next = 16 - theirs.leading_zeros() as usize;
                if let Some((fp, feats)) = self.chunk(off, next) {
                    if mine & (1 << last) == 0
                        && evidence[last].feats < feats
                        && (s.fps[last] ^ fp).count_ones() <= tail
                    {
                        mine |= 1 << last;
                        theirs |= 1 << next;
                        is_link = share(mine, theirs);
                    }
                }
            }
            if !is_link {
                s.weak.push((off, mine, theirs));
                continue;
            }
            self.texts[off].repeated |= theirs;
            repeated |= mine;
            s.links.push(off);
        }
        repeated |= self.cluster_links(&evidence, total_a, &mut s);
        // File the text (alive with it: its own chunks filed before stay).
        let first_clause = (self.clause_base + self.clauses.len() as u64) as u32;
        let filed = alive(self.base, self.texts.len() + 1);
        for (i, (c, &fp)) in evidence.iter().zip(&s.fps).enumerate() {
            self.clauses.push_back(ClauseRec {
                fp: Halves::new(fp),
                feats: c.feats,
                info: c.info,
            });
            self.cap_hits +=
                self.index
                    .insert(fp, ((seq as u32 & SEQ_MASK) << 4) | i as u32, &filed);
        }
        let names_at = (self.names_base + self.names.len() as u64) as u32;
        let (name_len, target_len) = (short(account), short(target));
        for b in account.as_bytes()[..name_len]
            .iter()
            .chain(&target.as_bytes()[..target_len])
        {
            self.names.push_back(*b);
        }
        self.texts.push_back(TextRec {
            ts: Halves::new(ev.ts as u64),
            account: Halves::new(key),
            names_at,
            name_len: name_len as u8,
            target_len: target_len as u8,
            comment,
            fp: Halves::new(whole.fingerprint()),
            cluster: NONE,
            first_clause,
            n_clauses: evidence.len() as u8,
            repeated,
            qualified: false,
        });
        let a = self.texts.len() - 1;
        if !s.links.is_empty() || !s.weak.is_empty() {
            let roots = self.link(a, &s.links, &s.weak);
            if self.texts[a].cluster != NONE {
                let root = self.clusters.find(self.texts[a].cluster);
                let qualified = self.texts[a].qualified;
                let c = self.clusters.get_mut(root);
                if qualified && c.samples.len() < SAMPLES {
                    c.samples
                        .push(text.chars().take(SAMPLE_CHARS).collect::<String>().into());
                }
                if let Some(t) = topic {
                    push_bounded(&mut c.topics, t, MAX_LIST);
                }
            }
            for root in roots {
                let root = self.clusters.find(root);
                self.report(root, ev.ts);
            }
        }
        self.chunker.evidence = evidence;
        self.scratch = s;
    }

    /// Open or update the finding of cluster `root` once it has `min_accounts` members.
    fn report(&mut self, root: u32, now: Ts) {
        let strip = self.strip();
        let c = self.clusters.get_mut(root);
        if c.members.len() < self.cfg.min_accounts && c.finding.is_none() {
            return;
        }
        let fresh = c.finding.is_none_or(|k| self.findings.get(k).is_none());
        if fresh {
            let id = stable_id(
                AlertKind::CopyCampaign,
                &[c.seed.1.as_str(), &c.seed.0.to_string()],
            );
            c.finding = Some(self.findings.open(id, c.first, now));
            c.reported = 0;
        }
        let Some(mut f) = c.finding.and_then(|k| self.findings.update(k, now)) else {
            return;
        };
        for m in &c.members[c.reported..] {
            f.add_member(m.as_str());
        }
        c.reported = c.members.len();
        for t in &c.targets {
            f.add_target(t.as_str());
        }
        if let Some(t) = c.topics.first() {
            f.set_topic(t.as_str());
        }
        f.span(c.first, c.last);
        let n = f.finding().members().len();
        let mean = c.distance_sum as f64 / c.links.max(1) as f64;
        let coverage = c.coverage_permille as f64 / 10.0 / c.copies.max(1) as f64;
        let minutes = (c.last - c.first) / 60_000;
        f.score(n as f64 / (n as f64 + self.cfg.min_accounts as f64 / 2.0));
        let sample = c.samples.first().map(|s| s.as_ref()).unwrap_or("");
        f.summary(format!(
            "{n} accounts posted {} copies of one template within {minutes} minutes; on average {coverage:.0}% of each copy's wording recurs in other accounts' texts, e.g. \"{sample}\"",
            c.copies
        ));
        let names = |v: &[Name]| Figure::Names(v.iter().map(|n| n.as_str().into()).collect());
        f.figure("accounts", Figure::Int(n as i64));
        f.figure("texts", Figure::Int(c.texts as i64));
        f.figure("copies", Figure::Int(c.copies as i64));
        f.figure(
            "mean_coverage_pct",
            Figure::Real((coverage * 10.0).round() / 10.0),
        );
        f.figure("spread_ms", Figure::Int(c.last - c.first));
        f.figure("mean_hamming", Figure::Real((mean * 10.0).round() / 10.0));
        f.figure("max_hamming", Figure::Int(i64::from(self.cfg.max_hamming)));
        f.figure("samples", Figure::Names(c.samples.clone()));
        f.figure("posts", names(&c.posts));
        f.figure("topics", names(&c.topics));
        if fresh {
            let features = template_features(&self.rarity, strip, sample);
            f.figure("template_features", Figure::Names(features));
        }
    }

    fn pop_oldest(&mut self) {
        if let Some(t) = self.texts.pop_front() {
            for _ in 0..usize::from(t.name_len) + usize::from(t.target_len) {
                self.names.pop_front();
                self.names_base += 1;
            }
            self.base += 1;
            for _ in 0..t.n_clauses {
                self.clauses.pop_front();
                self.clause_base += 1;
            }
        }
    }

    /// After a restore: file every held clause again.
    fn rebuild_index(&mut self) {
        self.index = Index::new(self.cfg.max_hamming, self.cfg.max_bucket);
        for off in 0..self.texts.len() {
            let seq = (self.base + off as u64) as u32 & SEQ_MASK;
            let fps = self.chunk_fps(off);
            for (i, &fp) in fps.as_slice().iter().enumerate() {
                self.cap_hits += self.index.insert(fp, (seq << 4) | i as u32, |_| true);
            }
        }
    }

    /// Drop texts past the window; on the sweep, expired index entries and dead clusters.
    fn evict(&mut self, watermark: Ts) {
        let horizon = watermark.saturating_sub(self.cfg.window_ms);
        while self.texts.front().is_some_and(|t| t.ts() < horizon) {
            self.pop_oldest();
        }
        if !self.sweep.due(watermark) {
            return;
        }
        if !self.index.is_built() {
            self.rebuild_index();
        }
        self.index.sweep(alive(self.base, self.texts.len()));
        let live: Vec<u32> = self
            .texts
            .iter()
            .map(|t| t.cluster)
            .filter(|&c| c != NONE)
            .collect();
        let ids = self.clusters.compact(live);
        for t in self.texts.iter_mut() {
            if t.cluster != NONE {
                t.cluster = ids[t.cluster as usize];
            }
        }
        self.cluster_bytes = self.clusters.bytes();
    }
}

impl Detector for Copies {
    fn on_event(&mut self, ev: &Event<'_>, _: &Profiles, _out: &mut Vec<Alert>) {
        match &ev.body {
            Body::Post {
                post, text, topics, ..
            } => {
                self.on_text(ev, text, post, false, topics.first().map(|t| t.as_ref()));
            }
            Body::Engage {
                post,
                text: Some(text),
                topics,
                ..
            } => {
                self.on_text(ev, text, post, true, topics.first().map(|t| t.as_ref()));
            }
            _ => {}
        }
    }

    fn on_tick(&mut self, watermark: Ts, out: &mut Vec<Alert>) {
        self.findings.tick::<Self>(watermark, out);
        self.evict(watermark);
        let bytes = self.stats().bytes();
        self.budget.check(bytes);
    }

    fn on_flush(&mut self, out: &mut Vec<Alert>) {
        self.findings.flush::<Self>(out);
    }

    fn stats(&self) -> DetectorStats {
        let [findings, members] = self.findings.map_stats();
        let text_bytes =
            self.texts.capacity() * std::mem::size_of::<TextRec>() + self.names.capacity();
        DetectorStats {
            maps: vec![
                MapStats {
                    map: "texts",
                    entries: self.texts.len() as u64,
                    bytes: text_bytes as u64,
                },
                MapStats {
                    map: "clauses",
                    entries: self.clauses.len() as u64,
                    bytes: (self.clauses.capacity() * std::mem::size_of::<ClauseRec>()) as u64,
                },
                MapStats {
                    map: "index",
                    entries: self.index.entries() as u64,
                    bytes: self.index.approx_bytes(),
                },
                MapStats {
                    map: "clusters",
                    entries: self.clusters.len() as u64,
                    bytes: self.cluster_bytes,
                },
                MapStats {
                    map: "sketch",
                    entries: self.rarity.texts(),
                    bytes: self.rarity.bytes(),
                },
                findings,
                members,
            ],
            cap_hits: self.cap_hits + self.clusters.cap_hits + self.findings.cap_hits(),
            budget: self.budget,
        }
    }
}
