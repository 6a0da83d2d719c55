//! The watch index (cxenstored `xenstored_watch.c`, WIRE.md §7).
//!
//! Watches are kept in a map from the watched absolute path to its
//! watchers. A change at path P fires the watches registered at P and at
//! each ancestor of P, so the cost of a change is O(depth of P), not
//! O(number of watches) as in cxenstored's list walk.

use std::collections::HashMap;

use crate::ConnId;
use crate::hash::FastState;

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

/// All watches, indexed by watched path.
#[derive(Default)]
pub(crate) struct WatchIndex {
    by_path: HashMap<Box<str>, Vec<Watcher>, FastState>,
    count: usize,
}

impl WatchIndex {
    /// Register; false if this connection already has (path, token).
    pub(crate) fn add(&mut self, path: &str, w: Watcher) -> bool {
        let list = self.by_path.entry(path.into()).or_default();
        if list.iter().any(|x| x.conn == w.conn && x.token == w.token) {
            return false;
        }
        list.push(w);
        self.count += 1;
        true
    }

    /// True if the connection has (path, token).
    pub(crate) fn contains(&self, path: &str, conn: ConnId, token: &str) -> bool {
        self.by_path
            .get(path)
            .is_some_and(|l| l.iter().any(|x| x.conn == conn && &*x.token == token))
    }

    /// Remove one watch; false if absent.
    pub(crate) fn remove(&mut self, path: &str, conn: ConnId, token: &str) -> bool {
        let Some(list) = self.by_path.get_mut(path) else {
            return false;
        };
        let before = list.len();
        list.retain(|x| !(x.conn == conn && &*x.token == token));
        let removed = before - list.len();
        if list.is_empty() {
            self.by_path.remove(path);
        }
        self.count -= removed;
        removed > 0
    }

    /// Watchers registered exactly at `path`.
    pub(crate) fn at(&self, path: &str) -> &[Watcher] {
        self.by_path.get(path).map_or(&[], Vec::as_slice)
    }

    /// True if no watch is registered at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Watchers at `path` or any of its ancestors, with the path each was
    /// found at (what a change at `path` fires).
    #[cfg(test)]
    pub(crate) fn matching<'a>(&'a self, path: &'a str) -> impl Iterator<Item = &'a Watcher> + 'a {
        ancestors_and_self(path).flat_map(move |p| self.at(p).iter())
    }
}

/// `path`, then each ancestor up to `/` (`/a/b` → `/a/b`, `/a`, `/`).
pub(crate) fn ancestors_and_self(path: &str) -> impl Iterator<Item = &str> {
    let mut next = Some(path);
    std::iter::from_fn(move || {
        let cur = next?;
        next = if cur == "/" || !cur.starts_with('/') {
            None
        } else {
            match cur.rfind('/') {
                Some(0) => Some("/"),
                Some(i) => Some(&cur[..i]),
                None => None,
            }
        };
        Some(cur)
    })
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

    #[test]
    fn ancestors() {
        assert_eq!(
            ancestors_and_self("/a/b").collect::<Vec<_>>(),
            vec!["/a/b", "/a", "/"]
        );
        assert_eq!(ancestors_and_self("/").collect::<Vec<_>>(), vec!["/"]);
        assert_eq!(
            ancestors_and_self("@releaseDomain").collect::<Vec<_>>(),
            vec!["@releaseDomain"]
        );
    }

    #[test]
    fn add_match_remove() {
        let mut i = WatchIndex::default();
        assert!(i.add("/a", w(1, "t")));
        assert!(!i.add("/a", w(1, "t")));
        assert!(i.add("/a", w(1, "u")));
        assert!(i.add("/", w(2, "root")));
        assert!(i.add("/ab", w(3, "no")));
        let hits: Vec<&str> = i.matching("/a/b/c").map(|x| &*x.token).collect();
        assert_eq!(hits, vec!["t", "u", "root"]);
        assert!(i.remove("/a", ConnId(1), "t"));
        assert!(!i.remove("/a", ConnId(1), "t"));
        assert_eq!(i.matching("/a").count(), 2);
        assert!(i.contains("/ab", ConnId(3), "no"));
    }
}
