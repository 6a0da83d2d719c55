//! Transactions (cxenstored 4.17 `xenstored_transaction.c`, WIRE.md §8).
//!
//! A transaction is an overlay over the live tree. Every node it accesses
//! is recorded once ("touched") with the generation it had then, and gets
//! a private snapshot of its value and permissions; nodes it creates,
//! changes or removes live only in the overlay until commit. Commit fails
//! with `EAGAIN` if any recorded node changed in the tree since (unrelated
//! changes do not conflict); creating or removing a node also changes its
//! parent's child list, so it records the parent too. Watch events are
//! queued and fired only by a successful commit.
//!
//! The overlay is shaped like the tree, so every cost is linear in the
//! length of a path: an existing node's entry is keyed by its node id, an
//! entry for a path that did not exist (read as absent, or created here)
//! by (parent, name). Nothing stores whole paths. Each entry counts
//! against the per-transaction node limit (cx `transaction-nodes`, 1024)
//! and its bytes against the domain's memory quota, and all of it is freed
//! when the transaction ends, however it ends.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

use hashbrown::HashTable;
use xenstore::{DomId, Perm, XsErrno};

use crate::hash::FastState;
use crate::store::{View, Walked};
use crate::tree::{NodeId, Tree, Usage, node_cost};
use crate::watch::WatchIndex;

/// A queued watch event: path, exact-match only (RM descendants), perms.
pub(crate) type PendingEvent = (String, bool, Vec<Perm>);

/// A node of a transaction's view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cur {
    /// An existing node of the tree (possibly changed in the overlay).
    Live(NodeId),
    /// A node that exists only in the overlay (entry index).
    Tx(u32),
}

#[derive(Debug)]
struct Snapshot {
    value: Vec<u8>,
    perms: Vec<Perm>,
    /// Changed in this transaction.
    dirty: bool,
}

#[derive(Debug)]
enum State {
    /// Absent at first access (entries keyed by parent and name).
    Absent,
    /// Removed in this transaction.
    Deleted,
    /// Present: the snapshot, or the node as this transaction made it.
    Node(Snapshot),
}

#[derive(Debug)]
struct Entry {
    /// For overlay-only entries: where the entry hangs.
    parent: Cur,
    /// For overlay-only entries: the name (empty for tree nodes).
    name: Box<[u8]>,
    /// For entries of tree nodes: the node.
    live: Option<NodeId>,
    /// Generation of the tree node at first access.
    base: u32,
    /// For overlay-only entries: check at commit that the tree still has
    /// no such child (false when the node was only absent because this
    /// transaction had removed it).
    check_absent: bool,
    state: State,
    /// Overlay-only entries below this one that were created, in order.
    kids: Vec<u32>,
    /// True while listed in the parent's `kids`.
    listed: bool,
}

/// One open transaction.
#[derive(Debug, Default)]
pub(crate) struct Transaction {
    entries: Vec<Entry>,
    by_live: HashMap<NodeId, u32, FastState>,
    by_name: HashTable<u32>,
    hasher: FastState,
    /// Events to fire if the commit succeeds.
    pub events: Vec<PendingEvent>,
    /// Per owning domain: (nodes, bytes) this transaction adds.
    owner_delta: HashMap<u16, (i64, i64), FastState>,
    /// Bytes charged to the domain for this transaction.
    pub mem: u64,
}

fn key_hash(hasher: &FastState, parent: Cur, name: &[u8]) -> u64 {
    let mut h = hasher.build_hasher();
    match parent {
        Cur::Live(id) => h.write_u64(u64::from(id)),
        Cur::Tx(e) => h.write_u64((1 << 32) | u64::from(e)),
    }
    h.write(name);
    h.finish()
}

impl Transaction {
    /// Number of nodes this transaction has recorded.
    #[cfg(test)]
    pub(crate) fn touched(&self) -> usize {
        self.entries.len()
    }

