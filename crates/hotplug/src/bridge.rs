//! Bridge bring-up (what Xen's `network-bridge` script did) and bridge
//! listing (the `brctl show` view).
//!
//! Bring-up is idempotent: every step first looks at the kernel's state and
//! only changes what differs, so running it again changes nothing.

use std::net::IpAddr;

use tracing::{info, instrument};

use crate::error::{Error, Result};
use crate::ops::{IfAddress, Link, LinkChange, LinkOps, Master, OperState, Route, validate_ifname};

/// Default bridge name, as libxl's `vif` default `bridge=xenbr0`
/// [tools/libs/light/libxl_nic.c `libxl__device_nic_setdefault`].
pub const DEFAULT_BRIDGE: &str = "xenbr0";

/// `RTPROT_KERNEL` [include/uapi/linux/rtnetlink.h]: routes the kernel adds
/// for an address; they follow the address and are not copied.
const RTPROT_KERNEL: u8 = 2;

/// What [`bridge_up`] should build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeConfig {
    /// Bridge name (default [`DEFAULT_BRIDGE`]).
    pub bridge: String,
    /// Uplink NIC to enslave and take addresses and routes from.
    pub uplink: Option<String>,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        BridgeConfig {
            bridge: DEFAULT_BRIDGE.to_string(),
            uplink: None,
        }
    }
}

/// What [`bridge_up`] changed. Empty on a re-run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BridgeReport {
    /// The bridge was created.
    pub created_bridge: bool,
    /// The uplink was enslaved to the bridge.
    pub enslaved_uplink: bool,
    /// Interfaces brought administratively up.
    pub brought_up: Vec<String>,
    /// Addresses moved from the uplink to the bridge.
    pub moved_addresses: Vec<IfAddress>,
    /// Routes moved from the uplink to the bridge (with the uplink's `oif`).
    pub moved_routes: Vec<Route>,
}

impl BridgeReport {
    /// True when anything was changed.
    pub fn changed(&self) -> bool {
        self != &BridgeReport::default()
    }
}

/// A port of a bridge, for `drvdom bridge show`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInfo {
    /// Interface name (e.g. `vif5.0`).
    pub name: String,
    /// Interface index.
    pub index: u32,
    /// MTU.
    pub mtu: u32,
    /// Administratively up.
    pub admin_up: bool,
    /// Operational state.
    pub oper: OperState,
}

/// A bridge and its ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeInfo {
    /// Bridge name.
    pub name: String,
    /// Interface index.
    pub index: u32,
    /// MTU.
    pub mtu: u32,
    /// Administratively up.
    pub admin_up: bool,
    /// Operational state.
    pub oper: OperState,
    /// Ports sorted by name.
    pub ports: Vec<PortInfo>,
}

fn port_of(l: &Link) -> PortInfo {
    PortInfo {
        name: l.name.clone(),
        index: l.index,
        mtu: l.mtu,
        admin_up: l.admin_up,
        oper: l.oper,
    }
}

