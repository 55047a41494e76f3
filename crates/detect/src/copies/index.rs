//! A multi-index over 64-bit fingerprints for Hamming-distance lookups (Manku, Jain and Das
//! Sarma, WWW 2007), over a sliding window of recent texts.
//!
//! For distance `k` the fingerprint is cut into `k + 1` blocks: two fingerprints within `k`
//! bits agree exactly on at least one block (pigeonhole). Table `t` files every fingerprint
//! under its block `t` (2^16 buckets a table; a block wider than 16 bits is hashed down),
//! so a lookup scans `k + 1` buckets and checks the full distance of what it finds. A pair
//! that agrees on several blocks is reported once, from the first such table.
//!
//! Entries are appended in text order, so the expired ones (their text left the window)
//! are at the front of a bucket: lookups read newest first and stop at the first expired
//! one (a lookup writes nothing), an insert into a full bucket drops them before the bucket
//! would grow, and [`Index::sweep`] drops them everywhere. A bucket holds at most
//! `max_bucket` entries (a flood of one text cannot make lookups slow): beyond it the
//! oldest goes, counted as a cap hit.

use serde::{Deserialize, Serialize};

const BUCKET_BITS: u32 = 16;

/// One indexed fingerprint: 12 bytes, no padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    lo: u32,
    hi: u32,
    /// What the detector filed it under (its text and clause).
    pub at: u32,
}

impl Slot {
    pub fn new(fp: u64, at: u32) -> Self {
        Slot {
            lo: fp as u32,
            hi: (fp >> 32) as u32,
            at,
        }
    }

    pub fn fp(&self) -> u64 {
        u64::from(self.lo) | (u64::from(self.hi) << 32)
    }
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct Index {
    k: u32,
    /// `(shift, width)` of each block.
    blocks: Vec<(u32, u32)>,
    /// `tables[t][bucket]`: entries oldest first.
    tables: Vec<Vec<Vec<Slot>>>,
    entries: usize,
    max_bucket: usize,
}

impl Index {
    pub fn new(k: u32, max_bucket: usize) -> Self {
        debug_assert!(k < 16 && max_bucket > 0);
        let n = k + 1;
        let blocks = (0..n)
            .map(|t| {
                let start = 64 * t / n;
                (start, 64 * (t + 1) / n - start)
            })
            .collect();
        Index {
            k,
            blocks,
            tables: (0..n).map(|_| vec![Vec::new(); 1 << BUCKET_BITS]).collect(),
            entries: 0,
            max_bucket,
        }
    }

    fn block(&self, fp: u64, t: usize) -> u64 {
        let (shift, width) = self.blocks[t];
        (fp >> shift) & (u64::MAX >> (64 - width))
    }

    fn bucket(&self, fp: u64, t: usize) -> usize {
        let b = self.block(fp, t);
        let (_, width) = self.blocks[t];
        if width <= BUCKET_BITS {
            b as usize
        } else {
            (b.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - BUCKET_BITS)) as usize
        }
    }

    /// Entries held (an entry per table per fingerprint).
    pub fn entries(&self) -> usize {
        self.entries
    }

    /// Bytes, from the entry count (cheap; for per-tick checks).
    pub fn approx_bytes(&self) -> u64 {
        let heads = self.tables.len() * (1 << BUCKET_BITS) * std::mem::size_of::<Vec<Slot>>();
        (heads + self.entries * std::mem::size_of::<Slot>() * 3 / 2) as u64
    }

    /// Whether the tables exist (not after a restore: the detector refiles its clauses).
    pub fn is_built(&self) -> bool {
        !self.tables.is_empty()
    }

    /// File `fp` under `at`; returns the entries dropped from full buckets. A bucket that
    /// would have to grow first drops its expired entries (`alive` is false for them).
    pub fn insert(&mut self, fp: u64, at: u32, alive: impl Fn(u32) -> bool) -> u64 {
        let mut dropped = 0;
        for t in 0..self.tables.len() {
            let b = self.bucket(fp, t);
            let bucket = &mut self.tables[t][b];
            if bucket.len() == bucket.capacity() {
                let dead = bucket
                    .iter()
                    .position(|s| alive(s.at))
                    .unwrap_or(bucket.len());
                bucket.drain(..dead);
                self.entries -= dead;
            }
            if bucket.len() >= self.max_bucket {
                bucket.remove(0);
                self.entries -= 1;
                dropped += 1;
            }
            bucket.push(Slot::new(fp, at));
            self.entries += 1;
        }
        dropped
    }

