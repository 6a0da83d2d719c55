//! A hostile domain on its domain socket: no access beyond its rights, no
//! way past its quotas, garbage and floods hurt only itself, and dom0 keeps
//! being served meanwhile.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::{Daemon, Raw, watch, write};
use xenstore::wire::{Header, Request, Response};
use xenstore::{DomId, XsErrno};

const GUEST: u16 = 7;

fn setup(d: &Daemon) -> Raw {
    let mut c = d.dom0();
    c.ok(Request::Introduce {
        domid: DomId(GUEST),
        gfn: 1,
        evtchn: 1,
    });
    c.ok(Request::Mkdir(format!("/local/domain/{GUEST}")));
    c.ok(Request::SetPerms(
        format!("/local/domain/{GUEST}"),
        format!("n{GUEST} r0").parse().unwrap(),
    ));
    c.ok(write("/secret", "s3cret"));
    c.ok(write("/local/domain/8/private", "x"));
    c
}

fn guest(d: &Daemon) -> Raw {
    Raw::connect(&d.domain_socket(GUEST))
}

#[test]
fn domain_cannot_touch_what_it_may_not() {
    let d = Daemon::start(&[]);
    let mut dom0 = setup(&d);
    let mut g = guest(&d);
    assert_eq!(g.err(Request::Read("/secret".into())), XsErrno::Eacces);
    assert_eq!(g.err(write("/secret", "mine")), XsErrno::Eacces);
    assert_eq!(g.err(Request::Rm("/secret".into())), XsErrno::Eacces);
    assert_eq!(
        g.err(Request::Directory("/local/domain/8".into())),
        XsErrno::Eacces
    );
    assert_eq!(
        g.err(write("/local/domain/8/private", "y")),
        XsErrno::Eacces
    );
    assert_eq!(g.err(write("/local/domain/8/new", "y")), XsErrno::Eacces);
    assert_eq!(g.err(Request::GetPerms("/secret".into())), XsErrno::Eacces);
    assert_eq!(
        g.err(Request::SetPerms(
            "/secret".into(),
            format!("b{GUEST}").parse().unwrap()
        )),
        XsErrno::Eacces
    );
    // privileged operations
    assert_eq!(
        g.err(Request::Introduce {
            domid: DomId(9),
            gfn: 1,
            evtchn: 1
        }),
        XsErrno::Eacces
    );
    assert_eq!(g.err(Request::Release(DomId(8))), XsErrno::Eacces);
    assert_eq!(
        g.err(Request::Control(vec![b"quota".to_vec()])),
        XsErrno::Eacces
    );
    // its own home works, relative paths included, and it owns what it makes
    g.ok(write("device/x", "1"));
    assert_eq!(
        g.rpc(Request::GetPerms("device/x".into())),
        Response::Perms(format!("n{GUEST} r0").parse().unwrap())
    );
    // it cannot give its node away
    assert_eq!(
        g.err(Request::SetPerms("device/x".into(), "n8".parse().unwrap())),
        XsErrno::Eperm
    );
    // no events for nodes it cannot read
    let (r, _) = (g.rpc(watch("/", "all")), ());
    assert_eq!(r, Response::Ok);
    assert_eq!(g.event(), ("/".to_string(), "all".to_string()));
    dom0.ok(write("/secret", "changed"));
    dom0.ok(write(&format!("/local/domain/{GUEST}/device/x"), "2"));
    assert_eq!(
        g.event(),
        (format!("/local/domain/{GUEST}/device/x"), "all".to_string())
    );
    assert_eq!(
        dom0.rpc(Request::Read("/secret".into())),
        Response::Data(b"changed".to_vec())
    );
}

#[test]
fn domain_cannot_exceed_quotas() {
    let d = Daemon::start(&[
        "--quota-nodes",
        "20",
        "--quota-watches",
        "4",
        "--quota-transactions",
        "2",
        "--quota-node-size",
        "100",
    ]);
    let mut dom0 = setup(&d);
    let mut g = guest(&d);
    // nodes: the home node is its own; 19 more fit
    let mut made = 0;
    loop {
        match g.rpc(write(&format!("n/{made}"), "")) {
            Response::Ok => made += 1,
            Response::Error(e) => {
                assert_eq!(e, XsErrno::Enospc);
                break;
            }
            other => panic!("{other:?}"),
        }
        assert!(made < 100, "node quota not enforced");
    }
    // "n" itself plus n/0.. : 1 (home) + 1 (n) + made == 20
    assert_eq!(made, 18);
    // a second connection of the same domain shares the quota
    let mut g2 = guest(&d);
    assert_eq!(g2.err(write("other", "")), XsErrno::Enospc);
    // value size
    assert_eq!(g.err(write("n/0", &"x".repeat(101))), XsErrno::Enospc);
    g.ok(write("n/0", &"x".repeat(100)));
    // permissions per node
    assert_eq!(
        g.err(Request::SetPerms(
            "n/0".into(),
            format!("n{GUEST} r1 r2 r3 r4 r5").parse().unwrap()
        )),
        XsErrno::Enospc
    );
    // watches (cx answers E2BIG)
    for i in 0..4 {
        g.ok(watch(&format!("w{i}"), "t"));
        g.event();
    }
    assert_eq!(g2.err(watch("w9", "t")), XsErrno::E2big);
    // transactions
    assert!(matches!(
        g.rpc(Request::TransactionStart),
        Response::TxId(_)
    ));
    assert!(matches!(
        g.rpc(Request::TransactionStart),
        Response::TxId(_)
    ));
    assert_eq!(g2.err(Request::TransactionStart), XsErrno::Enospc);
    // dom0 is exempt from all of it
    for i in 0..30 {
        dom0.ok(write(
            &format!("/local/domain/{GUEST}/dom0-{i}"),
            &"y".repeat(3000),
        ));
    }
}

