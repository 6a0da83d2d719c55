//! Watches and their events: WATCH, firing the watches a change triggers
//! (in O(length of the path), see [`crate::watch`]), and queueing events
//! with the memory quota of the receiving domain.

use xenstore::wire::HEADER_LEN;
use xenstore::{DomId, Perm, XsErrno, path};

use super::{INTRODUCE_DOMAIN, OpResult, Server, ok};
use crate::conn::{Conns, MAX_PENDING_OUTPUT, WATCH_OVERHEAD};
use crate::domain::Domains;
use crate::perms::Caller;
use crate::quota::Quotas;
use crate::server::{ConnId, EVENT_WORK};
use crate::tree::{NodeId, Tree};
use crate::watch::Watcher;
use tracing::debug;

impl Server {
    /// Resolve a watch path: `@names` stay as they are, others are
    /// validated and made absolute. Returns (absolute, was relative).
    pub(super) fn watch_path(
        &self,
        p: &str,
        caller: &Caller,
        q: &Quotas,
    ) -> Result<(String, bool), XsErrno> {
        if path::is_special(p) {
            path::check_syntax(p).map_err(|_| XsErrno::Einval)?;
            return Ok((p.to_string(), false));
        }
        let abs =
            path::resolve(p, caller.domid, q.path_max as usize).map_err(|_| XsErrno::Einval)?;
        Ok((abs, !path::is_absolute(p)))
    }

    pub(super) fn watch(
        &mut self,
        cid: ConnId,
        caller: &Caller,
        q: &Quotas,
        wpath: &str,
        token: &str,
        out: &mut Vec<u8>,
    ) -> OpResult {
        let (abs, relative) = self.watch_path(wpath, caller, q)?;
        if self.watches.contains(&abs, cid, token) {
            return Err(XsErrno::Eexist);
        }
        let cost = watch_cost(&abs, token);
        if !caller.privileged() {
            if self.domains.watches(caller.domid) >= q.watches {
                return Err(XsErrno::E2big);
            }
            if cost > self.budget(caller, q) {
                return Err(XsErrno::Enomem);
            }
        }
        self.watches.add(
            &abs,
            Watcher {
                conn: cid,
                token: token.into(),
                relative,
            },
        );
        if let Some(c) = self.conns.get_mut(cid) {
            c.watches.push((abs.into(), token.into()));
        }
        self.domains.add_watches(caller.domid, 1);
        self.domains.add_extra(caller.domid, cost as i64);
        ok(out)?;
        // The initial event carries the path as the client gave it.
        self.push_event(cid, wpath, token, true);
        Ok(())
    }

    /// Queue a WATCH_EVENT on a connection (dropped if an unprivileged
    /// connection has too much unread output or its domain is at its
    /// memory quota).
    pub(super) fn push_event(&mut self, cid: ConnId, epath: &str, token: &str, force: bool) {
        let Server {
            tree,
            conns,
            domains,
            dirty,
            quotas,
            work,
            ..
        } = self;
        queue_event(
            tree, conns, domains, quotas, dirty, work, cid, epath, token, force,
        );
    }

