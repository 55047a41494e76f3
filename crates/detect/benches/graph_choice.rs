//! Why the coordination graph is a hash-map adjacency and not petgraph: one measurement.
//!
//! `cargo bench -p levee-detect --bench graph_choice`: k-core peeling plus components on a
//! graph shaped like the default scenario's peak (four farm cliques, 3,000 edges, plus
//! 2,300 scattered coincidence edges), with `levee_detect::lockstep::dense_groups` and
//! with petgraph's `UnGraphMap` (build, peel by removing nodes, `tarjan_scc` components).

use levee_detect::lockstep::dense_groups;
use petgraph::graphmap::UnGraphMap;
use std::time::Instant;

fn graph() -> Vec<(u32, u32)> {
    let mut edges = Vec::new();
    let mut base = 0u32;
    for size in [40u32, 25, 30, 50] {
        for a in 0..size {
            for b in a + 1..size {
                if (a * 31 + b * 17) % 10 < 7 {
                    edges.push((base + a, base + b));
                }
            }
        }
        base += size;
    }
    let mut x: u64 = 7;
    for _ in 0..2_300 {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let a = 1_000 + ((x >> 33) % 20_000) as u32;
        let b = 1_000 + ((x >> 13) % 20_000) as u32;
        if a != b {
            edges.push((a.min(b), a.max(b)));
        }
    }
    edges.sort_unstable();
    edges.dedup();
    edges
}

fn petgraph_groups(edges: &[(u32, u32)], k: usize, min_size: usize) -> usize {
    let mut g: UnGraphMap<u32, ()> = UnGraphMap::from_edges(edges.iter().copied());
    loop {
        let low: Vec<u32> = g.nodes().filter(|n| g.neighbors(*n).count() < k).collect();
        if low.is_empty() {
            break;
        }
        for n in low {
            g.remove_node(n);
        }
    }
    petgraph::algo::tarjan_scc(&g)
        .into_iter()
        .filter(|c| c.len() >= min_size)
        .count()
}

fn main() {
    let edges = graph();
    let rounds = 200;
    let t = Instant::now();
    let mut ours = 0;
    for _ in 0..rounds {
        ours = dense_groups(&edges, 4, 6, 0.3).len();
    }
    let a = t.elapsed().as_secs_f64() / f64::from(rounds) * 1e3;
    let t = Instant::now();
    let mut theirs = 0;
    for _ in 0..rounds {
        theirs = petgraph_groups(&edges, 4, 6);
    }
    let b = t.elapsed().as_secs_f64() / f64::from(rounds) * 1e3;
    println!("{} edges: hash adjacency {a:.3} ms/extraction ({ours} groups) | petgraph UnGraphMap {b:.3} ms ({theirs} groups)", edges.len());
}
