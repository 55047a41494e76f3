//! Names to small ids: accounts and posts keyed by a stable 64-bit hash, each with a value.

use crate::detector::{key64, Budget, MapStats};
use crate::flat::{Entry, FlatMap};
use crate::name::Name;
use crate::ring::Ring;
use levee_model::Ts;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Bits of an id that index its name slot; the rest count the slot's reuses.
const INDEX_BITS: u32 = 24;
const INDEX_MASK: u32 = (1 << INDEX_BITS) - 1;
/// The most entries an interner may hold (`max_accounts`, `max_targets`): below `2^24 - 1`,
/// so that no id is `u32::MAX` (the detector's "no target" mark).
pub(super) const MAX_ENTRIES: usize = (1 << INDEX_BITS) - 2;

/// A last-seen time to the second (a horizon of days does not need milliseconds, and a
/// post's slot is 24 bytes instead of 32).
fn second(ts: Ts) -> u32 {
    u32::try_from(ts.div_euclid(1000).max(0)).unwrap_or(u32::MAX)
}

fn id_of(index: usize, generation: u8) -> u32 {
    debug_assert!(index <= MAX_ENTRIES);
    (u32::from(generation) << INDEX_BITS) | index as u32
}

/// Names to ids, each with a value `V`. The hot map is keyed by [`key64`] of the name (no
/// string compared or copied per event) and holds the id, last-seen second and value in
/// the key's slot (one miss a lookup). The name is kept once, for alerts, in a dense slab
/// indexed by the id's low 24 bits: a slot of 25 bytes, where a hash map from id to
/// name cost ~60 at its load. A forgotten entry's slot is reused after every other
/// freed slot (first in, first out) under the next generation (the id's high 8 bits), so a
/// stale id misses: it could name a newer entity only after its slot was reused 256
/// times while the stale id was still held. Two names with the same key are one entity
/// (see [`key64`] for the odds).
///
/// Serialized as an anonymous `(ids, names, generations, free, evicted)` tuple: a generic
/// struct would carry one name for every `V`, and the snapshot schema (traced by name)
/// would see only the first.
#[derive(Debug)]
pub(super) struct Interner<V> {
    /// key64(name) -> (id, last-seen second, value), in the key's slot
    ids: FlatMap<(u32, u32, V)>,
    /// Slot index -> name (empty when free); short names inline (no allocation per name).
    names: Ring<Name>,
    /// Slot index -> generation of the id it holds (or will hold next, when free).
    generations: Ring<u8>,
    /// Free slots, in the order they were freed.
    free: VecDeque<u32>,
    /// Heap bytes of the names, kept as they change.
    heap: usize,
    /// Entries forgotten to make room at the count cap (kept in snapshots, as the other
    /// cap counters are, so that the exported counter never goes back on a restore).
    pub(super) evicted: u64,
}

type Parts<V> = (
    FlatMap<(u32, u32, V)>,
    Ring<Name>,
    Ring<u8>,
    VecDeque<u32>,
    u64,
);

impl<V: Serialize> Serialize for Interner<V> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (
            &self.ids,
            &self.names,
            &self.generations,
            &self.free,
            self.evicted,
        )
            .serialize(s)
    }
}

impl<'de, V: Deserialize<'de> + Default> Deserialize<'de> for Interner<V> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (ids, names, generations, free, evicted) = Parts::<V>::deserialize(d)?;
        let n = names.len();
        let in_slab = |id: u32| ((id & INDEX_MASK) as usize) < n;
        if generations.len() != n
            || n > MAX_ENTRIES + 1
            || !free.iter().all(|i| in_slab(*i))
            || !ids.values().all(|(id, _, _)| in_slab(*id))
        {
            return Err(serde::de::Error::custom(
                "interner: ids, names, generations and free slots do not agree",
            ));
        }
        let heap = names.iter().map(Name::heap_bytes).sum();
        Ok(Interner {
            ids,
            names,
            generations,
            free,
            heap,
            evicted,
        })
    }
}

impl<V: Default> Default for Interner<V> {
    fn default() -> Self {
        Interner {
            ids: FlatMap::default(),
            names: Ring::new(),
            generations: Ring::new(),
            free: VecDeque::new(),
            heap: 0,
            evicted: 0,
        }
    }
}

impl<V: Default> Interner<V> {
    /// The table slot [`Interner::get_or_insert`] reads first for `s` (a cache hint).
    pub(super) fn slot_addr(&self, s: &str) -> Option<usize> {
        self.ids.slot_addr(key64(s))
    }

