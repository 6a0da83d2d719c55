//! The crate's error type.

/// Errors that stop the agent (per-device failures are reported in xenstore
/// as `hotplug-error` instead).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Connecting to xenstore failed.
    #[error("cannot connect to xenstore at {at}")]
    Connect {
        /// Socket path, or "the default socket".
        at: String,
        /// Client error.
        #[source]
        source: xenstore::Error,
    },
    /// Our own domid could not be determined.
    #[error("cannot determine our domain id (relative node `domid`); pass --domid")]
    Domid {
        /// Client or parse error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A xenstore operation the agent itself needs failed.
    #[error("xenstore: {context}")]
    Xenstore {
        /// What was being done.
        context: String,
        /// Client error.
        #[source]
        source: xenstore::Error,
    },
    /// The backend watch ended (connection lost).
    #[error("the watch on {path} ended (xenstore connection lost)")]
    WatchEnded {
        /// Watched path.
        path: String,
    },
    /// The command line's bridge could not be brought up.
    #[error("cannot bring up bridge {bridge} with uplink {uplink}: {reason}")]
    Bridge {
        /// The bridge (`--bridge`).
        bridge: String,
        /// The uplink (`--uplink`).
        uplink: String,
        /// What went wrong.
        reason: String,
    },
    /// Netlink setup or bridge bring-up failed.
    #[error("{context}")]
    Hotplug {
        /// What was being done.
        context: String,
        /// Hotplug error.
        #[source]
        source: hotplug::Error,
    },
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `err: cause: cause` — the text written to `hotplug-error`.
pub(crate) fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut s = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let t = e.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = e.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_joins_sources_once() {
        let inner = std::io::Error::other("no such device");
        let e = Error::Hotplug {
            context: "bring up bridge xenbr0".into(),
            source: hotplug::Error::LinkMissing {
                name: "eth9".into(),
            },
        };
        let text = chain(&e);
        assert!(text.starts_with("bring up bridge xenbr0: "), "{text}");
        assert!(text.contains("eth9"), "{text}");
        let e = Error::Connect {
            at: "/x".into(),
            source: xenstore::Error::Io {
                context: "connect /x".into(),
                source: inner,
            },
        };
        assert_eq!(
            chain(&e),
            "cannot connect to xenstore at /x: xenstore connect /x: no such device"
        );
    }
}
