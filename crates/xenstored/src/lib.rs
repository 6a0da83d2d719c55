//! A xenstore server: tree, permissions, transactions, watches, quotas.
//!
//! (Being written; see the crate's issue.)