    /// Node count changes per owning domain (for the quota check at
    /// commit: parallel transactions each stay under the quota alone).
    pub(crate) fn node_deltas(&self) -> impl Iterator<Item = (DomId, i64)> + '_ {
        self.owner_delta.iter().map(|(&d, &(n, _))| (DomId(d), n))
    }

    fn named(&self, parent: Cur, name: &[u8]) -> Option<u32> {
        if self.by_name.is_empty() {
            return None;
        }
        let h = key_hash(&self.hasher, parent, name);
        let entries = &self.entries;
        self.by_name
            .find(h, |&e| {
                let x = &entries[e as usize];
                x.parent == parent && *x.name == *name
            })
            .copied()
    }

    fn entry_of(&self, c: Cur) -> Option<&Entry> {
        match c {
            Cur::Live(id) => self
                .by_live
                .get(&id)
                .and_then(|&e| self.entries.get(e as usize)),
            Cur::Tx(e) => self.entries.get(e as usize),
        }
    }

    fn entry_index(&self, c: Cur) -> Option<u32> {
        match c {
            Cur::Live(id) => self.by_live.get(&id).copied(),
            Cur::Tx(e) => Some(e),
        }
    }

    fn snapshot_mut(&mut self, c: Cur) -> Option<&mut Snapshot> {
        let e = self.entry_index(c)?;
        match &mut self.entries.get_mut(e as usize)?.state {
            State::Node(s) => Some(s),
            State::Absent | State::Deleted => None,
        }
    }

    fn push(&mut self, e: Entry) -> u32 {
        self.entries.push(e);
        u32::try_from(self.entries.len() - 1).unwrap_or(u32::MAX)
    }

    fn index_name(&mut self, i: u32) {
        let h = {
            let e = &self.entries[i as usize];
            key_hash(&self.hasher, e.parent, &e.name)
        };
        let (entries, hasher) = (&self.entries, &self.hasher);
        self.by_name.insert_unique(h, i, |&x| {
            let e = &entries[x as usize];
            key_hash(hasher, e.parent, &e.name)
        });
    }

    fn count_owner(&mut self, perms: &[Perm], nodes: i64, bytes: i64) {
        if let Some(o) = perms.first() {
            let d = self.owner_delta.entry(o.domid.0).or_insert((0, 0));
            d.0 += nodes;
            d.1 += bytes;
        }
    }

    /// Check every recorded node against the tree, then apply the changes
    /// (removals first, then changes, then creations parents first and in
    /// creation order, so DIRECTORY keeps creation order). Events for
    /// removed descendants with watches of their own are added here, from
    /// the tree as it is at commit. On `Err(EAGAIN)` nothing was applied.
    pub(crate) fn commit(
        mut self,
        tree: &mut Tree,
        watches: &WatchIndex,
    ) -> Result<Vec<PendingEvent>, XsErrno> {
        for e in &self.entries {
            tree.charge(1);
            match e.live {
                Some(id) => {
                    if !tree.is_live(id) || tree.generation(id) as u32 != e.base {
                        return Err(XsErrno::Eagain);
                    }
                }
                None => {
                    if let (true, Cur::Live(pid)) = (e.check_absent, e.parent) {
                        if !tree.is_live(pid) || tree.child(pid, &e.name).is_some() {
                            return Err(XsErrno::Eagain);
                        }
                    }
                }
            }
        }
        let mut events = std::mem::take(&mut self.events);
        // 1. removals of tree nodes, shallowest first
        let mut deleted: Vec<(usize, NodeId)> = self
            .entries
            .iter()
            .filter(|e| matches!(e.state, State::Deleted))
            .filter_map(|e| e.live)
            .map(|id| (depth_of(tree, id), id))
            .collect();
        deleted.sort_unstable();
        for (_, id) in deleted {
            if tree.is_live(id) {
                let path = tree.path_of(id);
                let mut more = Vec::new();
                if !watches.is_empty() {
                    crate::store::removed_descendants(tree, id, &path, watches, &mut more);
                }
                events.extend(more);
                tree.remove(id);
            }
        }
        // 2. changed tree nodes; 3. created nodes (entry order puts
        // parents first)
        let mut made: Vec<Option<NodeId>> = vec![None; self.entries.len()];
        for (i, e) in self.entries.iter().enumerate() {
            let State::Node(s) = &e.state else {
                continue;
            };
            match e.live {
                Some(id) => {
                    if s.dirty && tree.is_live(id) {
                        if tree.value(id) != s.value.as_slice() {
                            tree.set_value(id, &s.value);
                        }
                        if tree.perms(id) != s.perms.as_slice() {
                            tree.set_perms(id, &s.perms);
                        }
                    }
                    made[i] = Some(id);
                }
                None => {
                    let parent = match e.parent {
                        Cur::Live(p) => tree.is_live(p).then_some(p),
                        Cur::Tx(p) => made.get(p as usize).copied().flatten(),
                    };
                    let Some(parent) = parent else {
                        continue;
                    };
                    made[i] = Some(match tree.child(parent, &e.name) {
                        Some(id) => {
                            tree.set_value(id, &s.value);
                            tree.set_perms(id, &s.perms);
                            id
                        }
                        None => tree.create(parent, &e.name, &s.value, &s.perms),
                    });
                }
            }
        }
        Ok(events)
    }
}

