//! The ring service against a fake Xen: pages in plain memory, recorded
//! bindings and notifications, domain states set by the test.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use xenstore::wire::{Header, MsgType, PAYLOAD_MAX, Packet, Request};
use xenstore::{DomId, XsErrno};

use super::*;
use crate::quota::Quotas;
use crate::ring::{ERROR, MemPage, REQ, REQ_CONS, REQ_PROD, RING_SIZE, RSP, RSP_CONS, RSP_PROD};

#[derive(Default)]
struct Fake {
    pages: HashMap<u16, Arc<MemPage>>,
    mapped: HashMap<u16, usize>,
    states: HashMap<u16, DomainState>,
    bound: HashMap<u32, (u16, u32)>,
    notified: Vec<u32>,
    pending: Vec<u32>,
    next_port: u32,
    fail_map: bool,
    /// The daemon's end of a socket pair playing the event channel file
    /// (for the tests that run the real loop); a byte written at the
    /// other end makes it readable.
    evtchn: Option<std::os::unix::net::UnixStream>,
}

#[derive(Clone, Default)]
struct FakeXen(Arc<Mutex<Fake>>);

const VIRQ: u32 = 1;

struct FakePage {
    page: Arc<MemPage>,
    domid: u16,
    xen: FakeXen,
}

impl SharedPage for FakePage {
    fn load(&self, off: usize) -> u32 {
        self.page.load(off)
    }
    fn store(&self, off: usize, v: u32) {
        self.page.store(off, v);
    }
    fn copy_out(&self, off: usize, dst: &mut [u8]) {
        self.page.copy_out(off, dst);
    }
    fn copy_in(&self, off: usize, src: &[u8]) {
        self.page.copy_in(off, src);
    }
}

impl Drop for FakePage {
    fn drop(&mut self) {
        let mut f = self.xen.0.lock().unwrap();
        *f.mapped.get_mut(&self.domid).unwrap() -= 1;
    }
}

impl FakeXen {
    fn f(&self) -> std::sync::MutexGuard<'_, Fake> {
        self.0.lock().unwrap()
    }
    fn page(&self, d: u16) -> Arc<MemPage> {
        self.f().pages.entry(d).or_default().clone()
    }
    fn port_of(&self, d: u16) -> Option<u32> {
        self.f()
            .bound
            .iter()
            .find(|(_, (dd, _))| *dd == d)
            .map(|(p, _)| *p)
    }
    fn kick(&self, d: u16) {
        let p = self.port_of(d).unwrap();
        self.f().pending.push(p);
    }
    fn notified(&self, d: u16) -> usize {
        let Some(p) = self.port_of(d) else { return 0 };
        self.f().notified.iter().filter(|&&x| x == p).count()
    }
}

impl XenOps for FakeXen {
    fn poll_fd(&self) -> io::Result<OwnedFd> {
        match &self.f().evtchn {
            Some(s) => Ok(s.try_clone()?.into()),
            None => Err(io::Error::from(io::ErrorKind::Unsupported)),
        }
    }
    fn virq_port(&self) -> u32 {
        VIRQ
    }
    fn map_ring(&mut self, domid: DomId) -> io::Result<Box<dyn SharedPage + Send>> {
        if self.f().fail_map {
            return Err(io::Error::from_raw_os_error(22));
        }
        let page = self.page(domid.0);
        *self.f().mapped.entry(domid.0).or_default() += 1;
        Ok(Box::new(FakePage {
            page,
            domid: domid.0,
            xen: self.clone(),
        }))
    }
    fn bind(&mut self, domid: DomId, remote_port: u32) -> io::Result<u32> {
        let mut f = self.f();
        f.next_port += 1;
        let p = f.next_port + 10;
        f.bound.insert(p, (domid.0, remote_port));
        Ok(p)
    }
    fn unbind(&mut self, port: u32) {
        self.f().bound.remove(&port);
    }
    fn notify(&mut self, port: u32) {
        self.f().notified.push(port);
    }
    fn pending(&mut self, out: &mut Vec<u32>) -> io::Result<bool> {
        let mut f = self.f();
        if let Some(s) = &f.evtchn {
            // drain it, as the real device is read until EAGAIN
            use std::io::Read;
            let mut b = [0u8; 64];
            while matches!((&*s).read(&mut b), Ok(n) if n > 0) {}
        }
        out.append(&mut f.pending);
        Ok(false)
    }
    fn domain_oracle(&mut self) -> Option<crate::server::DomainOracle> {
        let me = self.clone();
        Some(Box::new(move |d: DomId| me.f().states.contains_key(&d.0)))
    }
    fn domain_state(&mut self, domid: DomId) -> io::Result<DomainState> {
        Ok(self
            .f()
            .states
            .get(&domid.0)
            .copied()
            .unwrap_or(DomainState::Gone))
    }
}

