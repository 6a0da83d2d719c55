//! The crate's error type (IO layer failures; protocol errors are replies).

use std::path::PathBuf;

/// Errors starting or running the daemon.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A listening socket could not be created.
    #[error("cannot listen on {path}")]
    Bind {
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A file or directory the daemon manages could not be written.
    #[error("cannot write {path}")]
    File {
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Signal handling could not be set up.
    #[error("cannot set up signal handling")]
    Signal(#[source] std::io::Error),
    /// The event loop (epoll) failed.
    #[error("event loop failed")]
    Poll(#[source] std::io::Error),
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
