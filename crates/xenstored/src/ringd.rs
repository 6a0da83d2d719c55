//! Serving xenstore over shared rings: dom0's kernel ring and the ring of
//! every domain dom0 INTRODUCEs, each one more connection of the same
//! [`Server`] core (so permissions, quotas, transactions and watches are
//! exactly those of the socket path), plus `VIRQ_DOM_EXC`: shut-down and
//! crashed domains fire `@releaseDomain`, dying and vanished ones are torn
//! down (connection dropped, port unbound, page unmapped: no zombies).
//!
//! Synchronous and Xen-free: the devices are behind [`XenOps`], the pages
//! behind [`SharedPage`]. The ring set is the daemon's [`Rings`]: the
//! event channel descriptor joins the daemon's epoll, and the loop calls
//! [`RingSet::turn`] once per round (between the socket groups' turns)
//! when it is readable or work is left, and hands over the core's
//! effects. Tests use a fake `XenOps` with pages in plain memory.
//!
//! Scheduling (xen `xenstored_core.c` main loop, RINGS.md §1): any event
//! makes us look at every ring, not just the one signalled. Per ring and
//! turn: queued output first; no new request while replies wait for space
//! (the guest's kick when it drains a full response ring wakes us); then
//! at most one [`Budget`] of requests, the same a socket connection of
//! that domain gets per turn (the domain's outstanding quota and
//! [`DOMU_TURN_WORK`] units of work; dom0: [`DOM0_TURN`]), then the next
//! ring. A ring with work left waits for the next round, so a flooding
//! guest gets one bounded turn per round like any socket. One
//! notification per ring and turn if an index moved. A guest kicks only
//! when its request ring was empty, so after serving we re-check for
//! unread bytes and come back without waiting for an event.

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::io;
use std::os::fd::OwnedFd;

use tracing::{debug, info, warn};
use xenstore::DomId;

use crate::daemon::{DOM0_TURN, DOMU_TURN_WORK, Rings};
use crate::ring::{Ring, SharedPage};
use crate::server::{Budget, ConnId, Effect, Server};

/// What the hypervisor says about a domain (`getdomaininfo` flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomainState {
    /// Neither shut down nor dying.
    Running,
    /// Shut down (crash included), not yet dying.
    Shutdown,
    /// Being destroyed.
    Dying,
    /// No such domain any more.
    Gone,
}

/// The Xen devices the ring service needs (real: [`crate::xen::XenHost`]).
pub trait XenOps: Send {
    /// A descriptor of the event channel file, to poll (a duplicate).
    fn poll_fd(&self) -> io::Result<OwnedFd>;
    /// The local port of `VIRQ_DOM_EXC`.
    fn virq_port(&self) -> u32;
    /// Map `domid`'s xenstore page (grant reference 1).
    fn map_ring(&mut self, domid: DomId) -> io::Result<Box<dyn SharedPage + Send>>;
    /// Bind to `remote_port` of `domid`; returns the local port.
    fn bind(&mut self, domid: DomId, remote_port: u32) -> io::Result<u32>;
    /// Unbind a local port.
    fn unbind(&mut self, port: u32);
    /// Signal a local port.
    fn notify(&mut self, port: u32);
    /// Take (and unmask) pending ports; `Ok(true)` if events were lost.
    fn pending(&mut self, out: &mut Vec<u32>) -> io::Result<bool>;
    /// The state of `domid`.
    fn domain_state(&mut self, domid: DomId) -> io::Result<DomainState>;
    /// A separate "does this domain exist?" query for the core's
    /// SET_PERMS (see [`Server::set_domain_oracle`]).
    fn domain_oracle(&mut self) -> Option<crate::server::DomainOracle>;
}

/// The loop looks at every ring again after this long even without an
/// event: requests still unread are served, and a guest that has not taken
/// all our replies is kicked again. A lost kick, either way, then costs a
/// delay, not a wedged guest (dom0's kernel ring once stalled on real Xen
/// with a READ of pciback's unanswered).
const RING_RECHECK: std::time::Duration = std::time::Duration::from_millis(500);

struct RingConn {
    domid: DomId,
    cid: ConnId,
    /// Local event channel port.
    port: u32,
    page: Box<dyn SharedPage + Send>,
    ring: Ring,
    /// Output waits for response ring space.
    blocked: bool,
}

/// Every ring served, and the devices.
pub struct RingSet {
    xen: Box<dyn XenOps>,
    /// dom0's kernel ring and its port, served from [`RingSet::start`].
    dom0: Option<(Box<dyn SharedPage + Send>, u32)>,
    rings: HashMap<u16, RingConn>,
    by_conn: HashMap<ConnId, u16>,
    ports: Vec<u32>,
    again: bool,
    /// When every ring was last swept for replies the guest has not taken.
    last_sweep: std::time::Instant,
}

