//! The node tree: a compact arena of nodes with a hashed child index.
//!
//! Memory matters (a host carries one node per device key of every guest,
//! and RSS is benchmarked), so a node is a fixed 28-byte record:
//! * values of up to 4 bytes live in the record, longer ones in one shared
//!   byte [`Arena`] (a 16-byte value costs 16 bytes);
//! * the (name, permission list) pair is interned ([`Attrs`]), names in
//!   their own arena, so a node holds one `u32` for both;
//! * records sit in fixed chunks of 4096 (growing never copies them);
//! * children form a circular doubly linked list in creation order
//!   (cxenstored's DIRECTORY order), so appending and unlinking are O(1)
//!   even in a directory of 60,000 children, and one hash table maps
//!   `(parent, name)` to a node, so a lookup costs O(length of the path).
//!
//! Every change stamps the node with a fresh generation number (adding or
//! removing a child stamps the parent); transactions compare generations to
//! detect conflicts (cxenstored `generation`).
//!
//! The tree also keeps, per owning domain, the number of nodes and the
//! bytes they cost ([`node_cost`]): the node and memory quotas read these.

use std::cell::Cell;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

use hashbrown::HashTable;
use xenstore::{DomId, Perm};

use crate::arena::Arena;
use crate::hash::FastState;
use crate::intern::{Attrs, Interner, pack_name};

/// Index of a node.
pub(crate) type NodeId = u32;
/// The root node `/`.
pub(crate) const ROOT: NodeId = 0;
const NIL: u32 = u32::MAX;
/// Values up to this length are stored in the node record.
const INLINE: usize = 4;
/// Nodes per storage chunk.
const CHUNK_BITS: u32 = 12;
const CHUNK_NODES: usize = 1 << CHUNK_BITS;

/// What a node costs its owner against the memory quota: the record and
/// its index entry, its name, its value and its permission list (8 bytes an
/// entry, as cxenstored's `struct xs_permissions`). cxenstored also charges
/// the full path of every node; we do not store paths, so we do not charge
/// them: whatever fits cxenstored's quota fits ours.
pub(crate) fn node_cost(name_len: usize, value_len: usize, nperms: usize) -> u64 {
    (NODE_OVERHEAD + name_len + value_len + 8 * nperms) as u64
}

/// The fixed part of [`node_cost`].
pub(crate) const NODE_OVERHEAD: usize = 40;

/// One node (28 bytes). Dead slots have `parent == NIL` and are linked
/// through `next` on the free list. A node's first child is not stored in
/// it but in [`Tree::heads`]: most nodes are leaves, and 4 bytes on every
/// node cost more than a map entry on every directory.
#[derive(Clone, Copy)]
pub(crate) struct Node {
    /// The value if at most [`INLINE`] bytes, else its arena offset.
    value: [u8; 4],
    value_len: u16,
    /// Low 32 bits of the tree's change counter at the last change: a
    /// false "unchanged" would need exactly 2^32 changes in between.
    generation: u32,
    attr: u32,
    parent: u32,
    next: u32,
    prev: u32,
}

const DEAD: Node = Node {
    value: [0; 4],
    value_len: 0,
    generation: 0,
    attr: 0,
    parent: NIL,
    next: NIL,
    prev: NIL,
};

/// Every this many children a [`DirIndex`] keeps a mark.
const DIR_MARK_EVERY: usize = 16;
/// Directories with more children than this get a [`DirIndex`].
const DIR_INDEX_MIN: usize = 256;
/// Directory indexes kept (least recently used goes first).
const DIR_INDEX_KEEP: usize = 4;

/// Where the children of a big directory start in its DIRECTORY_PART
/// byte list: every [`DIR_MARK_EVERY`]th child and its byte position.
/// Valid while the directory's generation is unchanged (any change to its
/// child list changes it). With it, a DIRECTORY_PART at any offset costs
/// a binary search and at most one chunk of names, not a walk over 60,000
/// children.
struct DirIndex {
    node: NodeId,
    generation: u32,
    marks: Vec<(u32, NodeId)>,
}

