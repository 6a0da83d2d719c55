//! The client suite against our own server, `drvdom-xenstored` (found via
//! `$DRVDOM_XENSTORED_BIN`, else next to this test binary after
//! `cargo test --workspace` built it).

#[macro_use]
mod suite;

client_suite!(suite::peers::Kind::Drvdom);
