//! `FlatMap`: a hash table of 64-bit keys whose values lie in the key's own slot.
//!
//! Detector state is keyed by [`crate::detector::key64`] hashes. A general table keeps a
//! control byte per slot apart from the slots, so a lookup that misses the cache costs
//! two misses (control group, then slot). Here a slot is `(key, value)` and the probe
//! sequence is linear, so a lookup costs one miss and the neighbours it reads on a
//! collision are in the same or the next cache line. Deletion shifts the rest of the
//! cluster back (no tombstones), so the table never degrades with churn. A full table
//! (7/8 of its slots) grows by half, not double: its load stays between 58% and 88%
//! (44% to 88% when doubling), and the old and new tables together, the peak of a
//! growth, are 2.5 times the old one, not 3.
//!
//! Key 0 marks an empty slot: a key of 0 is stored as 1, so those two keys are one entry
//! (odds 2^-63 for a hash; [`key64`](crate::detector::key64)'s collision policy covers it).

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::marker::PhantomData;

/// The fewest slots a table that holds anything has.
const MIN_SLOTS: usize = 16;

/// A `u64` kept as two `u32` halves: aligned to 4, so a record holding one is not padded
/// to a multiple of 8 (a 12-byte value makes a 20-byte slot, not 24). Serialized as a `u64`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Halves([u32; 2]);

impl Halves {
    pub fn new(v: u64) -> Self {
        Halves([v as u32, (v >> 32) as u32])
    }

    pub fn get(self) -> u64 {
        u64::from(self.0[0]) | u64::from(self.0[1]) << 32
    }
}

impl Serialize for Halves {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.get().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Halves {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        u64::deserialize(d).map(Halves::new)
    }
}

#[derive(Debug, Clone, Default)]
struct Slot<V> {
    /// 0: empty.
    key: Halves,
    value: V,
}

impl<V> Slot<V> {
    fn key(&self) -> u64 {
        self.key.get()
    }

    fn new(key: u64, value: V) -> Self {
        Slot {
            key: Halves::new(key),
            value,
        }
    }
}

/// See the module docs.
#[derive(Debug, Clone)]
pub struct FlatMap<V> {
    /// A multiple of 16 in length (see [`grown`]), or empty.
    slots: Vec<Slot<V>>,
    len: usize,
}

impl<V> Default for FlatMap<V> {
    fn default() -> Self {
        FlatMap {
            slots: Vec::new(),
            len: 0,
        }
    }
}

/// The stored form of a key (0 is the empty mark).
fn stored(key: u64) -> u64 {
    key.max(1)
}

/// Entries a table of `slots` slots holds before it grows: 7/8 of them.
fn max_load(slots: usize) -> usize {
    slots - slots / 8
}

/// The slot count a full table of `slots` grows to: half as many again, a multiple of 16.
fn grown(slots: usize) -> usize {
    (slots + slots / 2)
        .next_multiple_of(MIN_SLOTS)
        .max(MIN_SLOTS)
}

/// The vacant or occupied slot of a key, from [`FlatMap::entry`].
pub enum Entry<'a, V> {
    Occupied(&'a mut V),
    Vacant(VacantEntry<'a, V>),
}

/// A key not in the map; [`VacantEntry::insert`] adds it.
pub struct VacantEntry<'a, V> {
    map: &'a mut FlatMap<V>,
    key: u64,
}

impl<'a, V: Default> Entry<'a, V> {
    /// The value of the key, inserting `value` first if the key is absent.
    pub fn or_insert(self, value: V) -> &'a mut V {
        match self {
            Entry::Occupied(v) => v,
            Entry::Vacant(e) => e.insert(value),
        }
    }
}

impl<'a, V: Default> VacantEntry<'a, V> {
    /// Insert `value` (growing the table first if it is full) and return it.
    pub fn insert(self, value: V) -> &'a mut V {
        let map = self.map;
        if map.len + 1 > max_load(map.slots.len()) {
            map.resize(grown(map.slots.len()));
        }
        let i = match map.find(self.key) {
            Ok(i) | Err(i) => i,
        };
        debug_assert_eq!(map.slots[i].key(), 0, "a vacant entry's key is absent");
        map.slots[i] = Slot::new(self.key, value);
        map.len += 1;
        &mut map.slots[i].value
    }
}

impl<V> FlatMap<V> {
    pub fn len(&self) -> usize {
        self.len
    }

    /// Entries the table holds before it grows (compare hashbrown's `capacity`).
    pub fn capacity(&self) -> usize {
        max_load(self.slots.len())
    }