fn guest_put(page: &MemPage, data: &[u8]) -> usize {
    let cons = page.load(REQ_CONS);
    let prod = page.load(REQ_PROD);
    let space = RING_SIZE - prod.wrapping_sub(cons);
    let n = (space as usize).min(data.len());
    for (i, b) in data[..n].iter().enumerate() {
        let at = (prod.wrapping_add(i as u32) & (RING_SIZE - 1)) as usize;
        page.copy_in(REQ + at, std::slice::from_ref(b));
    }
    page.store(REQ_PROD, prod.wrapping_add(n as u32));
    n
}

fn guest_take(page: &MemPage) -> Vec<u8> {
    let cons = page.load(RSP_CONS);
    let prod = page.load(RSP_PROD);
    let n = prod.wrapping_sub(cons) as usize;
    let mut out = vec![0u8; n];
    for (i, b) in out.iter_mut().enumerate() {
        let at = (cons.wrapping_add(i as u32) & (RING_SIZE - 1)) as usize;
        let mut one = [0u8];
        page.copy_out(RSP + at, &mut one);
        *b = one[0];
    }
    page.store(RSP_CONS, prod);
    out
}

fn packets(mut bytes: &[u8]) -> Vec<Packet> {
    let mut v = Vec::new();
    while let Some((p, n)) = Packet::decode(bytes, PAYLOAD_MAX).unwrap() {
        v.push(p);
        bytes = &bytes[n..];
    }
    assert!(bytes.is_empty(), "partial packet left");
    v
}

struct Host {
    server: Server,
    rings: RingSet,
    xen: FakeXen,
    admin: ConnId,
}

impl Host {
    fn new() -> Host {
        let xen = FakeXen::default();
        let mut server = Server::new(Quotas::default());
        let admin = server.connect(DomId(0));
        Host {
            rings: RingSet::new(Box::new(xen.clone())),
            server,
            xen,
            admin,
        }
    }

    /// A request from dom0's socket (the toolstack), its reply payload.
    fn admin(&mut self, r: Request) -> Packet {
        self.server.handle(self.admin, &r.to_packet(1, 0));
        let effects = self.server.take_effects();
        self.rings.on_effects(&mut self.server, &effects);
        let out = self.server.take_output(self.admin);
        packets(&out).remove(0)
    }

    fn introduce(&mut self, d: u16) {
        let p = self.admin(Request::Introduce {
            domid: DomId(d),
            gfn: 0,
            evtchn: 100 + u32::from(d),
        });
        assert_eq!(p.payload, b"OK\0");
        self.admin(Request::Mkdir(format!("/local/domain/{d}")));
        self.admin(Request::SetPerms(
            format!("/local/domain/{d}"),
            format!("n{d}").parse().unwrap(),
        ));
    }

    /// Let the guest send `reqs` and kick; serve; return what it receives.
    fn guest(&mut self, d: u16, reqs: &[Request]) -> Vec<Packet> {
        let page = self.xen.page(d);
        for (i, r) in reqs.iter().enumerate() {
            let bytes = r.to_packet(i as u32 + 1, 0).encode();
            assert_eq!(guest_put(&page, &bytes), bytes.len());
        }
        self.xen.kick(d);
        self.turn();
        packets(&guest_take(&page))
    }

    fn turn(&mut self) {
        self.rings.turn(&mut self.server);
        while self.rings.more_work() {
            self.rings.turn(&mut self.server);
        }
        let effects = self.server.take_effects();
        self.rings.on_effects(&mut self.server, &effects);
        while let Some(c) = self.server.pop_dirty() {
            self.rings.flush(&mut self.server, c);
        }
    }
}

