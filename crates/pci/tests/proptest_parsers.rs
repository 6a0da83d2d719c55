//! Property tests for the BDF and sysfs attribute parsers.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use pci::{Bdf, attrs};
use proptest::prelude::*;

proptest! {
    #[test]
    fn bdf_display_parse_round_trip(dom in 0u32..=0xffff_ffff, bus: u8, dev in 0u8..=31, func in 0u8..=7) {
        let b = Bdf::new(dom, bus, dev, func).unwrap();
        let s = b.to_string();
        prop_assert_eq!(s.parse::<Bdf>().unwrap(), b);
    }

    #[test]
    fn bdf_short_forms_mean_domain_zero(bus: u8, dev in 0u8..=31, func in 0u8..=7) {
        let full = Bdf::new(0, bus, dev, func).unwrap();
        let short = format!("{bus:x}:{dev:x}.{func}");
        let padded = format!("{bus:02x}:{dev:02x}.{func}");
        prop_assert_eq!(short.parse::<Bdf>().unwrap(), full);
        prop_assert_eq!(padded.parse::<Bdf>().unwrap(), full);
    }

    #[test]
    fn bdf_order_matches_tuple_order(a: (u16, u8, u8, u8), b: (u16, u8, u8, u8)) {
        let mk = |t: (u16, u8, u8, u8)| Bdf::new(u32::from(t.0), t.1, t.2 % 32, t.3 % 8).unwrap();
        let (x, y) = (mk(a), mk(b));
        let tx = (x.domain(), x.bus(), x.device(), x.function());
        let ty = (y.domain(), y.bus(), y.device(), y.function());
        prop_assert_eq!(x.cmp(&y), tx.cmp(&ty));
    }

    #[test]
    fn bdf_parse_never_panics_and_output_reparses(s in ".{0,24}") {
        if let Ok(b) = s.parse::<Bdf>() {
            prop_assert_eq!(b.to_string().parse::<Bdf>().unwrap(), b);
        }
    }

    #[test]
    fn bdf_rejects_function_over_7(bus: u8, dev in 0u8..=31, func in 8u8..=15) {
        let s = format!("0000:{bus:02x}:{dev:02x}.{func:x}");
        let e = s.parse::<Bdf>().unwrap_err().to_string();
        prop_assert!(e.contains("function"), "{}", e);
    }

    #[test]
    fn hex_attrs_round_trip(v: u16, c in 0u32..0x100_0000) {
        prop_assert_eq!(attrs::parse_hex_u16(&format!("0x{v:04x}\n")), Some(v));
        prop_assert_eq!(attrs::parse_class(&format!("0x{c:06x}\n")), Some(c));
    }

    #[test]
    fn attr_parsers_never_panic(s in "\\PC{0,64}", bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = attrs::parse_hex_u16(&s);
        let _ = attrs::parse_class(&s);
        let _ = attrs::parse_reset_methods(&s);
        let _ = attrs::parse_bdf_list(&s);
        let _ = attrs::parse_modules_builtin(&s);
        let _ = attrs::parse_modules_alias(&s);
        let _ = attrs::parse_proc_net_route(&s);
        let _ = attrs::parse_proc_net_ipv6_route(&s);
        let _ = attrs::xl_info_directio(&s);
        let _ = attrs::config_has_flr(&bytes);
    }

    #[test]
    fn bdf_list_round_trips(v in proptest::collection::vec((any::<u8>(), 0u8..32, 0u8..8), 0..8)) {
        let bdfs: Vec<Bdf> = v.iter().map(|&(b, d, f)| Bdf::new(0, b, d, f).unwrap()).collect();
        let text: String = bdfs.iter().map(|b| format!("{b}\n")).collect();
        prop_assert_eq!(attrs::parse_bdf_list(&text), bdfs);
    }

    #[test]
    fn glob_star_matches_everything(s in "[a-z0-9*]{0,20}") {
        prop_assert!(attrs::glob_match("*", &s));
        let (pattern, text) = (format!("{s}*"), format!("{s}xyz"));
        prop_assert!(attrs::glob_match(&pattern, &text));
    }
}