    /// Bytes of the table itself (values' own heap not included).
    pub fn bytes(&self) -> u64 {
        (self.slots.capacity() * std::mem::size_of::<Slot<V>>()) as u64
    }

    /// The slot after `i`, round the end.
    fn next(&self, i: usize) -> usize {
        if i + 1 == self.slots.len() {
            0
        } else {
            i + 1
        }
    }

    /// The first slot `key` may occupy: Fibonacci hashing, its high bits scaled to the
    /// table's length (multiply and shift, no division), so keys that differ only in
    /// their low bits still spread.
    fn home(&self, key: u64) -> usize {
        let h = key.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        ((u128::from(h) * self.slots.len() as u128) >> 64) as usize
    }

    /// `Ok(slot)` holding `key` (stored form), or `Err(first empty slot)` on its probe
    /// sequence. The table must have a slot.
    fn find(&self, key: u64) -> Result<usize, usize> {
        debug_assert!(!self.slots.is_empty() && self.len < self.slots.len());
        let mut i = self.home(key);
        loop {
            match self.slots[i].key() {
                k if k == key => return Ok(i),
                0 => return Err(i),
                _ => i = self.next(i),
            }
        }
    }

    pub fn get(&self, key: u64) -> Option<&V> {
        if self.len == 0 {
            return None;
        }
        let i = self.find(stored(key)).ok()?;
        Some(&self.slots[i].value)
    }

    pub fn get_mut(&mut self, key: u64) -> Option<&mut V> {
        if self.len == 0 {
            return None;
        }
        let i = self.find(stored(key)).ok()?;
        Some(&mut self.slots[i].value)
    }

    /// The address of the slot a lookup of `key` reads first, for a cache hint ahead of
    /// it (a number, not a reference: nothing is read through it).
    pub fn slot_addr(&self, key: u64) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        Some(std::ptr::from_ref(&self.slots[self.home(stored(key))]) as usize)
    }

    pub fn contains_key(&self, key: u64) -> bool {
        self.get(key).is_some()
    }

    pub fn entry(&mut self, key: u64) -> Entry<'_, V> {
        let key = stored(key);
        if self.len > 0 {
            if let Ok(i) = self.find(key) {
                return Entry::Occupied(&mut self.slots[i].value);
            }
        }
        Entry::Vacant(VacantEntry { map: self, key })
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.slots.iter().filter(|s| s.key() != 0).map(|s| &s.value)
    }

    pub fn iter(&self) -> impl Iterator<Item = (u64, &V)> {
        self.slots
            .iter()
            .filter(|s| s.key() != 0)
            .map(|s| (s.key(), &s.value))
    }

    /// Keep the entries for which `keep` says so, in place (one pass over the table).
    pub fn retain(&mut self, mut keep: impl FnMut(u64, &mut V) -> bool)
    where
        V: Default,
    {
        if self.len == 0 {
            return;
        }
        // Start just after an empty slot: no cluster wraps past it, so the back-shifts of
        // a deletion only ever move entries not yet visited into the visited slot.
        let Some(empty) = self.slots.iter().position(|s| s.key() == 0) else {
            debug_assert!(false, "a table below its load has an empty slot");
            return;
        };
        let mut i = self.next(empty);
        let mut visited = 0;
        while visited < self.slots.len() - 1 {
            let s = &mut self.slots[i];
            if s.key() != 0 && !keep(s.key(), &mut s.value) {
                self.remove_at(i);
                continue; // slot `i` may now hold an entry shifted back: look again
            }
            i = self.next(i);
            visited += 1;
        }
    }

    /// Empty slot `i` and shift the rest of its cluster back where their probes allow.
    fn remove_at(&mut self, mut hole: usize)
    where
        V: Default,
    {
        let mut j = hole;
        loop {
            j = self.next(j);
            let key = self.slots[j].key();
            if key == 0 {
                break;
            }
            let home = self.home(key);
            // The entry at `j` may move to `hole` unless its home lies cyclically in (hole, j].
            let stays = if hole <= j {
                hole < home && home <= j
            } else {
                hole < home || home <= j
            };
            if !stays {
                self.slots.swap(hole, j);
                hole = j;
            }
        }
        self.slots[hole] = Slot::default();
        self.len -= 1;
    }

    /// Rebuild with `slots` slots (a size [`grown`] makes, above the load).
    fn resize(&mut self, slots: usize)
    where
        V: Default,
    {
        debug_assert!(slots.is_multiple_of(MIN_SLOTS) && max_load(slots) >= self.len);
        let old = std::mem::take(&mut self.slots);
        self.slots.resize_with(slots, Slot::default);
        for s in old.into_iter().filter(|s| s.key() != 0) {
            if let Err(i) = self.find(s.key()) {
                self.slots[i] = s;
            }
        }
    }

    /// Give back the slots the entries do not need.
    pub fn shrink_to_fit(&mut self)
    where
        V: Default,
    {
        if self.len == 0 {
            self.slots = Vec::new();
            return;
        }
        let mut slots = MIN_SLOTS;
        while max_load(slots) < self.len {
            slots = grown(slots);
        }
        if slots < self.slots.len() {
            self.resize(slots);
        }
    }
}