fn depth_of(tree: &Tree, mut id: NodeId) -> usize {
    let mut d = 0;
    while let Some(p) = tree.parent(id) {
        d += 1;
        id = p;
    }
    d
}

/// A transaction's view of the tree.
pub(crate) struct TxView<'a> {
    /// The live tree (read only until commit).
    pub tree: &'a Tree,
    /// The transaction.
    pub tx: &'a mut Transaction,
    /// Entries the transaction may hold (cx `transaction-nodes`).
    pub limit: usize,
    /// Bytes the domain may still add (`ENOMEM` past it).
    pub budget: u64,
}

impl TxView<'_> {
    /// Call `f` with each child of `h` in this view until it returns false.
    fn for_each_child(&self, h: Cur, f: &mut dyn FnMut(Cur, &[u8]) -> bool) {
        let tx = &*self.tx;
        if let Cur::Live(id) = h {
            for c in self.tree.children(id) {
                self.tree.charge(1);
                let gone = tx
                    .by_live
                    .get(&c)
                    .is_some_and(|&e| matches!(tx.entries[e as usize].state, State::Deleted));
                if !gone && !f(Cur::Live(c), self.tree.name(c)) {
                    return;
                }
            }
        }
        if let Some(e) = tx.entry_of(h) {
            for &k in &e.kids {
                self.tree.charge(1);
                let kid = &tx.entries[k as usize];
                if matches!(kid.state, State::Node(_)) && !f(Cur::Tx(k), &kid.name) {
                    return;
                }
            }
        }
    }

    fn charge_entry(&mut self, bytes: u64) -> Result<(), XsErrno> {
        if self.tx.entries.len() >= self.limit {
            return Err(XsErrno::Enospc);
        }
        self.reserve(bytes)
    }
}

