//! One interface over the two views a request can act on: the live tree
//! ([`Direct`]), or a transaction's private view of it
//! ([`crate::transaction::TxView`]). The request handlers in
//! [`crate::ops`] are written once, generically, against [`View`].
//!
//! A request walks its path once ([`View::walk`]) and then works on
//! handles, so its cost is linear in the length of the path.

use xenstore::{DomId, Perm, XsErrno};

use crate::transaction::PendingEvent;
use crate::tree::{NodeId, Tree, Usage};
use crate::watch::{PathHash, WatchIndex};

/// How far a path exists in a view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Walked<H> {
    /// The node, if it exists.
    pub node: Option<H>,
    /// The deepest existing node on the path (the node itself if found).
    pub deepest: H,
    /// Byte offset in the path of the first missing component.
    pub rest: usize,
}

/// Operations on handles of a view. Callers check permissions and quotas
/// first; these only act. Paths are absolute and validated.
pub(crate) trait View {
    /// A node of this view.
    type H: Copy + PartialEq + std::fmt::Debug;
    /// Walk the path as far as it exists (records nothing).
    fn walk(&mut self, path: &str) -> Walked<Self::H>;
    /// Record the first access to an existing node (a transaction checks
    /// it at commit and keeps a snapshot). `ENOSPC` past the transaction's
    /// node limit, `ENOMEM` past the memory quota.
    fn touch(&mut self, h: Self::H) -> Result<(), XsErrno>;
    /// Record that `parent` has no child `name`.
    fn touch_absent(&mut self, parent: Self::H, name: &[u8]) -> Result<(), XsErrno>;
    /// How many more nodes this view may record (the per-transaction
    /// limit; unlimited outside transactions).
    fn room(&self) -> usize;
    /// Charge `bytes` against the caller's memory quota (`ENOMEM`).
    fn reserve(&mut self, bytes: u64) -> Result<(), XsErrno>;
    /// The node's parent in this view (`None` for the root).
    fn parent_of(&self, h: Self::H) -> Option<Self::H>;
    /// The node's permissions.
    fn perms(&self, h: Self::H) -> &[Perm];
    /// The node's value.
    fn value(&self, h: Self::H) -> &[u8];
    /// The node's generation (DIRECTORY_PART).
    fn generation(&self, h: Self::H) -> u64;
    /// Call `f` with each child name in order until it returns false.
    fn list_children(&self, h: Self::H, f: &mut dyn FnMut(&[u8]) -> bool);
    /// Call `f(position, name)` for children in order until it returns
    /// false, position being the name's byte offset in the DIRECTORY_PART
    /// list; it may start at any child at or before byte `from`.
    fn list_children_from(
        &mut self,
        h: Self::H,
        from: usize,
        f: &mut dyn FnMut(usize, &[u8]) -> bool,
    ) {
        let _ = from;
        let mut pos = 0;
        self.list_children(h, &mut |name| {
            let go = f(pos, name);
            pos += name.len() + 1;
            go
        });
    }
    /// Replace a node's value.
    fn set_value(&mut self, h: Self::H, value: &[u8]);
    /// Replace a node's permissions.
    fn set_perms(&mut self, h: Self::H, perms: &[Perm]);
    /// Create child `name` of `parent` (absent in this view).
    fn create(&mut self, parent: Self::H, name: &[u8], value: &[u8], perms: &[Perm]) -> Self::H;
    /// Nodes in the subtree at `h`, counting at most `limit + 1`.
    fn subtree_size(&self, h: Self::H, limit: usize) -> usize;
    /// Remove the subtree at `h` (whose absolute path is `path`). Events
    /// go to `events`: the root with `exact = false`, then each removed
    /// descendant that may have a watch of its own.
    fn remove(
        &mut self,
        h: Self::H,
        path: &str,
        watches: &WatchIndex,
        events: &mut Vec<PendingEvent>,
    );
    /// Nodes and bytes `dom` owns as this view sees them.
    fn usage(&self, dom: DomId) -> Usage;
}

/// The live tree, with the memory the caller may still use.
pub(crate) struct Direct<'a> {
    /// The tree.
    pub tree: &'a mut Tree,
    /// Bytes the caller may add before `ENOMEM` (`u64::MAX`: no quota).
    pub budget: u64,
}

impl<'a> Direct<'a> {
    /// A view with no memory quota.
    #[cfg(test)]
    pub(crate) fn unlimited(tree: &'a mut Tree) -> Direct<'a> {
        Direct {
            tree,
            budget: u64::MAX,
        }
    }
}

impl View for Direct<'_> {
    type H = NodeId;