    /// The id and value of `s`, created if new (at `cap` entries, after forgetting the
    /// stalest eighth), or `None` if `budget` refuses (the budget counts it), including
    /// the growth of a full table; marks it seen at `ts`. `cap` is at most [`MAX_ENTRIES`].
    pub(super) fn get_or_insert(
        &mut self,
        s: &str,
        ts: Ts,
        cap: usize,
        budget: &mut Budget,
    ) -> Option<(u32, &mut V)> {
        debug_assert!(cap <= MAX_ENTRIES, "the config bounds the caps");
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
        let room = self.ids.capacity() - len;
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
                let name = Name::from(s);
                self.heap += name.heap_bytes();
                let index = match self.free.pop_front() {
                    Some(i) => {
                        self.names[i as usize] = name;
                        i as usize
                    }
                    None => {
                        self.names.push_back(name);
                        self.generations.push_back(0);
                        self.names.len() - 1
                    }
                };
                e.insert((id_of(index, self.generations[index]), 0, V::default()))
            }
        };
        *seen = (*seen).max(second(ts));
        Some((*id, v))
    }

    /// The name of `id`, unless it was forgotten.
    pub(super) fn name(&self, id: u32) -> Option<&str> {
        let index = (id & INDEX_MASK) as usize;
        let current = self.generations.get(index)? == &((id >> INDEX_BITS) as u8);
        let name = self.names.get(index).filter(|_| current)?.as_str();
        (!name.is_empty()).then_some(name)
    }

    pub(super) fn value(&self, id: u32) -> Option<&V> {
        // Rare (reports, edge promotions): re-hash the name rather than keep its key.
        let key = key64(self.name(id)?);
        let (found, _, v) = self.ids.get(key)?;
        debug_assert_eq!(*found, id, "a named id is the one its name maps to");
        (*found == id).then_some(v)
    }

    /// Forget entries last seen before `cutoff`'s second, showing each forgotten value to
    /// `dropped`.
    pub(super) fn evict(&mut self, cutoff: Ts, dropped: impl FnMut(&V)) {
        self.evict_before(second(cutoff), dropped);
    }

    /// Forget entries last seen before second `cutoff`.
    fn evict_before(&mut self, cutoff: u32, mut dropped: impl FnMut(&V)) {
        let mut gone = Vec::new();
        self.ids.retain(|_, (id, seen, v)| {
            let keep = *seen >= cutoff;
            if !keep {
                gone.push(*id);
                dropped(v);
            }
            keep
        });
        // In id order, so that the free list (and the ids it hands out) depends on the
        // events only, not on the hash table's layout.
        gone.sort_unstable_by_key(|id| id & INDEX_MASK);
        for id in gone {
            let index = (id & INDEX_MASK) as usize;
            let name = std::mem::take(&mut self.names[index]);
            self.heap -= name.heap_bytes();
            self.generations[index] = self.generations[index].wrapping_add(1);
            self.free.push_back(index as u32);
        }
    }

    /// Forget the `n` entries seen longest ago (more on a tie in last-seen time, so that
    /// the choice depends on event times only); returns how many went.
    fn evict_stalest(&mut self, n: usize) -> usize {
        let mut seen: Vec<u32> = self.ids.values().map(|(_, seen, _)| *seen).collect();
        if seen.is_empty() {
            return 0;
        }
        let n = n.clamp(1, seen.len());
        let (_, nth, _) = seen.select_nth_unstable(n - 1);
        let cutoff = nth.saturating_add(1);
        let before = self.ids.len();
        self.evict_before(cutoff, |_| ());
        debug_assert!(before - self.ids.len() >= n);
        before - self.ids.len()
    }

    /// Give back table memory beyond what the entries need (under memory pressure).
    pub(super) fn shrink(&mut self) {
        self.ids.shrink_to_fit();
        self.free.shrink_to_fit();
    }

    pub(super) fn map_stats(&self, map: &'static str, value_heap: usize) -> MapStats {
        let slab = self.names.capacity() * (std::mem::size_of::<Name>() + 1)
            + self.free.capacity() * std::mem::size_of::<u32>();
        MapStats {
            map,
            entries: self.ids.len() as u64,
            bytes: self.ids.bytes() + (self.heap + value_heap + slab) as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The id of `name`, seen at second `secs` (created if new; room for 8).
    fn add(names: &mut Interner<u32>, name: &str, secs: i64) -> u32 {
        let mut budget = Budget::new(u64::MAX);
        let (id, v) = names
            .get_or_insert(name, secs * 1000, 8, &mut budget)
            .expect("room");
        *v += 1;
        id
    }

    #[test]
    fn a_forgotten_id_misses_and_its_slot_is_reused_under_a_new_generation() {
        let mut names: Interner<u32> = Interner::default();
        let (a, b) = (add(&mut names, "alice", 10), add(&mut names, "bob", 20));
        assert_ne!(a, b);
        assert_eq!(add(&mut names, "alice", 30), a);
        assert_eq!((names.name(a), names.name(b)), (Some("alice"), Some("bob")));
        assert_eq!((names.value(a), names.value(b)), (Some(&2), Some(&1)));

        names.evict(25_000, |_| ()); // bob was last seen at 20 s
        let stale = (names.name(b), names.value(b));
        assert_eq!(stale, (None, None), "a stale id misses");
        let c = add(&mut names, "carol", 40);
        assert_eq!(c & INDEX_MASK, b & INDEX_MASK, "bob's slot is reused");
        assert_ne!(c, b, "...under another id");
        assert_eq!((names.name(c), names.name(b)), (Some("carol"), None));

        let json = serde_json::to_string(&names).expect("serialize");
        let mut back: Interner<u32> = serde_json::from_str(&json).expect("deserialize");
        let named = [a, c, b].map(|id| back.name(id));
        assert_eq!(named, [Some("alice"), Some("carol"), None]);
        let d = add(&mut back, "dave", 50);
        assert_eq!(
            d,
            add(&mut names, "dave", 50),
            "a restored interner hands out the same ids"
        );
    }
}
