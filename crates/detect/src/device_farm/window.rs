//! The accounts seen on one device within the sliding window: a short list searched by key.

use crate::name::Name;
use levee_model::Ts;
use serde::{Deserialize, Serialize};

/// One account seen on a device, with its last event time.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Recent {
    pub key: u64,
    pub ts: Ts,
    /// Read only when the device becomes crowded.
    pub name: Name,
}

/// The accounts of one device: never empty (a device whose window empties is dropped).
/// The first lies in the device's own slot: most devices carry one account, and their
/// events then touch no memory beyond the table; the rest, if any, behind one pointer
/// (8 bytes in the slot, not a `Vec`'s 24).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Window {
    head: Recent,
    // A boxed `Vec` on purpose: 8 bytes in the slot (a boxed slice is 16, a `Vec` 24).
    #[allow(clippy::box_collection)]
    tail: Option<Box<Vec<Recent>>>,
}

impl Window {
    pub fn new(first: Recent) -> Self {
        Window {
            head: first,
            tail: None,
        }
    }

    fn tail(&self) -> &[Recent] {
        self.tail.as_deref().map_or(&[], Vec::as_slice)
    }

    pub fn len(&self) -> usize {
        1 + self.tail().len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Recent> {
        std::iter::once(&self.head).chain(self.tail())
    }

    pub fn find_mut(&mut self, key: u64) -> Option<&mut Recent> {
        if self.head.key == key {
            return Some(&mut self.head);
        }
        self.tail.as_mut()?.iter_mut().find(|r| r.key == key)
    }

    pub fn push(&mut self, r: Recent) {
        // A second account: room for a family phone, not the default four.
        self.tail
            .get_or_insert_with(|| Box::new(Vec::with_capacity(1)))
            .push(r);
    }

    /// Keep the accounts seen at or after `horizon`; `false` if none is left.
    pub fn retain_since(&mut self, horizon: Ts) -> bool {
        if let Some(tail) = self.tail.as_mut() {
            tail.retain(|r| r.ts >= horizon);
        }
        if self.head.ts < horizon {
            match self.tail.as_mut().and_then(|t| t.pop()) {
                Some(r) => self.head = r,
                None => return false,
            }
        }
        if self.tail.as_ref().is_some_and(|t| t.is_empty()) {
            self.tail = None;
        }
        true
    }

    /// Heap bytes: the tail (its box and slots) and the names that do not fit inline.
    pub fn heap_bytes(&self) -> usize {
        self.tail.as_ref().map_or(0, |t| {
            std::mem::size_of::<Vec<Recent>>() + t.capacity() * std::mem::size_of::<Recent>()
        }) + self.iter().map(|r| r.name.heap_bytes()).sum::<usize>()
    }
}

/// Heap bytes one more recent account costs (entry, and the name if it is not inline).
pub fn recent_bytes(name: &Name) -> usize {
    std::mem::size_of::<Recent>() + name.heap_bytes()
}
