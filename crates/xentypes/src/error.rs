//! The crate's one error type.

/// A value that does not parse, with the input and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Not a MAC address.
    #[error("invalid MAC address {input:?}: {reason}")]
    InvalidMac {
        /// What was given.
        input: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// Not a PCI address.
    #[error("invalid PCI address {input:?}: {reason}")]
    InvalidBdf {
        /// What was given.
        input: String,
        /// Why it was refused.
        reason: String,
    },
    /// Not an address with a prefix length.
    #[error("invalid IP address {input:?}: {reason}")]
    InvalidIp {
        /// What was given.
        input: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// Not a domain id.
    #[error("invalid domain id {input:?}: expected a decimal number 0..=65535")]
    InvalidDomId {
        /// What was given.
        input: String,
    },
    /// Not a device id.
    #[error("invalid device id {input:?}: {reason}")]
    InvalidDevId {
        /// What was given.
        input: String,
        /// Why it was refused.
        reason: &'static str,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
