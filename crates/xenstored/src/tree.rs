//! The node tree: a compact arena of nodes with a hashed child index.
//!
//! Memory matters (a host carries one node per device key of every guest),
//! so a node is a fixed 48-byte record in one `Vec`:
//! * values of up to 22 bytes live inline, longer ones in one heap block;
//! * names and permission lists are interned ([`Interner`]) and stored as ids;
//! * children form a singly linked list in creation order (cxenstored's
//!   DIRECTORY order), and one hash table maps `(parent, name)` to a node, so
//!   a lookup costs O(depth) whatever the size of the tree.
//!
//! Every change stamps the node with a fresh generation number (adding or
//! removing a child stamps the parent); transactions compare generations to
//! detect conflicts (cxenstored `generation`).

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

use hashbrown::HashTable;

use crate::hash::FastState;
use xenstore::{DomId, Perm};

use crate::intern::Interner;

/// Index of a node in the arena.
pub(crate) type NodeId = u32;
/// The root node `/`.
pub(crate) const ROOT: NodeId = 0;
const NIL: u32 = u32::MAX;
const INLINE: usize = 22;

/// A node value: short values inline, long ones on the heap.
#[derive(Clone)]
enum Value {
    Inline { len: u8, buf: [u8; INLINE] },
    Heap(Box<[u8]>),
}

impl Value {
    fn new(v: &[u8]) -> Value {
        if v.len() <= INLINE {
            let mut buf = [0u8; INLINE];
            buf[..v.len()].copy_from_slice(v);
            Value::Inline {
                len: v.len() as u8, // <= INLINE, checked above
                buf,
            }
        } else {
            Value::Heap(v.into())
        }
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            Value::Inline { len, buf } => &buf[..usize::from(*len)],
            Value::Heap(b) => b,
        }
    }
}

/// One node (48 bytes). Children form a circular singly linked list: the
/// parent points at its last child, whose `next_sibling` is the first, so
/// appending is O(1) and listing keeps creation order. Dead (freed) slots
/// have `parent == NIL` and sit on the free list.
pub(crate) struct Node {
    value: Value,
    /// Low 32 bits of the tree's change counter at the last change: a
    /// false "unchanged" would need exactly 2^32 changes in between.
    generation: u32,
    name: u32,
    perms: u32,
    parent: u32,
    last_child: u32,
    next_sibling: u32,
}

/// The store's node tree.
pub(crate) struct Tree {
    nodes: Vec<Node>,
    free: Vec<u32>,
    index: HashTable<u32>,
    hasher: FastState,
    names: Interner<str>,
    perms: Interner<[Perm]>,
    owned: HashMap<u16, u32>,
    generation: u64,
    live: usize,
}

impl Tree {
    /// A tree holding `/`, `/tool` and `/tool/xenstored` (as cxenstored
    /// starts), all owned by dom0 with no access for others (`n0`).
    pub(crate) fn new() -> Tree {
        let mut t = Tree {
            nodes: Vec::new(),
            free: Vec::new(),
            index: HashTable::new(),
            hasher: FastState::new(),
            names: Interner::new(),
            perms: Interner::new(),
            owned: HashMap::new(),
            generation: 0,
            live: 0,
        };
        let root_perms = [Perm::new(xenstore::Access::None, DomId::DOM0)];
        let name = t.names.intern("");
        let perms = t.perms.intern(&root_perms);
        t.nodes.push(Node {
            value: Value::new(b""),
            generation: 0,
            name,
            perms,
            parent: NIL,
            last_child: NIL,
            next_sibling: NIL,
        });
        t.live = 1;
        *t.owned.entry(0).or_insert(0) += 1;
        let tool = t.create(ROOT, "tool", b"", &root_perms);
        t.create(tool, "xenstored", b"", &root_perms);
        t
    }

    fn hash(&self, parent: u32, name: &[u8]) -> u64 {
        key_hash(&self.hasher, parent, name)
    }

    fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id as usize]
    }

    /// The child `name` of `parent`.
    pub(crate) fn child(&self, parent: NodeId, name: &[u8]) -> Option<NodeId> {
        let h = self.hash(parent, name);
        self.index
            .find(h, |&id| {
                let n = self.node(id);
                n.parent == parent && self.names.get(n.name).map(str::as_bytes) == Some(name)
            })
            .copied()
    }

    /// Find the node at an absolute, validated path.
    pub(crate) fn lookup(&self, path: &str) -> Option<NodeId> {
        let mut cur = ROOT;
        // bytes, not `str::split`: this runs a few times per request
        for comp in path.as_bytes().split(|&b| b == b'/') {
            if !comp.is_empty() {
                cur = self.child(cur, comp)?;
            }
        }
        Some(cur)
    }

    /// The node's value.
    pub(crate) fn value(&self, id: NodeId) -> &[u8] {
        self.node(id).value.as_slice()
    }

    /// The node's permission list (owner first).
    pub(crate) fn perms(&self, id: NodeId) -> &[Perm] {
        self.perms.get(self.node(id).perms).unwrap_or(&[])
    }

    /// The node's generation (changes whenever it or its child list does).
    pub(crate) fn generation(&self, id: NodeId) -> u64 {
        u64::from(self.node(id).generation)
    }

    /// The node's last path component (`""` for the root).
    pub(crate) fn name(&self, id: NodeId) -> &str {
        self.names.get(self.node(id).name).unwrap_or("")
    }

    /// Children in creation order.
    pub(crate) fn children(&self, id: NodeId) -> Children<'_> {
        let last = self.node(id).last_child;
        Children {
            tree: self,
            cur: if last == NIL {
                NIL
            } else {
                self.node(last).next_sibling
            },
            last,
        }
    }

    /// Nodes owned by `dom` (the node quota counts these).
    pub(crate) fn owned_by(&self, dom: DomId) -> u32 {
        self.owned.get(&dom.0).copied().unwrap_or(0)
    }

    /// Number of live nodes.
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// Rebuild the absolute path of a node.
    pub(crate) fn path_of(&self, id: NodeId) -> String {
        let mut parts = Vec::new();
        let mut cur = id;
        while cur != ROOT {
            parts.push(self.name(cur));
            cur = self.node(cur).parent;
        }
        if parts.is_empty() {
            return "/".to_string();
        }
        let mut s = String::new();
        for p in parts.iter().rev() {
            s.push('/');
            s.push_str(p);
        }
        s
    }

    fn stamp(&mut self, id: NodeId) {
        self.generation += 1;
        // truncation intended, see `Node::generation`
        self.nodes[id as usize].generation = self.generation as u32;
    }

    fn count_owner(&mut self, perms: &[Perm], delta: i64) {
        if let Some(owner) = perms.first() {
            let c = self.owned.entry(owner.domid.0).or_insert(0);
            *c = u32::try_from((i64::from(*c) + delta).max(0)).unwrap_or(u32::MAX);
        }
    }

    /// Create child `name` of `parent` (which must not have it yet), append
    /// it to the child list and stamp both.
    pub(crate) fn create(
        &mut self,
        parent: NodeId,
        name: &str,
        value: &[u8],
        perms: &[Perm],
    ) -> NodeId {
        let name_id = self.names.intern(name);
        let perms_id = self.perms.intern(perms);
        let node = Node {
            value: Value::new(value),
            generation: 0,
            name: name_id,
            perms: perms_id,
            parent,
            last_child: NIL,
            next_sibling: NIL,
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.nodes[id as usize] = node;
                id
            }
            None => {
                self.nodes.push(node);
                u32::try_from(self.nodes.len() - 1).unwrap_or(NIL)
            }
        };
        let last = self.node(parent).last_child;
        if last == NIL {
            self.nodes[id as usize].next_sibling = id;
        } else {
            let first = self.node(last).next_sibling;
            self.nodes[id as usize].next_sibling = first;
            self.nodes[last as usize].next_sibling = id;
        }
        self.nodes[parent as usize].last_child = id;
        let h = self.hash(parent, name.as_bytes());
        let (nodes, names, hasher) = (&self.nodes, &self.names, &self.hasher);
        self.index.insert_unique(h, id, |&other| {
            let n = &nodes[other as usize];
            key_hash(hasher, n.parent, names.get(n.name).unwrap_or("").as_bytes())
        });
        self.live += 1;
        self.count_owner(perms, 1);
        self.stamp(id);
        self.stamp(parent);
        id
    }

    /// Replace a node's value.
    pub(crate) fn set_value(&mut self, id: NodeId, value: &[u8]) {
        self.nodes[id as usize].value = Value::new(value);
        self.stamp(id);
    }

    /// Replace a node's permissions (moves the node between owners' counts).
    pub(crate) fn set_perms(&mut self, id: NodeId, perms: &[Perm]) {
        let old_id = self.node(id).perms;
        let old = self
            .perms
            .get(old_id)
            .map(<[Perm]>::to_vec)
            .unwrap_or_default();
        self.count_owner(&old, -1);
        self.count_owner(perms, 1);
        let new_id = self.perms.intern(perms);
        self.perms.release(old_id);
        self.nodes[id as usize].perms = new_id;
        self.stamp(id);
    }

    /// All nodes of the subtree at `id`, the node itself first (pre-order).
    pub(crate) fn subtree(&self, id: NodeId) -> Vec<NodeId> {
        let mut out = vec![id];
        let mut i = 0;
        while i < out.len() {
            let kids: Vec<NodeId> = self.children(out[i]).collect();
            out.extend(kids);
            i += 1;
        }
        out
    }

    /// Remove the subtree at `id` (not the root) and stamp the parent.
    pub(crate) fn remove(&mut self, id: NodeId) {
        if id == ROOT {
            return;
        }
        let parent = self.node(id).parent;
        // unlink from the parent's circular list: find the predecessor
        let next = self.node(id).next_sibling;
        if next == id {
            self.nodes[parent as usize].last_child = NIL;
        } else {
            let mut prev = id;
            while self.node(prev).next_sibling != id {
                prev = self.node(prev).next_sibling;
            }
            self.nodes[prev as usize].next_sibling = next;
            if self.node(parent).last_child == id {
                self.nodes[parent as usize].last_child = prev;
            }
        }
        for n in self.subtree(id) {
            self.free_node(n);
        }
        self.stamp(parent);
    }

    fn free_node(&mut self, id: NodeId) {
        let (parent, name_id, perms_id) = {
            let n = self.node(id);
            (n.parent, n.name, n.perms)
        };
        let name = self.names.get(name_id).unwrap_or("");
        let h = self.hash(parent, name.as_bytes());
        if let Ok(e) = self.index.find_entry(h, |&x| x == id) {
            e.remove();
        }
        let perms = self
            .perms
            .get(perms_id)
            .map(<[Perm]>::to_vec)
            .unwrap_or_default();
        self.count_owner(&perms, -1);
        self.names.release(name_id);
        self.perms.release(perms_id);
        let n = &mut self.nodes[id as usize];
        n.value = Value::new(b"");
        n.parent = NIL;
        n.last_child = NIL;
        n.next_sibling = NIL;
        self.live -= 1;
        self.free.push(id);
    }

    /// Entries in the child index plus the root (equals `len()`).
    #[cfg(test)]
    pub(crate) fn count_for_tests(&self) -> usize {
        self.index.len() + 1
    }
}

