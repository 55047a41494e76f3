//! A first-in first-out window of records in fixed-size segments: push at the back, pop at
//! the front, index by position. Its memory follows its length (at most two segments more),
//! without the doubling of one contiguous buffer: a `VecDeque` of half a million texts grows
//! by allocating room for a million while the old buffer is still live, and keeps it.
//!
//! A popped record's slot holds `T::default()` until its whole segment is popped (then the
//! segment is reused). Serialized as a plain sequence, the same shape as a `VecDeque`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::VecDeque;

/// Records per segment.
const SEGMENT: usize = 4096;

/// See the module docs.
#[derive(Debug, Clone)]
pub struct Ring<T> {
    /// Segments of `SEGMENT` slots, filled in order; only the last is partly filled. Record
    /// `i` lies at slot `head + i` counted from the first segment's start.
    segments: VecDeque<Vec<T>>,
    /// Slots of the first segment already popped (left holding `T::default()`).
    head: usize,
    len: usize,
    /// An emptied segment kept for the next one needed (no allocation churn at the boundary).
    spare: Option<Vec<T>>,
}

impl<T> Default for Ring<T> {
    fn default() -> Self {
        Ring {
            segments: VecDeque::new(),
            head: 0,
            len: 0,
            spare: None,
        }
    }
}

impl<T: Default> Ring<T> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn push_back(&mut self, value: T) {
        match self.segments.back_mut() {
            Some(last) if last.len() < SEGMENT => last.push(value),
            _ => {
                let mut seg = self
                    .spare
                    .take()
                    .unwrap_or_else(|| Vec::with_capacity(SEGMENT));
                debug_assert!(seg.is_empty());
                seg.push(value);
                self.segments.push_back(seg);
            }
        }
        self.len += 1;
    }

    pub fn pop_front(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        let first = self.segments.front_mut()?;
        let value = std::mem::take(&mut first[self.head]);
        self.head += 1;
        self.len -= 1;
        if self.head == SEGMENT {
            // Every slot of the first segment was filled and popped: reuse it.
            if let Some(mut seg) = self.segments.pop_front() {
                seg.clear();
                self.spare = Some(seg);
            }
            self.head = 0;
        }
        Some(value)
    }

    pub fn front(&self) -> Option<&T> {
        self.get(0)
    }

    pub fn get(&self, i: usize) -> Option<&T> {
        if i >= self.len {
            return None;
        }
        let p = self.head + i;
        Some(&self.segments[p / SEGMENT][p % SEGMENT])
    }

    pub fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        if i >= self.len {
            return None;
        }
        let p = self.head + i;
        Some(&mut self.segments[p / SEGMENT][p % SEGMENT])
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.segments.iter().flatten().skip(self.head)
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.segments.iter_mut().flatten().skip(self.head)
    }

    /// Records the allocated segments have room for (the spare included).
    pub fn capacity(&self) -> usize {
        self.segments.iter().map(Vec::capacity).sum::<usize>()
            + self.spare.as_ref().map_or(0, Vec::capacity)
    }
}

impl<T: Default> std::ops::Index<usize> for Ring<T> {
    type Output = T;
    fn index(&self, i: usize) -> &T {
        match self.get(i) {
            Some(v) => v,
            None => panic!("ring index {i} out of range (len {})", self.len),
        }
    }
}

impl<T: Default> std::ops::IndexMut<usize> for Ring<T> {
    fn index_mut(&mut self, i: usize) -> &mut T {
        let len = self.len;
        match self.get_mut(i) {
            Some(v) => v,
            None => panic!("ring index {i} out of range (len {len})"),
        }
    }
}

impl<T: Serialize + Default> Serialize for Ring<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de, T: Deserialize<'de> + Default> Deserialize<'de> for Ring<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let items = Vec::<T>::deserialize(d)?;
        let mut ring = Ring::new();
        for v in items {
            ring.push_back(v);
        }
        Ok(ring)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ring against a `VecDeque` under pushes and pops of every rhythm, across segment
    /// boundaries: the same records at the same positions, memory within two segments.
    #[test]
    fn behaves_as_a_deque_and_its_memory_follows_its_length() {
        let (mut ring, mut deque) = (Ring::new(), VecDeque::new());
        let mut x: u64 = 7;
        for step in 0..200_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Phases: grow, churn, drain.
            let push = match (step / 50_000) % 4 {
                0 | 2 => !x.is_multiple_of(4),
                1 => x.is_multiple_of(2),
                _ => x.is_multiple_of(4),
            };
            if push {
                ring.push_back(step);
                deque.push_back(step);
            } else {
                assert_eq!(ring.pop_front(), deque.pop_front());
            }
            assert_eq!(ring.len(), deque.len());
            if step % 997 == 0 && !deque.is_empty() {
                let i = (x as usize) % deque.len();
                assert_eq!(ring[i], deque[i]);
                ring[i] += 1;
                deque[i] += 1;
                assert_eq!(ring.front(), deque.front());
                assert!(ring.capacity() <= ring.len() + 3 * SEGMENT);
            }
        }
        assert!(ring.iter().eq(deque.iter()));
        assert_eq!(ring.get(ring.len()), None);
        let json = serde_json::to_string(&ring).expect("serialize");
        assert_eq!(json, serde_json::to_string(&deque).expect("serialize"));
        let back: Ring<u64> = serde_json::from_str(&json).expect("deserialize");
        assert!(back.iter().eq(deque.iter()));
    }
}
