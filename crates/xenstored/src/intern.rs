//! Reference-counted interning of permission lists ([`Interner`]) and of
//! node attributes, a node's (name, permission list) pair ([`Attrs`]).
//!
//! Xenstore trees repeat the same few names (`backend`, `state`, `0`, ...)
//! and permission lists (every node created under a parent copies its list)
//! many times, so a node stores one `u32` attribute id instead of its own
//! copies. This keeps a node at a fixed 28 bytes.

use std::hash::{BuildHasher, Hash, Hasher};

use hashbrown::HashTable;

use crate::arena::Arena;
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

/// Names up to this length live in the slot itself.
const INLINE_NAME: usize = 4;

/// A name of at most [`INLINE_NAME`] bytes as stored in an attribute,
/// for a one-word comparison ([`Attrs::name_is`]).
pub(crate) fn pack_name(name: &[u8]) -> Option<[u8; 4]> {
    // a match, not a copy loop: the loop compiles to a call to memcpy
    Some(match *name {
        [] => [0; 4],
        [a] => [a, 0, 0, 0],
        [a, b] => [a, b, 0, 0],
        [a, b, c] => [a, b, c, 0],
        [a, b, c, d] => [a, b, c, d],
        _ => return None,
    })
}

/// One interned (name, permission list id) pair (16 bytes).
#[derive(Clone, Copy)]
struct AttrSlot {
    /// The name bytes if at most [`INLINE_NAME`] long, else their arena
    /// offset (little endian).
    name: [u8; 4],
    name_len: u16,
    perms: u32,
    /// 0 = free slot.
    refs: u32,
}

/// Interned (name, permissions id) pairs; names live in an [`Arena`].
pub(crate) struct Attrs {
    slots: Vec<AttrSlot>,
    free: Vec<u32>,
    index: HashTable<u32>,
    hasher: FastState,
    names: Arena,
}

impl Attrs {
    pub(crate) fn new() -> Attrs {
        Attrs {
            slots: Vec::new(),
            free: Vec::new(),
            index: HashTable::new(),
            hasher: FastState::new(),
            names: Arena::new(),
        }
    }

    fn key_hash(hasher: &FastState, name: &[u8], perms: u32) -> u64 {
        let mut h = hasher.build_hasher();
        h.write_u32(perms);
        h.write(name);
        h.finish()
    }

    fn slot_name<'a>(names: &'a Arena, s: &'a AttrSlot) -> &'a [u8] {
        let len = usize::from(s.name_len);
        if len <= INLINE_NAME {
            &s.name[..len]
        } else {
            names.get(u32::from_le_bytes(s.name), len)
        }
    }

    /// True if attribute `id` has name `name` (`packed`: the name padded
    /// into 4 bytes if at most 4 long, see [`pack_name`]).
    pub(crate) fn name_is(&self, id: u32, name: &[u8], packed: Option<[u8; 4]>) -> bool {
        let Some(s) = self.slots.get(id as usize) else {
            return false;
        };
        if usize::from(s.name_len) != name.len() {
            return false;
        }
        match packed {
            Some(p) => s.name == p,
            None => self.names.get(u32::from_le_bytes(s.name), name.len()) == name,
        }
    }

    /// The name of attribute `id` (empty for an unknown id).
    pub(crate) fn name(&self, id: u32) -> &[u8] {
        match self.slots.get(id as usize) {
            Some(s) => Self::slot_name(&self.names, s),
            None => &[],
        }
    }

    /// The permission list id of attribute `id`.
    pub(crate) fn perms(&self, id: u32) -> u32 {
        self.slots.get(id as usize).map_or(0, |s| s.perms)
    }

    /// Id of (name, perms), adding one reference. The flag is true if the
    /// pair is new: the caller then holds one more reference to `perms`.
    pub(crate) fn intern(&mut self, name: &[u8], perms: u32) -> (u32, bool) {
        let h = Self::key_hash(&self.hasher, name, perms);
        let (slots, names) = (&self.slots, &self.names);
        let found = self
            .index
            .find(h, |&id| {
                let s = &slots[id as usize];
                s.perms == perms && Self::slot_name(names, s) == name
            })
            .copied();
        if let Some(id) = found {
            let s = &mut self.slots[id as usize];
            s.refs = s.refs.saturating_add(1);
            return (id, false);
        }
        // names are path components: at most a path long (3072 bytes)
        let name_len = u16::try_from(name.len()).unwrap_or(u16::MAX);
        let stored = if name.len() <= INLINE_NAME {
            let mut b = [0u8; 4];
            b[..name.len()].copy_from_slice(name);
            b
        } else {
            self.names.alloc(name).to_le_bytes()
        };
        let slot = AttrSlot {
            name: stored,
            name_len,
            perms,
            refs: 1,
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.slots[id as usize] = slot;
                id
            }
            None => {
                self.slots.push(slot);
                u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
            }
        };
        let (slots, names, hasher) = (&self.slots, &self.names, &self.hasher);
        self.index.insert_unique(h, id, |&other| {
            let s = &slots[other as usize];
            Self::key_hash(hasher, Self::slot_name(names, s), s.perms)
        });
        (id, true)
    }

    /// Drop a reference. When it was the last, the pair is freed and its
    /// permissions id returned (the caller releases its reference to it).
    pub(crate) fn release(&mut self, id: u32) -> Option<u32> {
        let s = self.slots.get_mut(id as usize)?;
        if s.refs == 0 {
            return None;
        }
        s.refs -= 1;
        if s.refs > 0 {
            return None;
        }
        let s = *s;
        let name = Self::slot_name(&self.names, &s);
        let h = Self::key_hash(&self.hasher, name, s.perms);
        if let Ok(e) = self.index.find_entry(h, |&x| x == id) {
            e.remove();
        }
        let len = usize::from(s.name_len);
        if len > INLINE_NAME {
            self.names.free(u32::from_le_bytes(s.name), len);
        }
        self.free.push(id);
        Some(s.perms)
    }

    /// Number of live pairs.
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

    #[test]
    fn attrs_pair_names_with_perms() {
        let mut a = Attrs::new();
        let (x, new) = a.intern(b"state", 1);
        assert!(new);
        assert_eq!(a.intern(b"state", 1), (x, false));
        let (y, new) = a.intern(b"state", 2);
        assert!(new && y != x);
        let (z, _) = a.intern(b"a-much-longer-name", 1);
        assert_eq!(a.name(z), b"a-much-longer-name");
        assert_eq!(a.name(x), b"state");
        assert_eq!(a.perms(y), 2);
        assert_eq!(a.len(), 3);
        assert_eq!(a.release(x), None);
        assert_eq!(a.release(x), Some(1));
        assert_eq!(a.release(z), Some(1));
        assert_eq!(a.len(), 1);
        let (w, new) = a.intern(b"other-long-name", 3);
        assert!(new);
        assert_eq!(a.name(w), b"other-long-name");
        assert_eq!(a.name(y), b"state");
    }
}
