//! The host as it is: what `plan` diffs against and `show` prints.

use xenbus::XenbusState;
use xentypes::{Bdf, DevId, DomId, IpCidr, MacAddr};

/// A snapshot of the host.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Observed {
    /// Running domains (dom0 included).
    pub domains: Vec<ObservedDomain>,
    /// PCI NICs the host file names (and any assigned to pciback).
    pub nics: Vec<ObservedNic>,
    /// Every vif in xenstore.
    pub vifs: Vec<ObservedVif>,
}

/// A running domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedDomain {
    /// Name (`/local/domain/<id>/name`).
    pub name: String,
    /// Current domid.
    pub domid: DomId,
    /// Marked as a driver domain.
    pub driver_domain: bool,
    /// Its agent, as it publishes itself in xenstore (driver domains).
    pub agent: Option<AgentStatus>,
    /// Its bridges, as its agent publishes them.
    pub bridges: Vec<ObservedBridge>,
}

/// A driver domain's agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentStatus {
    /// Ready to serve backends.
    pub ready: bool,
    /// Its version string.
    pub version: Option<String>,
}

/// A bridge in a driver domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedBridge {
    /// Name.
    pub name: String,
    /// Uplink interface, if any.
    pub uplink: Option<String>,
    /// MTU.
    pub mtu: Option<u32>,
    /// Ports (the uplink and vifs).
    pub ports: Vec<ObservedPort>,
}

/// A port of a bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedPort {
    /// Interface name (`vif5.0`, `eth0`).
    pub ifname: String,
    /// Frontend domain and devid, for vif ports.
    pub vif: Option<(DomId, DevId)>,
    /// Link up.
    pub up: bool,
    /// STP port state is forwarding.
    pub forwarding: bool,
}

/// A PCI NIC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedNic {
    /// Address.
    pub bdf: Bdf,
    /// Bound driver (`pciback` when hidden from dom0).
    pub driver: Option<String>,
    /// The domain it is passed through to (pci backend nodes), if any.
    pub assigned_to: Option<DomId>,
    /// Seen inside that domain (when the host can tell).
    pub visible_in_domain: Option<bool>,
}

/// A vif.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedVif {
    /// Frontend domain.
    pub frontend: DomId,
    /// Device id.
    pub devid: DevId,
    /// Backend domain.
    pub backend: DomId,
    /// MAC from the backend.
    pub mac: Option<MacAddr>,
    /// Bridge from the backend.
    pub bridge: Option<String>,
    /// `ip` from the backend.
    pub ip: Vec<IpCidr>,
    /// Frontend state.
    pub state_frontend: Option<XenbusState>,
    /// Backend state.
    pub state_backend: Option<XenbusState>,
    /// Backend `hotplug-status`.
    pub hotplug_status: Option<String>,
    /// Frontend `trusted`.
    pub trusted: Option<bool>,
}