impl std::fmt::Debug for RingSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingSet")
            .field("rings", &self.rings.len())
            .finish_non_exhaustive()
    }
}

impl RingSet {
    /// A ring service over these devices, serving nothing yet.
    pub fn new(xen: Box<dyn XenOps>) -> RingSet {
        RingSet {
            xen,
            dom0: None,
            rings: HashMap::new(),
            by_conn: HashMap::new(),
            ports: Vec::new(),
            again: false,
            last_sweep: std::time::Instant::now(),
        }
    }

    /// A descriptor of the event channel file, to poll.
    pub fn poll_fd(&self) -> io::Result<OwnedFd> {
        self.xen.poll_fd()
    }

    /// True if a turn should follow at once (work left, no event will
    /// come for it).
    pub fn more_work(&self) -> bool {
        self.again
    }

    /// True if a ring's replies wait for space: the daemon then also looks
    /// again after a while, not only on the guest's kick (a safety net: a
    /// lost kick must cost a delay, not a wedged guest).
    pub fn waiting_for_space(&self) -> bool {
        self.rings
            .values()
            .any(|r| r.blocked && r.ring.broken().is_none())
    }

    /// Tests: make the next turn sweep for replies the guests have not
    /// taken, as if [`RING_RECHECK`] had passed.
    #[cfg(test)]
    fn sweep_due(&mut self) {
        self.last_sweep = std::time::Instant::now()
            .checked_sub(RING_RECHECK)
            .unwrap_or_else(std::time::Instant::now);
    }

    /// True if `cid` is one of our rings.
    pub fn serves(&self, cid: ConnId) -> bool {
        self.by_conn.contains_key(&cid)
    }

    /// Number of rings served (dom0's included).
    pub fn len(&self) -> usize {
        self.rings.len()
    }

    /// True if no ring is served.
    pub fn is_empty(&self) -> bool {
        self.rings.is_empty()
    }

    /// Serve dom0's kernel ring from [`RingSet::start`] on (xenfs
    /// `xsd_kva` and the port in `xsd_port`).
    pub fn set_dom0(&mut self, page: Box<dyn SharedPage + Send>, remote_port: u32) {
        self.dom0 = Some((page, remote_port));
    }

    /// Start serving: dom0's kernel ring, if set; hypervisor-backed
    /// domain existence for the core.
    pub fn start(&mut self, server: &mut Server) -> crate::Result<()> {
        if let Some(o) = self.xen.domain_oracle() {
            server.set_domain_oracle(o);
        }
        if let Some((page, port)) = self.dom0.take() {
            self.add_dom0(server, page, port)
                .map_err(|source| crate::Error::Xen {
                    what: format!("bind dom0's xenstore event channel (port {port}) for"),
                    path: "/proc/xen/xsd_port".into(),
                    source,
                })?;
        }
        Ok(())
    }

    /// Serve dom0's kernel ring (privileged, as dom0's sockets). Its
    /// indices are left as the kernel set them (it may have queued
    /// requests already); one event is sent at once because Linux's
    /// `xenbus_probe` thread waits for a first event before it probes
    /// backends (linux `xenbus_probe.c`, RINGS.md §2).
    fn add_dom0(
        &mut self,
        server: &mut Server,
        page: Box<dyn SharedPage + Send>,
        remote_port: u32,
    ) -> io::Result<()> {
        let port = self.xen.bind(DomId::DOM0, remote_port)?;
        let cid = server.connect(DomId::DOM0);
        self.insert(RingConn {
            domid: DomId::DOM0,
            cid,
            port,
            page,
            ring: Ring::new(),
            blocked: false,
        });
        self.xen.notify(port);
        info!(port = remote_port, "serving dom0's kernel ring");
        Ok(())
    }

    fn insert(&mut self, rc: RingConn) {
        self.by_conn.insert(rc.cid, rc.domid.0);
        if let Some(old) = self.rings.insert(rc.domid.0, rc) {
            self.by_conn.remove(&old.cid);
        }
    }

