//! The [`LinkOps`] trait: the handful of link, address and route operations
//! the hotplug logic needs, in our own types, so that the logic can be run
//! against the kernel ([`crate::NetlinkOps`]) or a recording fake in tests.

use std::fmt;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use xentypes::MacAddr;

use crate::error::{Error, Result};
use crate::filter::{FilterSpec, FilterStatus};

/// Linux `IFNAMSIZ` (16) including the terminating NUL [include/uapi/linux/if.h].
pub const IFNAMSIZ: usize = 16;

/// Check that `name` is a valid Linux interface name (`dev_valid_name()` in
/// net/core/dev.c): 1..=15 bytes, not `.` or `..`, no `/`, `:` or whitespace.
///
/// Names reach us from xenstore (`vifname`, `bridge`), so they are checked
/// before being handed to the kernel.
pub fn validate_ifname(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() < IFNAMSIZ
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b == 0);
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidName {
            name: name.to_string(),
        })
    }
}

/// RFC 2863 operational state of a link (`IFLA_OPERSTATE`), as `ip link` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OperState {
    /// `UNKNOWN`
    Unknown,
    /// `NOTPRESENT`
    NotPresent,
    /// `DOWN`
    Down,
    /// `LOWERLAYERDOWN`
    LowerLayerDown,
    /// `TESTING`
    Testing,
    /// `DORMANT`
    Dormant,
    /// `UP`
    Up,
    /// A value this crate does not know.
    Other(u8),
}

impl fmt::Display for OperState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OperState::Unknown => f.write_str("UNKNOWN"),
            OperState::NotPresent => f.write_str("NOTPRESENT"),
            OperState::Down => f.write_str("DOWN"),
            OperState::LowerLayerDown => f.write_str("LOWERLAYERDOWN"),
            OperState::Testing => f.write_str("TESTING"),
            OperState::Dormant => f.write_str("DORMANT"),
            OperState::Up => f.write_str("UP"),
            OperState::Other(v) => write!(f, "STATE{v}"),
        }
    }
}

/// A network interface as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// `IFLA_INFO_KIND` (`bridge`, `veth`, …); `None` for physical NICs.
    pub kind: Option<String>,
    /// MTU.
    pub mtu: u32,
    /// Ethernet address, if the link has a 6-byte one.
    pub mac: Option<MacAddr>,
    /// Index of the master (bridge) this link is enslaved to.
    pub master: Option<u32>,
    /// Administratively up (`IFF_UP`).
    pub admin_up: bool,
    /// Operational state.
    pub oper: OperState,
}

impl Link {
    /// True for Linux bridges.
    pub fn is_bridge(&self) -> bool {
        self.kind.as_deref() == Some("bridge")
    }
}

/// Master change requested by a [`LinkChange`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Master {
    /// Enslave to the link with this index.
    Set(u32),
    /// Release from any master (`ip link set dev X nomaster`).
    Detach,
}

/// A set of link attribute changes applied in one `RTM_SETLINK` request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkChange {
    /// New name (the link must be down, or be brought up by this change).
    pub name: Option<String>,
    /// New MTU.
    pub mtu: Option<u32>,
    /// New Ethernet address.
    pub mac: Option<MacAddr>,
    /// New master.
    pub master: Option<Master>,
    /// Bring up (`true`) or down (`false`).
    pub up: Option<bool>,
}

impl LinkChange {
    /// Just bring the link up.
    pub fn up() -> LinkChange {
        LinkChange {
            up: Some(true),
            ..LinkChange::default()
        }
    }

    /// Just bring the link down.
    pub fn down() -> LinkChange {
        LinkChange {
            up: Some(false),
            ..LinkChange::default()
        }
    }

    /// True when the change does nothing.
    pub fn is_empty(&self) -> bool {
        self == &LinkChange::default()
    }
}

