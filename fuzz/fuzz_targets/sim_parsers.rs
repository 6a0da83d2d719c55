//! Fuzz the simulator's small parsers: MAC text (`netback::parse_mac`),
//! netback interface names (`link::parse_vif_name`) and ICMP echo replies
//! as the lab's in-process ping receives them (`icmp::is_echo_reply`).
//! None may panic; a parsed MAC or vif name prints back and reparses to
//! the same value.
#![no_main]

use libfuzzer_sys::{Corpus, fuzz_target};

fuzz_target!(|data: &[u8]| -> Corpus {
    // Any bytes are a packet the raw ICMP socket may receive.
    for v6 in [false, true] {
        let id = data.first().map_or(0, |b| u16::from(*b));
        let _ = sim::icmp::is_echo_reply(v6, data, id);
    }
    let Ok(s) = std::str::from_utf8(data) else {
        return Corpus::Keep;
    };
    if let Some(mac) = sim::netback::parse_mac(s) {
        let printed = mac.to_string();
        assert_eq!(sim::netback::parse_mac(&printed), Some(mac));
    }
    if let Some((fe, devid)) = sim::link::parse_vif_name(s) {
        assert_eq!(sim::link::parse_vif_name(&format!("vif{fe}.{devid}")), Some((fe, devid)));
    }
    Corpus::Keep
});