    /// Call `found(slot, distance)` for live entries within `k` bits of `fp`, newest first
    /// in each table, at most `limit` in all. `alive` tells whether an entry's text is still
    /// in the window.
    pub fn lookup(
        &self,
        fp: u64,
        limit: usize,
        alive: impl Fn(u32) -> bool,
        mut found: impl FnMut(Slot, u32),
    ) {
        // The buckets first, then their newest entries: independent loads, so their cache
        // misses overlap instead of queueing behind each table's scan.
        let mut buckets = [0usize; 16];
        let tables = self.tables.len();
        for (t, b) in buckets.iter_mut().enumerate().take(tables) {
            *b = self.bucket(fp, t);
        }
        let newest: u32 = (0..tables)
            .filter_map(|t| self.tables[t][buckets[t]].last())
            .fold(0, |acc, s| acc ^ s.at);
        std::hint::black_box(newest);
        let mut n = 0;
        for (t, &b) in buckets.iter().enumerate().take(tables) {
            for s in self.tables[t][b].iter().rev() {
                if n >= limit || !alive(s.at) {
                    break;
                }
                let d = (fp ^ s.fp()).count_ones();
                // Report a pair from the first table whose block it agrees on.
                if d <= self.k && (0..t).all(|u| self.block(fp, u) != self.block(s.fp(), u)) {
                    n += 1;
                    found(*s, d);
                }
            }
            if n >= limit {
                return;
            }
        }
    }

    /// Drop every expired entry; give back memory of buckets that emptied or shrank.
    pub fn sweep(&mut self, alive: impl Fn(u32) -> bool) {
        let mut entries = 0;
        for bucket in self.tables.iter_mut().flatten() {
            let dead = bucket
                .iter()
                .position(|s| alive(s.at))
                .unwrap_or(bucket.len());
            bucket.drain(..dead);
            if bucket.capacity() > 2 * bucket.len() + 4 {
                bucket.shrink_to_fit();
            }
            entries += bucket.len();
        }
        self.entries = entries;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(ix: &Index, fp: u64, alive: impl Fn(u32) -> bool) -> Vec<(u32, u32)> {
        let mut v = Vec::new();
        ix.lookup(fp, 100, alive, |s, d| v.push((s.at, d)));
        v.sort_unstable();
        v
    }

    #[test]
    fn finds_exactly_the_fingerprints_within_k_once_each() {
        for k in [0, 3, 5] {
            let mut ix = Index::new(k, 64);
            let base = 0x0123_4567_89AB_CDEFu64;
            // Flip 0..=k+2 bits spread over the blocks.
            for flips in 0..=k + 2 {
                let fp = (0..flips).fold(base, |fp, i| fp ^ (1u64 << (i * 13 % 64)));
                ix.insert(fp, flips, |_| true);
            }
            let got = found(&ix, base, |_| true);
            let want: Vec<(u32, u32)> = (0..=k).map(|f| (f, f)).collect();
            assert_eq!(got, want, "k = {k}");
        }
    }

    #[test]
    fn expired_entries_go_and_full_buckets_drop_their_oldest() {
        let mut ix = Index::new(3, 4);
        let dropped: u64 = (0..6).map(|at| ix.insert(42, at, |_| true)).sum();
        assert_eq!(dropped, 2 * 4, "two oldest dropped in each of 4 tables");
        assert_eq!(found(&ix, 42, |at| at >= 4), vec![(4, 0), (5, 0)]);
        assert_eq!(ix.entries(), 4 * 4, "a lookup writes nothing");
        // A full bucket drops its expired entries before it drops a live one.
        assert_eq!(ix.insert(42, 6, |at| at >= 4), 0);
        assert_eq!(ix.entries(), 3 * 4);
        assert_eq!(found(&ix, 42, |at| at >= 4), vec![(4, 0), (5, 0), (6, 0)]);
        ix.sweep(|_| false);
        assert_eq!(ix.entries(), 0);
    }
}
