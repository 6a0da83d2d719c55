//! Unit tests of the server core (driven through raw packets).

use super::*;
use xenstore::wire::Response;

struct T {
    s: Server,
    req: u32,
}

impl T {
    fn new() -> T {
        T {
            s: Server::new(Quotas::default()),
            req: 0,
        }
    }

    /// Send a request, return (reply, events that arrived with it).
    fn rpc(&mut self, c: ConnId, r: Request, tx: u32) -> (Response, Vec<(String, String)>) {
        self.req += 1;
        let pkt = r.to_packet(self.req, tx);
        let kind = pkt.kind().unwrap();
        self.s.handle(c, &pkt);
        let out = self.s.take_output(c);
        let mut reply = None;
        let mut events = Vec::new();
        let mut at = 0;
        while let Some((p, n)) = Packet::decode(&out[at..], PAYLOAD_MAX).unwrap() {
            at += n;
            match Response::decode(p.msg_type, kind, &p.payload).unwrap() {
                Response::WatchEvent { path, token } => events.push((path, token)),
                other => {
                    assert_eq!(p.req_id, self.req);
                    reply = Some(other);
                }
            }
        }
        (reply.expect("a reply"), events)
    }

    fn ok(&mut self, c: ConnId, r: Request) {
        let (resp, _) = self.rpc(c, r.clone(), 0);
        assert_eq!(resp, Response::Ok, "{r:?}");
    }

    fn err(&mut self, c: ConnId, r: Request, tx: u32) -> XsErrno {
        match self.rpc(c, r.clone(), tx).0 {
            Response::Error(e) => e,
            other => panic!("{r:?}: expected an error, got {other:?}"),
        }
    }

    fn events(&mut self, c: ConnId) -> Vec<(String, String)> {
        let out = self.s.take_output(c);
        let mut ev = Vec::new();
        let mut at = 0;
        while let Some((p, n)) = Packet::decode(&out[at..], PAYLOAD_MAX).unwrap() {
            at += n;
            if let Response::WatchEvent { path, token } =
                Response::decode(p.msg_type, MsgType::WatchEvent, &p.payload).unwrap()
            {
                ev.push((path, token));
            }
        }
        ev
    }
}

fn w(p: &str, v: &str) -> Request {
    Request::Write(p.into(), v.as_bytes().to_vec())
}

fn watch(p: &str, t: &str) -> Request {
    Request::Watch {
        path: p.into(),
        token: t.into(),
    }
}

fn ev(p: &str, t: &str) -> (String, String) {
    (p.into(), t.into())
}

#[test]
fn watch_fires_once_at_registration_and_on_changes_below() {
    let mut t = T::new();
    let c = t.s.connect(DomId(0));
    let wc = t.s.connect(DomId(0));
    let (r, e) = t.rpc(wc, watch("/w", "tok"), 0);
    assert_eq!(r, Response::Ok);
    assert_eq!(e, vec![ev("/w", "tok")]);
    assert_eq!(t.err(wc, watch("/w", "tok"), 0), XsErrno::Eexist);
    t.ok(c, w("/w/x/y", "1"));
    assert_eq!(t.events(wc), vec![ev("/w/x/y", "tok")]);
    t.ok(c, w("/wx", "1"));
    assert_eq!(t.events(wc), vec![]);
    t.ok(c, Request::Rm("/w".into()));
    assert_eq!(t.events(wc), vec![ev("/w", "tok")]);
}

#[test]
fn rm_fires_descendant_watches_only_for_existing_nodes() {
    let mut t = T::new();
    let c = t.s.connect(DomId(0));
    let wc = t.s.connect(DomId(0));
    t.ok(c, w("/r/a/b", "1"));
    t.rpc(wc, watch("/r/a/b", "exact"), 0);
    t.rpc(wc, watch("/r/nonexistent", "ghost"), 0);
    t.rpc(wc, watch("/", "root"), 0);
    t.events(wc);
    t.ok(c, Request::Rm("/r/a".into()));
    let mut got = t.events(wc);
    got.sort();
    assert_eq!(got, vec![ev("/r/a", "root"), ev("/r/a/b", "exact")]);
}

