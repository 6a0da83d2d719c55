//! The desired host: what a validated host file says, with every default
//! resolved (devids, derived MACs, default bridges, `trusted`).

use std::path::PathBuf;

use xentypes::{Bdf, DevId, IpCidr, MacAddr};

/// A whole host file (SPEC.md §1), validated.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Topology {
    /// Where it was read from (configs are relative to its directory).
    pub source: Option<PathBuf>,
    /// Driver domains, in file order.
    pub driver_domains: Vec<DriverDomain>,
    /// Guests, in file order.
    pub guests: Vec<Guest>,
}

/// `[[driver_domain]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverDomain {
    /// Unique domain name.
    pub name: String,
    /// Real host: the xl.cfg it is created from (absolute).
    pub config: Option<PathBuf>,
    /// NICs passed through.
    pub nics: Vec<Bdf>,
    /// pciback permissive for these NICs.
    pub permissive: bool,
    /// Its bridges, in file order.
    pub bridges: Vec<Bridge>,
}

/// `[[driver_domain.bridge]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bridge {
    /// Bridge name.
    pub name: String,
    /// The uplink, if any (none: a guest-only bridge).
    pub uplink: Option<Uplink>,
    /// MTU, if given.
    pub mtu: Option<u32>,
}

/// A bridge's uplink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uplink {
    /// One of the domain's NICs (the agent finds its interface).
    Nic(Bdf),
    /// An interface name inside the driver domain.
    Iface(String),
}

/// `[[guest]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guest {
    /// Unique domain name.
    pub name: String,
    /// Real host: its xl.cfg (absolute).
    pub config: Option<PathBuf>,
    /// Its vifs; devids 0, 1, 2… in file order.
    pub vifs: Vec<Vif>,
}

/// `[[guest.vif]]`, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vif {
    /// Device id (index in the guest's list).
    pub devid: DevId,
    /// A driver domain's name, or `dom0`.
    pub backend: String,
    /// The bridge (bridge mode), `None` in route mode.
    pub bridge: Option<String>,
    /// Explicit or derived MAC.
    pub mac: MacAddr,
    /// The guest's addresses on this vif (anti-spoof allow-list).
    pub ip: Vec<IpCidr>,
    /// MTU, if given.
    pub mtu: Option<u32>,
    /// Bridge or route.
    pub mode: VifMode,
    /// Frontend `trusted`: false by default when the backend is not dom0.
    pub trusted: bool,
    /// Layer-2 hygiene of the vif's filter (own MAC only, no STP/LLDP, no
    /// router advertisements or DHCP server replies from the guest): on by
    /// default; `l2_hygiene = false` relaxes it for a guest that routes or
    /// bridges (backend key `drvdom-l2-hygiene = 0`; the `ip` allow-list,
    /// if any, still applies).
    pub l2_hygiene: bool,
}

/// How a vif reaches the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VifMode {
    /// On a bridge (vif-bridge).
    #[default]
    Bridge,
    /// Routed: host routes and proxy ARP (vif-route).
    Route,
}
