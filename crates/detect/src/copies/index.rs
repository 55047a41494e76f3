//! A multi-index over 64-bit fingerprints for Hamming-distance lookups (Manku, Jain and Das
//! Sarma, WWW 2007), over a sliding window of recent texts.
//!
//! For distance `k` the fingerprint is cut into `k + 1` blocks: two fingerprints within `k`
//! bits agree exactly on at least one block (pigeonhole). Table `t` files every fingerprint
//! under its block `t` (2^15 buckets a table; a block wider than 15 bits is hashed down),
//! so a lookup scans `k + 1` buckets. An entry is 8 bytes: where the fingerprint is filed
//! and the 32 bits that follow block `t`; an entry within `k` bits on those is a candidate,
//! and the caller's full fingerprint of it decides (a random 64-bit fingerprint passes the
//! 32-bit test by chance about once in a million entries). A pair that agrees on several
//! blocks is reported once, from the first such table.
//!
//! Entries are appended in text order, so the expired ones (their text left the window)
//! are at the front of a bucket: lookups read newest first and stop at the first expired
//! one (a lookup writes nothing), an insert into a full bucket drops them before the bucket
//! would grow, and [`Index::sweep`] drops them everywhere. A bucket holds at most
//! `max_bucket` entries (a flood of one text cannot make lookups slow): beyond it the
//! oldest goes, counted as a cap hit.

const BUCKET_BITS: u32 = 15;

/// One indexed fingerprint in one table: 8 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    /// The 32 bits of the fingerprint after the table's block.
    part: u32,
    /// What the detector filed it under (its text and clause).
    at: u32,
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

    /// The 32 bits after block `t` (round the end of the fingerprint).
    fn part(&self, fp: u64, t: usize) -> u32 {
        let (shift, width) = self.blocks[t];
        fp.rotate_right(shift + width) as u32
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
            let (b, part) = (self.bucket(fp, t), self.part(fp, t));
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
            if bucket.len() == bucket.capacity() {
                // Grow by half, not double: buckets hold ~15 entries on average, and the
                // index is the largest part of the detector's memory.
                bucket.reserve_exact((bucket.len() / 2).max(4));
            }
            bucket.push(Slot { part, at });
            self.entries += 1;
        }
        dropped
    }

    /// Call `found(at, distance)` for live entries within `k` bits of `fp`, newest first in
    /// each table, at most `limit` in all. `alive(at)` tells whether an entry's text is
    /// still in the window; `full(at)` is its whole fingerprint (asked of candidates only).
    pub fn lookup(
        &self,
        fp: u64,
        limit: usize,
        alive: impl Fn(u32) -> bool,
        full: impl Fn(u32) -> u64,
        mut found: impl FnMut(u32, u32),
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
            let part = self.part(fp, t);
            for s in self.tables[t][b].iter().rev() {
                if n >= limit || !alive(s.at) {
                    break;
                }
                if (part ^ s.part).count_ones() > self.k {
                    continue;
                }
                let other = full(s.at);
                debug_assert_eq!(
                    self.part(other, t),
                    s.part,
                    "full() disagrees with the entry"
                );
                let d = (fp ^ other).count_ones();
                // Report a pair from the first table whose block it agrees on.
                if d <= self.k && (0..t).all(|u| self.block(fp, u) != self.block(other, u)) {
                    n += 1;
                    found(s.at, d);
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

    /// `(at, distance)` of what a lookup of `fp` reports, `full` giving each entry's print.
    fn found(
        ix: &Index,
        fp: u64,
        alive: impl Fn(u32) -> bool,
        full: impl Fn(u32) -> u64,
    ) -> Vec<(u32, u32)> {
        let mut v = Vec::new();
        ix.lookup(fp, 100, alive, full, |at, d| v.push((at, d)));
        v.sort_unstable();
        v
    }

    #[test]
    fn finds_exactly_the_fingerprints_within_k_once_each() {
        let base = 0x0123_4567_89AB_CDEFu64;
        // Entry `flips` has that many bits flipped, spread over the blocks.
        let print = |flips: u32| (0..flips).fold(base, |fp, i| fp ^ (1u64 << (i * 13 % 64)));
        for k in [0, 3, 5] {
            let mut ix = Index::new(k, 64);
            for flips in 0..=k + 2 {
                ix.insert(print(flips), flips, |_| true);
            }
            let got = found(&ix, base, |_| true, print);
            let want: Vec<(u32, u32)> = (0..=k).map(|f| (f, f)).collect();
            assert_eq!(got, want, "k = {k}");
        }
    }

    #[test]
    fn a_candidate_is_decided_by_its_whole_fingerprint() {
        let mut ix = Index::new(3, 64);
        let base = 0x0123_4567_89AB_CDEFu64;
        // Same first block and the 32 bits after it; 16 bits off in the last block.
        let far = base ^ (0xFFFF << 48);
        ix.insert(far, 1, |_| true);
        assert_eq!(found(&ix, base, |_| true, |_| far), vec![]);
        ix.insert(base ^ (0b111 << 50), 2, |_| true);
        let full = |at| if at == 1 { far } else { base ^ (0b111 << 50) };
        assert_eq!(found(&ix, base, |_| true, full), vec![(2, 3)]);
    }

    #[test]
    fn expired_entries_go_and_full_buckets_drop_their_oldest() {
        let mut ix = Index::new(3, 4);
        let dropped: u64 = (0..6).map(|at| ix.insert(42, at, |_| true)).sum();
        assert_eq!(dropped, 2 * 4, "two oldest dropped in each of 4 tables");
        let full = |_| 42;
        assert_eq!(found(&ix, 42, |at| at >= 4, full), vec![(4, 0), (5, 0)]);
        assert_eq!(ix.entries(), 4 * 4, "a lookup writes nothing");
        // A full bucket drops its expired entries before it drops a live one.
        assert_eq!(ix.insert(42, 6, |at| at >= 4), 0);
        assert_eq!(ix.entries(), 3 * 4);
        let got = found(&ix, 42, |at| at >= 4, full);
        assert_eq!(got, vec![(4, 0), (5, 0), (6, 0)]);
        ix.sweep(|_| false);
        assert_eq!(ix.entries(), 0);
    }
}
