//! `drvdom-xenstored` (being written).
fn main() {}
