//! xl.cfg parser and lossless writer, device spec parsers, diagnostics.
//!
//! (Being written; see the crate's issue.)