    /// The event channel file is readable (or a turn was asked for):
    /// take the pending ports, check domains on `VIRQ_DOM_EXC`, then serve
    /// every ring.
    pub fn turn(&mut self, server: &mut Server) {
        self.ports.clear();
        let virq = match self.xen.pending(&mut self.ports) {
            Ok(lost) => lost || self.ports.contains(&self.xen.virq_port()),
            Err(e) => {
                warn!(error = %e, "cannot read the event channel device");
                false
            }
        };
        if virq {
            self.check_domains(server);
        }
        self.again = false;
        let mut ids: Vec<u16> = self.rings.keys().copied().collect();
        ids.sort_unstable();
        for d in ids {
            if let Some(rc) = self.rings.get_mut(&d) {
                self.again |= serve(server, &mut *self.xen, rc);
            }
        }
        if self.last_sweep.elapsed() >= RING_RECHECK {
            self.last_sweep = std::time::Instant::now();
            for rc in self.rings.values() {
                if rc.ring.replies_pending(&*rc.page) {
                    self.xen.notify(rc.port);
                }
            }
        }
    }

    /// Write output queued for ring connection `cid` by others' requests
    /// (watch events); the daemon calls this for dirty ring connections.
    pub fn flush(&mut self, server: &mut Server, cid: ConnId) {
        let Some(rc) = self.by_conn.get(&cid).and_then(|d| self.rings.get_mut(d)) else {
            return;
        };
        let was_blocked = rc.blocked;
        match write_out(server, rc) {
            Ok(true) => self.xen.notify(rc.port),
            Ok(false) => {}
            Err(e) => given_up(server, rc, e),
        }
        // replies were held back while blocked: serve requests again
        if was_blocked && !rc.blocked {
            self.again = true;
        }
    }

    /// Act on the core's effects: map and bind an introduced domain's ring
    /// (reset it on re-introduction), tear down a released one.
    pub fn on_effects(&mut self, server: &mut Server, effects: &[Effect]) {
        for e in effects {
            match e {
                Effect::RingIntroduced { domid, evtchn, .. } => {
                    self.introduce(server, *domid, *evtchn);
                }
                Effect::Released(d) => self.remove(server, *d),
                #[allow(unreachable_patterns)]
                _ => {}
            }
        }
    }

    fn introduce(&mut self, server: &mut Server, d: DomId, remote_port: u32) {
        if d == DomId::DOM0 {
            debug!("INTRODUCE of dom0 ignored: its kernel ring is served from the start");
            return;
        }
        if let Some(rc) = self.rings.get_mut(&d.0) {
            // again (xen domain_conn_reset): new port, zeroed indices, the
            // connection's watches, transactions and output dropped
            self.xen.unbind(rc.port);
            match self.xen.bind(d, remote_port) {
                Ok(p) => rc.port = p,
                Err(e) => {
                    warn!(domid = d.0, port = remote_port, error = %e, "cannot rebind a re-introduced domain; releasing it");
                    self.drop_ring(server, d);
                    server.release_domain(d);
                    return;
                }
            }
            self.by_conn.remove(&rc.cid);
            server.disconnect(rc.cid);
            rc.cid = server.connect(d);
            self.by_conn.insert(rc.cid, d.0);
            rc.ring = Ring::new();
            rc.ring.reset(&*rc.page);
            rc.blocked = false;
            self.xen.notify(rc.port);
            info!(domid = d.0, "domain re-introduced: ring reset");
            return;
        }
        let page = match self.xen.map_ring(d) {
            Ok(p) => p,
            Err(e) => {
                warn!(domid = d.0, error = %e, "cannot map the domain's xenstore page (grant 1); releasing it");
                server.release_domain(d);
                return;
            }
        };
        let port = match self.xen.bind(d, remote_port) {
            Ok(p) => p,
            Err(e) => {
                warn!(domid = d.0, port = remote_port, error = %e, "cannot bind the domain's event channel; releasing it");
                server.release_domain(d);
                return;
            }
        };
        let mut ring = Ring::new();
        ring.reset(&*page);
        let cid = server.connect(d);
        self.insert(RingConn {
            domid: d,
            cid,
            port,
            page,
            ring,
            blocked: false,
        });
        self.xen.notify(port);
        info!(domid = d.0, port = remote_port, "serving the domain's ring");
    }

    /// Forget a domain's ring: connection, port, mapping.
    fn drop_ring(&mut self, server: &mut Server, d: DomId) {
        if let Some(rc) = self.rings.remove(&d.0) {
            self.by_conn.remove(&rc.cid);
            server.disconnect(rc.cid);
            self.xen.unbind(rc.port);
            drop(rc.page);
            info!(domid = d.0, "ring unmapped");
        }
    }

    fn remove(&mut self, server: &mut Server, d: DomId) {
        if d != DomId::DOM0 {
            self.drop_ring(server, d);
        }
    }

