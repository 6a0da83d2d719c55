//! The synchronous server core: requests in, replies and watch events out.
//!
//! [`Server`] owns the tree, the watches, the domains and every
//! connection's pending output. The IO layer ([`crate::daemon`]) feeds it
//! the bytes a connection sent ([`Server::feed`], within a [`Budget`]) and
//! then writes what it queued ([`Server::output`] and
//! [`Server::consume_output`] for each of [`Server::pop_dirty`]). Nothing
//! here does IO, so the fuzzer and the unit tests drive it directly.
//!
//! Everything arriving here may come from a hostile guest: every input is
//! validated, every failure is an error reply, nothing panics, and every
//! resource a request can make the server hold is counted against a quota
//! of its domain (nodes, memory, watches, transactions and their size).

use tracing::{debug, info};
use xenstore::wire::{FrameError, HEADER_LEN, Header, MsgType, PAYLOAD_MAX, Packet, Request};
use xenstore::{DomId, Perm, XsErrno, path};

use crate::conn::{Conn, Conns};

use crate::domain::Domains;

use crate::ops;
use crate::perms::Caller;
use crate::quota::Quotas;
use crate::request::{self, Req};
use crate::store::{Direct, View};
use crate::transaction::{PendingEvent, Transaction, TxView};
use crate::tree::Tree;
use crate::watch::WatchIndex;

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

/// How much one [`Server::feed`] call may do before it returns: at most
/// `requests` requests, and no new request once `work` units are spent
/// (a unit is about one node visited; see [`Server::work`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Requests.
    pub requests: usize,
    /// Work units.
    pub work: u64,
}

impl Budget {
    /// No limit.
    pub const UNLIMITED: Budget = Budget {
        requests: usize::MAX,
        work: u64::MAX,
    };
}

/// Work units a request costs besides the nodes it visits (decoding,
/// the reply, the IO layer's share of a read and a write).
const REQUEST_WORK: u64 = 16;
/// Work units per watch event queued.
pub(crate) const EVENT_WORK: u64 = 2;

pub(crate) const INTRODUCE_DOMAIN: &str = "@introduceDomain";
pub(crate) const RELEASE_DOMAIN: &str = "@releaseDomain";