#[test]
fn transaction_events_only_on_commit() {
    let mut t = T::new();
    let c = t.s.connect(DomId(0));
    let wc = t.s.connect(DomId(0));
    t.rpc(wc, watch("/t", "tok"), 0);
    t.events(wc);
    let (Response::TxId(id), _) = t.rpc(c, Request::TransactionStart, 0) else {
        panic!("no tx id");
    };
    assert_eq!(t.rpc(c, w("/t/a", "v"), id).0, Response::Ok);
    assert_eq!(t.events(wc), vec![]);
    assert_eq!(t.err(c, Request::Read("/t/a".into()), 0), XsErrno::Enoent);
    assert_eq!(
        t.rpc(c, Request::Read("/t/a".into()), id).0,
        Response::Data(b"v".to_vec())
    );
    assert_eq!(t.err(c, Request::TransactionStart, id), XsErrno::Ebusy);
    assert_eq!(t.rpc(c, Request::TransactionEnd(true), id).0, Response::Ok);
    assert_eq!(t.events(wc), vec![ev("/t/a", "tok")]);
    // aborted: nothing fires
    let (Response::TxId(id), _) = t.rpc(c, Request::TransactionStart, 0) else {
        panic!("no tx id");
    };
    t.rpc(c, w("/t/b", "v"), id);
    t.rpc(c, Request::TransactionEnd(false), id);
    assert_eq!(t.events(wc), vec![]);
    assert_eq!(t.err(c, Request::TransactionEnd(true), id), XsErrno::Enoent);
    assert_eq!(t.err(c, w("/x", "1"), 12345), XsErrno::Enoent);
}

#[test]
fn conflicting_commit_is_eagain() {
    let mut t = T::new();
    let c = t.s.connect(DomId(0));
    let c2 = t.s.connect(DomId(0));
    t.ok(c, w("/k", "0"));
    let (Response::TxId(id), _) = t.rpc(c, Request::TransactionStart, 0) else {
        panic!("no tx id");
    };
    t.rpc(c, Request::Read("/k".into()), id);
    t.ok(c2, w("/k", "other"));
    t.rpc(c, w("/k", "mine"), id);
    assert_eq!(t.err(c, Request::TransactionEnd(true), id), XsErrno::Eagain);
    assert_eq!(
        t.rpc(c, Request::Read("/k".into()), 0).0,
        Response::Data(b"other".to_vec())
    );
}

