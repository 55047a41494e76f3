//! The coordination graph's group extraction: k-core peeling, then dense components.

use rustc_hash::{FxHashMap, FxHashSet};

/// A dense group found in the edge set: members (sorted ids) and its internal edges.
#[derive(Debug, Clone, PartialEq)]
pub struct DenseGroup {
    pub members: Vec<u32>,
    pub edges: Vec<(u32, u32)>,
}

impl DenseGroup {
    pub fn density(&self) -> f64 {
        let n = self.members.len() as f64;
        if n < 2.0 {
            return 0.0;
        }
        self.edges.len() as f64 / (n * (n - 1.0) / 2.0)
    }
}

/// Groups of the graph `edges`: the `k`-core (every member keeps at least `k`
/// neighbours inside it), split into connected components, keeping those with at
/// least `min_size` members and at least `min_density` of their possible edges.
///
/// Peeling removes the accounts a camouflage like or a single coincidence ties to
/// a farm: they have one or two edges into it, never `k`. Deterministic: ids are
/// visited in ascending order.
pub fn dense_groups(
    edges: &[(u32, u32)],
    k: usize,
    min_size: usize,
    min_density: f64,
) -> Vec<DenseGroup> {
    let mut adj: FxHashMap<u32, Vec<u32>> = FxHashMap::default();
    for &(a, b) in edges {
        debug_assert!(a != b, "no self-loops");
        adj.entry(a).or_default().push(b);
        adj.entry(b).or_default().push(a);
    }
    let mut nodes: Vec<u32> = adj.keys().copied().collect();
    nodes.sort_unstable();
    // Peel: repeatedly drop nodes with fewer than k live neighbours.
    let mut degree: FxHashMap<u32, usize> = adj.iter().map(|(n, v)| (*n, v.len())).collect();
    let mut removed: FxHashSet<u32> = FxHashSet::default();
    let mut stack: Vec<u32> = nodes.iter().copied().filter(|n| degree[n] < k).collect();
    while let Some(n) = stack.pop() {
        if !removed.insert(n) {
            continue;
        }
        for m in &adj[&n] {
            if removed.contains(m) {
                continue;
            }
            let d = degree.entry(*m).or_default();
            *d -= 1;
            if *d + 1 == k {
                stack.push(*m);
            }
        }
    }
    // Components of what is left.
    let mut seen: FxHashSet<u32> = FxHashSet::default();
    let mut groups = Vec::new();
    for &start in &nodes {
        if removed.contains(&start) || seen.contains(&start) {
            continue;
        }
        let mut members = vec![start];
        seen.insert(start);
        let mut i = 0;
        while i < members.len() {
            let n = members[i];
            for m in &adj[&n] {
                if !removed.contains(m) && seen.insert(*m) {
                    members.push(*m);
                }
            }
            i += 1;
        }
        if members.len() < min_size {
            continue;
        }
        members.sort_unstable();
        let inside = |x: &u32| members.binary_search(x).is_ok();
        let mut internal: Vec<(u32, u32)> = edges
            .iter()
            .copied()
            .filter(|(a, b)| inside(a) && inside(b))
            .map(|(a, b)| (a.min(b), a.max(b)))
            .collect();
        internal.sort_unstable();
        internal.dedup();
        let g = DenseGroup {
            members,
            edges: internal,
        };
        if g.density() >= min_density {
            groups.push(g);
        }
    }
    groups
}

/// In a group of at least twice `min_size` members, a member whose in-group pairs carry
/// (median `weight`) under this share of what the group's median member's carry is weak.
pub const WEAK_MEMBER: f64 = 0.25;