#[test]
fn introduce_maps_grant_binds_port_resets_and_serves() {
    let mut h = Host::new();
    // stale indices from before: INTRODUCE zeroes them
    h.xen.page(5).store(REQ_PROD, 77);
    h.introduce(5);
    assert_eq!(h.xen.f().mapped[&5], 1);
    let port = h.xen.port_of(5).unwrap();
    assert_eq!(h.xen.f().bound[&port], (5, 105));
    assert!(h.xen.notified(5) >= 1);
    assert_eq!(h.xen.page(5).load(REQ_PROD), 0);
    let r = h.guest(
        5,
        &[
            Request::Write("data/x".into(), b"hello".to_vec()),
            Request::Read("data/x".into()),
        ],
    );
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].payload, b"OK\0");
    assert_eq!(r[1].payload, b"hello");
    assert_eq!(r[1].req_id, 2);
    // the toolstack sees the guest's write, at its absolute path
    let p = h.admin(Request::Read("/local/domain/5/data/x".into()));
    assert_eq!(p.payload, b"hello");
}

#[test]
fn guest_requests_obey_permissions_and_quotas_as_on_sockets() {
    let mut h = Host::new();
    h.server.handle(
        h.admin,
        &Request::Write("/secret".into(), b"s".to_vec()).to_packet(1, 0),
    );
    h.introduce(5);
    let r = h.guest(5, &[Request::Read("/secret".into())]);
    assert_eq!(r[0].msg_type, MsgType::Error.to_u32());
    assert_eq!(r[0].payload, b"EACCES\0");
    // watch quota (128 by default): the 129th fails with E2BIG
    let watches: Vec<Request> = (0..129)
        .map(|i| Request::Watch {
            path: format!("data/w{i}"),
            token: "t".into(),
        })
        .collect();
    let mut errs = Vec::new();
    for chunk in watches.chunks(20) {
        for p in h.guest(5, chunk) {
            if p.msg_type == MsgType::Error.to_u32() {
                errs.push(p.payload);
            }
        }
    }
    assert_eq!(errs, vec![b"E2BIG\0".to_vec()]);
}

#[test]
fn watch_events_from_other_connections_reach_the_ring() {
    let mut h = Host::new();
    h.introduce(5);
    let r = h.guest(
        5,
        &[Request::Watch {
            path: "/local/domain/5/data".into(),
            token: "tok".into(),
        }],
    );
    assert_eq!(r.len(), 2); // reply + the initial event
    h.admin(Request::Write(
        "/local/domain/5/data/k".into(),
        b"v".to_vec(),
    ));
    let before = h.xen.notified(5);
    while let Some(c) = h.server.pop_dirty() {
        h.rings.flush(&mut h.server, c);
    }
    assert!(h.xen.notified(5) > before);
    let ev = packets(&guest_take(&h.xen.page(5)));
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].msg_type, MsgType::WatchEvent.to_u32());
    assert!(ev[0].payload.starts_with(b"/local/domain/5/data/k\0tok\0"));
}

#[test]
fn replies_wait_for_ring_space_and_requests_wait_for_replies() {
    let mut h = Host::new();
    h.introduce(5);
    h.admin(Request::Write(
        "/local/domain/5/big".into(),
        vec![b'x'; 900],
    ));
    h.admin(Request::SetPerms(
        "/local/domain/5/big".into(),
        "n5".parse().unwrap(),
    ));
    let page = h.xen.page(5);
    // ten reads of 900 bytes: the replies need 9 KiB, the ring holds 1
    let req = Request::Read("big".into()).to_packet(1, 0).encode();
    for _ in 0..10 {
        assert_eq!(guest_put(&page, &req), req.len());
    }
    h.xen.kick(5);
    h.turn();
    let rsp_used = page.load(RSP_PROD).wrapping_sub(page.load(RSP_CONS));
    assert_eq!(rsp_used, RING_SIZE, "response ring filled");
    // drain in steps, as the guest would after each kick from us
    let mut got = Vec::new();
    for _ in 0..50 {
        got.extend(guest_take(&page));
        h.xen.kick(5);
        h.turn();
        if got.len() >= 10 * (16 + 900) {
            break;
        }
    }
    got.extend(guest_take(&page));
    let p = packets(&got);
    assert_eq!(p.len(), 10);
    assert!(p.iter().all(|p| p.payload.len() == 900));
}

