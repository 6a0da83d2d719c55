//! Property tests for the codec and the path rules.

// strategies build values known to be valid
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use xenstore::path::{self, PathProblem};
use xenstore::wire::{HEADER_LEN, MsgType, PAYLOAD_MAX, Packet, Request, Response};
use xenstore::{Access, DomId, Perm, PermList, XsErrno};

/// Strings without NUL (any other character, incl. non-ASCII).
fn text() -> impl Strategy<Value = String> {
    "[^\u{0}]{0,40}"
}

fn name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_@-]{1,20}"
}

fn domid() -> impl Strategy<Value = DomId> {
    any::<u16>().prop_map(DomId)
}

fn access() -> impl Strategy<Value = Access> {
    prop_oneof![
        Just(Access::None),
        Just(Access::Read),
        Just(Access::Write),
        Just(Access::Both)
    ]
}

fn perms() -> impl Strategy<Value = PermList> {
    prop::collection::vec((access(), domid()), 1..6)
        .prop_map(|v| PermList::new(v.into_iter().map(|(a, d)| Perm::new(a, d)).collect()).unwrap())
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        prop::collection::vec("[^\u{0}]{0,10}".prop_map(String::into_bytes), 1..4)
            .prop_map(Request::Control),
        text().prop_map(Request::Directory),
        (text(), any::<u64>()).prop_map(|(p, o)| Request::DirectoryPart(p, o)),
        text().prop_map(Request::Read),
        text().prop_map(Request::GetPerms),
        (text(), text()).prop_map(|(path, token)| Request::Watch { path, token }),
        (text(), text()).prop_map(|(path, token)| Request::Unwatch { path, token }),
        Just(Request::TransactionStart),
        any::<bool>().prop_map(Request::TransactionEnd),
        (domid(), any::<i64>(), any::<u32>()).prop_map(|(domid, gfn, evtchn)| Request::Introduce {
            domid,
            gfn,
            evtchn
        }),
        domid().prop_map(Request::Release),
        domid().prop_map(Request::GetDomainPath),
        (text(), prop::collection::vec(any::<u8>(), 0..64)).prop_map(|(p, v)| Request::Write(p, v)),
        text().prop_map(Request::Mkdir),
        text().prop_map(Request::Rm),
        (text(), perms()).prop_map(|(p, l)| Request::SetPerms(p, l)),
        domid().prop_map(Request::IsDomainIntroduced),
        domid().prop_map(Request::Resume),
        (domid(), domid()).prop_map(|(domid, target)| Request::SetTarget { domid, target }),
        Just(Request::ResetWatches),
    ]
}

/// A reply together with the request type it answers.
fn response() -> impl Strategy<Value = (MsgType, Response)> {
    let errno = prop::sample::select(XsErrno::ALL.to_vec());
    prop_oneof![
        prop::sample::select(vec![
            MsgType::Write,
            MsgType::Mkdir,
            MsgType::Rm,
            MsgType::Watch,
            MsgType::Unwatch,
            MsgType::TransactionEnd,
            MsgType::Introduce,
            MsgType::Release,
            MsgType::SetPerms,
            MsgType::SetTarget,
            MsgType::ResetWatches,
        ])
        .prop_map(|k| (k, Response::Ok)),
        (
            prop::sample::select(vec![MsgType::Read, MsgType::Directory, MsgType::GetPerms]),
            errno
        )
            .prop_map(|(k, e)| (k, Response::Error(e))),
        prop::collection::vec(any::<u8>(), 0..100).prop_map(|d| (MsgType::Read, Response::Data(d))),
        prop::collection::vec(name(), 0..20)
            .prop_map(|c| (MsgType::Directory, Response::Children(c))),
        (
            any::<u64>(),
            prop::collection::vec(name(), 0..20),
            any::<bool>()
        )
            .prop_map(|(generation, children, complete)| {
                (
                    MsgType::DirectoryPart,
                    Response::DirectoryPart {
                        generation,
                        children,
                        complete,
                    },
                )
            }),
        perms().prop_map(|p| (MsgType::GetPerms, Response::Perms(p))),
        any::<u32>().prop_map(|t| (MsgType::TransactionStart, Response::TxId(t))),
        text().prop_map(|p| (MsgType::GetDomainPath, Response::DomainPath(p))),
        any::<bool>().prop_map(|b| (MsgType::IsDomainIntroduced, Response::Bool(b))),
        (text(), text())
            .prop_map(|(path, token)| { (MsgType::Read, Response::WatchEvent { path, token }) }),
    ]
}

