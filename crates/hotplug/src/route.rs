//! Routed vifs: what Xen's `vif-route online|offline` does
//! [tools/hotplug/Linux/vif-route, vif-common.sh `dom0_ip`], natively.
//!
//! No bridge: the vif borrows the driver domain's IPv4 address (the first
//! one of the gateway device, xl's `gatewaydev`, default `eth0`) as a /32,
//! answers ARP for the rest of the network (proxy ARP), forwards, and gets a
//! host route per allowed guest address (`ip route add ADDR dev VIF src
//! MAIN_IP metric 2`). The gateway device gets forwarding and proxy ARP
//! too, so the outside network reaches the guest through it (what Xen's
//! `network-route` set up once per host).

use std::net::IpAddr;

use tracing::{debug, info};

use crate::error::{Error, Result};
use crate::filter::FilterSpec;
use crate::ops::{IfAddress, Link, LinkChange, LinkOps, Route};
use crate::vif::VifOnline;

/// vif-route's default `netdev`.
pub const DEFAULT_GATEWAY: &str = "eth0";
/// vif-route's metric for PV vifs.
const METRIC: u32 = 2;
/// `RTPROT_STATIC` [include/uapi/linux/rtnetlink.h].
const RTPROT_STATIC: u8 = 4;
/// `RT_SCOPE_UNIVERSE` / `RT_SCOPE_LINK`.
const SCOPE_UNIVERSE: u8 = 0;
const SCOPE_LINK: u8 = 253;

/// What [`online`] did.
pub(crate) struct Routed {
    pub mtu: u32,
    pub changed: bool,
}

/// The routes a routed vif gets: one per allowed address (or range).
pub(crate) fn routes_for(req: &VifOnline, vif: &Link, main_ip: IpAddr) -> Vec<Route> {
    let spec = FilterSpec {
        ifname: vif.name.clone(),
        mac: req.mac.unwrap_or(xentypes::MacAddr::ZERO),
        l2: false,
        ip: req.ip.clone(),
    };
    spec.allowed()
        .into_iter()
        .map(|a| Route {
            dst: a.addr,
            dst_len: a.prefix,
            gateway: None,
            pref_src: (a.addr.is_ipv4() && main_ip.is_ipv4()).then_some(main_ip),
            priority: Some(METRIC),
            oif: vif.index,
            protocol: RTPROT_STATIC,
            scope: if a.addr.is_ipv4() {
                SCOPE_LINK
            } else {
                SCOPE_UNIVERSE
            },
        })
        .collect()
}

/// Configure a routed vif (already renamed and filtered, still down unless
/// this is a replay) and bring it up.
pub(crate) async fn online<O: LinkOps>(
    ops: &O,
    req: &VifOnline,
    vif: &Link,
    gateway: Option<&str>,
) -> Result<Routed> {
    let gw_name = gateway.unwrap_or(DEFAULT_GATEWAY);
    let gw = ops
        .link_by_name(gw_name)
        .await?
        .ok_or_else(|| Error::LinkMissing {
            name: gw_name.to_string(),
        })?;
    let main_ip = ops
        .addresses(&gw)
        .await?
        .into_iter()
        .find(|a| a.addr.is_ipv4() && a.scope == SCOPE_UNIVERSE)
        .map(|a| a.addr)
        .ok_or_else(|| Error::NoGatewayAddress {
            name: vif.name.clone(),
            gateway: gw_name.to_string(),
        })?;
    let mut changed = false;
    let mtu = req.mtu.unwrap_or(vif.mtu);
    if vif.mtu != mtu {
        let change = LinkChange {
            mtu: Some(mtu),
            ..LinkChange::default()
        };
        ops.set_link(vif, &change).await?;
        changed = true;
    }
    let addr = IfAddress {
        addr: main_ip,
        prefix_len: 32,
        broadcast: None,
        scope: SCOPE_UNIVERSE,
    };
    if !ops.addresses(vif).await?.contains(&addr) {
        ops.add_address(vif, &addr).await?;
        changed = true;
    }
    ops.set_ipv4_conf(vif, true, true).await?;
    ops.set_ipv4_conf(&gw, true, true).await?;
    if !vif.admin_up {
        // Up before the routes: the kernel refuses routes via a down link.
        ops.set_link(vif, &LinkChange::up()).await?;
        changed = true;
    }
    let have = ops.routes(vif).await?;
    for r in routes_for(req, vif, main_ip) {
        if !have
            .iter()
            .any(|h| h.dst == r.dst && h.dst_len == r.dst_len && h.priority == r.priority)
        {
            debug!(route = %r, "adding host route");
            ops.add_route(&r).await?;
            changed = true;
        }
    }
    info!(vif = %vif.name, %main_ip, gateway = gw_name, "routed vif up");
    Ok(Routed { mtu, changed })
}

/// Undo [`online`] on a vif that has no master: delete the routes through
/// it and its IPv4 addresses. Returns whether anything was removed.
pub(crate) async fn offline<O: LinkOps>(ops: &O, vif: &Link) -> Result<bool> {
    let mut changed = false;
    for r in ops.routes(vif).await? {
        if r.protocol == RTPROT_STATIC {
            ops.del_route(&r).await?;
            changed = true;
        }
    }
    for a in ops.addresses(vif).await? {
        if a.addr.is_ipv4() {
            ops.del_address(vif, &a).await?;
            changed = true;
        }
    }
    Ok(changed)
}
