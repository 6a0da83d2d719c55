//! The synchronous server core: requests in, replies and watch events out.
//!
//! [`Server`] owns the tree, the watches, the domains and every
//! connection's pending output. The IO layer ([`crate::daemon`]) feeds it
//! the bytes a connection sent ([`Server::feed`]) and then collects what
//! to write ([`Server::take_output`] for each of [`Server::take_dirty`]).
//! Nothing here does IO, so the fuzzer and the unit tests drive it directly.
//!
//! Everything arriving here may come from a hostile guest: every input is
//! validated, every failure is an error reply, nothing panics.

use std::collections::HashMap;

use tracing::{debug, info};
use xenstore::wire::{FrameError, HEADER_LEN, Header, MsgType, PAYLOAD_MAX, Packet, Request};
use xenstore::{DomId, Perm, XsErrno, path};

use crate::conn::{Conn, queue_event};
use crate::control::{self, Control};
use crate::domain::Domains;
use crate::hash::FastState;
use crate::ops;
use crate::perms::Caller;
use crate::quota::Quotas;
use crate::store::{Direct, View};
use crate::transaction::{PendingEvent, Transaction, TxView};
use crate::tree::Tree;
use crate::watch::{WatchIndex, Watcher};

/// Identifies one client connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// Something the IO layer must do after requests were handled.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Effect {
    /// Dom0 introduced a domain: open its socket.
    Introduced(DomId),
    /// Dom0 released a domain: remove its socket (its connections are
    /// already marked closing).
    Released(DomId),
    /// Dom0 INTRODUCEd a domain, for the first time or again: on real Xen
    /// map its ring page and (re)bind its event channel, resetting the ring
    /// (xen `do_introduce`). Ignored by the socket-only IO layer.
    RingIntroduced {
        /// The domain.
        domid: DomId,
        /// The ring's frame as given (4.17's C server maps grant 1 instead).
        gfn: i64,
        /// The domain's event channel port.
        evtchn: u32,
    },
}

const INTRODUCE_DOMAIN: &str = "@introduceDomain";
const RELEASE_DOMAIN: &str = "@releaseDomain";

/// The xenstore server state machine.
pub struct Server {
    tree: Tree,
    watches: WatchIndex,
    domains: Domains,
    conns: HashMap<ConnId, Conn, FastState>,
    quotas: Quotas,
    next_conn: u64,
    next_tx: u32,
    dirty: Vec<ConnId>,
    effects: Vec<Effect>,
    /// On real Xen: does a (not introduced) domain exist in the hypervisor?
    domain_exists: Option<DomainOracle>,
}

/// Asks the hypervisor whether a domain exists (getdomaininfo).
pub type DomainOracle = Box<dyn FnMut(DomId) -> bool + Send>;

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("nodes", &self.tree.len())
            .field("connections", &self.conns.len())
            .field("quotas", &self.quotas)
            .finish_non_exhaustive()
    }
}

type OpResult = Result<(), XsErrno>;

impl Server {
    /// A fresh store (`/`, `/tool/xenstored`) with these quotas.
    pub fn new(quotas: Quotas) -> Server {
        Server {
            tree: Tree::new(),
            watches: WatchIndex::default(),
            domains: Domains::new(),
            conns: HashMap::default(),
            quotas,
            next_conn: 1,
            next_tx: 1,
            dirty: Vec::new(),
            effects: Vec::new(),
            domain_exists: None,
        }
    }

    /// The quotas in force.
    pub fn quotas(&self) -> &Quotas {
        &self.quotas
    }

    /// Number of nodes in the store.
    pub fn node_count(&self) -> usize {
        self.tree.len()
    }

    /// Number of open connections.
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// True if `domid` is introduced (dom0 always is).
    pub fn is_introduced(&self, domid: DomId) -> bool {
        self.domains.is_introduced(domid)
    }

    /// A new connection acting as `domid` (dom0 = privileged).
    pub fn connect(&mut self, domid: DomId) -> ConnId {
        let id = ConnId(self.next_conn);
        self.next_conn += 1;
        self.conns.insert(id, Conn::new(domid));
        id
    }

    /// Forget a connection: its watches and open transactions go with it.
    pub fn disconnect(&mut self, cid: ConnId) {
        self.reset_conn(cid);
        self.conns.remove(&cid);
    }

