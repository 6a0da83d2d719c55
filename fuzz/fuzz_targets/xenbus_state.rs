//! Fuzz the parsers of values the agent reads from xenstore: XenbusState,
//! backend paths from watch events, devids, MACs, MTUs, interface names.
#![no_main]

use libfuzzer_sys::{Corpus, fuzz_target};
use xenbus::{BackendPath, DevId, MacAddr, XenbusState, validate};

fuzz_target!(|data: &[u8]| -> Corpus {
    if data.len() > 4096 {
        return Corpus::Reject;
    }
    if let Ok(st) = XenbusState::parse_bytes(data) {
        // Round trip: the wire form parses back to the same state.
        assert_eq!(XenbusState::parse_bytes(st.to_wire().as_bytes()), Ok(st));
    }
    let _ = DevId::parse_bytes(data);
    let _ = MacAddr::parse_bytes(data);
    let _ = validate::mtu(data);
    let _ = validate::ifname("fuzz", data);
    let _ = validate::script_path(data);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = s.parse::<XenbusState>();
        if let Some((bp, rest)) = BackendPath::parse(s) {
            // A parsed path prints back to a prefix of the input.
            let printed = bp.path();
            assert!(s.starts_with(&printed));
            assert!(rest.is_empty() || s[printed.len()..].starts_with('/'));
        }
    }
    Corpus::Keep
});