/// Nodes and bytes one domain owns.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Usage {
    /// Nodes whose first permission entry names the domain.
    pub nodes: u32,
    /// Their [`node_cost`].
    pub bytes: u64,
}

/// Result of walking a path: how far it exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Walk {
    /// The node at the path, if it exists.
    pub node: Option<NodeId>,
    /// The deepest existing node on the path (the node itself if found).
    pub deepest: NodeId,
    /// Byte offset in the path of the first missing component.
    pub rest: usize,
}

/// The store's node tree.
pub(crate) struct Tree {
    chunks: Vec<Vec<Node>>,
    free_head: u32,
    index: HashTable<u32>,
    hasher: FastState,
    attrs: Attrs,
    perms: Interner<[Perm]>,
    values: Arena,
    owners: HashMap<u16, Usage, FastState>,
    /// First child of every node that has children.
    heads: HashMap<NodeId, NodeId, FastState>,
    generation: u64,
    live: usize,
    /// Work done (node visits), read by the scheduler to bound a turn.
    work: Cell<u64>,
    /// Indexes of big directories, most recently used last.
    dirs: Vec<DirIndex>,
}

impl Tree {
    /// A tree holding `/`, `/tool` and `/tool/xenstored` (as cxenstored
    /// starts), all owned by dom0 with no access for others (`n0`).
    pub(crate) fn new() -> Tree {
        let mut t = Tree {
            chunks: Vec::new(),
            free_head: NIL,
            index: HashTable::new(),
            hasher: FastState::new(),
            attrs: Attrs::new(),
            perms: Interner::new(),
            values: Arena::new(),
            owners: HashMap::default(),
            heads: HashMap::default(),
            generation: 0,
            live: 0,
            work: Cell::new(0),
            dirs: Vec::new(),
        };
        let root_perms = [Perm::new(xenstore::Access::None, DomId::DOM0)];
        let pid = t.perms.intern(&root_perms);
        let (attr, _) = t.attrs.intern(b"", pid);
        t.push(Node { attr, ..DEAD });
        t.live = 1;
        t.account(Some(DomId::DOM0), node_cost(0, 0, 1) as i64, 1);
        let tool = t.create(ROOT, b"tool", b"", &root_perms);
        t.create(tool, b"xenstored", b"", &root_perms);
        t
    }

    fn push(&mut self, n: Node) -> NodeId {
        if self.chunks.last().is_none_or(|c| c.len() == CHUNK_NODES) {
            self.chunks.push(Vec::with_capacity(CHUNK_NODES));
        }
        let c = self.chunks.len() - 1;
        let chunk = &mut self.chunks[c];
        chunk.push(n);
        u32::try_from((c << CHUNK_BITS) + chunk.len() - 1).unwrap_or(NIL)
    }

    fn node(&self, id: NodeId) -> &Node {
        let (c, i) = (id as usize >> CHUNK_BITS, id as usize & (CHUNK_NODES - 1));
        self.chunks.get(c).and_then(|ch| ch.get(i)).unwrap_or(&DEAD)
    }

    fn node_mut(&mut self, id: NodeId) -> &mut Node {
        let (c, i) = (id as usize >> CHUNK_BITS, id as usize & (CHUNK_NODES - 1));
        // Ids come from this tree; an out-of-range id would be a bug, and
        // the root is a harmless target for it.
        if c < self.chunks.len() && i < self.chunks[c].len() {
            &mut self.chunks[c][i]
        } else {
            &mut self.chunks[0][0]
        }
    }

    /// The first child of `id` (NIL if it has none).
    fn first_child(&self, id: NodeId) -> u32 {
        self.heads.get(&id).copied().unwrap_or(NIL)
    }