    /// The domain a connection acts as.
    pub fn domid_of(&self, cid: ConnId) -> Option<DomId> {
        self.conns.get(&cid).map(|c| c.domid)
    }

    /// True if the server wants this connection closed (its domain was
    /// released). The IO layer flushes its output and closes it.
    pub fn is_closing(&self, cid: ConnId) -> bool {
        self.conns.get(&cid).is_none_or(|c| c.closing)
    }

    /// Take the bytes queued for a connection.
    pub fn take_output(&mut self, cid: ConnId) -> Vec<u8> {
        self.conns
            .get_mut(&cid)
            .map(|c| std::mem::take(&mut c.out))
            .unwrap_or_default()
    }

    /// The bytes queued for a connection, to be written in place: the IO
    /// layer drains what it wrote and the buffer's capacity is reused.
    pub fn output_mut(&mut self, cid: ConnId) -> Option<&mut Vec<u8>> {
        self.conns.get_mut(&cid).map(|c| &mut c.out)
    }

    /// The next connection with new output (each is returned once per
    /// batch of changes; [`Server::take_dirty`] without the allocation).
    pub fn pop_dirty(&mut self) -> Option<ConnId> {
        let cid = self.dirty.pop()?;
        if let Some(conn) = self.conns.get_mut(&cid) {
            conn.dirty = false;
        }
        Some(cid)
    }

    /// True if requests since the last [`Server::take_effects`] produced
    /// effects.
    pub fn has_effects(&self) -> bool {
        !self.effects.is_empty()
    }

    /// Connections with new output since the last call.
    pub fn take_dirty(&mut self) -> Vec<ConnId> {
        let d = std::mem::take(&mut self.dirty);
        for c in &d {
            if let Some(conn) = self.conns.get_mut(c) {
                conn.dirty = false;
            }
        }
        d
    }

    /// Effects for the IO layer since the last call.
    pub fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    fn mark_dirty(&mut self, cid: ConnId) {
        if let Some(c) = self.conns.get_mut(&cid) {
            if !c.dirty {
                c.dirty = true;
                self.dirty.push(cid);
            }
        }
    }

    /// Handle every complete request at the front of `buf`, at most `max`
    /// of them. Returns (bytes consumed, requests handled). An `Err` means
    /// the stream is broken (payload over 4096 bytes): close the connection,
    /// as cxenstored does.
    pub fn feed(
        &mut self,
        cid: ConnId,
        buf: &[u8],
        max: usize,
    ) -> Result<(usize, usize), FrameError> {
        let mut used = 0;
        let mut handled = 0;
        while handled < max {
            let rest = &buf[used..];
            let Some(h) = Header::decode(rest) else {
                break;
            };
            let len = h.len as usize;
            if len > PAYLOAD_MAX {
                return Err(FrameError::PayloadTooLarge {
                    len: h.len,
                    max: PAYLOAD_MAX,
                });
            }
            let Some(payload) = rest.get(HEADER_LEN..HEADER_LEN + len) else {
                break;
            };
            used += HEADER_LEN + len;
            handled += 1;
            self.handle_frame(cid, &h, payload);
        }
        Ok((used, handled))
    }

    /// Handle one request from `cid`: its reply, and any events it causes,
    /// are queued on the connections concerned.
    pub fn handle(&mut self, cid: ConnId, pkt: &Packet) {
        let h = Header {
            msg_type: pkt.msg_type,
            req_id: pkt.req_id,
            tx_id: pkt.tx_id,
            len: 0,
        };
        self.handle_frame(cid, &h, &pkt.payload);
    }

