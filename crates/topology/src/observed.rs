//! The host as it is: what `plan` diffs against and `show` prints.

use serde::Serialize;
use xenbus::XenbusState;
use xentypes::{Bdf, DevId, DomId, IpCidr, MacAddr};

/// A snapshot of the host.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Observed {
    /// Running domains (dom0 included).
    pub domains: Vec<ObservedDomain>,
    /// PCI NICs the host file names (and any assigned to pciback).
    pub nics: Vec<ObservedNic>,
    /// Every vif in xenstore.
    pub vifs: Vec<ObservedVif>,
}

/// A running domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObservedDomain {
    /// Name (`/local/domain/<id>/name`).
    pub name: String,
    /// Current domid.
    pub domid: DomId,
    /// Marked as a driver domain.
    pub driver_domain: bool,
    /// `memory/target` in KiB.
    pub memory_kib: Option<u64>,
    /// Its agent, as it publishes itself in xenstore (driver domains).
    pub agent: Option<AgentStatus>,
    /// Its bridges, as its agent publishes them.
    pub bridges: Vec<ObservedBridge>,
    /// The bridges dom0 asked its agent for (`drvdom/config/bridges`).
    pub configured_bridges: Vec<ConfiguredBridge>,
    /// Domains allowed to read its `name` node besides itself and dom0.
    pub name_readers: Vec<DomId>,
}

/// A bridge as dom0 configured it for a driver domain's agent
/// (AGENT_XS_SCHEMA: `/local/domain/<dd>/drvdom/config/bridges/<name>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfiguredBridge {
    /// Name.
    pub name: String,
    /// `uplink`: a BDF or an interface name.
    pub uplink: Option<String>,
    /// `mtu`.
    pub mtu: Option<u32>,
}

/// A driver domain's agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentStatus {
    /// `state`: "starting", "ready" or "stopping" (anything else is kept
    /// as read, for the report).
    pub state: String,
    /// Ready to serve backends (`state` = "ready").
    pub ready: bool,
    /// Its version string.
    pub version: Option<String>,
    /// Its process id in the driver domain.
    pub pid: Option<u32>,
    /// Why a desired bridge could not be built, if it says.
    pub error: Option<String>,
}

/// A bridge in a driver domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObservedPort {
    /// Interface name (`vif5.0`, `eth0`).
    pub ifname: String,
    /// Frontend domain and devid, for vif ports.
    pub vif: Option<(DomId, DevId)>,
    /// Link up.
    pub up: bool,
    /// STP port state is forwarding.
    pub forwarding: bool,
    /// The vif's packet filter as its agent reports it (`l2+ip`, `l2`,
    /// `ip`, `off`; `None`: not reported, e.g. the uplink).
    pub filter: Option<String>,
    /// The filter's drop counters, as last published.
    pub drops: Option<xenbus::agent::PortDrops>,
}

/// A PCI NIC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObservedNic {
    /// Address.
    pub bdf: Bdf,
    /// Bound driver (`pciback` when hidden from dom0).
    pub driver: Option<String>,
    /// The domain it is passed through to (pci backend nodes), if any.
    pub assigned_to: Option<DomId>,
    /// Seen inside that domain (when the host can tell).
    pub visible_in_domain: Option<bool>,
    /// What the host knows about it in words (e.g. its interface name,
    /// its recorded original driver), for reports.
    pub detail: Option<String>,
}

/// A vif.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
    #[serde(serialize_with = "state_name")]
    pub state_frontend: Option<XenbusState>,
    /// Backend state.
    #[serde(serialize_with = "state_name")]
    pub state_backend: Option<XenbusState>,
    /// Backend `hotplug-status`.
    pub hotplug_status: Option<String>,
    /// Frontend `trusted`.
    pub trusted: Option<bool>,
    /// Backend `mtu`.
    pub mtu: Option<u32>,
    /// Backend `online` is "1".
    pub online: bool,
    /// Backend `hotplug-error`, if any.
    pub hotplug_error: Option<String>,
    /// Backend `drvdom-l2-hygiene` (`None`: absent, which means on).
    pub l2_hygiene: Option<bool>,
    /// Backend `script` ends in `vif-route` (routed mode).
    pub routed: bool,
}

fn state_name<S: serde::Serializer>(
    st: &Option<XenbusState>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match st {
        Some(x) => s.serialize_str(x.name()),
        None => s.serialize_none(),
    }
}

impl Observed {
    /// A running domain by name.
    pub fn domain(&self, name: &str) -> Option<&ObservedDomain> {
        self.domains.iter().find(|d| d.name == name)
    }

    /// A running domain by domid.
    pub fn domain_by_id(&self, domid: DomId) -> Option<&ObservedDomain> {
        self.domains.iter().find(|d| d.domid == domid)
    }

    /// A NIC by address.
    pub fn nic(&self, bdf: Bdf) -> Option<&ObservedNic> {
        self.nics.iter().find(|n| n.bdf == bdf)
    }

    /// A vif by frontend and devid.
    pub fn vif(&self, fe: DomId, devid: DevId) -> Option<&ObservedVif> {
        self.vifs
            .iter()
            .find(|v| v.frontend == fe && v.devid == devid)
    }

    /// The vifs of frontend `fe`.
    pub fn vifs_of(&self, fe: DomId) -> impl Iterator<Item = &ObservedVif> {
        self.vifs.iter().filter(move |v| v.frontend == fe)
    }
}
