//! The crate's error type.

use std::path::PathBuf;

/// Errors of the simulated host.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A xenstore operation failed.
    #[error("xenstore: {what}")]
    Xenstore {
        /// What we were doing.
        what: String,
        /// The client's error.
        #[source]
        source: xenstore::Error,
    },
    /// A xenbus (device model) operation failed.
    #[error("xenbus: {what}")]
    Xenbus {
        /// What we were doing.
        what: String,
        /// The device model's error.
        #[source]
        source: xenbus::Error,
    },
    /// A netlink request failed.
    #[error("netlink: {what}")]
    Netlink {
        /// What we were doing.
        what: String,
        /// The rtnetlink error.
        #[source]
        source: rtnetlink::Error,
    },
    /// A helper program, thread or socket could not be started.
    #[error("cannot start {program}")]
    Spawn {
        /// The program and its first arguments.
        program: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A file or directory of the lab could not be read or written.
    #[error("{what} {path}")]
    File {
        /// What we were doing.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The lab's state file is not valid JSON of the expected shape.
    #[error("lab state {path} is damaged")]
    State {
        /// The file.
        path: PathBuf,
        /// The decoding error.
        #[source]
        source: serde_json::Error,
    },
    /// Something did not happen in time.
    #[error("timed out after {secs:.1}s waiting for {what}")]
    Timeout {
        /// The awaited condition.
        what: String,
        /// How long we waited.
        secs: f64,
    },
    /// A required program or binary is missing.
    #[error("{0}")]
    Missing(String),
    /// The caller asked for something that does not fit the lab.
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// Wrap a xenstore error with context.
    pub(crate) fn xs(what: impl Into<String>) -> impl FnOnce(xenstore::Error) -> Error {
        let what = what.into();
        move |source| Error::Xenstore { what, source }
    }

    /// Wrap a xenbus error with context.
    pub(crate) fn xb(what: impl Into<String>) -> impl FnOnce(xenbus::Error) -> Error {
        let what = what.into();
        move |source| Error::Xenbus { what, source }
    }
}

/// An error with its sources, `a: b: c`, for log fields and messages.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