    fn set_first_child(&mut self, id: NodeId, child: u32) {
        if child == NIL {
            self.heads.remove(&id);
        } else {
            self.heads.insert(id, child);
        }
    }

    /// Count `n` units of work.
    pub(crate) fn charge(&self, n: u64) {
        self.work.set(self.work.get() + n);
    }

    /// Work done so far (monotonic).
    pub(crate) fn work(&self) -> u64 {
        self.work.get()
    }

    fn hash(&self, parent: u32, name: &[u8]) -> u64 {
        key_hash(&self.hasher, parent, name)
    }

    /// True if `id` names a live node.
    pub(crate) fn is_live(&self, id: NodeId) -> bool {
        id == ROOT || self.node(id).parent != NIL
    }

    /// The child `name` of `parent`.
    pub(crate) fn child(&self, parent: NodeId, name: &[u8]) -> Option<NodeId> {
        self.charge(1);
        let h = self.hash(parent, name);
        let packed = pack_name(name);
        self.index
            .find(h, |&id| {
                let n = self.node(id);
                n.parent == parent && self.attrs.name_is(n.attr, name, packed)
            })
            .copied()
    }

    /// Walk an absolute, validated path as far as it exists.
    pub(crate) fn walk(&self, path: &str) -> Walk {
        let b = path.as_bytes();
        let mut cur = ROOT;
        let mut at = 1.min(b.len());
        while at < b.len() {
            let end = b[at..]
                .iter()
                .position(|&c| c == b'/')
                .map_or(b.len(), |i| at + i);
            match self.child(cur, &b[at..end]) {
                Some(c) => cur = c,
                None => {
                    return Walk {
                        node: None,
                        deepest: cur,
                        rest: at,
                    };
                }
            }
            at = end + 1;
        }
        Walk {
            node: Some(cur),
            deepest: cur,
            rest: b.len(),
        }
    }

    /// Find the node at an absolute, validated path.
    pub(crate) fn lookup(&self, path: &str) -> Option<NodeId> {
        self.walk(path).node
    }

    /// The node's value.
    pub(crate) fn value(&self, id: NodeId) -> &[u8] {
        let n = self.node(id);
        let len = usize::from(n.value_len);
        if len <= INLINE {
            &n.value[..len]
        } else {
            self.values.get(u32::from_le_bytes(n.value), len)
        }
    }

    /// The node's permission list (owner first).
    pub(crate) fn perms(&self, id: NodeId) -> &[Perm] {
        self.perms
            .get(self.attrs.perms(self.node(id).attr))
            .unwrap_or(&[])
    }

    /// The node's generation (changes whenever it or its child list does).
    pub(crate) fn generation(&self, id: NodeId) -> u64 {
        u64::from(self.node(id).generation)
    }

    /// The node's last path component (empty for the root).
    pub(crate) fn name(&self, id: NodeId) -> &[u8] {
        self.attrs.name(self.node(id).attr)
    }

    /// The node's parent (`None` for the root or a dead id).
    pub(crate) fn parent(&self, id: NodeId) -> Option<NodeId> {
        match self.node(id).parent {
            NIL => None,
            p => Some(p),
        }
    }

