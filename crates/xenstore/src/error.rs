//! The crate's error type.

use crate::errno::XsErrno;
use crate::path::PathProblem;
use crate::wire::{DecodeError, FrameError};

/// Errors from the xenstore codec and clients: the crate's one error type.
///
/// [`PathProblem`], [`FrameError`] and [`DecodeError`] are reasons carried
/// by its variants (the codec's functions return them directly so the
/// server can answer with the right error name).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered an operation with an error name.
    #[error("xenstore {op} {path}: {errno}")]
    Xs {
        /// The operation, e.g. `READ`.
        op: &'static str,
        /// The path or argument it was about.
        path: String,
        /// The server's answer.
        errno: XsErrno,
    },
    /// A path was refused before sending.
    #[error("invalid xenstore path {path:?}: {problem}")]
    InvalidPath {
        /// The path.
        path: String,
        /// What is wrong with it.
        problem: PathProblem,
    },
    /// A watch token was refused before sending (it contains a NUL byte).
    #[error("invalid xenstore watch token {0:?}: must not contain NUL")]
    InvalidToken(String),
    /// A request would exceed `XENSTORE_PAYLOAD_MAX`.
    #[error("{op} request of {len} bytes exceeds the 4096-byte xenstore payload limit")]
    TooLarge {
        /// The operation.
        op: &'static str,
        /// Payload size.
        len: usize,
    },
    /// The peer sent something that is not the xenstore protocol.
    #[error("xenstore protocol error: {0}")]
    Protocol(String),
    /// The peer's byte stream cannot be framed (the connection is dropped).
    #[error("bad xenstore frame: {0}")]
    Frame(FrameError),
    /// A message that does not decode.
    #[error("malformed xenstore message: {0}")]
    Decode(DecodeError),
    /// The connection is gone.
    #[error("xenstore connection closed")]
    Closed,
    /// Connecting or talking to the socket failed.
    #[error("xenstore {context}")]
    Io {
        /// What we were doing, with the path.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A transaction kept conflicting.
    #[error("transaction gave up after {attempts} attempts (EAGAIN each time)")]
    TooManyRetries {
        /// Attempts made.
        attempts: u32,
    },
    /// A deadline passed.
    #[error("timed out: {0}")]
    Timeout(String),
}

impl Error {
    /// The server's error name, if this is a server error. Arguments the
    /// client refused before sending report the name the server would have
    /// answered: `EINVAL` for a bad path or token, `E2BIG` for a request
    /// over the payload limit.
    pub fn errno(&self) -> Option<XsErrno> {
        match self {
            Error::Xs { errno, .. } => Some(*errno),
            Error::InvalidPath { .. } | Error::InvalidToken(_) => Some(XsErrno::Einval),
            Error::TooLarge { .. } => Some(XsErrno::E2big),
            _ => None,
        }
    }

    /// True if the server said the node does not exist.
    pub fn is_not_found(&self) -> bool {
        self.errno() == Some(XsErrno::Enoent)
    }
}

impl From<FrameError> for Error {
    fn from(e: FrameError) -> Self {
        Error::Frame(e)
    }
}

impl From<DecodeError> for Error {
    fn from(e: DecodeError) -> Self {
        Error::Decode(e)
    }
}

/// Result alias.
pub type Result<T> = std::result::Result<T, Error>;
