//! Protocol behaviour of the real binary over real sockets: pipelining,
//! watch delivery across connections, concurrent transactions.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

mod common;

use std::io::Write;
use std::thread;

use common::{Daemon, Raw, watch, write};
use xenstore::XsErrno;
use xenstore::wire::{PAYLOAD_MAX, Packet, Request, Response};

#[test]
fn pipelined_requests_are_answered_in_order() {
    let d = Daemon::start(&[]);
    let mut c = d.dom0();
    let mut bytes = Vec::new();
    for i in 0..64u32 {
        Request::Write(format!("/pipe/{i}"), i.to_string().into_bytes())
            .to_packet(i + 1, 0)
            .encode_into(&mut bytes);
        Request::Read(format!("/pipe/{i}"))
            .to_packet(1000 + i, 0)
            .encode_into(&mut bytes);
    }
    c.s.write_all(&bytes).unwrap();
    for i in 0..64u32 {
        let w = c.recv().unwrap();
        assert_eq!((w.req_id, w.payload.as_slice()), (i + 1, &b"OK\0"[..]));
        let r = c.recv().unwrap();
        assert_eq!(r.req_id, 1000 + i);
        assert_eq!(r.payload, i.to_string().into_bytes());
    }
}

/// One connection's request arrives split (header, then payload) while
/// another connection's batch passes through the daemon's shared read
/// buffer in between: the split request is rebuilt from its own bytes
/// only, and nothing of the other connection's input is replayed on it.
#[test]
fn split_request_is_not_mixed_with_other_input() {
    let d = Daemon::start(&[]);
    let mut a = d.dom0();
    // the interleaving depends on the daemon's wakeups: try it many times
    for round in 0..30u32 {
        let mut b = d.dom0();
        let pkt = Request::Write(format!("/split/b{round}"), b"mine".to_vec())
            .to_packet(77, 0)
            .encode();
        b.s.write_all(&pkt[..16]).unwrap();
        // b's lone header is read, then a's batch passes the shared buffer
        let mut bytes = Vec::new();
        for i in 0..50u32 {
            Request::Write(format!("/split/a{i}"), b"theirs".to_vec())
                .to_packet(i + 1, 0)
                .encode_into(&mut bytes);
        }
        a.s.write_all(&bytes).unwrap();
        for i in 0..50u32 {
            assert_eq!(a.recv().unwrap().req_id, i + 1);
        }
        b.s.write_all(&pkt[16..]).unwrap();
        let r = b.recv().unwrap();
        assert_eq!((r.req_id, r.payload.as_slice()), (77, &b"OK\0"[..]));
        // the very next packet on b answers b's next request: no replies
        // to requests b never sent
        let id = b.send(&Request::Read(format!("/split/b{round}")), 0);
        let r = b.recv().unwrap();
        assert_eq!((r.req_id, r.payload.as_slice()), (id, &b"mine"[..]));
    }
}

#[test]
fn watch_events_reach_other_connections() {
    let d = Daemon::start(&[]);
    let mut w = d.dom0();
    let mut c = d.dom0();
    w.ok(watch("/ev", "tok"));
    assert_eq!(w.event(), ("/ev".to_string(), "tok".to_string()));
    for i in 0..200 {
        c.ok(write(&format!("/ev/{i}"), "v"));
    }
    for i in 0..200 {
        assert_eq!(w.event(), (format!("/ev/{i}"), "tok".to_string()));
    }
}