#[test]
fn garbage_and_floods_hurt_only_the_sender() {
    let d = Daemon::start(&[]);
    let mut dom0 = setup(&d);

    // 1. an oversized header: that connection is dropped
    let mut bad = UnixStream::connect(d.domain_socket(GUEST)).unwrap();
    bad.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let h = Header {
        msg_type: 11,
        req_id: 1,
        tx_id: 0,
        len: 100_000,
    };
    bad.write_all(&h.encode()).unwrap();
    let mut buf = [0u8; 16];
    assert!(
        matches!(bad.read(&mut buf), Ok(0) | Err(_)),
        "connection should be closed"
    );

    // 2. random junk of every message type: error replies, no crash
    let mut g = guest(&d);
    for ty in 0..40u32 {
        for payload in [
            &b""[..],
            b"\0",
            b"\xff\xff\xff",
            b"/a\0b\0c\0d\0",
            b"@\0",
            b"..\0",
        ] {
            let pkt = xenstore::wire::Packet {
                msg_type: ty,
                req_id: 1000 + ty,
                tx_id: ty % 3,
                payload: payload.to_vec(),
            };
            g.s.write_all(&pkt.encode()).unwrap();
            let reply = g.recv().expect("server must answer garbage, not hang up");
            assert!(reply.req_id == 1000 + ty || reply.req_id == 0);
        }
    }
    assert_eq!(
        dom0.rpc(Request::Read("/secret".into())),
        Response::Data(b"s3cret".to_vec())
    );

    // 3. a flood from a client that never reads its replies
    let flood = UnixStream::connect(d.domain_socket(GUEST)).unwrap();
    flood.set_nonblocking(true).unwrap();
    let one = Request::Read("device".into()).to_packet(1, 0).encode();
    let mut sent = 0usize;
    let started = Instant::now();
    let mut f = &flood;
    while sent < 8 << 20 && started.elapsed() < Duration::from_secs(10) {
        match f.write(&one) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(sent > 0);
    // dom0 is still served promptly
    let t = Instant::now();
    for i in 0..100 {
        dom0.ok(write("/alive", &i.to_string()));
    }
    assert_eq!(
        dom0.rpc(Request::Read("/alive".into())),
        Response::Data(b"99".to_vec())
    );
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "dom0 starved: {:?}",
        t.elapsed()
    );
    drop(flood);
}

#[test]
fn release_closes_guest_connections_and_removes_socket() {
    let d = Daemon::start(&[]);
    let mut dom0 = setup(&d);
    let mut w = d.dom0();
    w.ok(watch("@releaseDomain", "rel"));
    assert_eq!(w.event(), ("@releaseDomain".to_string(), "rel".to_string()));
    let mut g = guest(&d);
    g.ok(write("x", "1"));
    assert!(d.domain_socket(GUEST).exists());
    dom0.ok(Request::Release(DomId(GUEST)));
    assert_eq!(w.event(), ("@releaseDomain".to_string(), "rel".to_string()));
    assert!(g.recv().is_none(), "guest connection must be closed");
    assert!(!d.domain_socket(GUEST).exists());
    assert_eq!(
        dom0.rpc(Request::IsDomainIntroduced(DomId(GUEST))),
        Response::Bool(false)
    );
}

#[test]
fn domain_cannot_hoard_connections() {
    let d = Daemon::start(&[]);
    let mut dom0 = setup(&d);
    let mut open = Vec::new();
    let mut refused = 0;
    for _ in 0..100 {
        let mut g = guest(&d);
        // a refused connection is closed before it answers anything
        g.s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        match g.rpc_checked(Request::GetDomainPath(DomId(GUEST))) {
            Some(_) => open.push(g),
            None => refused += 1,
        }
    }
    assert_eq!(open.len(), 64);
    assert_eq!(refused, 36);
    assert_eq!(
        dom0.rpc(Request::Read("/secret".into())),
        Response::Data(b"s3cret".to_vec())
    );
    // closing some frees room again
    open.truncate(10);
    testutil::wait_until("a slot frees up", Duration::from_secs(20), || {
        guest(&d)
            .rpc_checked(Request::GetDomainPath(DomId(GUEST)))
            .is_some()
    });
}