    /// Children in creation order.
    pub(crate) fn children(&self, id: NodeId) -> Children<'_> {
        let first = self.first_child(id);
        Children {
            tree: self,
            cur: first,
            first,
        }
    }

    /// Call `f(position, name)` for the children of `id` in order, where
    /// position is the byte offset of the name in the DIRECTORY_PART list
    /// (names each followed by NUL), until it returns false. It starts at
    /// some child at or before byte `from` (a big directory's index finds
    /// it without walking the children before it).
    pub(crate) fn children_from(
        &mut self,
        id: NodeId,
        from: usize,
        f: &mut dyn FnMut(usize, &[u8]) -> bool,
    ) {
        let generation = self.node(id).generation;
        if let Some(k) = self
            .dirs
            .iter()
            .position(|d| d.node == id && d.generation == generation)
        {
            let d = self.dirs.remove(k);
            let i = d.marks.partition_point(|&(pos, _)| pos as usize <= from);
            let (mut pos, mut cur) = match i {
                0 => (0, self.first_child(id)),
                i => (d.marks[i - 1].0 as usize, d.marks[i - 1].1),
            };
            self.dirs.push(d);
            let first = self.first_child(id);
            while cur != NIL {
                self.charge(1);
                let name = self.name(cur);
                if !f(pos, name) {
                    return;
                }
                pos += name.len() + 1;
                cur = self.node(cur).next;
                if cur == first {
                    return;
                }
            }
            return;
        }
        // walk, building an index if the directory is big
        let mut marks = Vec::new();
        let mut pos = 0usize;
        let mut n = 0usize;
        let mut stopped = false;
        for c in self.children(id) {
            self.charge(1);
            if n % DIR_MARK_EVERY == 0 {
                marks.push((u32::try_from(pos).unwrap_or(u32::MAX), c));
            }
            n += 1;
            let name = self.name(c);
            if !stopped && !f(pos, name) {
                stopped = true;
                if n <= DIR_INDEX_MIN {
                    return;
                }
            }
            pos += name.len() + 1;
        }
        if n > DIR_INDEX_MIN {
            if self.dirs.len() == DIR_INDEX_KEEP {
                self.dirs.remove(0);
            }
            self.dirs.push(DirIndex {
                node: id,
                generation,
                marks,
            });
        }
    }

    /// The next node of the subtree at `top` in pre-order after `cur`.
    pub(crate) fn next_preorder(&self, top: NodeId, cur: NodeId) -> Option<NodeId> {
        self.charge(1);
        let fc = self.first_child(cur);
        if fc != NIL {
            return Some(fc);
        }
        let mut c = cur;
        while c != top {
            let n = self.node(c);
            let p = n.parent;
            if p == NIL {
                return None;
            }
            if n.next != self.first_child(p) {
                return Some(n.next);
            }
            c = p;
        }
        None
    }

    /// Number of nodes in the subtree at `id` (itself included), counting
    /// at most `limit + 1` of them.
    pub(crate) fn subtree_size(&self, id: NodeId, limit: usize) -> usize {
        let mut n = 1;
        let mut cur = id;
        while n <= limit {
            match self.next_preorder(id, cur) {
                Some(c) => {
                    cur = c;
                    n += 1;
                }
                None => break,
            }
        }
        n
    }

    /// Nodes and bytes owned by `dom`.
    pub(crate) fn usage(&self, dom: DomId) -> Usage {
        self.owners.get(&dom.0).copied().unwrap_or_default()
    }

    /// Nodes owned by `dom` (the node quota counts these).
    pub(crate) fn owned_by(&self, dom: DomId) -> u32 {
        self.usage(dom).nodes
    }

    /// Number of live nodes.
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// The node's [`node_cost`].
    pub(crate) fn cost(&self, id: NodeId) -> u64 {
        node_cost(
            self.name(id).len(),
            usize::from(self.node(id).value_len),
            self.perms(id).len(),
        )
    }

    /// Rebuild the absolute path of a node.
    pub(crate) fn path_of(&self, id: NodeId) -> String {
        let mut parts = Vec::new();
        let mut cur = id;
        while cur != ROOT && parts.len() <= xenstore::path::ABS_PATH_MAX {
            parts.push(self.name(cur));
            match self.parent(cur) {
                Some(p) => cur = p,
                None => break,
            }
        }
        if parts.is_empty() {
            return "/".to_string();
        }
        let mut s = Vec::new();
        for p in parts.iter().rev() {
            s.push(b'/');
            s.extend_from_slice(p);
        }
        // names are validated path components: ASCII
        String::from_utf8(s).unwrap_or_default()
    }

    fn stamp(&mut self, id: NodeId) {
        self.generation += 1;
        // truncation intended, see `Node::generation`
        let g = self.generation as u32;
        self.node_mut(id).generation = g;
    }

    fn account(&mut self, owner: Option<DomId>, bytes: i64, nodes: i64) {
        if let Some(owner) = owner {
            let u = self.owners.entry(owner.0).or_default();
            u.nodes = u32::try_from((i64::from(u.nodes) + nodes).max(0)).unwrap_or(u32::MAX);
            u.bytes = u64::try_from((u.bytes as i64 + bytes).max(0)).unwrap_or(0);
            if u.nodes == 0 && u.bytes == 0 {
                self.owners.remove(&owner.0);
            }
        }
    }

    /// The owner of node `id` (first permission entry).
    pub(crate) fn owner(&self, id: NodeId) -> Option<DomId> {
        self.perms(id).first().map(|p| p.domid)
    }

    fn store_value(&mut self, value: &[u8]) -> ([u8; 4], u16) {
        let len = value.len().min(crate::arena::MAX_LEN);
        let stored = if len <= INLINE {
            let mut b = [0u8; 4];
            b[..len].copy_from_slice(&value[..len]);
            b
        } else {
            self.values.alloc(value).to_le_bytes()
        };
        // len <= MAX_LEN (4096) fits u16
        (stored, len as u16)
    }

    /// Create child `name` of `parent` (which must not have it yet),
    /// append it to the child list and stamp both.
    pub(crate) fn create(
        &mut self,
        parent: NodeId,
        name: &[u8],
        value: &[u8],
        perms: &[Perm],
    ) -> NodeId {
        let pid = self.perms.intern(perms);
        let id = self.create_with(parent, name, value, pid);
        self.perms.release(pid);
        id
    }

    /// [`Tree::create`] with an interned permission list.
    pub(crate) fn create_with(
        &mut self,
        parent: NodeId,
        name: &[u8],
        value: &[u8],
        pid: u32,
    ) -> NodeId {
        self.charge(1);
        let (attr, new) = self.attrs.intern(name, pid);
        if new {
            self.perms.retain(pid);
        }
        let (stored, value_len) = self.store_value(value);
        let node = Node {
            value: stored,
            value_len,
            generation: 0,
            attr,
            parent,
            next: NIL,
            prev: NIL,
        };
        let id = match self.free_head {
            NIL => self.push(node),
            id => {
                self.free_head = self.node(id).next;
                *self.node_mut(id) = node;
                id
            }
        };
        // append to the parent's circular list
        let first = self.first_child(parent);
        if first == NIL {
            let n = self.node_mut(id);
            n.next = id;
            n.prev = id;
            self.set_first_child(parent, id);
        } else {
            let last = self.node(first).prev;
            {
                let n = self.node_mut(id);
                n.next = first;
                n.prev = last;
            }
            self.node_mut(last).next = id;
            self.node_mut(first).prev = id;
        }
        let h = self.hash(parent, name);
        let (chunks, attrs, hasher) = (&self.chunks, &self.attrs, &self.hasher);
        self.index.insert_unique(h, id, |&other| {
            let (c, i) = (
                other as usize >> CHUNK_BITS,
                other as usize & (CHUNK_NODES - 1),
            );
            let n = &chunks[c][i];
            key_hash(hasher, n.parent, attrs.name(n.attr))
        });
        self.live += 1;
        let cost = self.cost(id) as i64;
        self.account(self.owner(id), cost, 1);
        self.stamp(id);
        self.stamp(parent);
        id
    }

    /// Replace a node's value.
    pub(crate) fn set_value(&mut self, id: NodeId, value: &[u8]) {
        let old_cost = self.cost(id) as i64;
        let n = *self.node(id);
        let old_len = usize::from(n.value_len);
        let len = value.len().min(crate::arena::MAX_LEN);
        let (stored, value_len) = if old_len > INLINE && len > INLINE {
            let off = self
                .values
                .replace(u32::from_le_bytes(n.value), old_len, value);
            (off.to_le_bytes(), len as u16)
        } else {
            if old_len > INLINE {
                self.values.free(u32::from_le_bytes(n.value), old_len);
            }
            self.store_value(value)
        };
        {
            let m = self.node_mut(id);
            m.value = stored;
            m.value_len = value_len;
        }
        let delta = self.cost(id) as i64 - old_cost;
        self.account(self.owner(id), delta, 0);
        self.stamp(id);
    }

    /// Replace a node's permissions (moves the node between owners).
    pub(crate) fn set_perms(&mut self, id: NodeId, perms: &[Perm]) {
        let old = self.owner(id);
        let old_cost = self.cost(id) as i64;
        let pid = self.perms.intern(perms);
        let name = self.name(id).to_vec();
        let (attr, new) = self.attrs.intern(&name, pid);
        if new {
            self.perms.retain(pid);
        }
        self.perms.release(pid);
        let old_attr = self.node(id).attr;
        if let Some(old_pid) = self.attrs.release(old_attr) {
            self.perms.release(old_pid);
        }
        self.node_mut(id).attr = attr;
        self.account(old, -old_cost, -1);
        let new_cost = self.cost(id) as i64;
        self.account(self.owner(id), new_cost, 1);
        self.stamp(id);
    }

    /// Remove the subtree at `id` (not the root) and stamp the parent.
    /// Costs O(size of the subtree).
    pub(crate) fn remove(&mut self, id: NodeId) {
        if id == ROOT || !self.is_live(id) {
            return;
        }
        let parent = self.node(id).parent;
        self.unlink(parent, id);
        // Free bottom-up: descend to a leaf, free it (it is its parent's
        // first child, so unlinking is O(1)), climb, repeat.
        let mut cur = id;
        loop {
            loop {
                let fc = self.first_child(cur);
                if fc == NIL {
                    break;
                }
                cur = fc;
            }
            if cur == id {
                self.free_node(cur, parent);
                break;
            }
            let p = self.node(cur).parent;
            self.unlink(p, cur);
            self.free_node(cur, p);
            cur = p;
        }
        self.stamp(parent);
    }

    /// Take `id` out of its parent's child list.
    fn unlink(&mut self, parent: NodeId, id: NodeId) {
        let n = *self.node(id);
        if n.next == id {
            self.set_first_child(parent, NIL);
        } else {
            self.node_mut(n.prev).next = n.next;
            self.node_mut(n.next).prev = n.prev;
            if self.first_child(parent) == id {
                self.set_first_child(parent, n.next);
            }
        }
    }

    fn free_node(&mut self, id: NodeId, parent: NodeId) {
        self.charge(1);
        let cost = self.cost(id) as i64;
        let n = *self.node(id);
        let h = self.hash(parent, self.name(id));
        if let Ok(e) = self.index.find_entry(h, |&x| x == id) {
            e.remove();
        }
        self.account(self.owner(id), -cost, -1);
        let len = usize::from(n.value_len);
        if len > INLINE {
            self.values.free(u32::from_le_bytes(n.value), len);
        }
        if let Some(pid) = self.attrs.release(n.attr) {
            self.perms.release(pid);
        }
        let head = self.free_head;
        *self.node_mut(id) = Node { next: head, ..DEAD };
        self.free_head = id;
        self.live -= 1;
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
    first: u32,
}

impl Iterator for Children<'_> {
    type Item = NodeId;
    fn next(&mut self) -> Option<NodeId> {
        if self.cur == NIL {
            return None;
        }
        let id = self.cur;
        let next = self.tree.node(id).next;
        self.cur = if next == self.first { NIL } else { next };
        Some(id)
    }
}

#[cfg(test)]
#[path = "tree_tests.rs"]
mod tests;
