//! The crate's error type.

use std::time::Duration;

use xenstore::DomId;

use crate::state::XenbusState;

/// Errors from the xenbus device model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A xenstore operation failed.
    #[error("{context}")]
    Xenstore {
        /// What we were doing (with the path).
        context: String,
        /// The client's error.
        #[source]
        source: xenstore::Error,
    },
    /// A value read from or meant for xenstore is malformed.
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidValue {
        /// Which value (e.g. `mtu`, `bridge`).
        what: &'static str,
        /// The offending text (lossy UTF-8, truncated to 64 bytes).
        value: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A MAC, BDF, domid or devid that does not parse.
    #[error(transparent)]
    Value(#[from] xentypes::Error),
    /// The domain has no `/local/domain/<id>` node.
    #[error("domain {0} does not exist in xenstore (no /local/domain/{0})")]
    NoSuchDomain(DomId),
    /// The device is not in xenstore.
    #[error("device {path} not found")]
    NoSuchDevice {
        /// The device path looked up.
        path: String,
    },
    /// A device node vanished while we were waiting on it.
    #[error("{path} was removed while waiting for state {wanted}")]
    DeviceGone {
        /// The `state` node.
        path: String,
        /// The states we were waiting for.
        wanted: String,
    },
    /// A state was not reached in time.
    #[error("{path} did not reach state {wanted} within {waited:?} (last seen: {last})")]
    StateTimeout {
        /// The `state` node.
        path: String,
        /// The states we were waiting for.
        wanted: String,
        /// How long we waited.
        waited: Duration,
        /// The last state read, or `none`.
        last: String,
    },
    /// The backend's removal of its directory was not seen in time.
    #[error("{path} was not removed by the backend domain within {waited:?}")]
    RemovalTimeout {
        /// The backend directory.
        path: String,
        /// How long we waited.
        waited: Duration,
    },
    /// No device id was free.
    #[error("no free device id for {kind} of domain {domid}")]
    NoFreeDevid {
        /// Device kind.
        kind: &'static str,
        /// Frontend domain.
        domid: DomId,
    },
    /// A watch stream ended before the wait was over.
    #[error("watch on {path} ended unexpectedly")]
    WatchEnded {
        /// The watched path.
        path: String,
    },
}

impl Error {
    /// Wrap a xenstore error with context.
    pub(crate) fn xs(context: impl Into<String>) -> impl FnOnce(xenstore::Error) -> Error {
        let context = context.into();
        move |source| Error::Xenstore { context, source }
    }

    /// Build an [`Error::InvalidValue`] from raw bytes.
    pub(crate) fn invalid(what: &'static str, value: &[u8], reason: &'static str) -> Error {
        let end = value.len().min(64);
        Error::InvalidValue {
            what,
            value: String::from_utf8_lossy(value.get(..end).unwrap_or_default()).into_owned(),
            reason,
        }
    }

    /// The xenstore client error underneath, if any.
    pub fn xenstore_error(&self) -> Option<&xenstore::Error> {
        match self {
            Error::Xenstore { source, .. } => Some(source),
            Error::InvalidValue { .. }
            | Error::Value(_)
            | Error::NoSuchDomain(_)
            | Error::NoSuchDevice { .. }
            | Error::DeviceGone { .. }
            | Error::StateTimeout { .. }
            | Error::RemovalTimeout { .. }
            | Error::NoFreeDevid { .. }
            | Error::WatchEnded { .. } => None,
        }
    }

    /// True if the xenstore connection is gone (the caller should reconnect
    /// or stop).
    pub fn is_disconnect(&self) -> bool {
        matches!(
            self.xenstore_error(),
            Some(xenstore::Error::Closed | xenstore::Error::Io { .. })
        )
    }

    /// True if the server refused with `EACCES`.
    pub fn is_access_denied(&self) -> bool {
        self.xenstore_error().and_then(xenstore::Error::errno) == Some(xenstore::XsErrno::Eacces)
    }
}

/// Format a set of wanted states for messages: `InitWait|Closed`.
pub(crate) fn states_text(states: &[XenbusState]) -> String {
    states
        .iter()
        .map(|s| s.name())
        .collect::<Vec<_>>()
        .join("|")
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