#[test]
fn big_directory_needs_directory_part() {
    let d = Daemon::start(&[]);
    let mut c = d.dom0();
    let mut bytes = Vec::new();
    for i in 0..10_000u32 {
        Request::Write(format!("/big/child-{i:05}"), Vec::new())
            .to_packet(i + 1, 0)
            .encode_into(&mut bytes);
    }
    c.s.write_all(&bytes).unwrap();
    for _ in 0..10_000 {
        assert_eq!(c.recv().unwrap().payload, b"OK\0");
    }
    assert_eq!(c.err(Request::Directory("/big".into())), XsErrno::E2big);
    let mut names = Vec::new();
    let mut off = 0u64;
    loop {
        match c.rpc(Request::DirectoryPart("/big".into(), off)) {
            Response::DirectoryPart {
                children, complete, ..
            } => {
                for n in &children {
                    off += n.len() as u64 + 1;
                }
                names.extend(children);
                if complete {
                    break;
                }
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(names.len(), 10_000);
    assert!(
        names
            .iter()
            .enumerate()
            .all(|(i, n)| *n == format!("child-{i:05}"))
    );
}

/// N clients x M transactional increments of one counter end at N x M.
#[test]
fn concurrent_transactional_increments_are_exact() {
    const N: usize = 4;
    const M: usize = 50;
    let d = Daemon::start(&[]);
    d.dom0().ok(write("/counter", "0"));
    let socket = d.socket.clone();
    let handles: Vec<_> = (0..N)
        .map(|_| {
            let socket = socket.clone();
            thread::spawn(move || {
                let mut c = Raw::connect(&socket);
                let mut retries = 0;
                for _ in 0..M {
                    loop {
                        let Response::TxId(tx) = c.rpc(Request::TransactionStart) else {
                            panic!("no transaction")
                        };
                        let Response::Data(v) = c.rpc_tx(Request::Read("/counter".into()), tx)
                        else {
                            panic!("read failed")
                        };
                        let n: u64 = String::from_utf8(v).unwrap().parse().unwrap();
                        assert_eq!(
                            c.rpc_tx(write("/counter", &(n + 1).to_string()), tx),
                            Response::Ok
                        );
                        match c.rpc_tx(Request::TransactionEnd(true), tx) {
                            Response::Ok => break,
                            Response::Error(XsErrno::Eagain) => retries += 1,
                            other => panic!("{other:?}"),
                        }
                    }
                }
                retries
            })
        })
        .collect();
    let retries: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    let Response::Data(v) = d.dom0().rpc(Request::Read("/counter".into())) else {
        panic!()
    };
    assert_eq!(
        String::from_utf8(v).unwrap(),
        (N * M).to_string(),
        "retries: {retries}"
    );
    let _ = (Packet::default(), PAYLOAD_MAX);
}

#[test]
fn introduce_opens_a_domain_socket_with_relative_paths() {
    let d = Daemon::start(&[]);
    let mut w = d.dom0();
    w.ok(watch("@introduceDomain", "intro"));
    assert_eq!(
        w.event(),
        ("@introduceDomain".to_string(), "intro".to_string())
    );
    let mut c = d.dom0();
    c.ok(Request::Introduce {
        domid: xenstore::DomId(9),
        gfn: 1,
        evtchn: 1,
    });
    assert_eq!(
        w.event(),
        ("@introduceDomain".to_string(), "intro".to_string())
    );
    c.ok(Request::Mkdir("/local/domain/9".into()));
    c.ok(Request::SetPerms(
        "/local/domain/9".into(),
        "n9".parse().unwrap(),
    ));
    let mut g = Raw::connect(&d.domain_socket(9));
    assert_eq!(
        g.rpc(Request::GetDomainPath(xenstore::DomId(9))),
        Response::DomainPath("/local/domain/9".into())
    );
    g.ok(watch("device", "dev"));
    assert_eq!(g.event(), ("device".to_string(), "dev".to_string()));
    c.ok(write("/local/domain/9/device/vif/0/state", "1"));
    assert_eq!(
        g.event(),
        ("device/vif/0/state".to_string(), "dev".to_string())
    );
    g.ok(write("device/vif/0/state", "4"));
    assert_eq!(
        g.event(),
        ("device/vif/0/state".to_string(), "dev".to_string())
    );
    assert_eq!(
        c.rpc(Request::Read("/local/domain/9/device/vif/0/state".into())),
        Response::Data(b"4".to_vec())
    );
}
