//! A driver feeding arbitrary bytes into [`Server`], shared by the
//! `xenstored_handler` fuzz target and the property tests.
//!
//! The input is a sequence of chunks `[selector][len][len bytes]`: the
//! selector picks one of three connections (dom0, domain 5, domain 6 — both
//! introduced, domain 6 the SET_TARGET helper of 5) and the bytes are
//! appended to that connection's input stream and fed to the server. A
//! stream error (oversized payload) disconnects and reconnects it. After
//! every chunk, each connection's output must be a sequence of well-formed
//! packets within the payload limit.

use xenstore::DomId;
use xenstore::wire::{PAYLOAD_MAX, Packet, Request};

use crate::quota::Quotas;
use crate::server::{ConnId, Server};

/// Feed `data` as described in the module doc; panics only if the server
/// broke an invariant (malformed output).
pub fn drive(data: &[u8]) {
    // small quotas, so that the fuzzer reaches every limit: nodes, watches,
    // transactions and their size, memory
    let mut s = Server::new(Quotas {
        nodes: 50,
        watches: 8,
        transactions: 3,
        transaction_nodes: 16,
        memory: 16 * 1024,
        ..Quotas::default()
    });
    let admin = s.connect(DomId(0));
    for r in [
        Request::Introduce {
            domid: DomId(5),
            gfn: 1,
            evtchn: 1,
        },
        Request::Introduce {
            domid: DomId(6),
            gfn: 1,
            evtchn: 1,
        },
        Request::Mkdir("/local/domain/5".into()),
        Request::SetPerms("/local/domain/5".into(), PermsOf::n5r6()),
        Request::SetTarget {
            domid: DomId(6),
            target: DomId(5),
        },
    ] {
        s.handle(admin, &r.to_packet(1, 0));
    }
    let _ = s.take_output(admin);
    let doms = [DomId(0), DomId(5), DomId(6)];
    let mut conns: Vec<ConnId> = doms.iter().map(|&d| s.connect(d)).collect();
    let mut bufs: Vec<Vec<u8>> = vec![Vec::new(); 3];
    let mut rest = data;
    while let [sel, len, tail @ ..] = rest {
        let i = usize::from(*sel) % 3;
        let n = usize::from(*len).min(tail.len());
        bufs[i].extend_from_slice(&tail[..n]);
        rest = &tail[n..];
        match s.feed(conns[i], &bufs[i], crate::server::Budget::UNLIMITED) {
            Ok((used, _)) => {
                bufs[i].drain(..used);
            }
            Err(_) => {
                s.disconnect(conns[i]);
                conns[i] = s.connect(doms[i]);
                bufs[i].clear();
            }
        }
        for c in s.take_dirty() {
            check_output(&s.take_output(c));
        }
        let _ = s.take_effects();
    }
}

fn check_output(out: &[u8]) {
    let mut at = 0;
    while at < out.len() {
        match Packet::decode(&out[at..], PAYLOAD_MAX) {
            Ok(Some((_, n))) => at += n,
            other => panic!("server produced a malformed or oversized packet: {other:?}"),
        }
    }
}

struct PermsOf;

impl PermsOf {
    fn n5r6() -> xenstore::PermList {
        xenstore::PermList::owned_by(DomId(5), xenstore::Access::None)
            .with(xenstore::Access::Read, DomId(6))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn chunk(sel: u8, r: Request, tx: u32) -> Vec<u8> {
        let p = r.to_packet(7, tx).encode();
        let mut v = Vec::new();
        for part in p.chunks(255) {
            v.push(sel);
            v.push(part.len() as u8);
            v.extend_from_slice(part);
        }
        v
    }

    #[test]
    fn drives_structured_sessions() {
        let mut data = Vec::new();
        data.extend(chunk(1, Request::Write("a/b".into(), b"1".to_vec()), 0));
        data.extend(chunk(2, Request::Read("/local/domain/5/a/b".into()), 0));
        data.extend(chunk(
            0,
            Request::Watch {
                path: "/".into(),
                token: "t".into(),
            },
            0,
        ));
        data.extend(chunk(1, Request::TransactionStart, 0));
        data.extend(chunk(1, Request::Rm("a".into()), 1));
        data.extend(chunk(1, Request::TransactionEnd(true), 1));
        data.extend([
            2, 16, 11, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff,
        ]);
        drive(&data);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn never_panics_on_random_streams(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
            drive(&data);
        }

        #[test]
        fn never_panics_on_random_requests(
            reqs in proptest::collection::vec((0u8..3, 0u32..30, 0u32..4, "[a-z/@0-9]{0,12}", proptest::collection::vec(any::<u8>(), 0..8)), 0..40)
        ) {
            let mut data = Vec::new();
            for (sel, ty, tx, path, extra) in reqs {
                let mut payload = path.into_bytes();
                payload.push(0);
                payload.extend(extra);
                let p = Packet { msg_type: ty, req_id: 1, tx_id: tx, payload }.encode();
                for part in p.chunks(255) {
                    data.push(sel);
                    data.push(part.len() as u8);
                    data.extend_from_slice(part);
                }
            }
            drive(&data);
        }
    }
}
