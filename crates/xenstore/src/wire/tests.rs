//! Golden bytes and round trips of the codec.

use super::*;
use crate::DomId;
use crate::errno::XsErrno;
use crate::perms::{Access, Perm, PermList};

/// Golden bytes for a READ of `/a` with req_id 7, as libxenstore sends
/// it (x86, little-endian): type 2, req_id 7, tx_id 0, len 3, "/a\0".
#[test]
fn golden_read_request() {
    #[rustfmt::skip]
    let raw: &[u8] = &[
        2, 0, 0, 0,      // type XS_READ
        7, 0, 0, 0,      // req_id
        0, 0, 0, 0,      // tx_id
        3, 0, 0, 0,      // len
        b'/', b'a', 0,   // payload
    ];
    let (p, n) = Packet::decode(raw, PAYLOAD_MAX).unwrap().unwrap();
    assert_eq!(n, raw.len());
    assert_eq!(
        Request::decode(p.msg_type, &p.payload).unwrap(),
        Request::Read("/a".into())
    );
    assert_eq!(Request::Read("/a".into()).to_packet(7, 0).encode(), raw);
}

#[test]
fn golden_error_reply() {
    #[rustfmt::skip]
    let raw: &[u8] = &[
        16, 0, 0, 0,  1, 0, 0, 0,  0, 0, 0, 0,  7, 0, 0, 0,
        b'E', b'N', b'O', b'E', b'N', b'T', 0,
    ];
    let (p, _) = Packet::decode(raw, PAYLOAD_MAX).unwrap().unwrap();
    let r = Response::decode(p.msg_type, MsgType::Read, &p.payload).unwrap();
    assert_eq!(r, Response::Error(XsErrno::Enoent));
    assert_eq!(r.to_packet(MsgType::Read, 1, 0).encode(), raw);
}

#[test]
fn incomplete_and_oversized() {
    let pkt = Request::Write("/x".into(), b"v".to_vec())
        .to_packet(1, 0)
        .encode();
    for cut in 0..pkt.len() {
        assert_eq!(Packet::decode(&pkt[..cut], PAYLOAD_MAX).unwrap(), None);
    }
    let mut big = Header {
        msg_type: 11,
        req_id: 1,
        tx_id: 0,
        len: 4097,
    }
    .encode()
    .to_vec();
    big.extend(vec![0u8; 10]);
    assert!(matches!(
        Packet::decode(&big, PAYLOAD_MAX),
        Err(FrameError::PayloadTooLarge { len: 4097, .. })
    ));
}

#[test]
fn request_round_trips() {
    let reqs = vec![
        Request::Control(vec![b"help".to_vec()]),
        Request::Directory("/a".into()),
        Request::DirectoryPart("/a".into(), 4000),
        Request::GetPerms("rel".into()),
        Request::Watch {
            path: "@releaseDomain".into(),
            token: "tok".into(),
        },
        Request::Unwatch {
            path: "/w".into(),
            token: "t".into(),
        },
        Request::TransactionStart,
        Request::TransactionEnd(true),
        Request::TransactionEnd(false),
        Request::Introduce {
            domid: DomId(5),
            gfn: -1,
            evtchn: 3,
        },
        Request::Release(DomId(5)),
        Request::GetDomainPath(DomId(9)),
        Request::Write("/v".into(), vec![0, 1, 2, 0]),
        Request::Mkdir("/m".into()),
        Request::Rm("/m".into()),
        Request::SetPerms(
            "/p".into(),
            PermList::new(vec![
                Perm::new(Access::None, DomId(0)),
                Perm::new(Access::Read, DomId(5)),
            ])
            .unwrap(),
        ),
        Request::IsDomainIntroduced(DomId(3)),
        Request::Resume(DomId(3)),
        Request::SetTarget {
            domid: DomId(4),
            target: DomId(3),
        },
        Request::ResetWatches,
    ];
    for r in reqs {
        let p = r.to_packet(1, 0);
        assert_eq!(Request::decode(p.msg_type, &p.payload).unwrap(), r, "{r:?}");
    }
}

#[test]
fn response_round_trips() {
    let cases = vec![
        (MsgType::Write, Response::Ok),
        (MsgType::Read, Response::Error(XsErrno::Eacces)),
        (MsgType::Read, Response::Data(vec![1, 0, 2])),
        (MsgType::Directory, Response::Children(vec![])),
        (
            MsgType::Directory,
            Response::Children(vec!["a".into(), "b".into()]),
        ),
        (
            MsgType::DirectoryPart,
            Response::DirectoryPart {
                generation: 3,
                children: vec!["a".into()],
                complete: false,
            },
        ),
        (
            MsgType::DirectoryPart,
            Response::DirectoryPart {
                generation: 3,
                children: vec!["a".into()],
                complete: true,
            },
        ),
        (
            MsgType::DirectoryPart,
            Response::DirectoryPart {
                generation: 3,
                children: vec![],
                complete: true,
            },
        ),
        (MsgType::GetPerms, Response::Perms("n0 r5".parse().unwrap())),
        (MsgType::TransactionStart, Response::TxId(42)),
        (
            MsgType::GetDomainPath,
            Response::DomainPath("/local/domain/3".into()),
        ),
        (MsgType::IsDomainIntroduced, Response::Bool(true)),
        (
            MsgType::Write,
            Response::WatchEvent {
                path: "/a".into(),
                token: "t".into(),
            },
        ),
    ];
    for (kind, r) in cases {
        let p = r.to_packet(kind, 9, 0);
        assert_eq!(
            Response::decode(p.msg_type, kind, &p.payload).unwrap(),
            r,
            "{r:?}"
        );
    }
}

#[test]
fn malformed_requests_are_einval_or_enosys() {
    assert_eq!(
        Request::decode(2, b"/a").unwrap_err().errno(),
        XsErrno::Einval
    );
    assert_eq!(
        Request::decode(7, b"X\0").unwrap_err().errno(),
        XsErrno::Einval
    );
    assert_eq!(
        Request::decode(15, b"").unwrap_err().errno(),
        XsErrno::Enosys
    );
    assert_eq!(
        Request::decode(999, b"").unwrap_err().errno(),
        XsErrno::Enosys
    );
    assert_eq!(
        Request::decode(14, b"/a\0x1\0").unwrap_err().errno(),
        XsErrno::Einval
    );
    assert_eq!(
        Request::decode(4, b"/a\0t\0extra\0").unwrap_err().errno(),
        XsErrno::Einval
    );
}
