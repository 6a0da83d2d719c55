//! Transactions (cxenstored 4.17 `xenstored_transaction.c`, WIRE.md §8).
//!
//! A transaction is an overlay over the live tree: every node it reads or
//! writes is recorded with the generation it had in the tree at first
//! access (or as absent), and nodes it changes get a private copy. Commit
//! fails with `EAGAIN` if any recorded node changed in the tree since
//! (unrelated changes do not conflict); creating or removing a node also
//! changes its parent's child list, so it records the parent too. Watch
//! events are queued and fired only by a successful commit.

use std::collections::HashMap;

use xenstore::{DomId, Perm, XsErrno};

use crate::hash::FastState;
use crate::store::{Removed, View};
use crate::tree::{Tree, components};

/// A node as a transaction changed it.
#[derive(Debug, Clone)]
struct TxNode {
    value: Vec<u8>,
    perms: Vec<Perm>,
    children: Vec<String>,
}

#[derive(Debug)]
enum State {
    /// Not changed: the tree's node (or its absence) is what we see.
    Same,
    /// Removed in this transaction.
    Deleted,
    /// Created or changed in this transaction.
    Present(TxNode),
}

#[derive(Debug)]
struct Entry {
    /// Generation in the tree at first access; `None` = absent then.
    base: Option<u64>,
    state: State,
}

/// A queued watch event: path, exact-match only (RM descendants), perms.
pub(crate) type PendingEvent = (String, bool, Vec<Perm>);

/// One open transaction.
#[derive(Debug, Default)]
pub(crate) struct Transaction {
    entries: HashMap<String, Entry, FastState>,
    /// Events to fire if the commit succeeds.
    pub events: Vec<PendingEvent>,
    owner_delta: HashMap<u16, i64, FastState>,
}

impl Transaction {
    /// Number of nodes this transaction has touched.
    pub(crate) fn touched(&self) -> usize {
        self.entries.len()
    }

    fn record(&mut self, tree: &Tree, path: &str) -> &mut Entry {
        if !self.entries.contains_key(path) {
            let base = tree.lookup(path).map(|id| tree.generation(id));
            self.entries.insert(
                path.to_string(),
                Entry {
                    base,
                    state: State::Same,
                },
            );
        }
        // just inserted or already present
        self.entries.get_mut(path).unwrap_or_else(|| unreachable!())
    }

    /// Make the transaction's own copy of an existing node.
    fn own(&mut self, tree: &Tree, path: &str) -> Option<&mut TxNode> {
        let e = self.record(tree, path);
        if let State::Same = e.state {
            let id = tree.lookup(path)?;
            e.state = State::Present(TxNode {
                value: tree.value(id).to_vec(),
                perms: tree.perms(id).to_vec(),
                children: tree
                    .children(id)
                    .map(|c| tree.name(c).to_string())
                    .collect(),
            });
        }
        match &mut e.state {
            State::Present(n) => Some(n),
            State::Same | State::Deleted => None,
        }
    }

    fn count_owner(&mut self, perms: &[Perm], delta: i64) {
        if let Some(o) = perms.first() {
            *self.owner_delta.entry(o.domid.0).or_insert(0) += delta;
        }
    }

    /// Check every recorded node against the tree, then apply the changes.
    /// On `Err(EAGAIN)` nothing was applied.
    pub(crate) fn commit(self, tree: &mut Tree) -> Result<Vec<PendingEvent>, XsErrno> {
        for (path, e) in &self.entries {
            let now = tree.lookup(path).map(|id| tree.generation(id));
            if now != e.base {
                return Err(XsErrno::Eagain);
            }
        }
        let mut deleted: Vec<&str> = Vec::new();
        let mut present: Vec<(&str, &TxNode)> = Vec::new();
        for (path, e) in &self.entries {
            match &e.state {
                State::Same => {}
                State::Deleted => deleted.push(path),
                State::Present(n) => present.push((path, n)),
            }
        }
        let depth = |p: &str| components(p).count();
        deleted.sort_by_key(|p| depth(p));
        for p in deleted {
            if let Some(id) = tree.lookup(p) {
                tree.remove(id);
            }
        }
        // Create shallow nodes first and siblings in the order the
        // transaction created them (its copy of the parent's child list),
        // so DIRECTORY keeps creation order.
        let mut order: HashMap<&str, HashMap<&str, usize, FastState>, FastState> =
            HashMap::default();
        for (p, n) in &present {
            order.insert(
                p,
                n.children
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (c.as_str(), i))
                    .collect(),
            );
        }
        let position = |p: &str| -> usize {
            let parent = xenstore::path::parent(p).unwrap_or("/");
            let name = components(p).last().unwrap_or("");
            order
                .get(parent)
                .and_then(|m| m.get(name))
                .copied()
                .unwrap_or(0)
        };
        present.sort_by_cached_key(|(p, _)| (depth(p), position(p)));
        for (p, n) in present {
            match tree.lookup(p) {
                Some(id) => {
                    if tree.value(id) != n.value.as_slice() {
                        tree.set_value(id, &n.value);
                    }
                    if tree.perms(id) != n.perms.as_slice() {
                        tree.set_perms(id, &n.perms);
                    }
                }
                None => {
                    let parent = xenstore::path::parent(p).and_then(|pp| tree.lookup(pp));
                    if let (Some(parent), Some(name)) = (parent, components(p).last()) {
                        tree.create(parent, name, &n.value, &n.perms);
                    }
                }
            }
        }
        Ok(self.events)
    }
}

