//! One interface over the two views a request can act on: the live tree,
//! or a transaction's private view of it ([`crate::transaction`]). The
//! request handlers are written once against [`View`].

use xenstore::{DomId, Perm};

use crate::tree::{Tree, components};

/// A removed node: its path and its permissions before removal (watch
/// events for it are filtered with these).
pub(crate) type Removed = (String, Vec<Perm>);

/// Operations on absolute, validated paths. Callers check permissions and
/// quotas first; these only act.
pub(crate) trait View {
    /// Permissions of the node, `None` if absent.
    fn perms(&mut self, path: &str) -> Option<Vec<Perm>>;
    /// Append the node's value to `out`; false if absent.
    fn read_into(&mut self, path: &str, out: &mut Vec<u8>) -> bool;
    /// Child names in order, `None` if absent.
    fn children(&mut self, path: &str) -> Option<Vec<String>>;
    /// Append each child name plus NUL to `out`; false if absent.
    fn children_into(&mut self, path: &str, out: &mut Vec<u8>) -> bool {
        match self.children(path) {
            Some(c) => {
                for n in c {
                    out.extend_from_slice(n.as_bytes());
                    out.push(0);
                }
                true
            }
            None => false,
        }
    }
    /// Generation of the node (DIRECTORY_PART), `None` if absent.
    fn generation(&mut self, path: &str) -> Option<u64>;
    /// Create the node; its parent exists and it does not.
    fn create(&mut self, path: &str, value: &[u8], perms: &[Perm]);
    /// Replace the value of an existing node.
    fn set_value(&mut self, path: &str, value: &[u8]);
    /// Replace the permissions of an existing node.
    fn set_perms(&mut self, path: &str, perms: &[Perm]);
    /// Remove the subtree at an existing node; returns every removed node,
    /// the root first.
    fn remove(&mut self, path: &str, want_paths: bool) -> Vec<Removed>;
    /// Nodes owned by `dom` as this view sees them.
    fn owned_by(&self, dom: DomId) -> u32;
}

/// The perms of the nearest existing ancestor of `path` (or of the node
/// itself if it exists), with the number of missing components.
pub(crate) fn nearest(view: &mut dyn View, path: &str) -> (Vec<Perm>, usize) {
    let mut missing = 0;
    let mut cur = path;
    loop {
        if let Some(p) = view.perms(cur) {
            return (p, missing);
        }
        missing += 1;
        cur = match xenstore::path::parent(cur) {
            Some(p) => p,
            None => return (Vec::new(), missing),
        };
    }
}

/// The live tree.
pub(crate) struct Direct<'a>(pub &'a mut Tree);

impl View for Direct<'_> {
    fn perms(&mut self, path: &str) -> Option<Vec<Perm>> {
        self.0.lookup(path).map(|id| self.0.perms(id).to_vec())
    }

    fn read_into(&mut self, path: &str, out: &mut Vec<u8>) -> bool {
        match self.0.lookup(path) {
            Some(id) => {
                out.extend_from_slice(self.0.value(id));
                true
            }
            None => false,
        }
    }

    fn children(&mut self, path: &str) -> Option<Vec<String>> {
        let id = self.0.lookup(path)?;
        Some(
            self.0
                .children(id)
                .map(|c| self.0.name(c).to_string())
                .collect(),
        )
    }

    fn generation(&mut self, path: &str) -> Option<u64> {
        self.0.lookup(path).map(|id| self.0.generation(id))
    }

    fn children_into(&mut self, path: &str, out: &mut Vec<u8>) -> bool {
        let Some(id) = self.0.lookup(path) else {
            return false;
        };
        for c in self.0.children(id) {
            out.extend_from_slice(self.0.name(c).as_bytes());
            out.push(0);
        }
        true
    }

    fn create(&mut self, path: &str, value: &[u8], perms: &[Perm]) {
        let parent = xenstore::path::parent(path).and_then(|p| self.0.lookup(p));
        if let (Some(parent), Some(name)) = (parent, components(path).last()) {
            self.0.create(parent, name, value, perms);
        }
    }

    fn set_value(&mut self, path: &str, value: &[u8]) {
        if let Some(id) = self.0.lookup(path) {
            self.0.set_value(id, value);
        }
    }

    fn set_perms(&mut self, path: &str, perms: &[Perm]) {
        if let Some(id) = self.0.lookup(path) {
            self.0.set_perms(id, perms);
        }
    }

    fn remove(&mut self, path: &str, want_paths: bool) -> Vec<Removed> {
        let Some(id) = self.0.lookup(path) else {
            return Vec::new();
        };
        let mut out = vec![(path.to_string(), self.0.perms(id).to_vec())];
        if want_paths {
            for d in self.0.subtree(id).into_iter().skip(1) {
                out.push((self.0.path_of(d), self.0.perms(d).to_vec()));
            }
        }
        self.0.remove(id);
        out
    }

    fn owned_by(&self, dom: DomId) -> u32 {
        self.0.owned_by(dom)
    }
}
