//! The crate's one error type.

/// Errors of the toolstack.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A xenbus (device model) operation failed.
    #[error("{context}")]
    Xenbus {
        /// What we were doing.
        context: String,
        /// The cause.
        #[source]
        source: xenbus::Error,
    },
    /// A xenstore operation failed.
    #[error("{context}")]
    Xenstore {
        /// What we were doing.
        context: String,
        /// The cause.
        #[source]
        source: xenstore::Error,
    },
    /// The host refused or failed an operation (names the host, the
    /// object and the reason).
    #[error("{0}")]
    Host(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