#[test]
fn hostile_ring_gets_error_field_and_others_keep_being_served() {
    let mut h = Host::new();
    h.introduce(5);
    h.introduce(6);
    let p5 = h.xen.page(5);
    p5.store(REQ_PROD, 5000); // more than a ring ahead of req_cons
    h.xen.kick(5);
    h.turn();
    assert_eq!(p5.load(ERROR), 2);
    // an oversized header on another guest
    let p6 = h.xen.page(6);
    let hdr = Header {
        msg_type: 2,
        req_id: 1,
        tx_id: 0,
        len: 5000,
    };
    guest_put(&p6, &hdr.encode());
    h.xen.kick(6);
    h.turn();
    assert_eq!(p6.load(ERROR), 3);
    // dom0 still served; a new guest still served
    h.introduce(7);
    let r = h.guest(7, &[Request::Write("data/a".into(), b"1".to_vec())]);
    assert_eq!(r[0].payload, b"OK\0");
    // re-INTRODUCE gives guest 5 a fresh ring and connection
    h.introduce(5);
    p5.store(ERROR, 0);
    let r = h.guest(5, &[Request::Write("data/b".into(), b"2".to_vec())]);
    assert_eq!(r[0].payload, b"OK\0");
}

#[test]
fn dom_exc_shutdown_fires_release_once_dying_tears_down() {
    let mut h = Host::new();
    h.introduce(5);
    h.introduce(6);
    h.xen.f().states.insert(5, DomainState::Running);
    h.xen.f().states.insert(6, DomainState::Running);
    h.admin(Request::Watch {
        path: "@releaseDomain".into(),
        token: "rel".into(),
    });
    let _ = h.server.take_output(h.admin);
    let events = |h: &mut Host| {
        packets(&h.server.take_output(h.admin))
            .into_iter()
            .filter(|p| p.msg_type == MsgType::WatchEvent.to_u32())
            .count()
    };
    h.xen.f().states.insert(5, DomainState::Shutdown);
    h.xen.f().pending.push(VIRQ);
    h.turn();
    assert_eq!(events(&mut h), 1);
    // a second VIRQ: no second event for the same shutdown
    h.xen.f().pending.push(VIRQ);
    h.turn();
    assert_eq!(events(&mut h), 0);
    // XS_RESUME re-arms it
    h.admin(Request::Resume(DomId(5)));
    h.xen.f().pending.push(VIRQ);
    h.turn();
    assert_eq!(events(&mut h), 1);
    // dying: released, unbound, unmapped; the other domain untouched
    h.xen.f().states.insert(5, DomainState::Dying);
    h.xen.f().pending.push(VIRQ);
    h.turn();
    assert_eq!(events(&mut h), 1);
    assert_eq!(h.xen.f().mapped[&5], 0, "page unmapped");
    assert_eq!(h.xen.port_of(5), None, "port unbound");
    let p = h.admin(Request::IsDomainIntroduced(DomId(5)));
    assert_eq!(p.payload, b"F\0");
    assert_eq!(h.rings.len(), 1);
    // gone (no such domain any more) works the same
    h.xen.f().states.remove(&6);
    h.xen.f().pending.push(VIRQ);
    h.turn();
    assert_eq!(h.xen.f().mapped[&6], 0);
    assert!(h.rings.is_empty());
}

/// libxl sets the new domain's nodes' owner before INTRODUCE: with the
/// hypervisor saying the domain exists, SET_PERMS accepts it (C 4.17's
/// domain_alloc_permrefs) and the guest may then write its own nodes.
#[test]
fn set_perms_accepts_an_existing_not_yet_introduced_owner() {
    let mut h = Host::new();
    h.rings.start(&mut h.server).unwrap();
    h.admin(Request::Write("/local/domain/8/data".into(), Vec::new()));
    let p = h.admin(Request::SetPerms(
        "/local/domain/8/data".into(),
        "n8".parse().unwrap(),
    ));
    assert_eq!(p.payload, b"ENOENT\0", "no such domain yet");
    h.xen.f().states.insert(8, DomainState::Running);
    let p = h.admin(Request::SetPerms(
        "/local/domain/8/data".into(),
        "n8".parse().unwrap(),
    ));
    assert_eq!(p.payload, b"OK\0");
    let p = h.admin(Request::Introduce {
        domid: DomId(8),
        gfn: 0,
        evtchn: 9,
    });
    assert_eq!(p.payload, b"OK\0");
    let r = h.guest(8, &[Request::Write("data/x".into(), b"1".to_vec())]);
    assert_eq!(r[0].payload, b"OK\0");
}

#[test]
fn release_from_the_toolstack_unmaps() {
    let mut h = Host::new();
    h.introduce(5);
    h.admin(Request::Release(DomId(5)));
    assert_eq!(h.xen.f().mapped[&5], 0);
    assert_eq!(h.xen.port_of(5), None);
}

