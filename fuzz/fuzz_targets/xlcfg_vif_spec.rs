//! Fuzz the `vif` spec parser: it never panics, and when the canonical
//! writer succeeds, parse → write → parse gives the same value.
#![no_main]

use libfuzzer_sys::{Corpus, fuzz_target};
use xlcfg::VifSpec;

fuzz_target!(|data: &[u8]| -> Corpus {
    let Ok(s) = std::str::from_utf8(data) else {
        return Corpus::Reject;
    };
    let Ok(p) = VifSpec::parse(s) else {
        return Corpus::Keep;
    };
    if let Ok(w) = p.spec.to_spec() {
        let again = VifSpec::parse(&w).expect("canonical spec parses").spec;
        assert_eq!(again, p.spec, "{s:?} -> {w:?}");
    }
    Corpus::Keep
});
