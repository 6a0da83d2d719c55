//! The crate's one error type.
//!
//! Every message names the interface (or script) it is about, so the agent
//! can copy `to_string()` straight into the backend's `hotplug-error` node.

use std::path::PathBuf;
use std::time::Duration;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors from bridge bring-up, vif hotplug and the legacy script runner.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The rtnetlink socket could not be opened.
    #[error("cannot open a netlink socket")]
    Connect {
        /// Why the socket failed.
        #[source]
        source: std::io::Error,
    },
    /// A netlink request failed; `what` says which change on which interface.
    #[error("netlink: cannot {what}")]
    Netlink {
        /// The operation, naming the interface, e.g. `set mtu 9000 on vif5.0`.
        what: String,
        /// The kernel's answer.
        #[source]
        source: rtnetlink::Error,
    },
    /// The multicast link-event stream ended while waiting for a link.
    #[error("netlink event stream closed while waiting for {name}")]
    EventsClosed {
        /// The awaited interface.
        name: String,
    },
    /// An interface name is not a valid Linux interface name.
    #[error("invalid interface name {name:?}")]
    InvalidName {
        /// The rejected name.
        name: String,
    },
    /// The named bridge does not exist.
    #[error("bridge {bridge} does not exist")]
    BridgeMissing {
        /// The missing bridge.
        bridge: String,
    },
    /// An interface exists under the bridge's name but is not a bridge.
    #[error("{name} exists but is not a bridge (kind {kind})")]
    NotABridge {
        /// The interface.
        name: String,
        /// Its link kind, or `none`.
        kind: String,
    },
    /// A required interface (e.g. the uplink NIC) does not exist.
    #[error("interface {name} does not exist")]
    LinkMissing {
        /// The missing interface.
        name: String,
    },
    /// The vif did not appear before the deadline.
    #[error("interface {name} did not appear within {timeout:?}")]
    LinkTimeout {
        /// The awaited interface.
        name: String,
        /// How long we waited.
        timeout: Duration,
    },
    /// The uplink is already a port of another bridge or bond.
    #[error("uplink {uplink} is already enslaved to {master}, not to {bridge}")]
    UplinkEnslaved {
        /// The uplink NIC.
        uplink: String,
        /// Its current master.
        master: String,
        /// The bridge we wanted.
        bridge: String,
    },
    /// The uplink and the bridge are the same interface.
    #[error("uplink {name} cannot be its own bridge")]
    UplinkIsBridge {
        /// The interface.
        name: String,
    },
    /// After configuring, the kernel reports a different value.
    #[error("{name}: {what} is {got}, expected {wanted}")]
    Verify {
        /// The interface.
        name: String,
        /// Which property (`mtu`, `mac`, `master`, `state`).
        what: &'static str,
        /// What we asked for.
        wanted: String,
        /// What the kernel reports.
        got: String,
    },
    /// A vif cannot be renamed (backend `vifname` key) because the name is taken.
    #[error("cannot rename {name} to {to}: {to} already exists")]
    NameTaken {
        /// The vif.
        name: String,
        /// The requested name.
        to: String,
    },
    /// The interface vanished while being configured.
    #[error("interface {name} disappeared while being configured")]
    LinkVanished {
        /// The interface.
        name: String,
    },
    /// An nf_tables request failed; `what` names the vif.
    #[error("nftables: cannot {what}")]
    Nftables {
        /// The operation, e.g. `install filter on vif5.0`.
        what: String,
        /// The kernel's answer (an errno) or the socket error.
        #[source]
        source: std::io::Error,
    },
    /// A guest MAC already has a static FDB entry on another port.
    #[error("mac {mac} is already bound to bridge port {port}; refusing to bind it to {name}")]
    MacInUse {
        /// The MAC.
        mac: String,
        /// The port that has it.
        port: String,
        /// The vif we were configuring.
        name: String,
    },
    /// Hygiene or anti-spoofing is on but the guest's MAC is unknown.
    #[error(
        "{name}: the backend has no guest mac, so its filter cannot be set up (relax with drvdom-l2-hygiene = 0 and no ip)"
    )]
    MissingMac {
        /// The vif.
        name: String,
    },
    /// A sysctl could not be written.
    #[error("cannot write {path}")]
    Sysctl {
        /// The file under /proc/sys.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Routed mode needs an IPv4 address on the gateway device.
    #[error(
        "routed vif {name}: gateway device {gateway} has no IPv4 address (vif-route's dom0_ip)"
    )]
    NoGatewayAddress {
        /// The vif.
        name: String,
        /// The gateway device (`gatewaydev`, default eth0).
        gateway: String,
    },
    /// The hotplug script could not be started.
    #[error("cannot run hotplug script {script}")]
    SpawnScript {
        /// The script path.
        script: PathBuf,
        /// Why `exec` failed.
        #[source]
        source: std::io::Error,
    },
    /// Waiting for the hotplug script failed.
    #[error("cannot wait for hotplug script {script}")]
    WaitScript {
        /// The script path.
        script: PathBuf,
        /// Why `waitpid` failed.
        #[source]
        source: std::io::Error,
    },
    /// The hotplug script ran past its timeout and was killed.
    #[error("hotplug script {script} timed out after {timeout:?} and was killed")]
    ScriptTimeout {
        /// The script path.
        script: PathBuf,
        /// The timeout that expired.
        timeout: Duration,
    },
}

impl Error {
    /// True when retrying the same operation later may succeed (the device
    /// may still appear or the kernel was momentarily busy); false for
    /// configuration errors a retry cannot fix.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::LinkTimeout { .. }
            | Error::EventsClosed { .. }
            | Error::Netlink { .. }
            | Error::Connect { .. }
            | Error::LinkVanished { .. }
            | Error::ScriptTimeout { .. }
            | Error::WaitScript { .. }
            | Error::Nftables { .. }
            | Error::Sysctl { .. } => true,
            Error::InvalidName { .. }
            | Error::BridgeMissing { .. }
            | Error::NotABridge { .. }
            | Error::LinkMissing { .. }
            | Error::UplinkEnslaved { .. }
            | Error::UplinkIsBridge { .. }
            | Error::NameTaken { .. }
            | Error::Verify { .. }
            | Error::SpawnScript { .. }
            | Error::MacInUse { .. }
            | Error::MissingMac { .. }
            | Error::NoGatewayAddress { .. } => false,
        }
    }

    /// The errno the kernel returned, for netlink failures.
    pub fn netlink_errno(&self) -> Option<i32> {
        match self {
            Error::Netlink {
                source: rtnetlink::Error::NetlinkError(msg),
                ..
            } => Some(msg.raw_code().abs()),
            _ => None,
        }
    }
}