#[test]
fn failed_mapping_releases_the_domain() {
    let mut h = Host::new();
    h.xen.f().fail_map = true;
    h.admin(Request::Introduce {
        domid: DomId(9),
        gfn: 0,
        evtchn: 3,
    });
    let p = h.admin(Request::IsDomainIntroduced(DomId(9)));
    assert_eq!(p.payload, b"F\0");
}

#[test]
fn dom0_kernel_ring_is_privileged_and_kicked_at_start() {
    let mut h = Host::new();
    let page = Arc::new(MemPage::default());
    // the kernel queued a request before we started
    let req = Request::Write("/local/domain/0/name".into(), b"Domain-0".to_vec())
        .to_packet(3, 0)
        .encode();
    guest_put(&page, &req);
    h.xen.f().pages.insert(0, page.clone());
    h.xen.f().mapped.insert(0, 1);
    h.rings.set_dom0(
        Box::new(FakePage {
            page: page.clone(),
            domid: 0,
            xen: h.xen.clone(),
        }),
        13,
    );
    h.rings.start(&mut h.server).unwrap();
    assert_eq!(h.xen.notified(0), 1, "one event at start");
    h.turn();
    let r = packets(&guest_take(&page));
    assert_eq!(r[0].payload, b"OK\0");
    let p = h.admin(Request::Read("/local/domain/0/name".into()));
    assert_eq!(p.payload, b"Domain-0");
    // the VIRQ never touches dom0
    h.xen.f().pending.push(VIRQ);
    h.turn();
    assert_eq!(h.rings.len(), 1);
    let _ = XsErrno::Eacces;
}

/// A ring's turn is bounded like a socket connection's: at most the
/// domain's outstanding quota of requests (its own, after CONTROL
/// quota-set), then the next ring; the rest waits for the next round.
#[test]
fn a_ring_turn_handles_at_most_the_domains_budget() {
    let mut h = Host::new();
    h.introduce(5);
    h.introduce(6);
    let p = h.admin(Request::Control(vec![
        b"quota-set".to_vec(),
        b"5".to_vec(),
        b"outstanding".to_vec(),
        b"7".to_vec(),
    ]));
    assert_eq!(p.payload, b"OK\0");
    let page5 = h.xen.page(5);
    let page6 = h.xen.page(6);
    let req = Request::Read("data".into()).to_packet(1, 0).encode();
    let mut queued = 0;
    while guest_put(&page5, &req) == req.len() {
        queued += 1;
    }
    assert!(queued > 30, "{queued}");
    guest_put(&page6, &req);
    h.xen.kick(5);
    h.xen.kick(6);
    h.rings.turn(&mut h.server);
    assert_eq!(
        packets(&guest_take(&page5)).len(),
        7,
        "one turn: its budget"
    );
    assert_eq!(
        packets(&guest_take(&page6)).len(),
        1,
        "the other ring served too"
    );
    assert!(h.rings.more_work(), "work left: another turn follows");
    let mut got = 7;
    let mut turns = 1;
    while h.rings.more_work() {
        h.rings.turn(&mut h.server);
        got += packets(&guest_take(&page5)).len();
        turns += 1;
    }
    assert_eq!(got, queued);
    assert!(turns >= queued / 7, "{turns} turns for {queued}");
}

