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
    /// A Xen device or xenfs file could not be used.
    #[error("cannot {what} {path}")]
    Xen {
        /// What was tried (open, mmap, read, ...).
        what: String,
        /// The device or file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Another xenstore server already serves this host (the message says
    /// how it was noticed and what to do).
    #[error("another xenstored is running: {0}")]
    AlreadyRunning(String),
    /// Daemon start-up (fork, pid file, readiness) failed.
    #[error("start-up: {0}")]
    Startup(String),
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
