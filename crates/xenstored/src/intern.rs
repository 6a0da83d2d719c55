//! Reference-counted interning of node names and permission lists.
//!
//! Xenstore trees repeat the same few names (`backend`, `state`, `0`, ...)
//! and permission lists (every node created under a parent copies its list)
//! many times, so nodes store a `u32` id into an [`Interner`] instead of
//! their own heap copy. This keeps a node at a fixed 48 bytes.

use std::hash::{BuildHasher, Hash};

use hashbrown::HashTable;

use crate::hash::FastState;

struct Slot<K: ?Sized> {
    value: Box<K>,
    refs: u32,
}

/// Interned values of type `K` with reference counts; ids are reused after
/// the last reference goes.
pub(crate) struct Interner<K: ?Sized> {
    slots: Vec<Option<Slot<K>>>,
    free: Vec<u32>,
    index: HashTable<u32>,
    hasher: FastState,
}

impl<K: ?Sized + Hash + Eq> Interner<K>
where
    for<'a> Box<K>: From<&'a K>,
{
    pub(crate) fn new() -> Self {
        Interner {
            slots: Vec::new(),
            free: Vec::new(),
            index: HashTable::new(),
            hasher: FastState::new(),
        }
    }

    /// The value behind `id`. Ids handed out by [`Interner::intern`] stay
    /// valid until released; an unknown id yields `None`.
    pub(crate) fn get(&self, id: u32) -> Option<&K> {
        self.slots
            .get(id as usize)
            .and_then(Option::as_ref)
            .map(|s| &*s.value)
    }

    /// Find `value` without adding a reference.
    pub(crate) fn find(&self, value: &K) -> Option<u32> {
        let h = self.hasher.hash_one(value);
        let slots = &self.slots;
        self.index
            .find(h, |&id| {
                slots
                    .get(id as usize)
                    .and_then(Option::as_ref)
                    .is_some_and(|s| &*s.value == value)
            })
            .copied()
    }

    /// Id of `value`, adding one reference (inserting it if new).
    pub(crate) fn intern(&mut self, value: &K) -> u32 {
        if let Some(id) = self.find(value) {
            self.retain(id);
            return id;
        }
        let slot = Slot {
            value: Box::from(value),
            refs: 1,
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.slots[id as usize] = Some(slot);
                id
            }
            None => {
                self.slots.push(Some(slot));
                u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
            }
        };
        let h = self.hasher.hash_one(value);
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.index.insert_unique(h, id, |&other| {
            slots
                .get(other as usize)
                .and_then(Option::as_ref)
                .map_or(0, |s| hasher.hash_one(&*s.value))
        });
        id
    }

    /// Add a reference to an existing id.
    pub(crate) fn retain(&mut self, id: u32) {
        if let Some(Some(s)) = self.slots.get_mut(id as usize) {
            s.refs = s.refs.saturating_add(1);
        }
    }

    /// Drop a reference; the value is freed with its last reference.
    pub(crate) fn release(&mut self, id: u32) {
        let Some(Some(s)) = self.slots.get_mut(id as usize) else {
            return;
        };
        s.refs -= 1;
        if s.refs > 0 {
            return;
        }
        let h = self.hasher.hash_one(&*s.value);
        if let Ok(e) = self.index.find_entry(h, |&x| x == id) {
            e.remove();
        }
        self.slots[id as usize] = None;
        self.free.push(id);
    }

    /// Number of distinct live values.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interns_and_frees_with_last_reference() {
        let mut i: Interner<str> = Interner::new();
        let a = i.intern("state");
        let b = i.intern("state");
        assert_eq!(a, b);
        assert_eq!(i.get(a), Some("state"));
        let c = i.intern("backend");
        assert_ne!(a, c);
        assert_eq!(i.len(), 2);
        i.release(a);
        assert_eq!(i.get(a), Some("state"));
        i.release(a);
        assert_eq!(i.get(a), None);
        assert_eq!(i.find("state"), None);
        // the id is reused
        let d = i.intern("frontend");
        assert_eq!(d, a);
        assert_eq!(i.find("backend"), Some(c));
    }
}