    /// [`Server::handle`] on a decoded header and its payload (no copy).
    fn handle_frame(&mut self, cid: ConnId, req: &Header, payload: &[u8]) {
        let Some(conn) = self.conns.get_mut(&cid) else {
            return;
        };
        if conn.closing {
            return;
        }
        let domid = conn.domid;
        // Events this request causes for its own connection are queued in
        // the (temporarily empty) conn.out and go after the reply.
        let mut out = std::mem::take(&mut conn.out);
        let start = out.len();
        out.extend_from_slice(&[0u8; HEADER_LEN]);
        let result = self.dispatch(cid, domid, req, payload, &mut out);
        let msg_type = match result {
            Ok(()) => req.msg_type,
            Err(e) => {
                debug!(
                    conn = cid.0,
                    domid = domid.0,
                    msg_type = req.msg_type,
                    error = e.name(),
                    "request failed"
                );
                out.truncate(start + HEADER_LEN);
                out.extend_from_slice(e.name().as_bytes());
                out.push(0);
                MsgType::Error.to_u32()
            }
        };
        let len = u32::try_from(out.len() - start - HEADER_LEN).unwrap_or(u32::MAX);
        let h = Header {
            msg_type,
            req_id: req.req_id,
            tx_id: req.tx_id,
            len,
        };
        out[start..start + HEADER_LEN].copy_from_slice(&h.encode());
        if let Some(conn) = self.conns.get_mut(&cid) {
            let events = std::mem::replace(&mut conn.out, out);
            conn.out.extend_from_slice(&events);
        }
        self.mark_dirty(cid);
    }

    fn caller(&self, domid: DomId) -> Caller {
        Caller {
            domid,
            target: if domid == DomId::DOM0 {
                None
            } else {
                self.domains.target_of(domid)
            },
        }
    }

    /// Resolve a node path (relative to the caller's home); `@` names are
    /// not nodes (cx: `EINVAL`).
    fn node_path(&self, p: &str, caller: &Caller) -> Result<String, XsErrno> {
        if path::is_special(p) {
            return Err(XsErrno::Einval);
        }
        path::resolve(p, caller.domid, self.quotas.path_max as usize).map_err(|_| XsErrno::Einval)
    }

    /// Run a node operation on the live tree or inside transaction `tx_id`,
    /// then fire (or queue) its events.
    fn node_op<F>(&mut self, cid: ConnId, caller: &Caller, tx_id: u32, f: F) -> OpResult
    where
        F: FnOnce(&mut dyn View, bool) -> Result<Vec<PendingEvent>, XsErrno>,
    {
        if tx_id == 0 {
            let want_paths = !self.watches.is_empty();
            let events = f(&mut Direct(&mut self.tree), want_paths)?;
            for (p, exact, perms) in events {
                self.fire(&p, exact, &perms);
            }
            return Ok(());
        }
        let limit = self.quotas.transaction_nodes as usize;
        let tx = self
            .conns
            .get_mut(&cid)
            .and_then(|c| c.txs.get_mut(&tx_id))
            .ok_or(XsErrno::Enoent)?;
        if !caller.privileged() && tx.touched() >= limit {
            return Err(XsErrno::Enospc);
        }
        let events = f(
            &mut TxView {
                tree: &self.tree,
                tx: &mut *tx,
            },
            true,
        )?;
        tx.events.extend(events);
        Ok(())
    }