    fn walk(&mut self, path: &str) -> Walked<NodeId> {
        let w = self.tree.walk(path);
        Walked {
            node: w.node,
            deepest: w.deepest,
            rest: w.rest,
        }
    }

    fn touch(&mut self, _h: NodeId) -> Result<(), XsErrno> {
        Ok(())
    }

    fn touch_absent(&mut self, _parent: NodeId, _name: &[u8]) -> Result<(), XsErrno> {
        Ok(())
    }

    fn room(&self) -> usize {
        usize::MAX
    }

    fn reserve(&mut self, bytes: u64) -> Result<(), XsErrno> {
        if bytes > self.budget {
            return Err(XsErrno::Enomem);
        }
        self.budget -= bytes;
        Ok(())
    }

    fn parent_of(&self, h: NodeId) -> Option<NodeId> {
        self.tree.parent(h)
    }

    fn perms(&self, h: NodeId) -> &[Perm] {
        self.tree.perms(h)
    }

    fn value(&self, h: NodeId) -> &[u8] {
        self.tree.value(h)
    }

    fn generation(&self, h: NodeId) -> u64 {
        self.tree.generation(h)
    }

    fn list_children(&self, h: NodeId, f: &mut dyn FnMut(&[u8]) -> bool) {
        for c in self.tree.children(h) {
            self.tree.charge(1);
            if !f(self.tree.name(c)) {
                break;
            }
        }
    }

    fn list_children_from(
        &mut self,
        h: NodeId,
        from: usize,
        f: &mut dyn FnMut(usize, &[u8]) -> bool,
    ) {
        self.tree.children_from(h, from, f);
    }

    fn set_value(&mut self, h: NodeId, value: &[u8]) {
        self.tree.set_value(h, value);
    }

    fn set_perms(&mut self, h: NodeId, perms: &[Perm]) {
        self.tree.set_perms(h, perms);
    }

    fn create(&mut self, parent: NodeId, name: &[u8], value: &[u8], perms: &[Perm]) -> NodeId {
        self.tree.create(parent, name, value, perms)
    }

    fn subtree_size(&self, h: NodeId, limit: usize) -> usize {
        self.tree.subtree_size(h, limit)
    }

    fn remove(
        &mut self,
        h: NodeId,
        path: &str,
        watches: &WatchIndex,
        events: &mut Vec<PendingEvent>,
    ) {
        events.push((path.to_string(), false, self.tree.perms(h).to_vec()));
        if !watches.is_empty() {
            removed_descendants(self.tree, h, path, watches, events);
        }
        self.tree.remove(h);
    }

    fn usage(&self, dom: DomId) -> Usage {
        self.tree.usage(dom)
    }
}

/// Queue an exact-match event for each descendant of `top` (at `path`)
/// that has a watch registered on exactly its path, in pre-order. Prefix
/// keys are extended per component, so this is linear in the subtree's
/// size, and the walk does not descend below the deepest registered watch.
pub(crate) fn removed_descendants(
    tree: &Tree,
    top: NodeId,
    path: &str,
    watches: &WatchIndex,
    events: &mut Vec<PendingEvent>,
) {
    let limit = watches.depth_limit();
    let top_depth = if path == "/" {
        0
    } else {
        path.bytes().filter(|&b| b == b'/').count()
    };
    if top_depth + 1 >= limit {
        return;
    }
    let mut key = PathHash::root(watches.state());
    if path != "/" {
        for c in path[1..].split('/') {
            key = key.push(c.as_bytes());
        }
    }
    let mut buf = String::from(if path == "/" { "" } else { path });
    let mut stack = vec![(tree.children(top), key, buf.len())];
    while let Some((iter, key, len)) = stack.last_mut() {
        let Some(c) = iter.next() else {
            stack.pop();
            continue;
        };
        let (key, len) = (*key, *len);
        tree.charge(1);
        let name = tree.name(c);
        let ck = key.push(name);
        buf.truncate(len);
        buf.push('/');
        buf.push_str(std::str::from_utf8(name).unwrap_or(""));
        if !watches.at_key(ck.key(), &buf).is_empty() {
            events.push((buf.clone(), true, tree.perms(c).to_vec()));
        }
        let depth = top_depth + stack.len();
        if depth + 1 < limit {
            stack.push((tree.children(c), ck, buf.len()));
        }
    }
}