#[test]
fn unprivileged_domain_rules() {
    let mut t = T::new();
    let d0 = t.s.connect(DomId(0));
    t.ok(
        d0,
        Request::Introduce {
            domid: DomId(5),
            gfn: 1,
            evtchn: 1,
        },
    );
    assert_eq!(
        t.s.take_effects(),
        vec![
            Effect::Introduced(DomId(5)),
            Effect::RingIntroduced {
                domid: DomId(5),
                gfn: 1,
                evtchn: 1
            }
        ]
    );
    t.ok(d0, Request::Mkdir("/local/domain/5".into()));
    t.ok(
        d0,
        Request::SetPerms("/local/domain/5".into(), "n5 r0".parse().unwrap()),
    );
    t.ok(d0, w("/secret", "x"));
    let g = t.s.connect(DomId(5));
    // relative paths resolve under the domain's home
    t.ok(g, w("data/x", "1"));
    assert_eq!(
        t.rpc(d0, Request::Read("/local/domain/5/data/x".into()), 0)
            .0,
        Response::Data(b"1".to_vec())
    );
    assert_eq!(
        t.rpc(g, Request::GetPerms("data/x".into()), 0).0,
        Response::Perms("n5 r0".parse().unwrap())
    );
    assert_eq!(
        t.err(g, Request::Read("/secret".into()), 0),
        XsErrno::Eacces
    );
    assert_eq!(t.err(g, w("/secret", "y"), 0), XsErrno::Eacces);
    assert_eq!(t.err(g, w("/newtop", "y"), 0), XsErrno::Eacces);
    assert_eq!(t.err(g, Request::Rm("/secret".into()), 0), XsErrno::Eacces);
    assert_eq!(
        t.err(
            g,
            Request::Introduce {
                domid: DomId(6),
                gfn: 1,
                evtchn: 1
            },
            0
        ),
        XsErrno::Eacces
    );
    assert_eq!(
        t.err(g, Request::Control(vec![b"check".to_vec()]), 0),
        XsErrno::Eacces
    );
    // relative watch: events relative too; no events for unreadable nodes
    let (_, e) = t.rpc(g, watch("data", "rel"), 0);
    assert_eq!(e, vec![ev("data", "rel")]);
    t.rpc(g, watch("/", "all"), 0);
    t.events(g);
    t.ok(d0, w("/local/domain/5/data/y", "2"));
    let mut got = t.events(g);
    got.sort();
    assert_eq!(
        got,
        vec![ev("/local/domain/5/data/y", "all"), ev("data/y", "rel")]
    );
    t.ok(d0, w("/secret", "z"));
    assert_eq!(t.events(g), vec![]);
    // special watches need permission on the special node
    t.rpc(g, watch("@releaseDomain", "rel"), 0);
    t.events(g);
    t.ok(
        d0,
        Request::Introduce {
            domid: DomId(7),
            gfn: 1,
            evtchn: 1,
        },
    );
    t.ok(d0, Request::Release(DomId(7)));
    assert_eq!(t.events(g), vec![]);
    t.ok(
        d0,
        Request::SetPerms("@releaseDomain".into(), "n0 r5".parse().unwrap()),
    );
    t.ok(
        d0,
        Request::Introduce {
            domid: DomId(7),
            gfn: 1,
            evtchn: 1,
        },
    );
    t.ok(d0, Request::Release(DomId(7)));
    assert_eq!(t.events(g), vec![ev("@releaseDomain", "rel")]);
}

#[test]
fn quotas_apply_to_domains() {
    let mut t = T::new();
    t.s.quotas.watches = 2;
    t.s.quotas.transactions = 1;
    t.s.quotas.nodes = 5;
    let d0 = t.s.connect(DomId(0));
    t.ok(
        d0,
        Request::Introduce {
            domid: DomId(3),
            gfn: 1,
            evtchn: 1,
        },
    );
    t.ok(d0, Request::Mkdir("/local/domain/3".into()));
    t.ok(
        d0,
        Request::SetPerms("/local/domain/3".into(), "n3".parse().unwrap()),
    );
    let g = t.s.connect(DomId(3));
    let g2 = t.s.connect(DomId(3));
    t.rpc(g, watch("a", "1"), 0);
    t.rpc(g2, watch("a", "2"), 0);
    assert_eq!(t.err(g, watch("a", "3"), 0), XsErrno::E2big);
    t.rpc(g, Request::TransactionStart, 0);
    assert_eq!(t.err(g2, Request::TransactionStart, 0), XsErrno::Enospc);
    for i in 0..4 {
        t.ok(g, w(&format!("n{i}"), ""));
    }
    // the home node itself is owned by dom3 too: 5 nodes
    assert_eq!(t.err(g, w("n9", ""), 0), XsErrno::Enospc);
    // dom0 is exempt
    for i in 0..10 {
        t.ok(d0, w(&format!("/local/domain/3/d0-{i}"), ""));
    }
    // disconnecting frees the watch quota
    t.s.disconnect(g2);
    let (r, _) = t.rpc(g, watch("b", "x"), 0);
    assert_eq!(r, Response::Ok);
}