    /// `VIRQ_DOM_EXC` (xen `check_domains`): ask the hypervisor about each
    /// served domain. Shut down or crashed: `@releaseDomain` once (until
    /// XS_RESUME). Dying or gone: release it and unmap its page.
    fn check_domains(&mut self, server: &mut Server) {
        let mut ids: Vec<u16> = self.rings.keys().copied().filter(|&d| d != 0).collect();
        ids.sort_unstable();
        for d in ids.into_iter().map(DomId) {
            match self.xen.domain_state(d) {
                Ok(DomainState::Running) => {}
                Ok(DomainState::Shutdown) => {
                    if server.domain_shutdown(d) {
                        info!(domid = d.0, "domain shut down");
                    }
                }
                Ok(s @ (DomainState::Dying | DomainState::Gone)) => {
                    info!(domid = d.0, state = ?s, "domain dying or gone: tearing down");
                    server.release_domain(d);
                    self.drop_ring(server, d);
                }
                Err(e) => warn!(domid = d.0, error = %e, "getdomaininfo failed"),
            }
        }
    }
}

/// Write what fits of `rc`'s queued output. `Ok(true)` if bytes moved.
fn write_out(server: &mut Server, rc: &mut RingConn) -> Result<bool, crate::ring::RingError> {
    let out = server.output(rc.cid);
    if out.is_empty() {
        rc.blocked = false;
        return Ok(false);
    }
    let n = rc.ring.write(&*rc.page, out)?;
    server.consume_output(rc.cid, n);
    rc.blocked = server.output_len(rc.cid) > 0;
    Ok(n > 0)
}

/// The guest broke its ring (the error code is on the page now): drop the
/// connection's watches and transactions (xen `ignore_connection`); the
/// mapping stays until the domain dies or is introduced again.
fn given_up(server: &mut Server, rc: &mut RingConn, e: crate::ring::RingError) {
    warn!(domid = rc.domid.0, error = %e, "ring given up");
    server.disconnect(rc.cid);
    rc.blocked = false;
}

/// The budget of one turn of `domid`'s ring: what a socket connection of
/// the same domain gets per turn.
fn budget_of(server: &Server, domid: DomId) -> Budget {
    if domid == DomId::DOM0 {
        DOM0_TURN
    } else {
        Budget {
            requests: (server.quotas_of(domid).outstanding as usize).max(1),
            work: DOMU_TURN_WORK,
        }
    }
}

/// One turn of one ring; returns true if work is left for another turn.
fn serve(server: &mut Server, xen: &mut dyn XenOps, rc: &mut RingConn) -> bool {
    if rc.ring.broken().is_some() {
        return false;
    }
    let budget = budget_of(server, rc.domid);
    let start_work = server.work();
    let mut requests = 0usize;
    let mut moved = false;
    let mut left = false;
    let res: Result<(), crate::ring::RingError> = (|| {
        loop {
            moved |= write_out(server, rc)?;
            if rc.blocked {
                return Ok(());
            }
            moved |= rc.ring.read(&*rc.page)?;
            if !rc.ring.has_frames() {
                return Ok(());
            }
            let rest = Budget {
                requests: budget.requests - requests,
                work: budget.work.saturating_sub(server.work() - start_work),
            };
            if rest.requests == 0 || rest.work == 0 {
                left = true;
                return Ok(());
            }
            let (used, handled) = match server.feed(rc.cid, rc.ring.frames(), rest) {
                Ok(r) => r,
                Err(_) => return Err(rc.ring.fail(&*rc.page, crate::ring::RingError::Proto)),
            };
            rc.ring.consume(used);
            requests += handled;
            if handled == 0 {
                return Ok(());
            }
        }
    })();
    if let Err(e) = res {
        given_up(server, rc, e);
        xen.notify(rc.port);
        return false;
    }
    if moved {
        xen.notify(rc.port);
    }
    left || (!rc.blocked && (rc.ring.has_frames() || rc.ring.unread(&*rc.page)))
}

impl Rings for RingSet {
    fn poll_fd(&self) -> io::Result<OwnedFd> {
        RingSet::poll_fd(self)
    }
    fn turn(&mut self, server: &mut Server) {
        RingSet::turn(self, server);
    }
    fn serves(&self, cid: ConnId) -> bool {
        RingSet::serves(self, cid)
    }
    fn flush(&mut self, server: &mut Server, cid: ConnId) {
        RingSet::flush(self, server, cid);
    }
    fn on_effects(&mut self, server: &mut Server, effects: &[Effect]) {
        RingSet::on_effects(self, server, effects);
    }
    fn more_work(&self) -> bool {
        RingSet::more_work(self)
    }
    fn recheck_after(&self) -> Option<std::time::Duration> {
        (!self.rings.is_empty()).then_some(RING_RECHECK)
    }
}

#[cfg(test)]
#[path = "ringd_tests.rs"]
mod tests;