/// The xenstore server state machine.
pub struct Server {
    tree: Tree,
    watches: WatchIndex,
    domains: Domains,
    conns: Conns,
    quotas: Quotas,
    next_tx: u32,
    dirty: Vec<ConnId>,
    effects: Vec<Effect>,
    /// Work not counted by the tree (requests, events).
    work: u64,
    /// Reused buffer for relative paths made absolute.
    scratch: String,
    /// Reused buffer for the watched prefixes of a changed path.
    prefixes: Vec<usize>,
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

pub(crate) type OpResult = Result<(), XsErrno>;

/// A node operation, decoded, with its absolute path.
enum NodeOp<'a> {
    Read,
    Directory,
    DirectoryPart(u64),
    GetPerms,
    Write(&'a [u8]),
    Mkdir,
    Rm,
    SetPerms(&'a [Perm], bool),
}

/// Run `op` on a view. `Some(h)`: one event at the path, with `h`'s perms.
#[allow(clippy::too_many_arguments)]
fn run_op<V: View>(
    v: &mut V,
    op: &NodeOp<'_>,
    p: &str,
    caller: &Caller,
    q: &Quotas,
    watches: &WatchIndex,
    out: &mut Vec<u8>,
    events: &mut Vec<PendingEvent>,
) -> Result<Option<V::H>, XsErrno> {
    match op {
        NodeOp::Read => ops::read(v, caller, p, out).map(|()| None),
        NodeOp::Directory => ops::directory(v, caller, p, out).map(|()| None),
        NodeOp::DirectoryPart(off) => ops::directory_part(v, caller, p, *off, out).map(|()| None),
        NodeOp::GetPerms => ops::get_perms(v, caller, p, out).map(|()| None),
        NodeOp::Write(value) => ops::write(v, caller, q, p, value).map(Some),
        NodeOp::Mkdir => ops::mkdir(v, caller, q, p),
        NodeOp::Rm => ops::rm(v, caller, p, watches, events).map(|()| None),
        NodeOp::SetPerms(perms, owner_known) => {
            ops::set_perms(v, caller, q, p, perms, &|_| *owner_known).map(Some)
        }
    }
}

impl Server {
    /// A fresh store (`/`, `/tool/xenstored`) with these quotas.
    pub fn new(quotas: Quotas) -> Server {
        Server {
            tree: Tree::new(),
            watches: WatchIndex::default(),
            domains: Domains::new(),
            conns: Conns::default(),
            quotas,
            next_tx: 1,
            dirty: Vec::new(),
            effects: Vec::new(),
            work: 0,
            scratch: String::new(),
            prefixes: Vec::new(),
            domain_exists: None,
        }
    }

    /// The global quotas in force.
    pub fn quotas(&self) -> &Quotas {
        &self.quotas
    }

    /// The quotas in force for `domid` (global ones with its own settings).
    pub fn quotas_of(&self, domid: DomId) -> Quotas {
        self.domains.quotas_of(domid, &self.quotas)
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

    /// Work done so far, in units of about one node visited (monotonic):
    /// the IO layer ends a connection's turn when it has spent its share.
    pub fn work(&self) -> u64 {
        self.tree.work() + self.work
    }

    /// Bytes `domid` holds: its nodes, watches, transactions and output
    /// (what the memory quota limits).
    pub fn memory_of(&self, domid: DomId) -> u64 {
        self.tree.usage(domid).bytes + self.domains.extra(domid)
    }

    /// Nodes `domid` owns.
    pub fn nodes_of(&self, domid: DomId) -> u32 {
        self.tree.owned_by(domid)
    }

    /// A new connection acting as `domid` (dom0 = privileged).
    pub fn connect(&mut self, domid: DomId) -> ConnId {
        self.conns.insert(Conn::new(domid))
    }

    /// Forget a connection: its watches, open transactions and unsent
    /// output go with it (and their memory is returned to its domain).
    pub fn disconnect(&mut self, cid: ConnId) {
        self.reset_conn(cid);
        if let Some(c) = self.conns.remove(cid) {
            self.domains.add_extra(c.domid, -(c.charged as i64));
        }
    }

    /// The domain a connection acts as.
    pub fn domid_of(&self, cid: ConnId) -> Option<DomId> {
        self.conns.get(cid).map(|c| c.domid)
    }

    /// True if the server wants this connection closed (its domain was
    /// released). The IO layer flushes its output and closes it.
    pub fn is_closing(&self, cid: ConnId) -> bool {
        self.conns.get(cid).is_none_or(|c| c.closing)
    }

    /// Take the bytes queued for a connection.
    pub fn take_output(&mut self, cid: ConnId) -> Vec<u8> {
        let Some(c) = self.conns.get_mut(cid) else {
            return Vec::new();
        };
        let out = std::mem::take(&mut c.out);
        let charged = std::mem::take(&mut c.charged);
        let d = c.domid;
        self.domains.add_extra(d, -(charged as i64));
        out
    }

    /// The bytes queued for a connection, to be written in place; tell
    /// [`Server::consume_output`] how many went out.
    pub fn output(&self, cid: ConnId) -> &[u8] {
        self.conns.get(cid).map_or(&[], |c| c.out.as_slice())
    }

    /// Bytes queued for a connection.
    pub fn output_len(&self, cid: ConnId) -> usize {
        self.conns.get(cid).map_or(0, |c| c.out.len())
    }

    /// Drop the first `n` queued bytes of a connection (they were written).
    pub fn consume_output(&mut self, cid: ConnId, n: usize) {
        let Some(c) = self.conns.get_mut(cid) else {
            return;
        };
        let n = n.min(c.out.len());
        if n == c.out.len() {
            c.out.clear();
            // an idle connection keeps only a small buffer
            if c.out.capacity() > 4096 {
                c.out = Vec::new();
            }
        } else {
            c.out.drain(..n);
        }
        let released = n.min(c.charged);
        c.charged -= released;
        let d = c.domid;
        self.domains.add_extra(d, -(released as i64));
    }

    /// The next connection with new output (each is returned once per
    /// batch of changes).
    pub fn pop_dirty(&mut self) -> Option<ConnId> {
        let cid = self.dirty.pop()?;
        if let Some(conn) = self.conns.get_mut(cid) {
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
            if let Some(conn) = self.conns.get_mut(*c) {
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
        if let Some(c) = self.conns.get_mut(cid) {
            if !c.dirty {
                c.dirty = true;
                self.dirty.push(cid);
            }
        }
    }

    /// Handle complete requests at the front of `buf` within `budget`.
    /// Returns (bytes consumed, requests handled). An `Err` means the
    /// stream is broken (payload over 4096 bytes): close the connection,
    /// as cxenstored does.
    pub fn feed(
        &mut self,
        cid: ConnId,
        buf: &[u8],
        budget: Budget,
    ) -> Result<(usize, usize), FrameError> {
        let mut used = 0;
        let mut handled = 0;
        let start = self.work();
        while handled < budget.requests && self.work() - start < budget.work {
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
        self.work += REQUEST_WORK;
        let Some(conn) = self.conns.get_mut(cid) else {
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
        if let Some(conn) = self.conns.get_mut(cid) {
            let reply = out.len() - start;
            if conn.out.is_empty() {
                conn.out = out;
            } else {
                let events = std::mem::replace(&mut conn.out, out);
                conn.out.extend_from_slice(&events);
            }
            conn.charged += reply;
            self.domains.add_extra(domid, reply as i64);
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

    /// Bytes `caller` may still add before its memory quota.
    fn budget(&self, caller: &Caller, q: &Quotas) -> u64 {
        // 0 turns the memory quota off, as in cxenstored
        if caller.privileged() || q.memory == 0 {
            u64::MAX
        } else {
            u64::from(q.memory).saturating_sub(self.memory_of(caller.domid))
        }
    }

    /// Run a node operation on the live tree or inside transaction `tx_id`,
    /// then fire (or queue) its events.
    #[allow(clippy::too_many_arguments)]
    fn node_op(
        &mut self,
        cid: ConnId,
        caller: &Caller,
        q: &Quotas,
        tx_id: u32,
        raw: &str,
        op: NodeOp<'_>,
        out: &mut Vec<u8>,
    ) -> OpResult {
        if path::is_special(raw) {
            return Err(XsErrno::Einval);
        }
        let budget = self.budget(caller, q);
        let mut scratch = std::mem::take(&mut self.scratch);
        let result = self.node_op_at(cid, caller, q, tx_id, raw, op, out, budget, &mut scratch);
        self.scratch = scratch;
        result
    }

    #[allow(clippy::too_many_arguments)]
    fn node_op_at(
        &mut self,
        cid: ConnId,
        caller: &Caller,
        q: &Quotas,
        tx_id: u32,
        raw: &str,
        op: NodeOp<'_>,
        out: &mut Vec<u8>,
        budget: u64,
        scratch: &mut String,
    ) -> OpResult {
        let p = request::resolve(raw, caller.domid, q.path_max as usize, scratch)?;
        let mut events = Vec::new();
        if tx_id == 0 {
            let mut v = Direct {
                tree: &mut self.tree,
                budget,
            };
            let h = run_op(&mut v, &op, p, caller, q, &self.watches, out, &mut events)?;
            if let Some(h) = h {
                self.fire(p, false, FirePerms::Node(h));
            }
            for (ep, exact, perms) in events {
                self.fire(&ep, exact, FirePerms::List(&perms, None));
            }
            return Ok(());
        }
        let Server {
            tree,
            conns,
            watches,
            domains,
            ..
        } = self;
        let tx = conns
            .get_mut(cid)
            .and_then(|c| c.txs.get_mut(&tx_id))
            .ok_or(XsErrno::Enoent)?;
        let before = tx.mem;
        let mut v = TxView {
            tree,
            tx,
            limit: if caller.privileged() {
                usize::MAX
            } else {
                q.transaction_nodes as usize
            },
            budget,
        };
        let result = run_op(&mut v, &op, p, caller, q, watches, out, &mut events);
        if let Ok(Some(h)) = result {
            events.push((p.to_string(), false, v.perms(h).to_vec()));
        }
        // queued events are held until the end: charge them too
        for (ep, _, perms) in &events {
            tx.mem += (ep.len() + 8 * perms.len() + 32) as u64;
        }
        tx.events.extend(events);
        domains.add_extra(caller.domid, (tx.mem - before) as i64);
        result.map(|_| ())
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
                .get(cid)
                .is_some_and(|c| c.txs.contains_key(&tx_id))
        {
            return Err(XsErrno::Enoent);
        }
        let q = if caller.privileged() {
            self.quotas
        } else {
            self.quotas_of(domid)
        };
        let req = request::parse(hdr.msg_type, payload)?;
        match req {
            Req::Read(p) => self.node_op(cid, &caller, &q, tx_id, p, NodeOp::Read, out),
            Req::Directory(p) => self.node_op(cid, &caller, &q, tx_id, p, NodeOp::Directory, out),
            Req::DirectoryPart(p, off) => {
                self.node_op(cid, &caller, &q, tx_id, p, NodeOp::DirectoryPart(off), out)
            }
            Req::GetPerms(p) => self.node_op(cid, &caller, &q, tx_id, p, NodeOp::GetPerms, out),
            Req::Write(p, value) => {
                self.node_op(cid, &caller, &q, tx_id, p, NodeOp::Write(value), out)?;
                ok(out)
            }
            Req::Mkdir(p) => {
                self.node_op(cid, &caller, &q, tx_id, p, NodeOp::Mkdir, out)?;
                ok(out)
            }
            Req::Rm(p) => {
                self.node_op(cid, &caller, &q, tx_id, p, NodeOp::Rm, out)?;
                ok(out)
            }
            Req::Watch(wpath, token) => self.watch(cid, &caller, &q, wpath, token, out),
            Req::Unwatch(wpath, token) => {
                let (abs, _) = self.watch_path(wpath, &caller, &q)?;
                if !self.watches.remove(&abs, cid, token) {
                    return Err(XsErrno::Enoent);
                }
                if let Some(c) = self.conns.get_mut(cid) {
                    c.watches.retain(|(p, t)| !(**p == *abs && **t == *token));
                }
                self.domains.add_watches(domid, -1);
                self.domains
                    .add_extra(domid, -(watch_cost(&abs, token) as i64));
                ok(out)
            }
            Req::Owned(req) => self.dispatch_owned(cid, &caller, &q, tx_id, req, out),
        }
    }

    fn dispatch_owned(
        &mut self,
        cid: ConnId,
        caller: &Caller,
        q: &Quotas,
        tx_id: u32,
        req: Request,
        out: &mut Vec<u8>,
    ) -> OpResult {
        let domid = caller.domid;
        match req {
            Request::SetPerms(p, perms) => {
                let perms = perms.entries().to_vec();
                if path::is_special(&p) {
                    return self.set_special_perms(caller, &p, perms, out);
                }
                let owner_known = perms.first().is_some_and(|o| self.owner_known(o.domid));
                self.node_op(
                    cid,
                    caller,
                    q,
                    tx_id,
                    &p,
                    NodeOp::SetPerms(&perms, owner_known),
                    out,
                )?;
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
                if let Some(c) = self.conns.get_mut(cid) {
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
                    .get_mut(cid)
                    .and_then(|c| c.txs.remove(&tx_id))
                    .ok_or(XsErrno::Enoent)?;
                self.domains.add_transactions(domid, -1);
                self.domains.add_extra(domid, -(tx.mem as i64));
                if commit {
                    self.commit(caller, tx)?;
                }
                ok(out)
            }
            Request::Introduce {
                domid: d,
                gfn,
                evtchn,
            } => {
                require_priv(caller)?;
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
                require_priv(caller)?;
                if d == DomId::DOM0 {
                    return Err(XsErrno::Einval);
                }
                self.release(d);
                ok(out)
            }
            Request::Resume(d) => {
                require_priv(caller)?;
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
                require_priv(caller)?;
                out.extend_from_slice(if self.domains.is_introduced(d) {
                    b"T\0"
                } else {
                    b"F\0"
                });
                Ok(())
            }
            Request::SetTarget { domid: d, target } => {
                require_priv(caller)?;
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
                require_priv(caller)?;
                self.control(&args, out)
            }
            // Decoded here only when the zero-copy decoder passed them on;
            // kept for completeness.
            Request::Read(_)
            | Request::Directory(_)
            | Request::DirectoryPart(..)
            | Request::GetPerms(_)
            | Request::Write(..)
            | Request::Mkdir(_)
            | Request::Rm(_)
            | Request::Watch { .. }
            | Request::Unwatch { .. } => Err(XsErrno::Einval),
            // `Request` is non-exhaustive: a newer codec may decode types
            // this server does not implement.
            #[allow(unreachable_patterns)]
            _ => Err(XsErrno::Enosys),
        }
    }

    /// TRANSACTION_END with `T`: the node quota is checked again against
    /// the tree as it is now (cxenstored `transaction_fix_domains`: each of
    /// ten parallel transactions may fit the quota alone, together they
    /// must not pass it), then conflicts, then the changes are applied.
    fn commit(&mut self, caller: &Caller, tx: Transaction) -> OpResult {
        if !caller.privileged() {
            for (d, delta) in tx.node_deltas() {
                if delta > 0 {
                    let limit = self.quotas_of(d).nodes;
                    if i64::from(self.tree.owned_by(d)) + delta > i64::from(limit) {
                        return Err(XsErrno::Enospc);
                    }
                }
            }
        }
        let events = tx.commit(&mut self.tree, &self.watches)?;
        for (p, exact, perms) in events {
            self.fire(&p, exact, FirePerms::List(&perms, None));
        }
        Ok(())
    }

    fn alloc_tx_id(&mut self, cid: ConnId) -> u32 {
        loop {
            let id = self.next_tx;
            self.next_tx = self.next_tx.wrapping_add(1).max(1);
            if !self.conns.get(cid).is_some_and(|c| c.txs.contains_key(&id)) {
                return id;
            }
        }
    }

    /// Drop all watches and transactions of a connection (RESET_WATCHES,
    /// disconnect, release), returning their memory.
    fn reset_conn(&mut self, cid: ConnId) {
        let Some(c) = self.conns.get_mut(cid) else {
            return;
        };
        let domid = c.domid;
        let watches = std::mem::take(&mut c.watches);
        let ntx = c.txs.len();
        let tx_mem: u64 = c.txs.values().map(|t| t.mem).sum();
        c.txs.clear();
        let mut mem = tx_mem;
        for (p, t) in &watches {
            self.watches.remove(p, cid, t);
            mem += watch_cost(p, t);
        }
        self.domains.add_watches(domid, -(watches.len() as i64));
        self.domains.add_transactions(domid, -(ntx as i64));
        self.domains.add_extra(domid, -(mem as i64));
    }

    /// Introduced domains other than dom0.
    pub fn domains(&self) -> Vec<DomId> {
        self.domains.list()
    }
}

pub(crate) fn ok(out: &mut Vec<u8>) -> OpResult {
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

#[path = "server_admin.rs"]
mod admin;
#[path = "server_events.rs"]
mod events;
use events::{FirePerms, watch_cost};
// Entry points for the ring service on real Xen (ringd).
#[path = "server_xen.rs"]
mod xen_api;

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
