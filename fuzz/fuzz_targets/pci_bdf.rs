//! Fuzz BDF parsing: never panics; whatever parses prints canonically and
//! reparses to the same value.
#![no_main]

use libfuzzer_sys::{Corpus, fuzz_target};

fuzz_target!(|data: &[u8]| -> Corpus {
    let Ok(s) = std::str::from_utf8(data) else {
        return Corpus::Reject;
    };
    if s.len() > 64 {
        return Corpus::Reject;
    }
    match s.parse::<pci::Bdf>() {
        Ok(b) => {
            let printed = b.to_string();
            let again: pci::Bdf = printed.parse().expect("canonical form reparses");
            assert_eq!(again, b);
            assert_eq!(again.to_string(), printed);
            assert!(b.device() <= pci::MAX_DEVICE && b.function() <= pci::MAX_FUNCTION);
            Corpus::Keep
        }
        Err(_) => Corpus::Keep,
    }
});