/// A transaction's view of the tree.
pub(crate) struct TxView<'a> {
    pub tree: &'a Tree,
    pub tx: &'a mut Transaction,
}

enum Look<'a> {
    Absent,
    Tx(&'a TxNode),
}

impl TxView<'_> {
    /// The transaction's view of a node. The first access takes a copy, so
    /// later reads see the node as it was then even if it changes outside
    /// (the commit will then fail; Xen's test-xenstore "ta err" checks this).
    fn look(&mut self, path: &str) -> Look<'_> {
        match self.tx.own(self.tree, path) {
            Some(n) => Look::Tx(n),
            None => Look::Absent,
        }
    }
}

impl View for TxView<'_> {
    fn perms(&mut self, path: &str) -> Option<Vec<Perm>> {
        match self.look(path) {
            Look::Absent => None,
            Look::Tx(n) => Some(n.perms.clone()),
        }
    }

    fn read_into(&mut self, path: &str, out: &mut Vec<u8>) -> bool {
        match self.look(path) {
            Look::Absent => false,
            Look::Tx(n) => {
                out.extend_from_slice(&n.value);
                true
            }
        }
    }

    fn children(&mut self, path: &str) -> Option<Vec<String>> {
        match self.look(path) {
            Look::Absent => None,
            Look::Tx(n) => Some(n.children.clone()),
        }
    }

    fn generation(&mut self, path: &str) -> Option<u64> {
        match self.look(path) {
            Look::Absent => None,
            Look::Tx(_) => Some(self.tx.entries.get(path).and_then(|e| e.base).unwrap_or(0)),
        }
    }

    fn create(&mut self, path: &str, value: &[u8], perms: &[Perm]) {
        let tree = self.tree;
        let Some(parent) = xenstore::path::parent(path) else {
            return;
        };
        let name = components(path).last().unwrap_or("").to_string();
        if let Some(p) = self.tx.own(tree, parent) {
            p.children.push(name);
        }
        let e = self.tx.record(tree, path);
        e.state = State::Present(TxNode {
            value: value.to_vec(),
            perms: perms.to_vec(),
            children: Vec::new(),
        });
        self.tx.count_owner(perms, 1);
    }

    fn set_value(&mut self, path: &str, value: &[u8]) {
        if let Some(n) = self.tx.own(self.tree, path) {
            n.value = value.to_vec();
        }
    }

    fn set_perms(&mut self, path: &str, perms: &[Perm]) {
        let old = match self.tx.own(self.tree, path) {
            Some(n) => std::mem::replace(&mut n.perms, perms.to_vec()),
            None => return,
        };
        self.tx.count_owner(&old, -1);
        self.tx.count_owner(perms, 1);
    }

    fn remove(&mut self, path: &str, _want_paths: bool) -> Vec<Removed> {
        let mut out: Vec<Removed> = Vec::new();
        let mut stack = vec![path.to_string()];
        while let Some(p) = stack.pop() {
            let Some(perms) = self.perms(&p) else {
                continue;
            };
            for c in self.children(&p).unwrap_or_default() {
                stack.push(xenstore::path::join(&p, &c));
            }
            self.tx.count_owner(&perms, -1);
            self.tx.record(self.tree, &p).state = State::Deleted;
            out.push((p, perms));
        }
        if let Some(parent) = xenstore::path::parent(path) {
            let name = components(path).last().unwrap_or("");
            if let Some(pn) = self.tx.own(self.tree, parent) {
                pn.children.retain(|c| c != name);
            }
        }
        out
    }

    fn owned_by(&self, dom: DomId) -> u32 {
        let d = self.tx.owner_delta.get(&dom.0).copied().unwrap_or(0);
        u32::try_from((i64::from(self.tree.owned_by(dom)) + d).max(0)).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Direct;
    use xenstore::Access;

    fn n0() -> Vec<Perm> {
        vec![Perm::new(Access::None, DomId(0))]
    }

    fn read(v: &mut dyn View, p: &str) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        v.read_into(p, &mut out).then_some(out)
    }

    #[test]
    fn sees_own_writes_and_commits() {
        let mut tree = Tree::new();
        Direct(&mut tree).create("/a", b"1", &n0());
        let mut tx = Transaction::default();
        {
            let mut v = TxView {
                tree: &tree,
                tx: &mut tx,
            };
            v.set_value("/a", b"2");
            v.create("/a/b", b"x", &n0());
            assert_eq!(read(&mut v, "/a").unwrap(), b"2");
            assert_eq!(v.children("/a").unwrap(), vec!["b"]);
        }
        assert_eq!(read(&mut Direct(&mut tree), "/a").unwrap(), b"1");
        assert!(read(&mut Direct(&mut tree), "/a/b").is_none());
        tx.commit(&mut tree).unwrap();
        assert_eq!(read(&mut Direct(&mut tree), "/a").unwrap(), b"2");
        assert_eq!(read(&mut Direct(&mut tree), "/a/b").unwrap(), b"x");
    }

    #[test]
    fn conflict_only_on_touched_nodes() {
        let mut tree = Tree::new();
        Direct(&mut tree).create("/a", b"1", &n0());
        Direct(&mut tree).create("/u", b"1", &n0());
        // unrelated outside write: commit succeeds
        let mut tx = Transaction::default();
        let _ = read(
            &mut TxView {
                tree: &tree,
                tx: &mut tx,
            },
            "/a",
        );
        TxView {
            tree: &tree,
            tx: &mut tx,
        }
        .set_value("/a", b"mine");
        Direct(&mut tree).set_value("/u", b"2");
        assert!(tx.commit(&mut tree).is_ok());
        // outside write to a node the tx read: EAGAIN, nothing applied
        let mut tx = Transaction::default();
        let _ = read(
            &mut TxView {
                tree: &tree,
                tx: &mut tx,
            },
            "/a",
        );
        TxView {
            tree: &tree,
            tx: &mut tx,
        }
        .set_value("/u", b"tx");
        Direct(&mut tree).set_value("/a", b"other");
        assert_eq!(tx.commit(&mut tree).unwrap_err(), XsErrno::Eagain);
        assert_eq!(read(&mut Direct(&mut tree), "/u").unwrap(), b"2");
    }

    #[test]
    fn reads_see_the_snapshot_of_first_access() {
        let mut tree = Tree::new();
        Direct(&mut tree).create("/a", b"a", &n0());
        let mut tx = Transaction::default();
        assert_eq!(
            read(
                &mut TxView {
                    tree: &tree,
                    tx: &mut tx
                },
                "/a"
            )
            .unwrap(),
            b"a"
        );
        Direct(&mut tree).set_value("/a", b"b");
        assert_eq!(
            read(
                &mut TxView {
                    tree: &tree,
                    tx: &mut tx
                },
                "/a"
            )
            .unwrap(),
            b"a"
        );
        assert_eq!(tx.commit(&mut tree).unwrap_err(), XsErrno::Eagain);
    }

    #[test]
    fn commit_keeps_creation_order_of_siblings() {
        let mut tree = Tree::new();
        let mut tx = Transaction::default();
        {
            let mut v = TxView {
                tree: &tree,
                tx: &mut tx,
            };
            v.create("/b", b"", &n0());
            for c in ["x", "y", "a", "q", "m", "c", "z", "k"] {
                v.create(&format!("/b/{c}"), b"", &n0());
            }
        }
        tx.commit(&mut tree).unwrap();
        assert_eq!(
            Direct(&mut tree).children("/b").unwrap(),
            vec!["x", "y", "a", "q", "m", "c", "z", "k"]
        );
    }

    #[test]
    fn creating_siblings_in_two_transactions_conflicts() {
        let mut tree = Tree::new();
        Direct(&mut tree).create("/p", b"", &n0());
        let mut t1 = Transaction::default();
        let mut t2 = Transaction::default();
        TxView {
            tree: &tree,
            tx: &mut t1,
        }
        .create("/p/a", b"", &n0());
        TxView {
            tree: &tree,
            tx: &mut t2,
        }
        .create("/p/b", b"", &n0());
        assert!(t1.commit(&mut tree).is_ok());
        assert_eq!(t2.commit(&mut tree).unwrap_err(), XsErrno::Eagain);
    }

    #[test]
    fn remove_then_recreate_inside_transaction() {
        let mut tree = Tree::new();
        Direct(&mut tree).create("/a", b"old", &n0());
        Direct(&mut tree).create("/a/x", b"", &n0());
        let mut tx = Transaction::default();
        {
            let mut v = TxView {
                tree: &tree,
                tx: &mut tx,
            };
            let removed = v.remove("/a", true);
            assert_eq!(removed.len(), 2);
            assert!(v.perms("/a/x").is_none());
            v.create("/a", b"", &n0());
            v.create("/a/b", b"new", &n0());
            assert_eq!(v.children("/a").unwrap(), vec!["b"]);
        }
        tx.commit(&mut tree).unwrap();
        assert!(tree.lookup("/a/x").is_none());
        assert_eq!(read(&mut Direct(&mut tree), "/a/b").unwrap(), b"new");
        assert_eq!(read(&mut Direct(&mut tree), "/a").unwrap(), b"");
    }
}
