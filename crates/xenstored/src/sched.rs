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

use xenstore::DomId;

use crate::hash::FastState;

/// Who a connection's turns are shared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Group {
    /// All connections of an unprivileged domain.
    Domain(DomId),
    /// A privileged connection alone.
    Own,
}

impl Group {
    /// The group of a connection acting as `domid`.
    pub fn of(domid: DomId) -> Group {
        if domid == DomId::DOM0 {
            Group::Own
        } else {
            Group::Domain(domid)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Turn {
    Own(usize),
    Domain(DomId),
}

#[derive(Debug)]
struct Member {
    group: Group,
    queued: bool,
}

#[derive(Debug, Default)]
struct DomainQueue {
    ready: VecDeque<usize>,
    members: usize,
    in_round: bool,
}

/// Round-robin queues of ready connections, grouped. Keys are small
/// integers (the IO layer's connection slots).
#[derive(Debug, Default)]
pub struct Sched {
    members: Vec<Option<Member>>,
    domains: HashMap<DomId, DomainQueue, FastState>,
    round: VecDeque<Turn>,
}

impl Sched {
    /// Start scheduling `key` in `group` (not ready yet).
    pub fn add(&mut self, key: usize, group: Group) {
        if self.members.len() <= key {
            self.members.resize_with(key + 1, || None);
        }
        self.remove(key);
        self.members[key] = Some(Member {
            group,
            queued: false,
        });
        if let Group::Domain(d) = group {
            self.domains.entry(d).or_default().members += 1;
        }
    }

    /// Stop scheduling `key`.
    pub fn remove(&mut self, key: usize) {
        let Some(m) = self.members.get_mut(key).and_then(Option::take) else {
            return;
        };
        match m.group {
            Group::Own => {
                if m.queued {
                    self.round.retain(|t| *t != Turn::Own(key));
                }
            }
            Group::Domain(d) => {
                let Some(q) = self.domains.get_mut(&d) else {
                    return;
                };
                if m.queued {
                    q.ready.retain(|k| *k != key);
                    if q.ready.is_empty() && q.in_round {
                        q.in_round = false;
                        self.round.retain(|t| *t != Turn::Domain(d));
                    }
                }
                q.members -= 1;
                if q.members == 0 {
                    self.domains.remove(&d);
                }
            }
        }
    }

    /// `key` is ready: queue it (at the back of its group; the group at the
    /// back of the round if it was idle). No effect if already queued.
    pub fn ready(&mut self, key: usize) {
        let Some(Some(m)) = self.members.get_mut(key) else {
            return;
        };
        if m.queued {
            return;
        }
        m.queued = true;
        match m.group {
            Group::Own => self.round.push_back(Turn::Own(key)),
            Group::Domain(d) => {
                let q = self.domains.entry(d).or_default();
                q.ready.push_back(key);
                if !q.in_round {
                    q.in_round = true;
                    self.round.push_back(Turn::Domain(d));
                }
            }
        }
    }

    /// The next turn: the first ready connection of the next group. The
    /// group goes to the back of the round if it has more ready
    /// connections; the connection is no longer queued (call
    /// [`Sched::ready`] after its turn if it still has work).
    pub fn next_turn(&mut self) -> Option<usize> {
        loop {
            let key = match self.round.pop_front()? {
                Turn::Own(k) => k,
                Turn::Domain(d) => {
                    let Some(q) = self.domains.get_mut(&d) else {
                        continue;
                    };
                    let Some(k) = q.ready.pop_front() else {
                        q.in_round = false;
                        continue;
                    };
                    if q.ready.is_empty() {
                        q.in_round = false;
                    } else {
                        self.round.push_back(Turn::Domain(d));
                    }
                    k
                }
            };
            if let Some(Some(m)) = self.members.get_mut(key) {
                m.queued = false;
                return Some(key);
            }
        }
    }

    /// Groups with a ready connection (the turns in one round).
    pub fn groups_ready(&self) -> usize {
        self.round.len()
    }

    /// True if no connection is ready.
    pub fn is_idle(&self) -> bool {
        self.round.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_take_turns_and_share_within() {
        let mut s = Sched::default();
        // domain 7 floods with three connections, dom0 has two
        for k in [1, 2, 3] {
            s.add(k, Group::of(DomId(7)));
        }
        for k in [10, 11] {
            s.add(k, Group::of(DomId(0)));
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
        let mut s = Sched::default();
        s.add(1, Group::Domain(DomId(5)));
        s.add(2, Group::Domain(DomId(5)));
        s.add(3, Group::Own);
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
        assert!(
            s.domains.is_empty(),
            "a domain's queue goes with its last member"
        );
    }
}