/// A syntactically valid absolute path.
fn valid_abs_path() -> impl Strategy<Value = String> {
    prop::collection::vec("[A-Za-z0-9_@-]{1,12}", 0..8).prop_map(|parts| {
        if parts.is_empty() {
            "/".to_string()
        } else {
            format!("/{}", parts.join("/"))
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn request_round_trips(req in request(), req_id: u32, tx_id: u32) {
        let bytes = req.to_packet(req_id, tx_id).encode();
        let (pkt, used) = Packet::decode(&bytes, PAYLOAD_MAX.max(bytes.len())).unwrap().unwrap();
        prop_assert_eq!(used, bytes.len());
        prop_assert_eq!(pkt.req_id, req_id);
        prop_assert_eq!(pkt.tx_id, tx_id);
        prop_assert_eq!(pkt.kind(), Some(req.kind()));
        prop_assert_eq!(Request::decode(pkt.msg_type, &pkt.payload).unwrap(), req);
    }

    #[test]
    fn response_round_trips((kind, resp) in response(), req_id: u32) {
        let pkt = resp.to_packet(kind, req_id, 0);
        let bytes = pkt.encode();
        let (back, _) = Packet::decode(&bytes, usize::MAX).unwrap().unwrap();
        prop_assert_eq!(&back, &pkt);
        prop_assert_eq!(Response::decode(back.msg_type, kind, &back.payload).unwrap(), resp);
    }

    /// A stream of packets cut into arbitrary pieces frames back exactly.
    #[test]
    fn framing_survives_any_split(reqs in prop::collection::vec(request(), 1..10),
                                  cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..10)) {
        let mut stream = Vec::new();
        for (i, r) in reqs.iter().enumerate() {
            r.to_packet(i as u32, 0).encode_into(&mut stream);
        }
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
        points.push(stream.len());
        points.sort_unstable();
        let (mut buf, mut got, mut prev) = (Vec::new(), Vec::new(), 0);
        for p in points {
            buf.extend_from_slice(&stream[prev..p]);
            prev = p;
            while let Some((pkt, n)) = Packet::decode(&buf, usize::MAX).unwrap() {
                buf.drain(..n);
                got.push(Request::decode(pkt.msg_type, &pkt.payload).unwrap());
            }
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(got, reqs);
    }

    /// Decoders never panic on arbitrary bytes, and a decoded packet never
    /// claims more bytes than given or a payload over the limit.
    #[test]
    fn decoders_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300), kind: u32) {
        if let Ok(Some((pkt, used))) = Packet::decode(&bytes, 200) {
            prop_assert!(used <= bytes.len());
            prop_assert_eq!(used, HEADER_LEN + pkt.payload.len());
            prop_assert!(pkt.payload.len() <= 200);
        }
        let _ = Request::decode(kind % 30, &bytes);
        let _ = Request::decode(kind, &bytes);
        for req in [MsgType::Read, MsgType::Directory, MsgType::DirectoryPart, MsgType::GetPerms,
                    MsgType::TransactionStart, MsgType::IsDomainIntroduced, MsgType::Write] {
            let _ = Response::decode(kind % 30, req, &bytes);
        }
    }

    #[test]
    fn valid_paths_accepted(p in valid_abs_path(), dom: u16) {
        prop_assert!(path::check_syntax(&p).is_ok());
        prop_assert_eq!(path::resolve(&p, DomId(dom), path::REL_PATH_MAX).unwrap(), p.clone());
        if p != "/" {
            let parent = path::parent(&p).unwrap();
            prop_assert_eq!(path::join(parent, path::basename(&p)), p.clone());
            prop_assert!(path::is_prefix_of(parent, &p));
            prop_assert!(!path::is_prefix_of(&p, parent));
        }
        prop_assert!(path::is_prefix_of("/", &p));
        prop_assert!(path::is_prefix_of(&p, &p));
    }

    #[test]
    fn relative_paths_resolve_under_home(parts in prop::collection::vec("[a-z0-9]{1,8}", 1..5),
                                         dom: u16) {
        let rel = parts.join("/");
        let abs = path::resolve(&rel, DomId(dom), path::REL_PATH_MAX).unwrap();
        prop_assert_eq!(&abs, &format!("/local/domain/{dom}/{rel}"));
        prop_assert_eq!(path::relative_to(&abs, DomId(dom)), Some(rel.as_str()));
    }

    #[test]
    fn bad_characters_rejected(p in valid_abs_path(), bad in "[^A-Za-z0-9_@/-]", at: prop::sample::Index) {
        let mut s = p.clone();
        let i = at.index(s.len() + 1);
        let i = (0..=i).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
        s.insert_str(i, &bad);
        let r = path::check_syntax(&s);
        prop_assert!(matches!(r, Err(PathProblem::BadChar(_))), "{:?} -> {:?}", s, r);
    }

    #[test]
    fn slashes_rejected(p in valid_abs_path()) {
        prop_assume!(p != "/");
        prop_assert_eq!(path::check_syntax(&format!("{p}/")), Err(PathProblem::TrailingSlash));
        prop_assert_eq!(path::check_syntax(&format!("{p}//x")), Err(PathProblem::DoubleSlash));
    }

    #[test]
    fn perm_strings_round_trip(p in perms()) {
        let s = p.to_string();
        prop_assert_eq!(s.parse::<PermList>().unwrap(), p.clone());
        let wire = p.to_wire();
        let strs: Vec<&str> = wire.split(|&b| b == 0).filter(|x| !x.is_empty())
            .map(|x| std::str::from_utf8(x).unwrap()).collect();
        prop_assert_eq!(PermList::parse_strs(strs).unwrap(), p);
    }
}
