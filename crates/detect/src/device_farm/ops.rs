//! Operations: crowded devices joined by the accounts and private addresses they share.
//!
//! A union-find over crowded devices. Each device that crowds opens an operation; an
//! account seen in two operations, or a private address used by two, merges them. The
//! root keeps everything (devices, addresses, members); a merged operation becomes a
//! redirect to its root. The older operation is always the root, so an operation's
//! finding (and alert id) survives merges.

use crate::name::Name;
use levee_model::Ts;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Addresses listed per operation; beyond it, not listed (they still link).
const MAX_ADDRS: usize = 32;

/// One account of an operation.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Member {
    pub name: Name,
    /// The first crowded device it was seen on.
    first_device: u64,
    /// Seen on more than one of the operation's devices (logins rotating over a pool).
    pub rotates: bool,
}

/// One operation; see the module docs.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Op {
    /// Its own id while a root; else the operation it was merged into.
    parent: u64,
    /// Crowded devices, in the order they joined.
    pub devices: Vec<(u64, Name)>,
    /// Private addresses that linked devices, by key (at most [`MAX_ADDRS`] listed).
    pub addrs: Vec<(u64, Name)>,
    pub members: FxHashMap<u64, Member>,
    pub rotating: usize,
    pub start: Ts,
    pub last: Ts,
    /// Events of its members on its devices.
    pub events: u64,
    /// Its finding, once it qualified.
    pub finding: Option<u64>,
    /// Members were merged in from another operation since the last report.
    pub merged: bool,
}

/// Why an account was not added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The operation is at `max_members`.
    Full,
}

/// Every operation, by id (opening order).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Ops {
    items: BTreeMap<u64, Op>,
    next: u64,
    /// Account -> the operation it was last added to (resolved through [`Ops::root`]).
    accounts: FxHashMap<u64, u64>,
    /// Members across roots (kept as they change, for the byte count).
    members: usize,
}

impl Ops {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    #[cfg(test)]
    pub fn get(&self, id: u64) -> Option<&Op> {
        self.items.get(&id)
    }

    pub fn get_mut(&mut self, id: u64) -> Option<&mut Op> {
        self.items.get_mut(&id)
    }

    /// The root of `id`, or `None` if it was forgotten.
    pub fn root(&self, mut id: u64) -> Option<u64> {
        loop {
            let op = self.items.get(&id)?;
            if op.parent == id {
                return Some(id);
            }
            debug_assert!(op.parent < id, "the older operation is the root");
            id = op.parent;
        }
    }

    /// Open an operation for a device that just crowded.
    pub fn open(&mut self, device: u64, name: &str, start: Ts, now: Ts) -> u64 {
        let id = self.next;
        self.next += 1;
        self.items.insert(
            id,
            Op {
                parent: id,
                devices: vec![(device, Name::from(name))],
                start,
                last: now,
                ..Op::default()
            },
        );
        id
    }

    /// Merge roots `a` and `b`; the older is the root. Returns it.
    pub fn union(&mut self, a: u64, b: u64) -> u64 {
        debug_assert!(self.root(a) == Some(a) && self.root(b) == Some(b));
        if a == b {
            return a;
        }
        let (root, child) = (a.min(b), a.max(b));
        let Some(c) = self.items.get_mut(&child) else {
            return root;
        };
        let finding = c.finding;
        let c = std::mem::replace(
            c,
            Op {
                parent: root,
                finding,
                ..Op::default()
            },
        );
        let Some(r) = self.items.get_mut(&root) else {
            return root;
        };
        for d in c.devices {
            if !r.devices.iter().any(|(k, _)| *k == d.0) {
                r.devices.push(d);
            }
        }
        for a in c.addrs {
            if r.addrs.len() < MAX_ADDRS && !r.addrs.iter().any(|(k, _)| *k == a.0) {
                r.addrs.push(a);
            }
        }
        for (k, m) in c.members {
            match r.members.get_mut(&k) {
                Some(mine) => {
                    if !mine.rotates && (m.rotates || m.first_device != mine.first_device) {
                        mine.rotates = true;
                        r.rotating += 1;
                    }
                    self.members -= 1;
                }
                None => {
                    r.rotating += usize::from(m.rotates);
                    r.members.insert(k, m);
                }
            }
        }
        r.start = r.start.min(c.start);
        r.last = r.last.max(c.last);
        r.events += c.events;
        r.merged = true;
        root
    }

