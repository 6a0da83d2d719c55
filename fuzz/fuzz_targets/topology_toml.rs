//! Fuzz the host-file parser: it never panics; every rejection carries at
//! least one coded error placed in the file; an accepted file has unique
//! domain names and MACs, devids in order, every bridge-mode vif on a
//! bridge, and parses again to the same model.
#![no_main]

use libfuzzer_sys::{Corpus, fuzz_target};
use topology::{LoadOptions, parse_str};

fuzz_target!(|data: &[u8]| -> Corpus {
    let Ok(text) = std::str::from_utf8(data) else {
        return Corpus::Reject;
    };
    let opts = LoadOptions::default();
    match parse_str(text, "fuzz.toml", None, &opts) {
        Err(diags) => {
            assert!(diags.iter().any(|d| d.is_error()), "rejected without an error");
            for d in &diags {
                let code = d.code.unwrap_or_default();
                assert!(code.starts_with("TOPO-"), "uncoded diagnostic {d:?}");
                assert!(d.span.end <= text.len(), "span past the end: {d:?}");
            }
            Corpus::Keep
        }
        Ok(l) => {
            let t = &l.topology;
            let mut names: Vec<&str> = t
                .driver_domains
                .iter()
                .map(|d| d.name.as_str())
                .chain(t.guests.iter().map(|g| g.name.as_str()))
                .collect();
            let n = names.len();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), n, "duplicate domain names accepted");
            let mut macs = Vec::new();
            for g in &t.guests {
                for (i, v) in g.vifs.iter().enumerate() {
                    assert_eq!(v.devid.0 as usize, i);
                    assert!(v.mac.is_unicast());
                    macs.push(v.mac);
                    if v.mode == topology::VifMode::Bridge {
                        assert!(v.bridge.is_some(), "bridge-mode vif without a bridge");
                    }
                }
            }
            let n = macs.len();
            macs.sort_unstable();
            macs.dedup();
            assert_eq!(macs.len(), n, "duplicate MACs accepted");
            let again = parse_str(text, "fuzz.toml", None, &opts).expect("parses again");
            assert_eq!(&again.topology, t);
            Corpus::Keep
        }
    }
});