impl View for TxView<'_> {
    type H = Cur;

    fn walk(&mut self, path: &str) -> Walked<Cur> {
        let b = path.as_bytes();
        let mut cur = Cur::Live(crate::tree::ROOT);
        let mut at = 1.min(b.len());
        while at < b.len() {
            let end = b[at..]
                .iter()
                .position(|&c| c == b'/')
                .map_or(b.len(), |i| at + i);
            let name = &b[at..end];
            let next = match self.tx.named(cur, name) {
                Some(e) => match self.tx.entries[e as usize].state {
                    State::Node(_) => Some(Cur::Tx(e)),
                    State::Absent | State::Deleted => None,
                },
                None => match cur {
                    Cur::Live(id) => self.tree.child(id, name).filter(|c| {
                        !self.tx.by_live.get(c).is_some_and(|&e| {
                            matches!(self.tx.entries[e as usize].state, State::Deleted)
                        })
                    }),
                    Cur::Tx(_) => None,
                }
                .map(Cur::Live),
            };
            match next {
                Some(n) => cur = n,
                None => {
                    return Walked {
                        node: None,
                        deepest: cur,
                        rest: at,
                    };
                }
            }
            at = end + 1;
        }
        Walked {
            node: Some(cur),
            deepest: cur,
            rest: b.len(),
        }
    }

    fn touch(&mut self, h: Cur) -> Result<(), XsErrno> {
        let Cur::Live(id) = h else {
            return Ok(());
        };
        if self.tx.by_live.contains_key(&id) {
            return Ok(());
        }
        let tree = self.tree;
        let (value, perms) = (tree.value(id), tree.perms(id));
        self.charge_entry(node_cost(0, value.len(), perms.len()))?;
        let i = self.tx.push(Entry {
            parent: Cur::Live(id),
            name: Box::default(),
            live: Some(id),
            base: tree.generation(id) as u32,
            check_absent: false,
            state: State::Node(Snapshot {
                value: value.to_vec(),
                perms: perms.to_vec(),
                dirty: false,
            }),
            kids: Vec::new(),
            listed: false,
        });
        self.tx.by_live.insert(id, i);
        Ok(())
    }

    fn touch_absent(&mut self, parent: Cur, name: &[u8]) -> Result<(), XsErrno> {
        if self.tx.named(parent, name).is_some() {
            return Ok(());
        }
        self.charge_entry(node_cost(name.len(), 0, 0))?;
        let in_tree = match parent {
            Cur::Live(p) => self.tree.child(p, name).is_some(),
            Cur::Tx(_) => false,
        };
        let i = self.tx.push(Entry {
            parent,
            name: name.into(),
            live: None,
            base: 0,
            check_absent: !in_tree,
            state: State::Absent,
            kids: Vec::new(),
            listed: false,
        });
        self.tx.index_name(i);
        Ok(())
    }

    fn room(&self) -> usize {
        self.limit.saturating_sub(self.tx.entries.len())
    }

    fn reserve(&mut self, bytes: u64) -> Result<(), XsErrno> {
        if bytes > self.budget {
            return Err(XsErrno::Enomem);
        }
        self.budget -= bytes;
        self.tx.mem += bytes;
        Ok(())
    }

    fn parent_of(&self, h: Cur) -> Option<Cur> {
        match h {
            Cur::Live(id) => self.tree.parent(id).map(Cur::Live),
            Cur::Tx(e) => self.tx.entries.get(e as usize).map(|x| x.parent),
        }
    }

    fn perms(&self, h: Cur) -> &[Perm] {
        match self.tx.entry_of(h) {
            Some(Entry {
                state: State::Node(s),
                ..
            }) => &s.perms,
            Some(_) => &[],
            None => match h {
                Cur::Live(id) => self.tree.perms(id),
                Cur::Tx(_) => &[],
            },
        }
    }

    fn value(&self, h: Cur) -> &[u8] {
        match self.tx.entry_of(h) {
            Some(Entry {
                state: State::Node(s),
                ..
            }) => &s.value,
            Some(_) => &[],
            None => match h {
                Cur::Live(id) => self.tree.value(id),
                Cur::Tx(_) => &[],
            },
        }
    }

    fn generation(&self, h: Cur) -> u64 {
        match (h, self.tx.entry_of(h)) {
            (Cur::Live(_), Some(e)) => u64::from(e.base),
            (Cur::Live(id), None) => self.tree.generation(id),
            (Cur::Tx(_), _) => 0,
        }
    }

    fn list_children(&self, h: Cur, f: &mut dyn FnMut(&[u8]) -> bool) {
        self.for_each_child(h, &mut |_, name| f(name));
    }

    fn set_value(&mut self, h: Cur, value: &[u8]) {
        let Some(s) = self.tx.snapshot_mut(h) else {
            return;
        };
        let delta = value.len() as i64 - s.value.len() as i64;
        s.value.clear();
        s.value.extend_from_slice(value);
        s.dirty = true;
        let perms = s.perms.clone();
        self.tx.count_owner(&perms, 0, delta);
    }

    fn set_perms(&mut self, h: Cur, perms: &[Perm]) {
        let Some(s) = self.tx.snapshot_mut(h) else {
            return;
        };
        let old = std::mem::replace(&mut s.perms, perms.to_vec());
        s.dirty = true;
        let len = s.value.len();
        self.tx
            .count_owner(&old, -1, -(node_cost(0, len, old.len()) as i64));
        self.tx
            .count_owner(perms, 1, node_cost(0, len, perms.len()) as i64);
    }

    fn create(&mut self, parent: Cur, name: &[u8], value: &[u8], perms: &[Perm]) -> Cur {
        let snap = Snapshot {
            value: value.to_vec(),
            perms: perms.to_vec(),
            dirty: true,
        };
        let i = match self.tx.named(parent, name) {
            Some(i) => {
                self.tx.entries[i as usize].state = State::Node(snap);
                i
            }
            None => {
                let in_tree = match parent {
                    Cur::Live(p) => self.tree.child(p, name).is_some(),
                    Cur::Tx(_) => false,
                };
                let i = self.tx.push(Entry {
                    parent,
                    name: name.into(),
                    live: None,
                    base: 0,
                    check_absent: !in_tree,
                    state: State::Node(snap),
                    kids: Vec::new(),
                    listed: false,
                });
                self.tx.index_name(i);
                i
            }
        };
        if !self.tx.entries[i as usize].listed {
            self.tx.entries[i as usize].listed = true;
            if let Some(p) = self.tx.entry_index(parent) {
                self.tx.entries[p as usize].kids.push(i);
            }
        }
        self.tx.count_owner(
            perms,
            1,
            node_cost(name.len(), value.len(), perms.len()) as i64,
        );
        Cur::Tx(i)
    }

    fn subtree_size(&self, h: Cur, limit: usize) -> usize {
        let mut n = 1;
        let mut stack = vec![h];
        while let Some(c) = stack.pop() {
            self.for_each_child(c, &mut |k, _| {
                n += 1;
                stack.push(k);
                n <= limit
            });
            if n > limit {
                break;
            }
        }
        n
    }

    fn remove(
        &mut self,
        h: Cur,
        path: &str,
        _watches: &WatchIndex,
        events: &mut Vec<PendingEvent>,
    ) {
        // The caller checked that the subtree fits in `room()` and reserved
        // its entries' memory. Events for descendants come at commit, from
        // the tree (their paths are not stored here).
        events.push((path.to_string(), false, self.perms(h).to_vec()));
        let mut all = Vec::new();
        let mut stack = vec![h];
        while let Some(c) = stack.pop() {
            all.push(c);
            self.for_each_child(c, &mut |k, _| {
                stack.push(k);
                true
            });
        }
        for c in all {
            let perms = self.perms(c).to_vec();
            let len = self.value(c).len();
            self.tx
                .count_owner(&perms, -1, -(node_cost(0, len, perms.len()) as i64));
            match (c, self.tx.entry_index(c)) {
                (_, Some(i)) => self.tx.entries[i as usize].state = State::Deleted,
                (Cur::Live(id), None) => {
                    let i = self.tx.push(Entry {
                        parent: Cur::Live(id),
                        name: Box::default(),
                        live: Some(id),
                        base: self.tree.generation(id) as u32,
                        check_absent: false,
                        state: State::Deleted,
                        kids: Vec::new(),
                        listed: false,
                    });
                    self.tx.by_live.insert(id, i);
                }
                (Cur::Tx(_), None) => {}
            }
        }
    }

    fn usage(&self, dom: DomId) -> Usage {
        let u = self.tree.usage(dom);
        let (n, b) = self.tx.owner_delta.get(&dom.0).copied().unwrap_or((0, 0));
        Usage {
            nodes: u32::try_from((i64::from(u.nodes) + n).max(0)).unwrap_or(u32::MAX),
            bytes: u64::try_from((u.bytes as i64 + b).max(0)).unwrap_or(0),
        }
    }
}
