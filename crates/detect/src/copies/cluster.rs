//! Clusters of near-duplicate texts: a union-find over cluster ids, each root holding what the
//! alert needs (members, targets, samples, timing).
//!
//! A cluster is made on a text's first link and merged on every later link. Members are the
//! accounts with a text that is mostly repeated material (see `copies`), in the order they
//! qualified; the detector reports the ones past `reported` to its finding.

use crate::flat::FlatMap;
use crate::name::Name;
use levee_model::Ts;
use serde::{Deserialize, Serialize};

pub const NONE: u32 = u32::MAX;

/// Samples kept per cluster, and the longest sample in characters.
pub const SAMPLES: usize = 3;
pub const SAMPLE_CHARS: usize = 140;

/// What a cluster knows.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Cluster {
    /// The earliest text: its account and time name the alert.
    pub seed: (Ts, Name),
    pub first: Ts,
    pub last: Ts,
    pub texts: u64,
    /// Qualified members, and the same keyed by account for de-duplication.
    pub members: Vec<Name>,
    pub member_keys: FlatMap<()>,
    /// Members already handed to the finding.
    pub reported: usize,
    /// Posts commented on (targets), the campaign's own posts, topics: each bounded.
    pub targets: Vec<Name>,
    pub posts: Vec<Name>,
    pub topics: Vec<Name>,
    pub samples: Vec<Box<str>>,
    /// Whole-text Hamming distances over links, for the mean.
    pub distance_sum: u64,
    pub links: u64,
    /// Texts that qualified their account, and the sum of their coverage in permille.
    pub copies: u64,
    pub coverage_permille: u64,
    pub finding: Option<u64>,
}

/// A bounded list that ignores repeats.
pub fn push_bounded(list: &mut Vec<Name>, name: &str, max: usize) {
    if list.len() < max && !list.iter().any(|n| n.as_str() == name) {
        list.push(Name::from(name));
    }
}

impl Cluster {
    pub fn new(ts: Ts, account: &str) -> Self {
        Cluster {
            seed: (ts, Name::from(account)),
            first: ts,
            last: ts,
            ..Cluster::default()
        }
    }

    /// Add a member; false if already one or at `max`.
    pub fn add_member(&mut self, key: u64, name: &str, max: usize) -> bool {
        if self.members.len() >= max || self.member_keys.contains_key(key) {
            return false;
        }
        self.member_keys.entry(key).or_insert(());
        self.members.push(Name::from(name));
        true
    }

    /// Take in `other` (merged into this root). Returns members refused by `max_members`.
    fn absorb(&mut self, other: Cluster, max_members: usize, max_list: usize) -> u64 {
        let mut refused = 0;
        if (other.seed.0, other.seed.1.as_str()) < (self.seed.0, self.seed.1.as_str()) {
            self.seed = other.seed;
        }
        self.first = self.first.min(other.first);
        self.last = self.last.max(other.last);
        self.texts += other.texts;
        // Members in the other cluster's qualifying order.
        for name in &other.members {
            let key = crate::detector::key64(name.as_str());
            if !self.add_member(key, name.as_str(), max_members)
                && !self.member_keys.contains_key(key)
            {
                refused += 1;
            }
        }
        for t in &other.targets {
            push_bounded(&mut self.targets, t.as_str(), max_list);
        }
        for p in &other.posts {
            push_bounded(&mut self.posts, p.as_str(), max_list);
        }
        for t in &other.topics {
            push_bounded(&mut self.topics, t.as_str(), max_list);
        }
        for s in other.samples {
            if self.samples.len() < SAMPLES {
                self.samples.push(s);
            }
        }
        self.distance_sum += other.distance_sum;
        self.links += other.links;
        self.copies += other.copies;
        self.coverage_permille += other.coverage_permille;
        self.finding = match (self.finding, other.finding) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        refused
    }

    /// Approximate heap bytes (members, lists, samples).
    pub fn bytes(&self) -> usize {
        std::mem::size_of::<Cluster>()
            + self.members.capacity() * std::mem::size_of::<Name>()
            + self.member_keys.bytes() as usize
            + (self.targets.capacity() + self.posts.capacity() + self.topics.capacity())
                * std::mem::size_of::<Name>()
            + self.samples.iter().map(|s| s.len() + 16).sum::<usize>()
    }
}

