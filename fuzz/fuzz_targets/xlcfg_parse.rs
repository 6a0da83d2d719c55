//! Fuzz the xl.cfg parser: it never panics, an accepted file writes back
//! byte for byte, and its canonical form parses to the same settings and is
//! a fixed point.
#![no_main]

use libfuzzer_sys::{Corpus, fuzz_target};
use xlcfg::Document;

fuzz_target!(|data: &[u8]| -> Corpus {
    let Ok(parsed) = Document::parse(data, "fuzz") else {
        return Corpus::Keep;
    };
    let doc = parsed.document;
    assert_eq!(doc.to_bytes(), data, "lossless write");
    let Ok(settings) = doc.settings() else {
        return Corpus::Keep;
    };
    let canon = doc.canonical();
    let again = Document::parse(&canon.to_bytes(), "fuzz")
        .expect("canonical form parses")
        .document;
    assert_eq!(
        again.canonical().to_bytes(),
        canon.to_bytes(),
        "canonical is a fixed point"
    );
    let s2 = again.settings().expect("settings");
    assert_eq!(settings.len(), s2.len());
    for k in settings.keys() {
        assert_eq!(
            settings.get(k).map(|s| &s.value),
            s2.get(k).map(|s| &s.value),
            "key {k}"
        );
    }
    let _ = xlcfg::DomainConfig::from_document(&doc, "fuzz", data);
    Corpus::Keep
});