    /// Fire the watches a change at `p` triggers: those at `p` and above,
    /// or only at exactly `p` for removed descendants. Unprivileged
    /// watchers only see nodes (and parents) they may read.
    pub(super) fn fire(&mut self, p: &str, exact: bool, perms: FirePerms<'_>) {
        if self.watches.is_empty() {
            return;
        }
        let mut prefixes = std::mem::take(&mut self.prefixes);
        self.work += self.watches.matching_prefixes(p, exact, &mut prefixes) as u64;
        if prefixes.is_empty() {
            self.prefixes = prefixes;
            return;
        }
        // Disjoint borrows: the watchers are read in place (no copies of
        // their tokens) while events are queued on the connections.
        let Server {
            tree,
            watches,
            domains,
            conns,
            dirty,
            quotas,
            work,
            ..
        } = self;
        let (node_perms, parent): (&[Perm], Option<NodeId>) = match perms {
            FirePerms::Node(id) => (tree.perms(id), tree.parent(id)),
            FirePerms::List(l, parent) => (l, parent),
        };
        // the parent's perms, looked up once and only if needed
        let mut parent_perms: Option<Option<Vec<Perm>>> = None;
        for &end in &prefixes {
            let wp = if end == 1 { "/" } else { &p[..end] };
            for w in watches.at(wp) {
                let Some(domid) = conns.get(w.conn).map(|c| c.domid) else {
                    continue;
                };
                if domid != DomId::DOM0 {
                    let caller = Caller {
                        domid,
                        target: domains.target_of(domid),
                    };
                    let pp = parent_perms.get_or_insert_with(|| match parent {
                        Some(id) => Some(tree.perms(id).to_vec()),
                        None => path::parent(p)
                            .and_then(|pp| tree.lookup(pp))
                            .map(|id| tree.perms(id).to_vec()),
                    });
                    let parent_ok = pp.as_ref().is_none_or(|pp| caller.can_read(pp));
                    if !caller.can_read(node_perms) || !parent_ok {
                        continue;
                    }
                }
                let epath = if w.relative {
                    path::relative_to(p, domid).unwrap_or(p)
                } else {
                    p
                };
                queue_event(
                    tree, conns, domains, quotas, dirty, work, w.conn, epath, &w.token, false,
                );
            }
        }
        self.prefixes = prefixes;
    }

    pub(super) fn fire_special(&mut self, name: &str) {
        let perms = if name == INTRODUCE_DOMAIN {
            self.domains.intro_perms.clone()
        } else {
            self.domains.release_perms.clone()
        };
        let hits = self.watches.at(name).to_vec();
        for w in hits {
            let Some(domid) = self.conns.get(w.conn).map(|c| c.domid) else {
                continue;
            };
            if self.caller(domid).can_read(&perms) {
                self.push_event(w.conn, name, &w.token, false);
            }
        }
    }
}

/// Where [`Server::fire`] takes the changed node's permissions from.
pub(super) enum FirePerms<'a> {
    /// A live node: its perms and its parent.
    Node(NodeId),
    /// A list (the node may be gone), and its parent if known.
    List(&'a [Perm], Option<NodeId>),
}

/// What a watch costs its domain.
pub(super) fn watch_cost(path: &str, token: &str) -> u64 {
    WATCH_OVERHEAD + (path.len() + token.len()) as u64
}

/// Queue a WATCH_EVENT on `cid` and charge it to its domain; drop it if an
/// unprivileged connection has too much unread output or its domain would
/// pass its memory quota (cxenstored `send_event`: `domain_memory_add_chk`).
#[allow(clippy::too_many_arguments)]
pub(super) fn queue_event(
    tree: &Tree,
    conns: &mut Conns,
    domains: &mut Domains,
    quotas: &Quotas,
    dirty: &mut Vec<ConnId>,
    work: &mut u64,
    cid: ConnId,
    epath: &str,
    token: &str,
    force: bool,
) {
    *work += EVENT_WORK;
    let Some(c) = conns.get_mut(cid) else {
        return;
    };
    let len = HEADER_LEN + epath.len() + token.len() + 2;
    if !force && c.domid != DomId::DOM0 {
        let limit = u64::from(domains.quotas_of(c.domid, quotas).memory);
        let used = tree.usage(c.domid).bytes + domains.extra(c.domid);
        if c.out.len() > MAX_PENDING_OUTPUT || (limit > 0 && used + len as u64 > limit) {
            c.dropped_events += 1;
            debug!(
                conn = cid.0,
                domid = c.domid.0,
                dropped = c.dropped_events,
                "watch event dropped: output full or memory quota reached"
            );
            return;
        }
    }
    c.push_event(epath, token);
    c.charged += len;
    domains.add_extra(c.domid, len as i64);
    if !c.dirty {
        c.dirty = true;
        dirty.push(cid);
    }
}