/// Every bridge of the namespace with its ports (one link dump).
pub async fn bridges<O: LinkOps>(ops: &O) -> Result<Vec<BridgeInfo>> {
    let links = ops.links().await?;
    let mut out: Vec<BridgeInfo> = links
        .iter()
        .filter(|l| l.is_bridge())
        .map(|b| {
            let mut ports: Vec<PortInfo> = links
                .iter()
                .filter(|p| p.master == Some(b.index))
                .map(port_of)
                .collect();
            ports.sort_by(|a, b| a.name.cmp(&b.name));
            BridgeInfo {
                name: b.name.clone(),
                index: b.index,
                mtu: b.mtu,
                admin_up: b.admin_up,
                oper: b.oper,
                ports,
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The ports of one bridge; [`Error::BridgeMissing`] if it does not exist.
pub async fn bridge_ports<O: LinkOps>(ops: &O, bridge: &str) -> Result<Vec<PortInfo>> {
    validate_ifname(bridge)?;
    bridges(ops)
        .await?
        .into_iter()
        .find(|b| b.name == bridge)
        .map(|b| b.ports)
        .ok_or_else(|| Error::BridgeMissing {
            bridge: bridge.to_string(),
        })
}

/// Look up `name` and require it to be a bridge.
pub(crate) async fn require_bridge<O: LinkOps>(ops: &O, name: &str) -> Result<Link> {
    match ops.link_by_name(name).await? {
        None => Err(Error::BridgeMissing {
            bridge: name.to_string(),
        }),
        Some(l) if !l.is_bridge() => Err(Error::NotABridge {
            name: name.to_string(),
            kind: l.kind.unwrap_or_else(|| "none".to_string()),
        }),
        Some(l) => Ok(l),
    }
}

/// Addresses that move from the uplink to the bridge: all but IPv6
/// link-local ones (fe80::/10), which the kernel makes per interface.
pub(crate) fn movable_address(a: &IfAddress) -> bool {
    match a.addr {
        IpAddr::V4(_) => true,
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) != 0xfe80,
    }
}

/// Routes that move: everything in the main table through the uplink except
/// the kernel's own prefix routes, which reappear when the address moves.
pub(crate) fn movable_route(r: &Route) -> bool {
    if r.protocol == RTPROT_KERNEL {
        return false;
    }
    match r.dst {
        IpAddr::V4(_) => true,
        // fe80::/64 and multicast are per interface.
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) != 0xfe80 && !v6.is_multicast(),
    }
}

/// Bring up the bridge as Xen's `network-bridge start` did: create it if
/// missing (with the uplink's MAC, STP off, forward delay 0), enslave the
/// uplink, bring both up, and move the uplink's addresses and routes
/// (including the default route) to the bridge. Idempotent.
#[instrument(skip_all, fields(bridge = %cfg.bridge, uplink = cfg.uplink.as_deref().unwrap_or("")))]
pub async fn bridge_up<O: LinkOps>(ops: &O, cfg: &BridgeConfig) -> Result<BridgeReport> {
    validate_ifname(&cfg.bridge)?;
    let mut report = BridgeReport::default();
    let uplink = match &cfg.uplink {
        None => None,
        Some(u) => {
            validate_ifname(u)?;
            if u == &cfg.bridge {
                return Err(Error::UplinkIsBridge { name: u.clone() });
            }
            let l = ops
                .link_by_name(u)
                .await?
                .ok_or_else(|| Error::LinkMissing { name: u.clone() })?;
            Some(l)
        }
    };

    let bridge = match ops.link_by_name(&cfg.bridge).await? {
        Some(_) => require_bridge(ops, &cfg.bridge).await?,
        None => {
            ops.create_bridge(&cfg.bridge, uplink.as_ref().and_then(|u| u.mac))
                .await?;
            report.created_bridge = true;
            info!("bridge created");
            require_bridge(ops, &cfg.bridge).await?
        }
    };

    if let Some(up) = &uplink {
        match up.master {
            Some(m) if m == bridge.index => {}
            Some(m) => {
                let master = match ops.link_by_index(m).await? {
                    Some(l) => l.name,
                    None => format!("#{m}"),
                };
                return Err(Error::UplinkEnslaved {
                    uplink: up.name.clone(),
                    master,
                    bridge: bridge.name.clone(),
                });
            }
            None => {
                let change = LinkChange {
                    master: Some(Master::Set(bridge.index)),
                    up: Some(true),
                    ..LinkChange::default()
                };
                ops.set_link(up, &change).await?;
                report.enslaved_uplink = true;
                if !up.admin_up {
                    report.brought_up.push(up.name.clone());
                }
                info!("uplink enslaved");
            }
        }
        if up.master.is_some() && !up.admin_up {
            let change = LinkChange {
                up: Some(true),
                ..LinkChange::default()
            };
            ops.set_link(up, &change).await?;
            report.brought_up.push(up.name.clone());
        }
    }

    if !bridge.admin_up {
        let change = LinkChange {
            up: Some(true),
            ..LinkChange::default()
        };
        ops.set_link(&bridge, &change).await?;
        report.brought_up.push(bridge.name.clone());
    }

    if let Some(up) = &uplink {
        move_addresses_and_routes(ops, up, &bridge, &mut report).await?;
    }
    Ok(report)
}

/// Move the uplink's addresses and routes to the bridge. Order matters:
/// addresses appear on the bridge first (so gateways stay reachable), the
/// routes move, and only then do the addresses leave the uplink (removing
/// the last address of a subnet flushes the routes through it). A crash at
/// any point leaves connectivity intact and a re-run finishes the move.
async fn move_addresses_and_routes<O: LinkOps>(
    ops: &O,
    uplink: &Link,
    bridge: &Link,
    report: &mut BridgeReport,
) -> Result<()> {
    let addrs: Vec<IfAddress> = ops
        .addresses(uplink)
        .await?
        .into_iter()
        .filter(movable_address)
        .collect();
    let mut routes: Vec<Route> = ops
        .routes(uplink)
        .await?
        .into_iter()
        .filter(movable_route)
        .collect();
    // Directly connected routes first, so gateway routes find their next hop.
    routes.sort_by_key(|r| r.gateway.is_some());

    for a in &addrs {
        ops.add_address(bridge, a).await?;
    }
    for r in &routes {
        let moved = Route {
            oif: bridge.index,
            ..r.clone()
        };
        // Replace first (the route is never missing), then drop any copy
        // left on the uplink (IPv6 keeps routes per device).
        ops.add_route(&moved).await?;
        ops.del_route(r).await?;
    }
    for a in &addrs {
        ops.del_address(uplink, a).await?;
    }
    if !addrs.is_empty() || !routes.is_empty() {
        info!(
            addresses = addrs.len(),
            routes = routes.len(),
            "moved uplink addresses and routes to the bridge"
        );
    }
    report.moved_addresses = addrs;
    report.moved_routes = routes;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn addr(a: IpAddr) -> IfAddress {
        IfAddress {
            addr: a,
            prefix_len: 64,
            broadcast: None,
            scope: 0,
        }
    }

    #[test]
    fn link_local_ipv6_addresses_stay() {
        assert!(movable_address(&addr(IpAddr::V4(Ipv4Addr::new(
            192, 0, 2, 5
        )))));
        assert!(!movable_address(&addr("fe80::1".parse().unwrap())));
        assert!(movable_address(&addr("2001:db8::5".parse().unwrap())));
    }

    #[test]
    fn kernel_and_link_local_routes_stay() {
        let base = Route {
            dst: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            dst_len: 0,
            gateway: Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))),
            pref_src: None,
            priority: None,
            oif: 2,
            protocol: 3,
            scope: 0,
        };
        assert!(movable_route(&base));
        assert!(!movable_route(&Route {
            protocol: RTPROT_KERNEL,
            ..base.clone()
        }));
        assert!(!movable_route(&Route {
            dst: IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0)),
            dst_len: 64,
            ..base
        }));
    }
}