/// Serialized as a map from key to value (the same shape as a `HashMap<u64, V>`).
impl<V: Serialize> Serialize for FlatMap<V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.len))?;
        for (k, v) in self.iter() {
            m.serialize_entry(&k, v)?;
        }
        m.end()
    }
}

impl<'de, V: Deserialize<'de> + Default> Deserialize<'de> for FlatMap<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Entries<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de> + Default> Visitor<'de> for Entries<V> {
            type Value = FlatMap<V>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map of u64 keys")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                let mut m = FlatMap::default();
                while let Some((k, v)) = a.next_entry::<u64, V>()? {
                    match m.entry(k) {
                        Entry::Occupied(slot) => *slot = v,
                        Entry::Vacant(e) => {
                            e.insert(v);
                        }
                    }
                }
                Ok(m)
            }
        }
        d.deserialize_map(Entries(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// The hint names the slot a lookup reads first: the entry's own slot when it is
    /// alone on its probe sequence, the start of its sequence always.
    #[test]
    fn slot_addr_is_where_a_lookup_starts() {
        let mut m: FlatMap<u64> = FlatMap::default();
        assert_eq!(m.slot_addr(7), None, "no table, no hint");
        let slot = std::mem::size_of::<Slot<u64>>();
        for k in 1..=10u64 {
            m.entry(k * 0x9E37_79B9).or_insert(k);
        }
        let mut alone = 0;
        for k in 1..=10u64 {
            let key = k * 0x9E37_79B9;
            let value = std::ptr::from_ref(m.get(key).expect("inserted")) as usize;
            let home = m.slot_addr(key).expect("a table");
            let first = m.slots.as_ptr() as usize;
            assert!((home - first).is_multiple_of(slot) && home - first < m.slots.len() * slot);
            let (h, f) = ((home - first) / slot, (value - first) / slot);
            // The lookup starts at `h`: the key is there, or `h` holds another one.
            assert!(h == f || m.slots[h].key() != 0, "key {k}");
            alone += usize::from(h == f);
        }
        assert!(alone > 0, "some key sits in its home slot");
    }

    /// Against a `HashMap`: inserts, updates, removals by `retain`, shrinks and a serde
    /// round trip, with keys clustered in their low bits and the 0/1 alias.
    #[test]
    fn behaves_as_a_map_under_churn() {
        let mut m: FlatMap<u32> = FlatMap::default();
        let mut want: HashMap<u64, u32> = HashMap::new();
        let mut x: u64 = 11;
        for round in 0..40u32 {
            for _ in 0..500 {
                x = x
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let key = match x >> 61 {
                    0 => x >> 54,         // a small set: many updates
                    1 => (x >> 40) << 20, // low bits all zero
                    _ => x >> 8,
                };
                let key = key.max(1);
                match m.entry(key) {
                    Entry::Occupied(v) => *v += 1,
                    Entry::Vacant(e) => {
                        e.insert(1);
                    }
                }
                *want.entry(key).or_default() += 1;
            }
            let cut = u64::from(round % 7);
            m.retain(|k, v| {
                *v += 1;
                k % 7 != cut
            });
            want.retain(|k, v| {
                *v += 1;
                k % 7 != cut
            });
            if round % 10 == 9 {
                m.shrink_to_fit();
                let json = serde_json::to_string(&m).expect("serialize");
                m = serde_json::from_str(&json).expect("deserialize");
            }
            assert_eq!(m.len(), want.len());
            assert!(m.len() <= m.capacity());
            for (k, v) in &want {
                assert_eq!(m.get(*k), Some(v), "key {k:#x}");
            }
            let got: HashMap<u64, u32> = m.iter().map(|(k, v)| (k, *v)).collect();
            assert_eq!(got, want);
        }
        assert_eq!(m.get(0), m.get(1), "0 is stored as 1");
        m.retain(|_, _| false);
        assert!(m.len() == 0 && m.get(5).is_none());
        m.shrink_to_fit();
        assert_eq!(m.bytes(), 0);
    }
}
