//! The watch index (cxenstored `xenstored_watch.c`, WIRE.md §7).
//!
//! A change at path P fires the watches registered at P and at each
//! ancestor of P. Looking each ancestor up by its own string would hash
//! O(depth × length) bytes — quadratic in the path length, which let a
//! guest writing a legal 1000-level path stall the server. Instead a
//! path's key is a hash folded component by component ([`PathHash`]), so
//! one pass over P yields the key of every prefix; the table is probed
//! with each key and a hit is confirmed by comparing the strings. Probes
//! stop below the deepest registered watch. A change therefore costs
//! O(length of P + watches hit), whatever the number of watches.

use std::hash::{BuildHasher, Hasher};

use hashbrown::HashTable;

use crate::ConnId;
use crate::hash::{FastHasher, FastState};

/// One registered watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Watcher {
    /// The connection that registered it.
    pub conn: ConnId,
    /// Its token.
    pub token: Box<str>,
    /// True if it was registered with a relative path (events are then
    /// shown relative to the watcher's home).
    pub relative: bool,
}

/// The folded hash of an absolute path, extended one component at a time.
#[derive(Clone, Copy)]
pub(crate) struct PathHash(FastHasher);

impl PathHash {
    /// The key of `/`.
    pub(crate) fn root(state: &FastState) -> PathHash {
        PathHash(state.build_hasher())
    }

    /// The key of this path plus `/component`.
    pub(crate) fn push(mut self, component: &[u8]) -> PathHash {
        self.0.write(component);
        self
    }

    /// The table key.
    pub(crate) fn key(&self) -> u64 {
        self.0.finish()
    }
}

struct Slot {
    path: Box<str>,
    key: u64,
    depth: usize,
    watchers: Vec<Watcher>,
}

/// All watches, indexed by watched path.
#[derive(Default)]
pub(crate) struct WatchIndex {
    slots: Vec<Option<Slot>>,
    free: Vec<u32>,
    table: HashTable<u32>,
    state: FastState,
    count: usize,
    /// Watches registered at each depth (for the probe cut-off).
    per_depth: Vec<u32>,
}

/// Depth of an absolute path (`/` = 0); special names count as 0.
fn depth(path: &str) -> usize {
    if path == "/" || !path.starts_with('/') {
        0
    } else {
        path.bytes().filter(|&b| b == b'/').count()
    }
}

impl WatchIndex {
    /// The hasher state path keys are built from.
    pub(crate) fn state(&self) -> &FastState {
        &self.state
    }

    /// The key of a registered path: folded per component for absolute
    /// paths, the whole string (after a marker) for `@` names.
    fn key_of(&self, path: &str) -> u64 {
        if let Some(rest) = path.strip_prefix('/') {
            let mut h = PathHash::root(&self.state);
            if !rest.is_empty() {
                for c in rest.split('/') {
                    h = h.push(c.as_bytes());
                }
            }
            h.key()
        } else {
            let mut h = self.state.build_hasher();
            h.write_u8(b'@');
            h.write(path.as_bytes());
            h.finish()
        }
    }

    fn find(&self, key: u64, path: &str) -> Option<u32> {
        let slots = &self.slots;
        self.table
            .find(key, |&i| {
                slots
                    .get(i as usize)
                    .and_then(Option::as_ref)
                    .is_some_and(|s| &*s.path == path)
            })
            .copied()
    }

    /// Register; false if this connection already has (path, token).
    pub(crate) fn add(&mut self, path: &str, w: Watcher) -> bool {
        let key = self.key_of(path);
        let i = match self.find(key, path) {
            Some(i) => i,
            None => {
                let slot = Slot {
                    path: path.into(),
                    key,
                    depth: depth(path),
                    watchers: Vec::new(),
                };
                let i = match self.free.pop() {
                    Some(i) => {
                        self.slots[i as usize] = Some(slot);
                        i
                    }
                    None => {
                        self.slots.push(Some(slot));
                        u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
                    }
                };
                let slots = &self.slots;
                self.table.insert_unique(key, i, |&j| {
                    slots
                        .get(j as usize)
                        .and_then(Option::as_ref)
                        .map_or(0, |s| s.key)
                });
                i
            }
        };
        let Some(Some(slot)) = self.slots.get_mut(i as usize) else {
            return false;
        };
        if slot
            .watchers
            .iter()
            .any(|x| x.conn == w.conn && x.token == w.token)
        {
            return false;
        }
        slot.watchers.push(w);
        let d = slot.depth;
        if self.per_depth.len() <= d {
            self.per_depth.resize(d + 1, 0);
        }
        self.per_depth[d] += 1;
        self.count += 1;
        true
    }

    /// True if the connection has (path, token).
    pub(crate) fn contains(&self, path: &str, conn: ConnId, token: &str) -> bool {
        self.at(path)
            .iter()
            .any(|x| x.conn == conn && &*x.token == token)
    }