/// The index key of child `name` of `parent`.
fn key_hash(hasher: &FastState, parent: u32, name: &[u8]) -> u64 {
    let mut h = hasher.build_hasher();
    h.write_u32(parent);
    h.write(name);
    h.finish()
}

/// Iterator over a node's children.
pub(crate) struct Children<'a> {
    tree: &'a Tree,
    cur: u32,
    last: u32,
}

impl Iterator for Children<'_> {
    type Item = NodeId;
    fn next(&mut self) -> Option<NodeId> {
        if self.cur == NIL {
            return None;
        }
        let id = self.cur;
        self.cur = if id == self.last {
            NIL
        } else {
            self.tree.node(id).next_sibling
        };
        Some(id)
    }
}

/// The components of an absolute path (`/` has none).
pub(crate) fn components(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|c| !c.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use xenstore::Access;

    fn n0() -> Vec<Perm> {
        vec![Perm::new(Access::None, DomId(0))]
    }

    #[test]
    fn node_stays_small() {
        assert!(
            std::mem::size_of::<Node>() <= 48,
            "{}",
            std::mem::size_of::<Node>()
        );
    }

    #[test]
    fn create_lookup_remove() {
        let mut t = Tree::new();
        assert_eq!(t.len(), 3);
        assert_eq!(
            t.lookup("/tool/xenstored").map(|i| t.path_of(i)),
            Some("/tool/xenstored".into())
        );
        let a = t.create(ROOT, "a", b"x", &n0());
        let b = t.create(a, "b", &[7u8; 100], &n0());
        let c = t.create(a, "c", b"", &n0());
        assert_eq!(t.lookup("/a/b"), Some(b));
        assert_eq!(t.value(b), &[7u8; 100][..]);
        assert_eq!(t.children(a).collect::<Vec<_>>(), vec![b, c]);
        let g = t.generation(a);
        t.remove(b);
        assert!(t.generation(a) > g);
        assert_eq!(t.lookup("/a/b"), None);
        assert_eq!(t.children(a).collect::<Vec<_>>(), vec![c]);
        let d = t.create(a, "d", b"", &n0());
        assert_eq!(
            t.children(a).map(|i| t.name(i)).collect::<Vec<_>>(),
            vec!["c", "d"]
        );
        let e = t.create(a, "e", b"", &n0());
        t.remove(d);
        assert_eq!(t.children(a).collect::<Vec<_>>(), vec![c, e]);
        t.remove(e);
        assert_eq!(t.children(a).collect::<Vec<_>>(), vec![c]);
        t.remove(c);
        assert_eq!(t.children(a).count(), 0);
        let d = t.create(a, "d", b"", &n0());
        assert_eq!(t.path_of(d), "/a/d");
        t.remove(a);
        assert_eq!(t.len(), 3);
        assert_eq!(t.count_for_tests(), 3);
        assert_eq!(t.lookup("/a/c"), None);
        assert_eq!(t.owned_by(DomId(0)), 3);
    }

    #[test]
    fn owner_counts_follow_perms() {
        let mut t = Tree::new();
        let p5 = vec![Perm::new(Access::None, DomId(5))];
        let a = t.create(ROOT, "a", b"", &p5);
        t.create(a, "b", b"", &p5);
        assert_eq!(t.owned_by(DomId(5)), 2);
        t.set_perms(a, &n0());
        assert_eq!(t.owned_by(DomId(5)), 1);
        t.remove(a);
        assert_eq!(t.owned_by(DomId(5)), 0);
    }

    #[test]
    fn many_children_keep_creation_order() {
        let mut t = Tree::new();
        let a = t.create(ROOT, "a", b"", &n0());
        for i in 0..10_000 {
            t.create(a, &i.to_string(), b"v", &n0());
        }
        let names: Vec<String> = t.children(a).map(|i| t.name(i).to_string()).collect();
        assert_eq!(names.len(), 10_000);
        assert_eq!(names[0], "0");
        assert_eq!(names[9_999], "9999");
        assert_eq!(
            t.lookup("/a/4321").map(|i| t.value(i).to_vec()),
            Some(b"v".to_vec())
        );
    }
}