/// The plumbing on main's loop: the real ring service with a fake Xen
/// whose event channel file is a socket pair, inside the real daemon. A
/// dom0 socket client INTRODUCEs a domain (the effect maps its ring), the
/// guest's requests are served when it kicks, a socket write fires the
/// guest's watch through the loop's flush of ring connections, and a
/// RELEASE unmaps the ring.
#[test]
fn the_daemon_loop_serves_rings_next_to_sockets() {
    use std::io::{Read, Write};
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("s");
    let (evtchn, mut kick) = std::os::unix::net::UnixStream::pair().unwrap();
    evtchn.set_nonblocking(true).unwrap();
    let xen = FakeXen::default();
    xen.f().evtchn = Some(evtchn);
    let mut d = crate::daemon::Daemon::bind(&crate::daemon::Config::new(&sock)).unwrap();
    let mut set = RingSet::new(Box::new(xen.clone()));
    set.start(d.server_mut()).unwrap();
    d.add_rings(Box::new(set)).unwrap();
    let stop = d.stopper();
    let t = std::thread::spawn(move || d.run());
    let mut c = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    let mut admin = |r: Request| -> Packet {
        c.write_all(&r.to_packet(1, 0).encode()).unwrap();
        let mut buf = Vec::new();
        let mut b = [0u8; 4096];
        loop {
            if let Some((p, _)) = Packet::decode(&buf, PAYLOAD_MAX).unwrap() {
                return p;
            }
            let n = c.read(&mut b).unwrap();
            assert!(n > 0, "daemon closed the socket");
            buf.extend_from_slice(&b[..n]);
        }
    };
    let r = admin(Request::Introduce {
        domid: DomId(5),
        gfn: 0,
        evtchn: 105,
    });
    assert_eq!(r.payload, b"OK\0");
    admin(Request::Mkdir("/local/domain/5".into()));
    admin(Request::SetPerms(
        "/local/domain/5".into(),
        "n5".parse().unwrap(),
    ));
    assert_eq!(xen.f().mapped[&5], 1, "INTRODUCE mapped the ring");
    let page = xen.page(5);
    let mut received = Vec::new();
    let mut guest = |reqs: &[Request], want: usize, what: &str| -> Vec<Packet> {
        for (i, r) in reqs.iter().enumerate() {
            let bytes = r.to_packet(i as u32 + 1, 0).encode();
            assert_eq!(guest_put(&page, &bytes), bytes.len());
        }
        if !reqs.is_empty() {
            xen.kick(5);
            kick.write_all(b"k").unwrap();
        }
        testutil::wait_until(what, Duration::from_secs(20), || {
            received.extend(guest_take(&page));
            packets(&received).len() >= want
        });
        packets(&std::mem::take(&mut received))
    };
    let r = guest(
        &[
            Request::Write("data/x".into(), b"hi".to_vec()),
            Request::Watch {
                path: "data/w".into(),
                token: "tok".into(),
            },
        ],
        3,
        "the guest's requests are answered",
    );
    assert_eq!(r[0].payload, b"OK\0");
    assert_eq!(r[1].payload, b"OK\0");
    assert_eq!(r[2].msg_type, MsgType::WatchEvent.to_u32());
    assert_eq!(
        admin(Request::Read("/local/domain/5/data/x".into())).payload,
        b"hi"
    );
    // a socket client's write reaches the guest's ring as a watch event,
    // without any kick from the guest
    admin(Request::Write(
        "/local/domain/5/data/w".into(),
        b"1".to_vec(),
    ));
    let ev = guest(&[], 1, "the watch event reaches the ring");
    assert_eq!(ev[0].msg_type, MsgType::WatchEvent.to_u32());
    // a relative watch gets relative paths
    assert!(ev[0].payload.starts_with(b"data/w\0tok\0"));
    assert_eq!(admin(Request::Release(DomId(5))).payload, b"OK\0");
    assert_eq!(xen.f().mapped[&5], 0, "RELEASE unmapped the ring");
    assert_eq!(xen.port_of(5), None, "and unbound its port");
    stop.stop();
    t.join().unwrap().unwrap();
}

/// A lost kick either way costs a delay, not a wedged guest: with rings to
/// serve the loop always comes back after RING_RECHECK; a request the guest
/// put without a kick is served by that turn, and a guest that has not
/// taken our replies is kicked again.
#[test]
fn lost_kicks_are_recovered_by_the_periodic_turn() {
    let mut h = Host::new();
    assert_eq!(Rings::recheck_after(&h.rings), None, "no ring, no wake-ups");
    h.introduce(5);
    assert_eq!(Rings::recheck_after(&h.rings), Some(RING_RECHECK));
    let page = h.xen.page(5);
    // A request, and its kick lost.
    let bytes = Request::Write("/local/domain/5/x".into(), b"1".to_vec())
        .to_packet(1, 0)
        .encode();
    assert_eq!(guest_put(&page, &bytes), bytes.len());
    let before = h.xen.notified(5);
    h.turn(); // the daemon's turn after RING_RECHECK with no event
    assert!(h.xen.notified(5) > before, "the reply is announced");
    // The guest missed that kick and has not taken the reply: the next
    // sweep kicks it again; one that took everything is left alone.
    let before = h.xen.notified(5);
    h.rings.sweep_due();
    h.turn();
    assert_eq!(h.xen.notified(5), before + 1, "kicked again");
    let r = packets(&guest_take(&page));
    assert_eq!(r[0].payload, b"OK\0");
    h.rings.sweep_due();
    h.turn();
    assert_eq!(h.xen.notified(5), before + 1, "nothing pending, no kick");
}