#[test]
fn release_closes_domain_connections() {
    let mut t = T::new();
    let d0 = t.s.connect(DomId(0));
    t.ok(
        d0,
        Request::Introduce {
            domid: DomId(4),
            gfn: 1,
            evtchn: 1,
        },
    );
    let g = t.s.connect(DomId(4));
    assert!(!t.s.is_closing(g));
    t.ok(d0, Request::Release(DomId(4)));
    assert!(t.s.is_closing(g));
    assert_eq!(
        t.s.take_effects(),
        vec![
            Effect::Introduced(DomId(4)),
            Effect::RingIntroduced {
                domid: DomId(4),
                gfn: 1,
                evtchn: 1
            },
            Effect::Released(DomId(4))
        ]
    );
    assert_eq!(t.err(d0, Request::Release(DomId(0)), 0), XsErrno::Einval);
    assert_eq!(t.err(d0, Request::Resume(DomId(4)), 0), XsErrno::Enoent);
}

#[test]
fn feed_handles_pipelined_requests_and_rejects_oversize() {
    let mut s = Server::new(Quotas::default());
    let c = s.connect(DomId(0));
    let mut bytes = Vec::new();
    for i in 0..64u32 {
        Request::Write(format!("/p/{i}"), b"v".to_vec())
            .to_packet(i, 0)
            .encode_into(&mut bytes);
    }
    let half = bytes.len() - 5;
    let (used, n) = s.feed(c, &bytes[..half], Budget::UNLIMITED).unwrap();
    assert_eq!(n, 63);
    let (used2, n2) = s.feed(c, &bytes[used..], Budget::UNLIMITED).unwrap();
    assert_eq!((used + used2, n + n2), (bytes.len(), 64));
    let out = s.take_output(c);
    assert_eq!(out.len(), 64 * (HEADER_LEN + 3));
    let big = Header {
        msg_type: 11,
        req_id: 1,
        tx_id: 0,
        len: 4097,
    }
    .encode();
    assert!(s.feed(c, &big, Budget::UNLIMITED).is_err());
}

#[test]
fn garbage_gets_error_replies() {
    let mut s = Server::new(Quotas::default());
    let c = s.connect(DomId(0));
    for (ty, payload) in [
        (2u32, &b"/a"[..]),
        (99, b""),
        (15, b"/x\0t\0"),
        (4, b"/a\0t\0extra\0"),
        (14, b"/a\0x1\0"),
        (2, b"\xff\xfe\0"),
        (13, b"/\0"),
        (0, b"bogus\0"),
    ] {
        s.handle(
            c,
            &Packet {
                msg_type: ty,
                req_id: 1,
                tx_id: 0,
                payload: payload.to_vec(),
            },
        );
        let out = s.take_output(c);
        let (p, _) = Packet::decode(&out, PAYLOAD_MAX).unwrap().unwrap();
        assert_eq!(p.msg_type, MsgType::Error.to_u32(), "type {ty}");
    }
}

#[test]
fn control_commands() {
    let mut t = T::new();
    let c = t.s.connect(DomId(0));
    let (r, _) = t.rpc(c, Request::Control(vec![b"quota".to_vec()]), 0);
    let Response::Data(d) = r else { panic!() };
    assert!(String::from_utf8_lossy(&d).contains("nodes            :     1000 Nodes per domain"));
    let (r, _) = t.rpc(c, Request::Control(vec![b"check".to_vec()]), 0);
    assert_eq!(r, Response::Data(b"OK\0".to_vec()));
    t.rpc(
        c,
        Request::Control(vec![
            b"quota".to_vec(),
            b"set".to_vec(),
            b"nodes".to_vec(),
            b"7".to_vec(),
        ]),
        0,
    );
    assert_eq!(t.s.quotas().nodes, 7);
    assert_eq!(
        t.err(c, Request::Control(vec![b"bogus".to_vec()]), 0),
        XsErrno::Einval
    );
}
