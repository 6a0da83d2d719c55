//! Fair scheduling of connections (sans IO).
//!
//! The IO layer serves connections in *turns*. A turn handles the requests
//! one connection has buffered or can read, within a [`crate::Budget`]
//! (requests and work units), then writes what they produced. [`Sched`]
//! decides whose turn is next:
//!
//! * connections are grouped — every connection of one unprivileged domain
//!   in one group, each privileged (dom0) connection in a group of its
//!   own — and groups take turns round robin, so a domain that opens 64
//!   connections and floods all of them gets the same share as a domain
//!   with one, and never more than one turn per round;
//! * within a group its ready connections take turns round robin too;
//! * a connection is *ready* when it has input (buffered or readable) and
//!   its output has drained; one whose peer does not read its replies stops
//!   being read (backpressure, as Xen 4.17 stops reading a domain with 20
//!   replies outstanding) until the IO layer reports it writable again.
//!
//! The IO layer keeps the facts (readable, writable, input buffered) and
//! calls [`Sched::ready`] when a connection may have become ready and
//! [`Sched::next_turn`] to pick a turn; after the turn it calls `ready` again if
//! the connection still has work. Ready queues hold each key once. Any
//! transport — a unix socket, or a domain's shared ring and event channel —
//! plugs in the same way: report readiness, serve turns.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

use xenstore::DomId;

use crate::hash::FastState;

/// Who a connection's turns are shared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Group<K> {
    /// All connections of an unprivileged domain.
    Domain(DomId),
    /// A privileged connection alone.
    Own(K),
}

impl<K> Group<K> {
    /// The group of connection `key` acting as `domid`.
    pub fn of(domid: DomId, key: K) -> Group<K> {
        if domid == DomId::DOM0 {
            Group::Own(key)
        } else {
            Group::Domain(domid)
        }
    }
}

#[derive(Debug)]
struct Member<K> {
    group: Group<K>,
    queued: bool,
}

/// Round-robin queues of ready connections, grouped.
#[derive(Debug)]
pub struct Sched<K: Copy + Eq + Hash> {
    members: HashMap<K, Member<K>, FastState>,
    groups: HashMap<Group<K>, VecDeque<K>, FastState>,
    order: VecDeque<Group<K>>,
}

impl<K: Copy + Eq + Hash> Default for Sched<K> {
    fn default() -> Self {
        Sched {
            members: HashMap::default(),
            groups: HashMap::default(),
            order: VecDeque::new(),
        }
    }
}

impl<K: Copy + Eq + Hash> Sched<K> {
    /// Start scheduling `key` in `group` (not ready yet).
    pub fn add(&mut self, key: K, group: Group<K>) {
        self.members.insert(
            key,
            Member {
                group,
                queued: false,
            },
        );
    }

    /// Stop scheduling `key`.
    pub fn remove(&mut self, key: K) {
        let Some(m) = self.members.remove(&key) else {
            return;
        };
        if m.queued {
            if let Some(q) = self.groups.get_mut(&m.group) {
                q.retain(|k| *k != key);
                if q.is_empty() {
                    self.groups.remove(&m.group);
                    self.order.retain(|g| *g != m.group);
                }
            }
        }
    }

    /// `key` is ready: queue it (at the back of its group; the group at the
    /// back of the round if it was idle). No effect if already queued.
    pub fn ready(&mut self, key: K) {
        let Some(m) = self.members.get_mut(&key) else {
            return;
        };
        if m.queued {
            return;
        }
        m.queued = true;
        let q = self.groups.entry(m.group).or_default();
        if q.is_empty() {
            self.order.push_back(m.group);
        }
        q.push_back(key);
    }

    /// The next turn: the first ready connection of the next group. The
    /// group goes to the back of the round if it has more ready
    /// connections; the connection is no longer queued (call
    /// [`Sched::ready`] after its turn if it still has work).
    pub fn next_turn(&mut self) -> Option<K> {
        let g = self.order.pop_front()?;
        let q = self.groups.get_mut(&g)?;
        let key = q.pop_front()?;
        if q.is_empty() {
            self.groups.remove(&g);
        } else {
            self.order.push_back(g);
        }
        if let Some(m) = self.members.get_mut(&key) {
            m.queued = false;
        }
        Some(key)
    }

    /// Groups with a ready connection (the turns in one round).
    pub fn groups_ready(&self) -> usize {
        self.order.len()
    }

    /// True if no connection is ready.
    pub fn is_idle(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_take_turns_and_share_within() {
        let mut s: Sched<u32> = Sched::default();
        // domain 7 floods with three connections, dom0 has two
        for k in [1, 2, 3] {
            s.add(k, Group::of(DomId(7), k));
        }
        for k in [10, 11] {
            s.add(k, Group::of(DomId(0), k));
        }
        for k in [1, 2, 3, 10, 11] {
            s.ready(k);
        }
        s.ready(1); // queued once only
        assert_eq!(s.groups_ready(), 3);
        let mut turns = Vec::new();
        for _ in 0..9 {
            let Some(k) = s.next_turn() else { break };
            turns.push(k);
            // every connection always has more work
            s.ready(k);
        }
        // one turn per group per round: domain 7's three connections
        // share one slot
        assert_eq!(turns, vec![1, 10, 11, 2, 10, 11, 3, 10, 11]);
    }

    #[test]
    fn idle_and_removed_connections_are_skipped() {
        let mut s: Sched<u32> = Sched::default();
        s.add(1, Group::Domain(DomId(5)));
        s.add(2, Group::Domain(DomId(5)));
        s.add(3, Group::Own(3));
        assert!(s.is_idle());
        s.ready(1);
        s.ready(2);
        s.ready(3);
        s.remove(1);
        assert_eq!(s.next_turn(), Some(2));
        assert_eq!(s.next_turn(), Some(3));
        assert_eq!(s.next_turn(), None);
        s.remove(2);
        s.ready(2); // unknown: ignored
        assert!(s.is_idle());
    }
}