    /// Add `account` (seen on `device`) to root `id`, merging the operation it was in
    /// before. Returns the root after any merge, and whether the account is new to it.
    pub fn join(
        &mut self,
        id: u64,
        account: u64,
        name: &str,
        device: u64,
        max_members: usize,
    ) -> Result<(u64, bool), Refused> {
        let mut root = id;
        if let Some(other) = self.accounts.get(&account).and_then(|&o| self.root(o)) {
            root = self.union(root, other);
        }
        let Some(op) = self.items.get_mut(&root) else {
            return Ok((root, false));
        };
        let full = op.members.len() >= max_members;
        let fresh = match op.members.get_mut(&account) {
            Some(m) => {
                if !m.rotates && m.first_device != device {
                    m.rotates = true;
                    op.rotating += 1;
                }
                false
            }
            None if full => return Err(Refused::Full),
            None => {
                op.members.insert(
                    account,
                    Member {
                        name: Name::from(name),
                        first_device: device,
                        rotates: false,
                    },
                );
                self.members += 1;
                true
            }
        };
        self.accounts.insert(account, root);
        Ok((root, fresh))
    }

    /// Note an address of root `id` (listed up to a bound).
    pub fn add_addr(&mut self, id: u64, key: u64, ip: impl FnOnce() -> String) {
        if let Some(op) = self.items.get_mut(&id) {
            if op.addrs.len() < MAX_ADDRS && !op.addrs.iter().any(|(k, _)| *k == key) {
                op.addrs.push((key, Name::from(ip().as_str())));
            }
        }
    }

    /// Forget operations whose last event is before `horizon`, with everything merged
    /// into them and the accounts that pointed at them.
    pub fn sweep(&mut self, horizon: Ts) {
        let gone: Vec<u64> = self
            .items
            .iter()
            .filter(|(id, op)| op.parent == **id && op.last < horizon)
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            self.items.remove(&id);
        }
        // Redirects whose root is gone; ids ascend and parents are older, so one pass
        // in id order settles every chain.
        let ids: Vec<u64> = self.items.keys().copied().collect();
        for id in ids {
            let parent = self.items.get(&id).map_or(id, |op| op.parent);
            if parent != id && !self.items.contains_key(&parent) {
                self.items.remove(&id);
            }
        }
        let items = &self.items;
        self.accounts.retain(|_, op| items.contains_key(op));
        self.members = self.items.values().map(|op| op.members.len()).sum();
    }

    /// Approximate heap bytes.
    pub fn bytes(&self) -> u64 {
        let member = std::mem::size_of::<(u64, Member)>() + 1;
        let op = std::mem::size_of::<(u64, Op)>() + 16;
        (self.items.len() * op
            + self.members * member
            + self.accounts.capacity() * (std::mem::size_of::<(u64, u64)>() + 1)) as u64
    }

    pub fn members(&self) -> usize {
        self.members
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_account_merges_into_the_older_operation() {
        let mut ops = Ops::default();
        let a = ops.open(1, "d1", 0, 0);
        let b = ops.open(2, "d2", 5, 5);
        assert_eq!(ops.join(a, 10, "u10", 1, 100), Ok((a, true)));
        assert_eq!(ops.join(b, 11, "u11", 2, 100), Ok((b, true)));
        // u10 shows up on d2: the two operations are one, rooted at the older.
        assert_eq!(ops.join(b, 10, "u10", 2, 100), Ok((a, false)));
        assert_eq!(ops.root(b), Some(a));
        let op = ops.get(a).expect("root");
        assert_eq!(op.devices.len(), 2);
        assert_eq!(op.members.len(), 2);
        assert_eq!(op.rotating, 1, "u10 rotates between the devices");
        assert_eq!(ops.members(), 2);
    }

    #[test]
    fn sweeping_forgets_idle_roots_their_redirects_and_accounts() {
        let mut ops = Ops::default();
        let a = ops.open(1, "d1", 0, 0);
        let b = ops.open(2, "d2", 0, 0);
        let c = ops.open(3, "d3", 0, 100);
        ops.join(a, 10, "u10", 1, 100).ok();
        ops.join(b, 10, "u10", 2, 100).ok();
        ops.join(c, 11, "u11", 3, 100).ok();
        ops.sweep(50);
        assert_eq!(ops.len(), 1, "a and its redirect b are gone");
        assert_eq!(ops.root(c), Some(c));
        assert_eq!(ops.members(), 1);
        // u10 starts afresh.
        let d = ops.open(4, "d4", 60, 60);
        assert_eq!(ops.join(d, 10, "u10", 4, 100), Ok((d, true)));
    }

    #[test]
    fn a_full_operation_refuses_newcomers() {
        let mut ops = Ops::default();
        let a = ops.open(1, "d1", 0, 0);
        assert!(ops.join(a, 1, "u1", 1, 1).is_ok());
        assert_eq!(ops.join(a, 2, "u2", 1, 1), Err(Refused::Full));
    }
}