    fn dispatch(
        &mut self,
        cid: ConnId,
        domid: DomId,
        hdr: &Header,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> OpResult {
        let caller = self.caller(domid);
        let tx_id = hdr.tx_id;
        if tx_id != 0
            && !self
                .conns
                .get(&cid)
                .is_some_and(|c| c.txs.contains_key(&tx_id))
        {
            return Err(XsErrno::Enoent);
        }
        let req = Request::decode(hdr.msg_type, payload).map_err(|e| e.errno())?;
        let q = self.quotas.clone();
        match req {
            Request::Read(p) => {
                let p = self.node_path(&p, &caller)?;
                self.node_op(cid, &caller, tx_id, |v, _| {
                    ops::read(v, &caller, &p, out).map(|()| Vec::new())
                })
            }
            Request::Directory(p) => {
                let p = self.node_path(&p, &caller)?;
                self.node_op(cid, &caller, tx_id, |v, _| {
                    ops::directory(v, &caller, &p, out).map(|()| Vec::new())
                })
            }
            Request::DirectoryPart(p, off) => {
                let p = self.node_path(&p, &caller)?;
                self.node_op(cid, &caller, tx_id, |v, _| {
                    ops::directory_part(v, &caller, &p, off, out).map(|()| Vec::new())
                })
            }
            Request::GetPerms(p) => {
                let p = self.node_path(&p, &caller)?;
                self.node_op(cid, &caller, tx_id, |v, _| {
                    ops::get_perms(v, &caller, &p, out).map(|()| Vec::new())
                })
            }
            Request::Write(p, value) => {
                let p = self.node_path(&p, &caller)?;
                self.node_op(cid, &caller, tx_id, |v, _| {
                    ops::write(v, &caller, &q, &p, &value)
                })?;
                ok(out)
            }
            Request::Mkdir(p) => {
                let p = self.node_path(&p, &caller)?;
                self.node_op(cid, &caller, tx_id, |v, _| ops::mkdir(v, &caller, &q, &p))?;
                ok(out)
            }
            Request::Rm(p) => {
                let p = self.node_path(&p, &caller)?;
                self.node_op(cid, &caller, tx_id, |v, want| ops::rm(v, &caller, &p, want))?;
                ok(out)
            }
            Request::SetPerms(p, perms) => {
                let perms = perms.entries().to_vec();
                if path::is_special(&p) {
                    return self.set_special_perms(&caller, &p, perms, out);
                }
                let p = self.node_path(&p, &caller)?;
                let owner_known = perms.first().is_some_and(|o| {
                    self.domains.is_introduced(o.domid)
                        || self.domain_exists.as_mut().is_some_and(|f| f(o.domid))
                });
                self.node_op(cid, &caller, tx_id, |v, _| {
                    ops::set_perms(v, &caller, &q, &p, &perms, &|_| owner_known)
                })?;
                ok(out)
            }
            Request::Watch { path: wpath, token } => self.watch(cid, &caller, &wpath, &token, out),
            Request::Unwatch { path: wpath, token } => {
                let (abs, _) = self.watch_path(&wpath, &caller)?;
                if !self.watches.remove(&abs, cid, &token) {
                    return Err(XsErrno::Enoent);
                }
                if let Some(c) = self.conns.get_mut(&cid) {
                    c.watches.retain(|(p, t)| !(**p == *abs && **t == *token));
                }
                self.domains.add_watches(domid, -1);
                ok(out)
            }
            Request::TransactionStart => {
                if tx_id != 0 {
                    return Err(XsErrno::Ebusy);
                }
                if !caller.privileged() && self.domains.transactions(domid) >= q.transactions {
                    return Err(XsErrno::Enospc);
                }
                let id = self.alloc_tx_id(cid);
                if let Some(c) = self.conns.get_mut(&cid) {
                    c.txs.insert(id, Transaction::default());
                }
                self.domains.add_transactions(domid, 1);
                out.extend_from_slice(id.to_string().as_bytes());
                out.push(0);
                Ok(())
            }
            Request::TransactionEnd(commit) => {
                let tx = self
                    .conns
                    .get_mut(&cid)
                    .and_then(|c| c.txs.remove(&tx_id))
                    .ok_or(XsErrno::Enoent)?;
                self.domains.add_transactions(domid, -1);
                if commit {
                    let events = tx.commit(&mut self.tree)?;
                    for (p, exact, perms) in events {
                        self.fire(&p, exact, &perms);
                    }
                }
                ok(out)
            }
            Request::Introduce {
                domid: d,
                gfn,
                evtchn,
            } => {
                require_priv(&caller)?;
                if !d.is_valid_domain() {
                    return Err(XsErrno::Einval);
                }
                if self.domains.introduce(d) {
                    info!(domid = d.0, "domain introduced");
                    self.fire_special(INTRODUCE_DOMAIN);
                    self.effects.push(Effect::Introduced(d));
                }
                self.effects.push(Effect::RingIntroduced {
                    domid: d,
                    gfn,
                    evtchn,
                });
                ok(out)
            }
            Request::Release(d) => {
                require_priv(&caller)?;
                if d == DomId::DOM0 {
                    return Err(XsErrno::Einval);
                }
                self.release(d);
                ok(out)
            }
            Request::Resume(d) => {
                require_priv(&caller)?;
                if d == DomId::DOM0 || !self.domains.is_introduced(d) {
                    return Err(XsErrno::Enoent);
                }
                self.domains.resume(d);
                ok(out)
            }
            Request::GetDomainPath(d) => {
                out.extend_from_slice(d.path().as_bytes());
                out.push(0);
                Ok(())
            }
            Request::IsDomainIntroduced(d) => {
                require_priv(&caller)?;
                out.extend_from_slice(if self.domains.is_introduced(d) {
                    b"T\0"
                } else {
                    b"F\0"
                });
                Ok(())
            }
            Request::SetTarget { domid: d, target } => {
                require_priv(&caller)?;
                if !self.domains.is_introduced(d)
                    || !self.domains.is_introduced(target)
                    || d == DomId::DOM0
                {
                    return Err(XsErrno::Enoent);
                }
                self.domains.set_target(d, target);
                ok(out)
            }
            Request::ResetWatches => {
                self.reset_conn(cid);
                ok(out)
            }
            Request::Control(args) => {
                require_priv(&caller)?;
                self.control(&args, out)
            }
            // `Request` is non-exhaustive: a newer codec may decode types
            // this server does not implement.
            #[allow(unreachable_patterns)]
            _ => Err(XsErrno::Enosys),
        }
    }

    fn alloc_tx_id(&mut self, cid: ConnId) -> u32 {
        loop {
            let id = self.next_tx;
            self.next_tx = self.next_tx.wrapping_add(1).max(1);
            if !self
                .conns
                .get(&cid)
                .is_some_and(|c| c.txs.contains_key(&id))
            {
                return id;
            }
        }
    }

    /// Drop all watches and transactions of a connection (RESET_WATCHES,
    /// disconnect, release).
    fn reset_conn(&mut self, cid: ConnId) {
        let Some(c) = self.conns.get_mut(&cid) else {
            return;
        };
        let domid = c.domid;
        let watches = std::mem::take(&mut c.watches);
        let ntx = c.txs.len();
        c.txs.clear();
        for (p, t) in &watches {
            self.watches.remove(p, cid, t);
        }
        self.domains.add_watches(domid, -(watches.len() as i64));
        self.domains.add_transactions(domid, -(ntx as i64));
    }

    fn release(&mut self, d: DomId) {
        if !self.domains.is_introduced(d) {
            return;
        }
        let conns: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.domid == d)
            .map(|(&id, _)| id)
            .collect();
        for cid in conns {
            self.reset_conn(cid);
            if let Some(c) = self.conns.get_mut(&cid) {
                c.closing = true;
            }
            self.mark_dirty(cid);
        }
        self.domains.release(d);
        info!(domid = d.0, "domain released");
        self.fire_special(RELEASE_DOMAIN);
        self.effects.push(Effect::Released(d));
    }

