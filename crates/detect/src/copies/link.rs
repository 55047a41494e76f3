//! Linking a new text into its campaign's cluster and qualifying copies: which chunks other
//! accounts repeated (exactly, or within `loose_hamming` bits), and the coverage that makes a
//! text a copy and its account a member.

use super::chunk::{linked, loose_masks, masked_feats, masked_info, nats, Chunk, MAX_CHUNKS};
use super::cluster::{push_bounded, Cluster, NONE};
use super::{ClauseRec, Copies, Scratch, MAX_LIST};

/// A text's chunk fingerprints, without an allocation.
#[derive(Default)]
pub(super) struct ChunkFps {
    fps: [u64; MAX_CHUNKS],
    n: u8,
}

impl ChunkFps {
    pub(super) fn as_slice(&self) -> &[u64] {
        &self.fps[..usize::from(self.n)]
    }
}

impl Copies {
    /// Merge text `a` with the texts at `links` into one cluster; mark the chunks it shares
    /// with `weak` texts as repeated on both sides; join copies that share a chunk into one
    /// cluster; qualify the accounts of the copies that are in a cluster. Returns the
    /// clusters to report (their roots), `a`'s first if it has one.
    pub(super) fn link(
        &mut self,
        a: usize,
        links: &[usize],
        weak: &[(usize, u16, u16)],
    ) -> Vec<u32> {
        let (max_members, mut root) = (self.cfg.findings.max_members, NONE);
        for &b in links {
            let cb = self.cluster_of(b);
            root = if root == NONE {
                cb
            } else {
                self.clusters.union(root, cb, max_members, MAX_LIST)
            };
            let d = (self.texts[a].fp.get() ^ self.texts[b].fp.get()).count_ones();
            let c = self.clusters.get_mut(root);
            c.distance_sum += u64::from(d);
            c.links += 1;
        }
        // A chunk another account posted is repeated, whatever the clusters: a template's
        // synonyms leave two copies short of a link, and each of its clauses still recurs.
        // Outside `a`'s cluster only chunks too informative to recur by chance count.
        let rich_a = self.rich(a);
        for &(b, mine, theirs) in weak {
            let cb = self.texts[b].cluster;
            let inside = root != NONE && cb != NONE && self.clusters.find(cb) == root;
            let (mine, theirs) = if inside {
                (mine, theirs)
            } else {
                (mine & rich_a, theirs & self.rich(b))
            };
            self.texts[b].repeated |= theirs;
            self.texts[a].repeated |= mine;
        }
        for &b in links {
            self.loose_repeats(a, b);
        }
        // Two copies of one template that share a chunk are one operation, even when the
        // synonyms they drew leave them short of a strong link.
        if self.is_copy(a) {
            for &(b, _, _) in weak {
                if self.is_copy(b) {
                    let cb = self.cluster_of(b);
                    root = if root == NONE {
                        cb
                    } else {
                        self.clusters.union(root, cb, max_members, MAX_LIST)
                    };
                }
            }
        }
        if root != NONE {
            self.texts[a].cluster = root;
            let ts = self.texts[a].ts();
            let c = self.clusters.get_mut(root);
            c.texts += 1;
            c.first = c.first.min(ts);
            c.last = c.last.max(ts);
        }
        let mut roots = Vec::new();
        let touched = std::iter::once(a)
            .chain(links.iter().copied())
            .chain(weak.iter().map(|w| w.0));
        for t in touched {
            if self.texts[t].cluster == NONE || self.texts[t].qualified {
                continue;
            }
            let coverage = self.coverage(t);
            if coverage < self.cfg.min_coverage {
                continue;
            }
            let r = self.clusters.find(self.texts[t].cluster);
            let (name, target) = self.text_names(t);
            let rec = &mut self.texts[t];
            rec.qualified = true;
            let c = self.clusters.get_mut(r);
            c.copies += 1;
            c.coverage_permille += (coverage * 1000.0).round() as u64;
            let account = rec.account.get();
            if !c.add_member(account, &name, max_members) && !c.member_keys.contains_key(account) {
                self.cap_hits += 1;
            }
            let list = if rec.comment {
                &mut c.targets
            } else {
                &mut c.posts
            };
            push_bounded(list, &target, MAX_LIST);
            if r != root && !roots.contains(&r) {
                roots.push(r);
            }
        }
        if root != NONE {
            roots.insert(0, root);
        }
        roots
    }

