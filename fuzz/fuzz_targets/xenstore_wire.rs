//! Fuzz the xenstore codec: arbitrary bytes through `Packet::decode` (as a
//! stream of packets), `Request::decode` and `Response::decode`; whatever
//! decodes as a request must re-encode and decode to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xenstore::wire::{MsgType, PAYLOAD_MAX, Packet, Request, Response};

const REPLY_KINDS: [MsgType; 10] = [
    MsgType::Read,
    MsgType::Directory,
    MsgType::DirectoryPart,
    MsgType::GetPerms,
    MsgType::TransactionStart,
    MsgType::GetDomainPath,
    MsgType::IsDomainIntroduced,
    MsgType::Write,
    MsgType::Control,
    MsgType::WatchEvent,
];

fuzz_target!(|data: &[u8]| {
    // The whole input as a stream of packets.
    let mut buf = data;
    loop {
        match Packet::decode(buf, PAYLOAD_MAX) {
            Ok(Some((pkt, used))) => {
                assert!(used >= 16 && used <= buf.len());
                buf = &buf[used..];
                if let Ok(req) = Request::decode(pkt.msg_type, &pkt.payload) {
                    let again = req.to_packet(pkt.req_id, pkt.tx_id);
                    assert_eq!(
                        Request::decode(again.msg_type, &again.payload).ok(),
                        Some(req)
                    );
                }
                for kind in REPLY_KINDS {
                    let _ = Response::decode(pkt.msg_type, kind, &pkt.payload);
                }
            }
            Ok(None) | Err(_) => break,
        }
    }
    // The whole input as a payload of every message type.
    if let Some((&t, payload)) = data.split_first() {
        let t = u32::from(t % 28);
        let _ = Request::decode(t, payload);
        for kind in REPLY_KINDS {
            let _ = Response::decode(t, kind, payload);
        }
    }
});
