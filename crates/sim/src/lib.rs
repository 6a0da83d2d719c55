//! Simulated Xen host: domains as network namespaces, simulated netback/netfront.
//!
//! (Being written; see the crate's issue.)