    /// A new text (its `evidence`, `total` features) linked to a cluster as a whole: a
    /// template's synonyms can leave each copy short of a link with any one other copy
    /// while each of its chunks recurs in some text of one cluster. When the chunks it
    /// shares with two or more texts of one cluster hold `link_share` of its features and
    /// `min_link_info`, those texts become links (moved from `s.weak` to `s.links`, the
    /// shared chunks repeated on both sides). Returns the new text's chunks so repeated.
    pub(super) fn cluster_links(&mut self, evidence: &[Chunk], total: u64, s: &mut Scratch) -> u16 {
        s.by_root.clear();
        for (i, &(b, _, _)) in s.weak.iter().enumerate() {
            let cb = self.texts[b].cluster;
            if cb != NONE {
                s.by_root.push((self.clusters.find(cb), i));
            }
        }
        if s.by_root.len() < 2 {
            return 0;
        }
        s.by_root.sort_unstable();
        let min_link = nats(self.cfg.min_link_info);
        let mut repeated = 0u16;
        for group in s.by_root.chunk_by(|x, y| x.0 == y.0) {
            let mine = group.iter().fold(0u16, |m, &(_, i)| m | s.weak[i].1);
            let shared = (masked_feats(evidence, mine), total);
            if group.len() < 2
                || masked_info(evidence, mine) < min_link
                || !linked(shared, shared, self.cfg.link_share)
            {
                continue;
            }
            for &(_, i) in group {
                let (b, mine, theirs) = s.weak[i];
                self.texts[b].repeated |= theirs;
                repeated |= mine;
                s.links.push(b);
                s.weak[i].0 = usize::MAX;
            }
        }
        s.weak.retain(|w| w.0 != usize::MAX);
        repeated
    }

    /// Text `t`'s cluster (made for it, of one text, if it has none).
    fn cluster_of(&mut self, t: usize) -> u32 {
        if self.texts[t].cluster == NONE {
            let c = Cluster::new(self.texts[t].ts(), &self.text_names(t).0);
            self.texts[t].cluster = self.clusters.make(Cluster { texts: 1, ..c });
        }
        self.clusters.find(self.texts[t].cluster)
    }

    /// Text `t`'s chunks that carry enough information to be repeated by chance rarely.
    fn rich(&self, t: usize) -> u16 {
        let min = super::chunk::nats(self.cfg.min_repeat_info);
        self.clause_recs(t)
            .enumerate()
            .filter(|(_, c)| u32::from(c.info) >= min)
            .fold(0, |mask, (i, _)| mask | 1 << i)
    }

    /// Whether most of text `t`'s wording was repeated by other accounts.
    fn is_copy(&self, t: usize) -> bool {
        self.coverage(t) >= self.cfg.min_coverage
    }

    /// Mark as repeated the chunks of linked texts `a` and `b` (another account's, one
    /// operation) within `loose_hamming` bits of a chunk of the other: a clause behind
    /// filler words or cut short is still the template's.
    pub(super) fn loose_repeats(&mut self, a: usize, b: usize) {
        let bound = self.cfg.loose_hamming;
        if bound == 0 {
            return;
        }
        let (fa, fb) = (self.chunk_fps(a), self.chunk_fps(b));
        let (ma, mb) = loose_masks(fa.as_slice(), fb.as_slice(), bound);
        self.texts[a].repeated |= ma;
        self.texts[b].repeated |= mb;
    }

    /// Text `t`'s account and target names (from the name ring; for clusters, rarely).
    fn text_names(&self, t: usize) -> (String, String) {
        let rec = &self.texts[t];
        let start = rec.names_at.wrapping_sub(self.names_base as u32) as usize;
        let (n, m) = (usize::from(rec.name_len), usize::from(rec.target_len));
        let bytes = |from: usize, len: usize| -> String {
            let v: Vec<u8> = (from..from + len)
                .filter_map(|i| self.names.get(i).copied())
                .collect();
            debug_assert!(
                std::str::from_utf8(&v).is_ok(),
                "names are cut at char boundaries"
            );
            String::from_utf8_lossy(&v).into_owned()
        };
        (bytes(start, n), bytes(start + n, m))
    }

    /// Text `t`'s chunk records, in text order.
    fn clause_recs(&self, t: usize) -> impl Iterator<Item = &ClauseRec> {
        let rec = &self.texts[t];
        let start = rec.first_clause.wrapping_sub(self.clause_base as u32) as usize;
        (start..start + usize::from(rec.n_clauses)).map(|i| &self.clauses[i])
    }

    /// Chunk `i` of text `t`: its fingerprint and features, if it has one.
    pub(super) fn chunk(&self, t: usize, i: usize) -> Option<(u64, u16)> {
        self.clause_recs(t).nth(i).map(|c| (c.fp(), c.feats))
    }

    /// The chunk fingerprints of text `t`.
    pub(super) fn chunk_fps(&self, t: usize) -> ChunkFps {
        let mut out = ChunkFps::default();
        for (i, c) in self.clause_recs(t).enumerate() {
            out.fps[i] = c.fp();
        }
        out.n = self.texts[t].n_clauses;
        out
    }

    /// Features of text `t`'s chunks in `mask`, and of all its chunks.
    pub(super) fn feats(&self, t: usize, mask: u16) -> (u64, u64) {
        let (mut all, mut some) = (0u64, 0u64);
        for (i, c) in self.clause_recs(t).enumerate() {
            all += u64::from(c.feats);
            if mask & (1 << i) != 0 {
                some += u64::from(c.feats);
            }
        }
        (some, all)
    }

    /// The share of text `t`'s evidence features in clauses another account repeated.
    pub(super) fn coverage(&self, t: usize) -> f64 {
        let (rep, all) = self.feats(t, self.texts[t].repeated);
        rep as f64 / all.max(1) as f64
    }
}