/// `g` without its weak members (see [`WEAK_MEMBER`]; a heavy user who met a farm on two
/// of its posts by chance has an edge to every member, but a fraction of their evidence),
/// the rest peeled again as [`dense_groups`] does. A group of members alike, or smaller
/// than twice `min_size` (its median says little), is returned as it is.
pub fn without_weak_members(
    g: DenseGroup,
    weight: impl Fn(u32, u32) -> f64,
    k: usize,
    min_size: usize,
    min_density: f64,
) -> Vec<DenseGroup> {
    if g.members.len() < 2 * min_size {
        return vec![g];
    }
    let mut per: FxHashMap<u32, Vec<f64>> = FxHashMap::default();
    for &(a, b) in &g.edges {
        let w = weight(a, b);
        per.entry(a).or_default().push(w);
        per.entry(b).or_default().push(w);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_unstable_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    let strength: Vec<(u32, f64)> = g
        .members
        .iter()
        .map(|m| (*m, per.get_mut(m).map_or(0.0, median)))
        .collect();
    let mut all: Vec<f64> = strength.iter().map(|s| s.1).collect();
    let bar = median(&mut all) * WEAK_MEMBER;
    if strength.iter().all(|s| s.1 >= bar) {
        return vec![g];
    }
    let keep: FxHashSet<u32> = strength
        .iter()
        .filter(|s| s.1 >= bar)
        .map(|s| s.0)
        .collect();
    let edges: Vec<(u32, u32)> = g
        .edges
        .into_iter()
        .filter(|(a, b)| keep.contains(a) && keep.contains(b))
        .collect();
    dense_groups(&edges, k, min_size, min_density)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clique(ids: std::ops::Range<u32>) -> Vec<(u32, u32)> {
        let v: Vec<u32> = ids.collect();
        let mut e = Vec::new();
        for (i, a) in v.iter().enumerate() {
            for b in &v[i + 1..] {
                e.push((*a, *b));
            }
        }
        e
    }

    #[test]
    fn a_member_with_a_fraction_of_the_evidence_is_weak() {
        // A 10-clique farm whose pairs share weight 10, and an account tied to every
        // member by weight 1: in the core, out of the group.
        let mut edges = clique(0..10);
        edges.extend((0..10).map(|m| (m, 100)));
        let weight = |a: u32, b: u32| if a.max(b) == 100 { 1.0 } else { 10.0 };
        let g = dense_groups(&edges, 4, 5, 0.3).remove(0);
        assert_eq!(g.members.len(), 11);
        let trimmed = without_weak_members(g.clone(), weight, 4, 5, 0.3);
        assert_eq!(trimmed.len(), 1);
        assert_eq!(trimmed[0].members, (0..10).collect::<Vec<_>>());
        // Members alike, or a group under twice the minimum size: as it is.
        assert_eq!(
            without_weak_members(g.clone(), |_, _| 1.0, 4, 5, 0.3),
            std::slice::from_ref(&g)
        );
        assert_eq!(without_weak_members(g.clone(), weight, 4, 6, 0.3), [g]);
    }

    #[test]
    fn peeling_cuts_bridges_and_sparse_crowds() {
        // A 10-clique farm, an organic account tied to it by two camouflage edges,
        // and a sparse chain of organic accounts.
        let mut edges = clique(0..10);
        edges.extend([(100, 1), (100, 2)]);
        edges.extend((200..230).map(|i| (i, i + 1)));
        let groups = dense_groups(&edges, 4, 5, 0.3);
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].members, (0..10).collect::<Vec<_>>());
        assert_eq!(groups[0].edges.len(), 45);
        assert!((groups[0].density() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn two_farms_joined_by_one_edge_stay_two_groups_or_one_dense_one() {
        let mut edges = clique(0..8);
        edges.extend(clique(20..28));
        edges.push((0, 20));
        let groups = dense_groups(&edges, 4, 5, 0.3);
        // Connected through one edge they form one component, but its density
        // (57 of 120 possible edges) still passes; the alert lists both farms.
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].members.len(), 16);
        let strict = dense_groups(&edges, 4, 5, 0.6);
        assert!(
            strict.is_empty(),
            "a density bar above 0.475 rejects the joined pair"
        );
    }
}
