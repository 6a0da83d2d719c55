//! Fuzz the xenstore server's request handler: arbitrary byte streams on
//! three connections (dom0 and two unprivileged domains) must never panic,
//! and every reply or event must be a well-formed packet within the
//! 4096-byte payload limit. See `xenstored::fuzzing` for the input format.
#![no_main]

use libfuzzer_sys::{Corpus, fuzz_target};

fuzz_target!(|data: &[u8]| -> Corpus {
    if data.len() > 64 * 1024 {
        return Corpus::Reject;
    }
    xenstored::fuzzing::drive(data);
    Corpus::Keep
});
