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
/// events then touch no memory beyond the table.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Window {
    head: Recent,
    tail: Vec<Recent>,
}

impl Window {
    pub fn new(first: Recent) -> Self {
        Window {
            head: first,
            tail: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        1 + self.tail.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Recent> {
        std::iter::once(&self.head).chain(&self.tail)
    }

    pub fn find_mut(&mut self, key: u64) -> Option<&mut Recent> {
        if self.head.key == key {
            return Some(&mut self.head);
        }
        self.tail.iter_mut().find(|r| r.key == key)
    }

    pub fn push(&mut self, r: Recent) {
        if self.tail.capacity() == 0 {
            // A second account: room for a family phone, not the default four.
            self.tail.reserve_exact(1);
        }
        self.tail.push(r);
    }

    /// Keep the accounts seen at or after `horizon`; `false` if none is left.
    pub fn retain_since(&mut self, horizon: Ts) -> bool {
        self.tail.retain(|r| r.ts >= horizon);
        if self.head.ts < horizon {
            match self.tail.pop() {
                Some(r) => self.head = r,
                None => return false,
            }
        }
        if self.tail.is_empty() {
            self.tail = Vec::new();
        }
        true
    }

    /// Heap bytes: the tail's slots and the names that do not fit inline.
    pub fn heap_bytes(&self) -> usize {
        self.tail.capacity() * std::mem::size_of::<Recent>()
            + self.iter().map(|r| r.name.heap_bytes()).sum::<usize>()
    }
}

/// Heap bytes one more recent account costs (entry, and the name if it is not inline).
pub fn recent_bytes(name: &Name) -> usize {
    std::mem::size_of::<Recent>() + name.heap_bytes()
}
