//! Property tests: lossless round trips, canonical output as a fixed point,
//! device spec writers, and no panics on arbitrary input.

use proptest::prelude::*;
use xlcfg::{DiskSpec, Document, PciSpec, Value, VifSpec};

fn key() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_.]{0,8}"
}

fn atom() -> impl Strategy<Value = Value> {
    prop_oneof![
        "[0-9]{1,6}".prop_map(Value::Str),
        "0x[0-9a-f]{1,4}".prop_map(Value::Str),
        any::<String>().prop_map(Value::Str),
        "[ -~]{0,20}".prop_map(Value::Str),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    atom().prop_recursive(3, 16, 4, |inner| {
        prop::collection::vec(inner, 0..4).prop_map(Value::List)
    })
}

/// One line of source: a setting (possibly with a trailing comment), a
/// comment line, a blank line, or two settings joined by `;`.
fn line() -> impl Strategy<Value = String> {
    prop_oneof![
        (key(), value(), prop::option::of("[ -~]{0,12}")).prop_map(|(k, v, c)| {
            let mut s = format!("{k} = {}", v.to_source());
            if let Some(c) = c {
                s.push_str(" #");
                s.push_str(&c);
            }
            s
        }),
        (key(), value()).prop_map(|(k, v)| format!("{k}={}", v.to_source_multiline())),
        "#[ -~]{0,20}".prop_map(|s| s),
        Just(String::new()),
        Just("   \t".to_owned()),
        (key(), atom(), key(), atom()).prop_map(|(a, x, b, y)| format!(
            "{a} = {}; {b}\t=\t{}",
            x.to_source(),
            y.to_source()
        )),
    ]
}

fn source() -> impl Strategy<Value = String> {
    (prop::collection::vec(line(), 0..12), any::<bool>()).prop_map(|(lines, final_nl)| {
        let mut s = lines.join("\n");
        // A comment on the last line needs its newline (SPEC.md §1.6).
        if (final_nl || lines.last().is_some_and(|l| l.contains('#'))) && !s.is_empty() {
            s.push('\n');
        }
        s
    })
}

/// A document built through the editing API.
fn edited_document() -> impl Strategy<Value = Document> {
    (
        source(),
        prop::collection::vec((0u8..3, key(), value()), 0..6),
    )
        .prop_map(|(src, ops)| {
            // The generated source always parses (unedited_write_is_byte_exact).
            let mut doc = Document::parse_str(&src, "gen")
                .map(|p| p.document)
                .unwrap_or_default();
            for (op, k, v) in ops {
                match op {
                    0 => {
                        let _ = doc.set(&k, v);
                    }
                    1 => {
                        let _ = doc.append(&k, v);
                    }
                    _ => {
                        doc.remove(&k);
                    }
                }
            }
            doc
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn unedited_write_is_byte_exact(src in source()) {
        let doc = Document::parse_str(&src, "gen").unwrap().document;
        prop_assert_eq!(doc.to_bytes(), src.as_bytes());
    }

    #[test]
    fn parse_of_write_is_the_document(doc in edited_document()) {
        let back = Document::parse(&doc.to_bytes(), "gen").unwrap().document;
        prop_assert_eq!(back, doc);
    }

    #[test]
    fn canonical_is_a_fixed_point_and_keeps_settings(doc in edited_document()) {
        let once = doc.canonical();
        let reparsed = Document::parse(&once.to_bytes(), "gen").unwrap().document;
        prop_assert_eq!(&reparsed, &once);
        prop_assert_eq!(reparsed.canonical().to_bytes(), once.to_bytes());
        let (a, b) = (doc.settings().unwrap(), once.settings().unwrap());
        prop_assert_eq!(a.len(), b.len());
        for k in a.keys() {
            prop_assert_eq!(&a.get(k).unwrap().value, &b.get(k).unwrap().value);
        }
    }

    #[test]
    fn set_changes_only_that_key(src in source(), k in key(), v in value()) {
        let mut doc = Document::parse_str(&src, "gen").unwrap().document;
        let before = doc.settings().unwrap();
        doc.set(&k, v.clone()).unwrap();
        let after = Document::parse(&doc.to_bytes(), "gen").unwrap().document.settings().unwrap();
        prop_assert_eq!(&after.get(&k).unwrap().value, &v);
        for other in before.keys().filter(|o| *o != k) {
            prop_assert_eq!(&before.get(other).unwrap().value, &after.get(other).unwrap().value);
        }
    }

    #[test]
    fn parser_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(p) = Document::parse(&bytes, "fuzz") {
            prop_assert_eq!(p.document.to_bytes(), bytes);
        }
    }

    #[test]
    fn parser_never_panics_on_config_like_text(s in "[a-z0-9 =+\\[\\],;'\"#\\\\\n.$-]{0,200}") {
        if let Ok(p) = Document::parse_str(&s, "fuzz") {
            prop_assert_eq!(p.document.to_bytes(), s.as_bytes());
            let c = p.document.canonical();
            prop_assert!(Document::parse(&c.to_bytes(), "fuzz").is_ok());
        }
    }

    #[test]
    fn vif_writer_round_trips(s in "((mac|bridge|backend|script|ip|vifname|type|model|mtu|devid|rate|gatewaydev|netdev)=[a-z0-9:./@ -]{0,12}|trusted|untrusted)(,((mac|bridge|backend|ip|mtu|rate|type)=[a-zA-Z0-9:./@ -]{0,12}|trusted)){0,5}") {
        if let Ok(p) = VifSpec::parse(&s) {
            if let Ok(w) = p.spec.to_spec() {
                let again = VifSpec::parse(&w).unwrap().spec;
                prop_assert_eq!(&again, &p.spec, "{} -> {}", s, w);
                prop_assert_eq!(again.to_spec().unwrap(), w);
            }
        }
    }

    #[test]
    fn pci_writer_round_trips(s in "([0-9a-f]{1,4}:)?[0-9a-f]{1,2}:[0-9a-f]{1,2}\\.[0-7*](@[0-9a-f]{1,2})?(,(permissive|seize|msitranslate|power_mgmt)=[0-9]|,rdm_policy=(strict|relaxed)|,vslot=[0-9a-f]{1,2}){0,4}|name=[a-z0-9]{0,6}(,vslot=[0-9a-f])?") {
        if let Ok(p) = PciSpec::parse(&s) {
            let w = p.spec.to_spec().unwrap();
            let again = PciSpec::parse(&w).unwrap().spec;
            prop_assert_eq!(&again, &p.spec, "{} -> {}", s, w);
        }
    }

    #[test]
    fn disk_writer_round_trips(s in "((phy:|file:|raw:|qcow2:|tap:aio:)?/[a-z0-9/]{0,10})?,(raw|qcow2|vhd)?,(xvd[a-z]|hd[a-d])(:cdrom|:disk)?(,(r|w|rw|ro))?(,(discard|no-discard|direct-io-safe|backend=[a-z]{1,5}|script=[a-z-]{1,8}))*") {
        if let Ok(p) = DiskSpec::parse(&s) {
            let w = p.spec.to_spec().unwrap();
            let again = DiskSpec::parse(&w).unwrap().spec;
            prop_assert_eq!(&again, &p.spec, "{} -> {}", s, w);
        }
    }

    #[test]
    fn device_parsers_never_panic(s in any::<String>()) {
        let _ = VifSpec::parse(&s);
        let _ = PciSpec::parse(&s);
        let _ = DiskSpec::parse(&s);
    }
}
