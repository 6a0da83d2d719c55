//! Fuzz the parsers of sysfs attributes and related kernel files: none may
//! panic, and values that parse must survive a print → parse round trip.
#![no_main]

use libfuzzer_sys::{Corpus, fuzz_target};
use pci::attrs;

fuzz_target!(|data: &[u8]| -> Corpus {
    // Config space is binary: feed the raw bytes.
    let _ = attrs::config_has_flr(data);
    let Ok(s) = std::str::from_utf8(data) else {
        return Corpus::Keep;
    };
    if let Some(v) = attrs::parse_hex_u16(s) {
        assert_eq!(attrs::parse_hex_u16(&format!("0x{v:04x}\n")), Some(v));
    }
    if let Some(c) = attrs::parse_class(s) {
        assert!(c <= 0xff_ffff);
        assert_eq!(attrs::parse_class(&format!("0x{c:06x}\n")), Some(c));
    }
    let _ = attrs::parse_hex_u8(s);
    let _ = attrs::parse_u32(s);
    let methods = attrs::parse_reset_methods(s);
    assert_eq!(attrs::parse_reset_methods(&methods.join(" ")), methods);
    let list = attrs::parse_bdf_list(s);
    let printed: String = list.iter().map(|b| format!("{b}\n")).collect();
    assert_eq!(attrs::parse_bdf_list(&printed), list);
    let _ = attrs::parse_modules_builtin(s);
    let aliases = attrs::parse_modules_alias(s);
    let _ = attrs::modules_for(s, &aliases);
    let _ = attrs::parse_proc_net_route(s);
    let _ = attrs::parse_proc_net_ipv6_route(s);
    let _ = attrs::xl_info_directio(s);
    Corpus::Keep
});
