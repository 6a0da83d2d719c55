//! `drvdom-agent` (being written).
fn main() {}
