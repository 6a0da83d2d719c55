//! The crate's one error type.

use std::path::PathBuf;

/// Errors of the toolstack.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The host file could not be read.
    #[error("cannot read host file {}", path.display())]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The host file has errors (each a diagnostic with file:line:column).
    #[error("{file}: {} error(s) in the host file", diagnostics.iter().filter(|d| d.is_error()).count())]
    HostFile {
        /// The file's name as given.
        file: String,
        /// Its text (to render carets).
        source_text: String,
        /// Errors and warnings, in file order.
        diagnostics: Vec<xlcfg::Diagnostic>,
    },
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
    /// An xl.cfg could not be read, parsed or written.
    #[error("{context}")]
    Config {
        /// What we were doing (names the file).
        context: String,
        /// The cause, if one.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The host refused or failed an operation (names the host, the
    /// object and the reason).
    #[error("{0}")]
    Host(String),
    /// Waiting for something the host should do timed out (names what
    /// and what was last seen).
    #[error("{0}")]
    Timeout(String),
}

impl Error {
    /// A xenstore error with context.
    pub(crate) fn xs(context: impl Into<String>) -> impl FnOnce(xenstore::Error) -> Error {
        let context = context.into();
        move |source| Error::Xenstore { context, source }
    }

    /// A xenbus error with context.
    pub(crate) fn xb(context: impl Into<String>) -> impl FnOnce(xenbus::Error) -> Error {
        let context = context.into();
        move |source| Error::Xenbus { context, source }
    }

    /// True for errors in what the user gave (the host file): exit code 2
    /// material rather than a runtime failure.
    pub fn is_usage(&self) -> bool {
        match self {
            Error::ReadFile { .. } | Error::HostFile { .. } => true,
            Error::Xenbus { .. }
            | Error::Xenstore { .. }
            | Error::Config { .. }
            | Error::Host(_)
            | Error::Timeout(_) => false,
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