    /// Remove one watch; false if absent.
    pub(crate) fn remove(&mut self, path: &str, conn: ConnId, token: &str) -> bool {
        let key = self.key_of(path);
        let Some(i) = self.find(key, path) else {
            return false;
        };
        let Some(Some(slot)) = self.slots.get_mut(i as usize) else {
            return false;
        };
        let before = slot.watchers.len();
        slot.watchers
            .retain(|x| !(x.conn == conn && &*x.token == token));
        let removed = before - slot.watchers.len();
        let d = slot.depth;
        if slot.watchers.is_empty() {
            self.slots[i as usize] = None;
            if let Ok(e) = self.table.find_entry(key, |&x| x == i) {
                e.remove();
            }
            self.free.push(i);
        }
        if let Some(n) = self.per_depth.get_mut(d) {
            *n = n.saturating_sub(removed as u32);
        }
        while self.per_depth.last() == Some(&0) {
            self.per_depth.pop();
        }
        self.count -= removed;
        removed > 0
    }

    /// Watchers registered exactly at `path`.
    pub(crate) fn at(&self, path: &str) -> &[Watcher] {
        self.at_key(self.key_of(path), path)
    }

    /// Watchers registered exactly at `path`, whose key is `key`.
    pub(crate) fn at_key(&self, key: u64, path: &str) -> &[Watcher] {
        match self.find(key, path) {
            Some(i) => self
                .slots
                .get(i as usize)
                .and_then(Option::as_ref)
                .map_or(&[], |s| s.watchers.as_slice()),
            None => &[],
        }
    }

    /// True if no watch is registered at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The deepest depth any watch is registered at (+1; 0 if none).
    pub(crate) fn depth_limit(&self) -> usize {
        self.per_depth.len()
    }

    /// The prefixes of absolute path `p` that hold watches, deepest first,
    /// as byte lengths of `p` (`1` stands for `/`). With `exact`, only `p`
    /// itself. `out` is cleared first. Returns the number of prefixes
    /// looked at (the work done).
    pub(crate) fn matching_prefixes(&self, p: &str, exact: bool, out: &mut Vec<usize>) -> usize {
        out.clear();
        if self.is_empty() || !p.starts_with('/') {
            return 0;
        }
        let limit = self.depth_limit();
        let b = p.as_bytes();
        let mut h = PathHash::root(&self.state);
        let mut d = 0;
        let check = |h: &PathHash, end: usize, d: usize, out: &mut Vec<usize>| {
            if exact && end != b.len() {
                return;
            }
            let prefix = if end == 1 { "/" } else { &p[..end] };
            if self.per_depth.get(d).is_some_and(|&n| n > 0)
                && !self.at_key(h.key(), prefix).is_empty()
            {
                out.push(end);
            }
        };
        check(&h, 1, 0, out);
        let mut at = 1;
        while at < b.len() && d + 1 < limit {
            let end = b[at..]
                .iter()
                .position(|&c| c == b'/')
                .map_or(b.len(), |i| at + i);
            h = h.push(&b[at..end]);
            d += 1;
            check(&h, end, d, out);
            at = end + 1;
        }
        out.reverse();
        d + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(conn: u64, token: &str) -> Watcher {
        Watcher {
            conn: ConnId(conn),
            token: token.into(),
            relative: false,
        }
    }

    fn hits(i: &WatchIndex, p: &str, exact: bool) -> Vec<String> {
        let mut v = Vec::new();
        i.matching_prefixes(p, exact, &mut v);
        v.iter()
            .map(|&e| {
                if e == 1 {
                    "/".into()
                } else {
                    p[..e].to_string()
                }
            })
            .collect()
    }

    #[test]
    fn add_match_remove() {
        let mut i = WatchIndex::default();
        assert!(i.add("/a", w(1, "t")));
        assert!(!i.add("/a", w(1, "t")));
        assert!(i.add("/a", w(1, "u")));
        assert!(i.add("/", w(2, "root")));
        assert!(i.add("/ab", w(3, "no")));
        assert!(i.add("@releaseDomain", w(4, "rel")));
        assert_eq!(hits(&i, "/a/b/c", false), vec!["/a", "/"]);
        assert_eq!(hits(&i, "/ab", false), vec!["/ab", "/"]);
        assert_eq!(hits(&i, "/a/b/c", true), Vec::<String>::new());
        assert_eq!(hits(&i, "/a", true), vec!["/a"]);
        assert_eq!(hits(&i, "/", true), vec!["/"]);
        assert_eq!(i.at("@releaseDomain").len(), 1);
        assert!(i.remove("/a", ConnId(1), "t"));
        assert!(!i.remove("/a", ConnId(1), "t"));
        assert_eq!(i.at("/a").len(), 1);
        assert!(i.contains("/ab", ConnId(3), "no"));
        assert!(i.remove("/a", ConnId(1), "u"));
        assert!(i.at("/a").is_empty());
        assert_eq!(hits(&i, "/a/b", false), vec!["/"]);
    }

    #[test]
    fn deep_paths_cost_linear_work() {
        let mut i = WatchIndex::default();
        let deep: String = "/x".repeat(1000);
        assert!(i.add(&deep[..deep.len() - 2], w(1, "d")));
        assert!(i.add("/x/x", w(1, "e")));
        assert_eq!(hits(&i, &deep, false).len(), 2);
        assert_eq!(hits(&i, &deep, false)[0].len(), deep.len() - 2);
        // a watch deep below does not fire for a shallow change
        assert_eq!(hits(&i, "/x/x/x", false), vec!["/x/x"]);
        // the probe stops at the deepest watch
        i.remove(&deep[..deep.len() - 2], ConnId(1), "d");
        assert_eq!(i.depth_limit(), 3);
    }
}