    /// Resolve a watch path: `@names` stay as they are, others are
    /// validated and made absolute. Returns (absolute, was relative).
    fn watch_path(&self, p: &str, caller: &Caller) -> Result<(String, bool), XsErrno> {
        if path::is_special(p) {
            path::check_syntax(p).map_err(|_| XsErrno::Einval)?;
            return Ok((p.to_string(), false));
        }
        let abs = path::resolve(p, caller.domid, self.quotas.path_max as usize)
            .map_err(|_| XsErrno::Einval)?;
        Ok((abs, !path::is_absolute(p)))
    }

    fn watch(
        &mut self,
        cid: ConnId,
        caller: &Caller,
        wpath: &str,
        token: &str,
        out: &mut Vec<u8>,
    ) -> OpResult {
        let (abs, relative) = self.watch_path(wpath, caller)?;
        if self.watches.contains(&abs, cid, token) {
            return Err(XsErrno::Eexist);
        }
        if !caller.privileged() && self.domains.watches(caller.domid) >= self.quotas.watches {
            return Err(XsErrno::E2big);
        }
        self.watches.add(
            &abs,
            Watcher {
                conn: cid,
                token: token.into(),
                relative,
            },
        );
        if let Some(c) = self.conns.get_mut(&cid) {
            c.watches.push((abs.into(), token.into()));
        }
        self.domains.add_watches(caller.domid, 1);
        ok(out)?;
        // The initial event carries the path as the client gave it.
        self.push_event(cid, wpath, token, true);
        Ok(())
    }

    /// Queue a WATCH_EVENT on a connection (dropped if an unprivileged
    /// connection has too much unread output).
    fn push_event(&mut self, cid: ConnId, epath: &str, token: &str, force: bool) {
        queue_event(&mut self.conns, &mut self.dirty, cid, epath, token, force);
    }

