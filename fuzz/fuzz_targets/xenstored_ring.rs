//! Fuzz the xenstore shared-ring reader/writer as a hostile guest would
//! drive it: arbitrary indices and bytes on the page between our reads and
//! writes. Must never panic, never access outside the page, and keep its
//! framing invariants. See `xenstored::ring::fuzz_drive` for the format.
#![no_main]

use libfuzzer_sys::{Corpus, fuzz_target};

fuzz_target!(|data: &[u8]| -> Corpus {
    if data.len() > 64 * 1024 {
        return Corpus::Reject;
    }
    xenstored::ring::fuzz_drive(data);
    Corpus::Keep
});