/// One slot of the union-find: a root holds its cluster.
#[derive(Debug, Serialize, Deserialize)]
struct Node {
    parent: u32,
    cluster: Option<Box<Cluster>>,
}

/// The union-find over cluster ids.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Clusters {
    nodes: Vec<Node>,
    pub cap_hits: u64,
}

impl Clusters {
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn make(&mut self, c: Cluster) -> u32 {
        let id = self.nodes.len() as u32;
        self.nodes.push(Node {
            parent: id,
            cluster: Some(Box::new(c)),
        });
        id
    }

    pub fn find(&mut self, mut x: u32) -> u32 {
        while self.nodes[x as usize].parent != x {
            let grand = self.nodes[self.nodes[x as usize].parent as usize].parent;
            self.nodes[x as usize].parent = grand;
            x = grand;
        }
        x
    }

    pub fn get_mut(&mut self, root: u32) -> &mut Cluster {
        debug_assert_eq!(self.nodes[root as usize].parent, root, "a root");
        self.nodes[root as usize]
            .cluster
            .get_or_insert_with(Box::default)
    }

    /// Merge the clusters of roots `a` and `b`; the one with more members stays root (the
    /// older on a tie). Returns the root.
    pub fn union(&mut self, a: u32, b: u32, max_members: usize, max_list: usize) -> u32 {
        let (a, b) = (self.find(a), self.find(b));
        if a == b {
            return a;
        }
        let size = |s: &Self, x: u32| {
            s.nodes[x as usize]
                .cluster
                .as_ref()
                .map_or(0, |c| c.members.len())
        };
        let (keep, gone) = if (size(self, b), a) > (size(self, a), b) {
            (b, a)
        } else {
            (a, b)
        };
        let taken = self.nodes[gone as usize].cluster.take();
        self.nodes[gone as usize].parent = keep;
        if let Some(c) = taken {
            let refused = self.get_mut(keep).absorb(*c, max_members, max_list);
            self.cap_hits += refused;
        }
        keep
    }

    /// Keep only the clusters `live` ids lead to; return the new id of each old id (or
    /// [`NONE`]). Ids are renumbered in the order `live` first names their roots.
    pub fn compact(&mut self, live: impl IntoIterator<Item = u32>) -> Vec<u32> {
        let mut map = vec![NONE; self.nodes.len()];
        let mut roots = Vec::new();
        for id in live {
            let r = self.find(id);
            if map[r as usize] == NONE {
                map[r as usize] = roots.len() as u32;
                roots.push(r);
            }
        }
        let mut nodes = Vec::with_capacity(roots.len());
        for (new, &r) in roots.iter().enumerate() {
            nodes.push(Node {
                parent: new as u32,
                cluster: self.nodes[r as usize].cluster.take(),
            });
        }
        let old: Vec<u32> = (0..self.nodes.len() as u32).collect();
        let ids = old
            .into_iter()
            .map(|x| {
                let r = self.find(x);
                map[r as usize]
            })
            .collect();
        self.nodes = nodes;
        ids
    }

    /// Approximate bytes of every slot and live cluster.
    pub fn bytes(&self) -> u64 {
        let slots = self.nodes.capacity() * std::mem::size_of::<Node>();
        let clusters: usize = self
            .nodes
            .iter()
            .filter_map(|n| n.cluster.as_ref())
            .map(|c| c.bytes())
            .sum();
        (slots + clusters) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn union_keeps_the_larger_and_compact_renumbers_live_roots() {
        let mut cs = Clusters::default();
        let ids: Vec<u32> = (0..4)
            .map(|i| cs.make(Cluster::new(i, &format!("a{i}"))))
            .collect();
        cs.get_mut(ids[1]).add_member(1, "a1", 10);
        let r = cs.union(ids[0], ids[1], 10, 10);
        assert_eq!(r, ids[1], "the one with members stays root");
        assert_eq!(
            cs.get_mut(r).seed.1.as_str(),
            "a0",
            "the earliest text names it"
        );
        let r2 = cs.union(ids[2], ids[0], 10, 10);
        assert_eq!(r2, ids[1]);
        let map = cs.compact([ids[3], ids[2]]);
        assert_eq!(map, vec![1, 1, 1, 0]);
        assert_eq!(cs.len(), 2);
        assert_eq!(cs.get_mut(1).members.len(), 1);
    }
}