    /// Fire the watches a change at `p` triggers: those at `p` and above,
    /// or only at exactly `p` for removed descendants. Unprivileged
    /// watchers only see nodes (and parents) they may read.
    fn fire(&mut self, p: &str, exact: bool, perms: &[Perm]) {
        if self.watches.is_empty() {
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
            ..
        } = self;
        // the parent's perms, looked up once and only if needed
        let mut parent_perms: Option<Option<Vec<Perm>>> = None;
        let levels = if exact { 1 } else { usize::MAX };
        for wp in crate::watch::ancestors_and_self(p).take(levels) {
            for w in watches.at(wp) {
                let Some(domid) = conns.get(&w.conn).map(|c| c.domid) else {
                    continue;
                };
                if domid != DomId::DOM0 {
                    let caller = Caller {
                        domid,
                        target: domains.target_of(domid),
                    };
                    let pp = parent_perms.get_or_insert_with(|| {
                        path::parent(p)
                            .and_then(|pp| tree.lookup(pp))
                            .map(|id| tree.perms(id).to_vec())
                    });
                    let parent_ok = pp.as_ref().is_none_or(|pp| caller.can_read(pp));
                    if !caller.can_read(perms) || !parent_ok {
                        continue;
                    }
                }
                let epath = if w.relative {
                    path::relative_to(p, domid).unwrap_or(p)
                } else {
                    p
                };
                queue_event(conns, dirty, w.conn, epath, &w.token, false);
            }
        }
    }

    fn fire_special(&mut self, name: &str) {
        let perms = if name == INTRODUCE_DOMAIN {
            self.domains.intro_perms.clone()
        } else {
            self.domains.release_perms.clone()
        };
        let hits = self.watches.at(name).to_vec();
        for w in hits {
            let Some(domid) = self.conns.get(&w.conn).map(|c| c.domid) else {
                continue;
            };
            if self.caller(domid).can_read(&perms) {
                self.push_event(w.conn, name, &w.token, false);
            }
        }
    }

    fn set_special_perms(
        &mut self,
        caller: &Caller,
        p: &str,
        perms: Vec<Perm>,
        out: &mut Vec<u8>,
    ) -> OpResult {
        let slot = match p {
            INTRODUCE_DOMAIN => &mut self.domains.intro_perms,
            RELEASE_DOMAIN => &mut self.domains.release_perms,
            _ => return Err(XsErrno::Einval),
        };
        if !caller.privileged() {
            return Err(XsErrno::Eacces);
        }
        *slot = perms;
        ok(out)
    }

    fn control(&mut self, args: &[Vec<u8>], out: &mut Vec<u8>) -> OpResult {
        match control::parse(args)? {
            Control::Help => out.extend_from_slice(control::HELP.as_bytes()),
            Control::Check => return ok(out),
            Control::Print(s) => {
                info!(text = %s, "CONTROL print");
                return ok(out);
            }
            Control::QuotaShow => out.extend_from_slice(self.quotas.report().as_bytes()),
            Control::QuotaSet(name, v) => {
                self.quotas.set(&name, v)?;
                return ok(out);
            }
            Control::QuotaOf(d) => {
                if !self.domains.is_introduced(d) {
                    return Err(XsErrno::Enoent);
                }
                let s = format!(
                    "Domain {}:\nnodes            : {:>8}\nwatches          : {:>8}\ntransactions     : {:>8}\n",
                    d.0,
                    self.tree.owned_by(d),
                    self.domains.watches(d),
                    self.domains.transactions(d)
                );
                out.extend_from_slice(s.as_bytes());
            }
        }
        out.push(0);
        Ok(())
    }

    /// Introduced domains other than dom0.
    pub fn domains(&self) -> Vec<DomId> {
        self.domains.list()
    }
}

fn ok(out: &mut Vec<u8>) -> OpResult {
    out.extend_from_slice(b"OK\0");
    Ok(())
}

fn require_priv(caller: &Caller) -> OpResult {
    if caller.privileged() {
        Ok(())
    } else {
        Err(XsErrno::Eacces)
    }
}

// Entry points for the ring service on real Xen (ringd).
#[path = "server_xen.rs"]
mod xen_api;

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
