//! Fuzz the simulator's small parsers: MAC text (`netback::parse_mac`),
//! netback interface names (`link::parse_vif_name`) and `ip -json` output
//! (`link::parse_ip_json`). None may panic; a parsed MAC or vif name prints
//! back and reparses to the same value.
#![no_main]

use libfuzzer_sys::{Corpus, fuzz_target};

fuzz_target!(|data: &[u8]| -> Corpus {
    let Ok(s) = std::str::from_utf8(data) else {
        return Corpus::Reject;
    };
    if let Some(mac) = sim::netback::parse_mac(s) {
        let printed = mac.to_string();
        assert_eq!(sim::netback::parse_mac(&printed), Some(mac));
    }
    if let Some((fe, devid)) = sim::link::parse_vif_name(s) {
        assert_eq!(sim::link::parse_vif_name(&format!("vif{fe}.{devid}")), Some((fe, devid)));
    }
    let links = sim::link::parse_ip_json(s);
    let _ = sim::link::bridges(&links);
    Corpus::Keep
});