impl fmt::Display for LinkChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(n) = &self.name {
            parts.push(format!("name {n}"));
        }
        if let Some(m) = self.mtu {
            parts.push(format!("mtu {m}"));
        }
        if let Some(m) = &self.mac {
            parts.push(format!("address {m}"));
        }
        match self.master {
            Some(Master::Set(i)) => parts.push(format!("master #{i}")),
            Some(Master::Detach) => parts.push("nomaster".to_string()),
            None => {}
        }
        match self.up {
            Some(true) => parts.push("up".to_string()),
            Some(false) => parts.push("down".to_string()),
            None => {}
        }
        f.write_str(&parts.join(" "))
    }
}

/// An interface address (`RTM_NEWADDR`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfAddress {
    /// The local address.
    pub addr: IpAddr,
    /// Prefix length.
    pub prefix_len: u8,
    /// IPv4 broadcast address, if set.
    pub broadcast: Option<Ipv4Addr>,
    /// Address scope (`RT_SCOPE_*`; 0 = global, 253 = link, 254 = host).
    pub scope: u8,
}

impl fmt::Display for IfAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

/// A unicast route of the main table through one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Destination network (the unspecified address for the default route).
    pub dst: IpAddr,
    /// Destination prefix length (0 for the default route).
    pub dst_len: u8,
    /// Next hop, if any.
    pub gateway: Option<IpAddr>,
    /// Preferred source address.
    pub pref_src: Option<IpAddr>,
    /// Metric.
    pub priority: Option<u32>,
    /// Output interface index.
    pub oif: u32,
    /// Routing protocol (`RTPROT_*`; 2 = kernel, 3 = boot, 4 = static).
    pub protocol: u8,
    /// Scope (`RT_SCOPE_*`).
    pub scope: u8,
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.dst_len == 0 && self.dst.is_unspecified() {
            f.write_str("default")?;
        } else {
            write!(f, "{}/{}", self.dst, self.dst_len)?;
        }
        if let Some(gw) = self.gateway {
            write!(f, " via {gw}")?;
        }
        if let Some(p) = self.priority {
            write!(f, " metric {p}")?;
        }
        Ok(())
    }
}

/// One entry of a bridge's forwarding database (`bridge fdb show`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdbEntry {
    /// The MAC.
    pub mac: MacAddr,
    /// Index of the port it points to.
    pub port: u32,
    /// Static (`NUD_NOARP`) or local (`NUD_PERMANENT`): not learned.
    pub static_: bool,
    /// Learning cannot move it to another port (`NTF_STICKY`).
    pub sticky: bool,
}

/// Bridge port settings of a guest's port (`bridge link set dev X ...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortSettings {
    /// `learning`: learn source MACs of frames from this port.
    pub learning: bool,
    /// `locked` (Linux >= 5.18): accept frames only from source MACs that
    /// have an FDB entry pointing at this port.
    pub locked: bool,
}

/// Link, address and route operations in the current network namespace.
///
/// Implemented over rtnetlink by [`crate::NetlinkOps`]. Every method names
/// the interface in its error. Implementations must be cheap to call
/// concurrently (the agent runs one hotplug task per device).
pub trait LinkOps: Sync {
    /// Look a link up by name; `Ok(None)` if it does not exist.
    fn link_by_name(&self, name: &str) -> impl Future<Output = Result<Option<Link>>> + Send;

    /// Look a link up by index; `Ok(None)` if it does not exist.
    fn link_by_index(&self, index: u32) -> impl Future<Output = Result<Option<Link>>> + Send;

    /// Every link of the namespace.
    fn links(&self) -> impl Future<Output = Result<Vec<Link>>> + Send;

    /// Return the link once it exists, waiting at most `timeout` for it to
    /// appear (on link notifications, not by polling).
    fn wait_for_link(
        &self,
        name: &str,
        timeout: Duration,
    ) -> impl Future<Output = Result<Link>> + Send;

