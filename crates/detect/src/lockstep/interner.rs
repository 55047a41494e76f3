//! Names to small ids: accounts and posts keyed by a stable 64-bit hash, each with a value.

use crate::detector::{key64, table_bytes, Budget, MapStats};
use crate::flat::{Entry, FlatMap};
use crate::name::Name;
use levee_model::Ts;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

/// Names to monotonic ids, each with a value `V`. Ids are never reused, so a stale id
/// can only miss. The hot map is keyed by [`key64`] of the name (no string compared
/// or copied per event); the name is kept once, for alerts. Two names with the same
/// key are one entity (see [`key64`] for the odds).
///
/// Serialized as an anonymous `(next, ids, names, evicted)` tuple: a generic struct would carry
/// one name for every `V`, and the snapshot schema (traced by name) would see only the first.
#[derive(Debug)]
pub(super) struct Interner<V> {
    /// key64(name) -> (id, last seen, value), in the key's slot (one miss a lookup)
    ids: FlatMap<(u32, Ts, V)>,
    /// id -> name; short names inline (no allocation per name)
    names: FxHashMap<u32, Name>,
    next: u32,
    /// Heap bytes of the names, kept as they change.
    heap: usize,
    /// Entries forgotten to make room at the count cap (kept in snapshots, as the other
    /// cap counters are, so that the exported counter never goes back on a restore).
    pub(super) evicted: u64,
}

impl<V: Serialize> Serialize for Interner<V> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (self.next, &self.ids, &self.names, self.evicted).serialize(s)
    }
}

impl<'de, V: Deserialize<'de> + Default> Deserialize<'de> for Interner<V> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        type Parts<V> = (u32, FlatMap<(u32, Ts, V)>, FxHashMap<u32, Name>, u64);
        let (next, ids, names, evicted) = Parts::<V>::deserialize(d)?;
        let heap = names.values().map(Name::heap_bytes).sum();
        Ok(Interner {
            ids,
            names,
            next,
            heap,
            evicted,
        })
    }
}

impl<V: Default> Default for Interner<V> {
    fn default() -> Self {
        Interner {
            ids: FlatMap::default(),
            names: FxHashMap::default(),
            next: 0,
            heap: 0,
            evicted: 0,
        }
    }
}

impl<V: Default> Interner<V> {
    /// The id and value of `s`, created if new (at `cap` entries, after forgetting the
    /// stalest eighth), or `None` if `budget` refuses (the budget counts it), including
    /// the growth of a full table; marks it seen at `ts`.
    pub(super) fn get_or_insert(
        &mut self,
        s: &str,
        ts: Ts,
        cap: usize,
        budget: &mut Budget,
    ) -> Option<(u32, &mut V)> {
        let key = key64(s);
        if self.ids.len() >= cap && !self.ids.contains_key(key) {
            // Full: forget the stalest eighth rather than refuse every newcomer until the
            // horizon frees room (at platform scale that would blind the detector for weeks).
            self.evicted += self.evict_stalest(cap.div_ceil(8)) as u64;
        }
        let len = self.ids.len();
        debug_assert!(
            len < cap || self.ids.contains_key(key),
            "a full table made room (cap > 0)"
        );
        // Both tables grow together; the fuller one decides when they double.
        let room = (self.ids.capacity() - len).min(self.names.capacity() - self.names.len());
        let bytes = if room == 0 {
            self.map_stats("", 0).bytes
        } else {
            0
        };
        let (id, seen, v) = match self.ids.entry(key) {
            Entry::Occupied(o) => o,
            Entry::Vacant(_) if !budget.admits() => return None,
            Entry::Vacant(_) if !budget.admits_insert(len, len + room, bytes) => return None,
            Entry::Vacant(e) => {
                let id = self.next;
                self.next = self.next.wrapping_add(1);
                let name = Name::from(s);
                self.heap += name.heap_bytes();
                self.names.insert(id, name);
                e.insert((id, ts, V::default()))
            }
        };
        *seen = (*seen).max(ts);
        Some((*id, v))
    }

    pub(super) fn name(&self, id: u32) -> Option<&str> {
        self.names.get(&id).map(Name::as_str)
    }

    pub(super) fn value(&self, id: u32) -> Option<&V> {
        // Rare (reports, edge promotions): re-hash the name rather than keep its key.
        let key = key64(self.names.get(&id)?.as_str());
        self.ids.get(key).map(|(_, _, v)| v)
    }

    /// Forget entries last seen before `cutoff`, showing each forgotten value to `dropped`.
    pub(super) fn evict(&mut self, cutoff: Ts, mut dropped: impl FnMut(&V)) {
        let mut gone = Vec::new();
        self.ids.retain(|_, (id, seen, v)| {
            let keep = *seen >= cutoff;
            if !keep {
                gone.push(*id);
                dropped(v);
            }
            keep
        });
        for id in &gone {
            if let Some(n) = self.names.remove(id) {
                self.heap -= n.heap_bytes();
            }
        }
    }

    /// Forget the `n` entries seen longest ago (more on a tie in last-seen time, so that
    /// the choice depends on event times only); returns how many went.
    fn evict_stalest(&mut self, n: usize) -> usize {
        let mut seen: Vec<Ts> = self.ids.values().map(|(_, seen, _)| *seen).collect();
        if seen.is_empty() {
            return 0;
        }
        let n = n.clamp(1, seen.len());
        let (_, nth, _) = seen.select_nth_unstable(n - 1);
        let cutoff = nth.saturating_add(1);
        let before = self.ids.len();
        self.evict(cutoff, |_| ());
        debug_assert!(before - self.ids.len() >= n);
        before - self.ids.len()
    }

    /// Give back table memory beyond what the entries need (under memory pressure).
    pub(super) fn shrink(&mut self) {
        self.ids.shrink_to_fit();
        self.names.shrink_to_fit();
    }

    pub(super) fn map_stats(&self, map: &'static str, value_heap: usize) -> MapStats {
        MapStats {
            map,
            entries: self.ids.len() as u64,
            bytes: self.ids.bytes()
                + (self.heap + value_heap) as u64
                + table_bytes::<u32, Name>(self.names.capacity(), 0),
        }
    }
}