    /// Create a bridge (STP off, forward delay 0, as Xen's `network-bridge`
    /// did), optionally with a fixed MAC. Succeeds if it already exists.
    fn create_bridge(
        &self,
        name: &str,
        mac: Option<MacAddr>,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Apply `change` to `link` in one request.
    fn set_link(&self, link: &Link, change: &LinkChange)
    -> impl Future<Output = Result<()>> + Send;

    /// Addresses configured on `link`.
    fn addresses(&self, link: &Link) -> impl Future<Output = Result<Vec<IfAddress>>> + Send;

    /// Add an address to `link`; succeeds if it is already there.
    fn add_address(&self, link: &Link, addr: &IfAddress)
    -> impl Future<Output = Result<()>> + Send;

    /// Remove an address from `link`; succeeds if it is already gone.
    fn del_address(&self, link: &Link, addr: &IfAddress)
    -> impl Future<Output = Result<()>> + Send;

    /// Unicast routes of the main table whose output interface is `link`.
    fn routes(&self, link: &Link) -> impl Future<Output = Result<Vec<Route>>> + Send;

    /// Add a route (its `oif` names the interface), replacing any route
    /// with the same destination and metric (`ip route replace`).
    fn add_route(&self, route: &Route) -> impl Future<Output = Result<()>> + Send;

    /// Delete a route; succeeds if it is already gone.
    fn del_route(&self, route: &Route) -> impl Future<Output = Result<()>> + Send;

    /// Set bridge port flags of `port` (which must be enslaved).
    fn set_port(
        &self,
        port: &Link,
        settings: PortSettings,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Add a static, sticky FDB entry `mac` on `port` (`bridge fdb replace
    /// MAC dev PORT master static sticky`). Refuses ([`Error::MacInUse`]) a
    /// MAC that has a static entry on another port; moves a learned one.
    fn add_static_fdb(&self, port: &Link, mac: MacAddr) -> impl Future<Output = Result<()>> + Send;

    /// The forwarding database of `bridge` (every port).
    fn fdb(&self, bridge: &Link) -> impl Future<Output = Result<Vec<FdbEntry>>> + Send;

    /// Set the IPv4 `forwarding` and `proxy_arp` flags of `link`
    /// (`net.ipv4.conf.<link>.*`).
    fn set_ipv4_conf(
        &self,
        link: &Link,
        forwarding: bool,
        proxy_arp: bool,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Install or replace the packet filter of a vif ([`crate::filter`]).
    /// Returns false when the identical filter was already in force.
    fn install_filter(&self, spec: &FilterSpec) -> impl Future<Output = Result<bool>> + Send;

    /// Remove the filter of a vif; returns whether there was one.
    fn remove_filter(&self, ifname: &str) -> impl Future<Output = Result<bool>> + Send;

    /// The filter in force on a vif and its drop counters.
    fn filter_status(
        &self,
        ifname: &str,
    ) -> impl Future<Output = Result<Option<FilterStatus>>> + Send;

    /// Every vif filter with its counters (one pass over the kernel's
    /// tables and counters, whatever the number of vifs).
    fn filter_statuses(&self) -> impl Future<Output = Result<Vec<FilterStatus>>> + Send;

    /// The interface names that have a filter.
    fn filtered(&self) -> impl Future<Output = Result<Vec<String>>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_vif_and_bridge_names() {
        for n in ["vif5.0", "xenbr0", "vif32767.255", "eth0", "a"] {
            assert!(validate_ifname(n).is_ok(), "{n}");
        }
    }

    #[test]
    fn rejects_bad_interface_names() {
        for n in [
            "",
            ".",
            "..",
            "a/b",
            "a b",
            "a:b",
            "sixteen-chars-xx",
            "x\n",
        ] {
            let e = validate_ifname(n).unwrap_err();
            assert!(e.to_string().contains("invalid interface name"), "{n}: {e}");
        }
    }

    #[test]
    fn formats_mac_and_change() {
        assert_eq!(MacAddr::BACKEND.to_string(), "fe:ff:ff:ff:ff:ff");
        let c = LinkChange {
            name: None,
            mtu: Some(1500),
            mac: None,
            master: Some(Master::Detach),
            up: Some(false),
        };
        assert_eq!(c.to_string(), "mtu 1500 nomaster down");
        assert!(LinkChange::default().is_empty());
    }
}
