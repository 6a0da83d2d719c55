//! [`LinkOps`] over rtnetlink, in the network namespace of the thread that
//! calls [`NetlinkOps::connect`] (a netlink socket is bound to the namespace
//! it was opened in).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use nix::errno::Errno;
use rtnetlink::packet_core::NetlinkPayload;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkInfo, LinkMessage, State};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::{
    AddressMessageBuilder, Handle, LinkBridge, LinkUnspec, MulticastGroup, RouteMessageBuilder,
};
use tokio::task::JoinHandle;
use tracing::{debug, trace};

use crate::error::{Error, Result};
use xentypes::MacAddr;

use crate::filter::{self, FilterSpec, FilterStatus};
use crate::ops::{
    FdbEntry, IfAddress, Link, LinkChange, LinkOps, Master, OperState, PortSettings, Route,
};
use rtnetlink::LinkBridgePort;
use rtnetlink::packet_route::neighbour::{
    NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};

/// Where `net.ipv4.conf.<dev>.*` live (for the calling thread's namespace).
const IPV4_CONF: &str = "/proc/sys/net/ipv4/conf";

/// `RT_TABLE_MAIN` [include/uapi/linux/rtnetlink.h].
const RT_TABLE_MAIN: u32 = 254;

/// [`LinkOps`] backed by an rtnetlink socket.
///
/// Cloning is cheap and shares the socket. The connection task is aborted
/// when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct NetlinkOps {
    handle: Handle,
    /// One dump at a time: the kernel refuses a second dump on a socket
    /// whose first is still running (EBUSY, `netlink_dump_start`), and
    /// concurrent vif hotplugs share this socket.
    dumps: std::sync::Arc<tokio::sync::Mutex<()>>,
    _conn: std::sync::Arc<AbortOnDrop>,
    nft: std::sync::Arc<filter::socket::Nft>,
}

/// Aborts a spawned task when dropped.
#[derive(Debug)]
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Wrap an rtnetlink error with what we were doing.
fn nl(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> Error {
    let what = what.into();
    move |source| Error::Netlink { what, source }
}

/// The errno (positive) of a netlink error reply.
fn errno_of(e: &rtnetlink::Error) -> Option<Errno> {
    match e {
        rtnetlink::Error::NetlinkError(msg) => Some(Errno::from_raw(msg.raw_code().abs())),
        _ => None,
    }
}

impl NetlinkOps {
    /// Open an rtnetlink socket in the calling thread's network namespace
    /// and spawn its connection task on the current tokio runtime.
    pub fn connect() -> Result<Self> {
        let (conn, handle, _) =
            rtnetlink::new_connection().map_err(|source| Error::Connect { source })?;
        let task = tokio::spawn(conn);
        Ok(NetlinkOps {
            handle,
            dumps: std::sync::Arc::new(tokio::sync::Mutex::new(())),
            _conn: std::sync::Arc::new(AbortOnDrop(task)),
            nft: std::sync::Arc::new(filter::socket::Nft::open()?),
        })
    }

    /// The underlying rtnetlink handle, for callers needing other requests.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    async fn get_one(&self, req: rtnetlink::LinkGetRequest, what: String) -> Result<Option<Link>> {
        let mut stream = req.execute();
        match stream.try_next().await {
            Ok(Some(msg)) => Ok(link_from_msg(&msg)),
            Ok(None) => Ok(None),
            Err(e) if errno_of(&e) == Some(Errno::ENODEV) => Ok(None),
            Err(e) => Err(nl(what)(e)),
        }
    }
}

/// Decode a link message; `None` if it carries no name.
pub(crate) fn link_from_msg(msg: &LinkMessage) -> Option<Link> {
    let mut name = None;
    let mut link = Link {
        index: msg.header.index,
        name: String::new(),
        kind: None,
        mtu: 0,
        mac: None,
        master: None,
        admin_up: msg.header.flags.contains(LinkFlags::Up),
        oper: OperState::Unknown,
    };
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => name = Some(n.clone()),
            LinkAttribute::Mtu(m) => link.mtu = *m,
            LinkAttribute::Address(a) => {
                link.mac = <[u8; 6]>::try_from(a.as_slice()).ok().map(MacAddr)
            }
            LinkAttribute::Controller(c) if *c != 0 => link.master = Some(*c),
            LinkAttribute::OperState(s) => link.oper = oper_from(*s),
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    if let LinkInfo::Kind(k) = i {
                        link.kind = Some(k.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    link.name = name?;
    Some(link)
}

fn oper_from(s: State) -> OperState {
    match s {
        State::Unknown => OperState::Unknown,
        State::NotPresent => OperState::NotPresent,
        State::Down => OperState::Down,
        State::LowerLayerDown => OperState::LowerLayerDown,
        State::Testing => OperState::Testing,
        State::Dormant => OperState::Dormant,
        State::Up => OperState::Up,
        State::Other(v) => OperState::Other(v),
        // State is #[non_exhaustive] upstream; report unknown future values.
        _ => OperState::Other(u8::MAX),
    }
}

fn addr_from_msg(msg: &AddressMessage) -> Option<IfAddress> {
    let mut local = None;
    let mut address = None;
    let mut broadcast = None;
    for attr in &msg.attributes {
        match attr {
            AddressAttribute::Local(a) => local = Some(*a),
            AddressAttribute::Address(a) => address = Some(*a),
            AddressAttribute::Broadcast(b) => broadcast = Some(*b),
            _ => {}
        }
    }
    Some(IfAddress {
        addr: local.or(address)?,
        prefix_len: msg.header.prefix_len,
        broadcast,
        scope: u8::from(msg.header.scope),
    })
}

fn ip_of(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

/// Decode a main-table unicast route with a single next hop; `None` otherwise.
fn route_from_msg(msg: &RouteMessage) -> Option<Route> {
    let mut table = u32::from(msg.header.table);
    let mut dst = None;
    let mut gateway = None;
    let mut pref_src = None;
    let mut priority = None;
    let mut oif = None;
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(a) => dst = ip_of(a),
            RouteAttribute::Gateway(a) => gateway = ip_of(a),
            RouteAttribute::PrefSource(a) => pref_src = ip_of(a),
            RouteAttribute::Priority(p) => priority = Some(*p),
            RouteAttribute::Oif(i) => oif = Some(*i),
            // Multipath routes are not moved (network-bridge did not either).
            RouteAttribute::MultiPath(_) => return None,
            _ => {}
        }
    }
    if table != RT_TABLE_MAIN || msg.header.kind != RouteType::Unicast {
        return None;
    }
    let dst = match (dst, msg.header.address_family) {
        (Some(d), _) => d,
        (None, AddressFamily::Inet) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        (None, AddressFamily::Inet6) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        (None, _) => return None,
    };
    Some(Route {
        dst,
        dst_len: msg.header.destination_prefix_length,
        gateway,
        pref_src,
        priority,
        oif: oif?,
        protocol: u8::from(msg.header.protocol),
        scope: u8::from(msg.header.scope),
    })
}

fn route_to_msg(r: &Route) -> RouteMessage {
    let mut msg = RouteMessage::default();
    msg.header.address_family = match r.dst {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    msg.header.destination_prefix_length = r.dst_len;
    msg.header.table = RouteHeader::RT_TABLE_MAIN;
    msg.header.protocol = RouteProtocol::from(r.protocol);
    msg.header.scope = RouteScope::from(r.scope);
    msg.header.kind = RouteType::Unicast;
    if r.dst_len != 0 || !r.dst.is_unspecified() {
        msg.attributes
            .push(RouteAttribute::Destination(RouteAddress::from(r.dst)));
    }
    if let Some(gw) = r.gateway {
        msg.attributes
            .push(RouteAttribute::Gateway(RouteAddress::from(gw)));
    }
    if let Some(src) = r.pref_src {
        msg.attributes
            .push(RouteAttribute::PrefSource(RouteAddress::from(src)));
    }
    if let Some(p) = r.priority {
        msg.attributes.push(RouteAttribute::Priority(p));
    }
    msg.attributes.push(RouteAttribute::Oif(r.oif));
    msg
}

fn addr_to_msg(index: u32, a: &IfAddress) -> AddressMessage {
    let mut msg = match a.addr {
        IpAddr::V4(v4) => AddressMessageBuilder::<Ipv4Addr>::new()
            .index(index)
            .address(v4, a.prefix_len)
            .build(),
        IpAddr::V6(v6) => AddressMessageBuilder::<Ipv6Addr>::new()
            .index(index)
            .address(v6, a.prefix_len)
            .build(),
    };
    if let Some(b) = a.broadcast {
        msg.attributes
            .retain(|x| !matches!(x, AddressAttribute::Broadcast(_)));
        msg.attributes.push(AddressAttribute::Broadcast(b));
    }
    msg.header.scope = a.scope.into();
    msg
}

impl LinkOps for NetlinkOps {
    async fn link_by_name(&self, name: &str) -> Result<Option<Link>> {
        let req = self.handle.link().get().match_name(name);
        self.get_one(req, format!("look up link {name}")).await
    }

    async fn link_by_index(&self, index: u32) -> Result<Option<Link>> {
        let req = self.handle.link().get().match_index(index);
        self.get_one(req, format!("look up link #{index}")).await
    }

    async fn links(&self) -> Result<Vec<Link>> {
        let _one = self.dumps.lock().await;
        let msgs: Vec<LinkMessage> = self
            .handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(nl("list links"))?;
        Ok(msgs.iter().filter_map(link_from_msg).collect())
    }

    async fn wait_for_link(&self, name: &str, timeout: Duration) -> Result<Link> {
        if let Some(l) = self.link_by_name(name).await? {
            return Ok(l);
        }
        // Subscribe to RTNLGRP_LINK, then look again: a link created between
        // the first lookup and the subscription is caught by the second one.
        let (conn, _h, mut events) = rtnetlink::new_multicast_connection(&[MulticastGroup::Link])
            .map_err(|source| Error::Connect { source })?;
        let _guard = AbortOnDrop(tokio::spawn(conn));
        if let Some(l) = self.link_by_name(name).await? {
            return Ok(l);
        }
        debug!(name, ?timeout, "waiting for link to appear");
        let wait = async {
            while let Some((msg, _)) = events.next().await {
                if let NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(lm)) = msg.payload
                {
                    if let Some(l) = link_from_msg(&lm) {
                        trace!(link = %l.name, "link notification");
                        if l.name == name {
                            return Some(l);
                        }
                    }
                }
            }
            None
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(Some(l)) => Ok(l),
            Ok(None) => Err(Error::EventsClosed {
                name: name.to_string(),
            }),
            // A notification may have been lost to a full socket buffer
            // (ENOBUFS); one last lookup before giving up.
            Err(_) => match self.link_by_name(name).await? {
                Some(l) => Ok(l),
                None => Err(Error::LinkTimeout {
                    name: name.to_string(),
                    timeout,
                }),
            },
        }
    }

    async fn create_bridge(&self, name: &str, mac: Option<MacAddr>) -> Result<()> {
        // Xen's network-bridge: `brctl stp off`, `brctl setfd 0`.
        let mut b = LinkBridge::new(name)
            .stp_state(rtnetlink::packet_route::link::BridgeStpState::Disabled)
            .forward_delay(0);
        if let Some(m) = mac {
            b = b.address(m.0.to_vec());
        }
        match self.handle.link().add(b.build()).execute().await {
            Err(e) if errno_of(&e) == Some(Errno::EEXIST) => Ok(()),
            r => r.map_err(nl(format!("create bridge {name}"))),
        }
    }

    async fn set_link(&self, link: &Link, change: &LinkChange) -> Result<()> {
        let mut b = LinkUnspec::new_with_index(link.index);
        if let Some(n) = &change.name {
            b = b.name(n.clone());
        }
        if let Some(m) = change.mtu {
            b = b.mtu(m);
        }
        if let Some(m) = change.mac {
            b = b.address(m.0.to_vec());
        }
        match change.master {
            Some(Master::Set(i)) => b = b.controller(i),
            Some(Master::Detach) => b = b.nocontroller(),
            None => {}
        }
        match change.up {
            Some(true) => b = b.up(),
            Some(false) => b = b.down(),
            None => {}
        }
        match self.handle.link().set(b.build()).execute().await {
            Err(e) if errno_of(&e) == Some(Errno::ENODEV) => Err(Error::LinkVanished {
                name: link.name.clone(),
            }),
            r => r.map_err(nl(format!("set {change} on {}", link.name))),
        }
    }

    async fn addresses(&self, link: &Link) -> Result<Vec<IfAddress>> {
        let _one = self.dumps.lock().await;
        let msgs: Vec<AddressMessage> = self
            .handle
            .address()
            .get()
            .set_link_index_filter(link.index)
            .execute()
            .try_collect()
            .await
            .map_err(nl(format!("list addresses of {}", link.name)))?;
        Ok(msgs
            .iter()
            .filter(|m| m.header.index == link.index)
            .filter_map(addr_from_msg)
            .collect())
    }

    async fn add_address(&self, link: &Link, addr: &IfAddress) -> Result<()> {
        let mut msg = addr_to_msg(link.index, addr);
        if addr.addr.is_ipv6() {
            // Moved, not new: it already passed DAD on this segment.
            msg.attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        let mut req = self
            .handle
            .address()
            .add(link.index, addr.addr, addr.prefix_len);
        *req.message_mut() = msg;
        match req.execute().await {
            Err(e) if errno_of(&e) == Some(Errno::EEXIST) => Ok(()),
            r => r.map_err(nl(format!("add address {addr} to {}", link.name))),
        }
    }

    async fn del_address(&self, link: &Link, addr: &IfAddress) -> Result<()> {
        let msg = addr_to_msg(link.index, addr);
        match self.handle.address().del(msg).execute().await {
            Err(e) if errno_of(&e) == Some(Errno::EADDRNOTAVAIL) => Ok(()),
            r => r.map_err(nl(format!("remove address {addr} from {}", link.name))),
        }
    }

    async fn routes(&self, link: &Link) -> Result<Vec<Route>> {
        let _one = self.dumps.lock().await;
        let mut out = Vec::new();
        let v4 = RouteMessageBuilder::<Ipv4Addr>::new().build();
        let v6 = RouteMessageBuilder::<Ipv6Addr>::new().build();
        for q in [v4, v6] {
            let msgs: Vec<RouteMessage> = self
                .handle
                .route()
                .get(q)
                .execute()
                .try_collect()
                .await
                .map_err(nl(format!("list routes of {}", link.name)))?;
            out.extend(
                msgs.iter()
                    .filter_map(route_from_msg)
                    .filter(|r| r.oif == link.index),
            );
        }
        Ok(out)
    }

    async fn add_route(&self, route: &Route) -> Result<()> {
        // NLM_F_REPLACE: a route with the same destination and metric
        // through another interface is replaced atomically, so a moved
        // default route never disappears, even for an instant.
        let req = self.handle.route().add(route_to_msg(route)).replace();
        req.execute()
            .await
            .map_err(nl(format!("add route {route} on #{}", route.oif)))
    }

    async fn del_route(&self, route: &Route) -> Result<()> {
        match self.handle.route().del(route_to_msg(route)).execute().await {
            Err(e) if matches!(errno_of(&e), Some(Errno::ESRCH | Errno::ENOENT)) => Ok(()),
            r => r.map_err(nl(format!("delete route {route} on #{}", route.oif))),
        }
    }

    async fn set_port(&self, port: &Link, settings: PortSettings) -> Result<()> {
        let msg = LinkBridgePort::new(port.index)
            .learning(settings.learning)
            .locked(settings.locked)
            .build();
        match self.handle.link().set_port(msg).execute().await {
            Err(e) if errno_of(&e) == Some(Errno::ENODEV) => Err(Error::LinkVanished {
                name: port.name.clone(),
            }),
            r => r.map_err(nl(format!(
                "set bridge port flags learning {} locked {} on {}",
                onoff(settings.learning),
                onoff(settings.locked),
                port.name
            ))),
        }
    }

    async fn add_static_fdb(&self, port: &Link, mac: MacAddr) -> Result<()> {
        let add = || {
            self.handle
                .neighbours()
                .add_bridge(port.index, &mac.0)
                .state(NeighbourState::Noarp)
                .flags(NeighbourFlags::Controller | NeighbourFlags::Sticky)
        };
        let what = || format!("add static fdb entry {mac} on {}", port.name);
        match add().execute().await {
            Ok(()) => return Ok(()),
            Err(e) if errno_of(&e) == Some(Errno::EEXIST) => {}
            Err(e) => return Err(nl(what())(e)),
        }
        // The MAC is known already: ours from an earlier run, learned
        // elsewhere (moved), or another port's static entry (refused).
        let Some(master) = port.master else {
            return Err(Error::Verify {
                name: port.name.clone(),
                what: "master",
                wanted: "a bridge".to_string(),
                got: "none".to_string(),
            });
        };
        let bridge = self
            .link_by_index(master)
            .await?
            .ok_or_else(|| Error::LinkVanished {
                name: port.name.clone(),
            })?;
        let entries = self.fdb(&bridge).await?;
        if let Some(other) = entries
            .iter()
            .find(|e| e.mac == mac && e.port != port.index && e.static_)
        {
            let name = match self.link_by_index(other.port).await? {
                Some(l) => l.name,
                None => format!("#{}", other.port),
            };
            return Err(Error::MacInUse {
                mac: mac.to_string(),
                port: name,
                name: port.name.clone(),
            });
        }
        add().replace().execute().await.map_err(nl(what()))
    }

    async fn fdb(&self, bridge: &Link) -> Result<Vec<FdbEntry>> {
        let _one = self.dumps.lock().await;
        let mut req = self.handle.neighbours().get();
        req.message_mut().header.family = AddressFamily::Bridge;
        req.message_mut()
            .attributes
            .push(NeighbourAttribute::Controller(bridge.index));
        let msgs: Vec<NeighbourMessage> = req
            .execute()
            .try_collect()
            .await
            .map_err(nl(format!("list fdb of {}", bridge.name)))?;
        Ok(msgs.iter().filter_map(fdb_from_msg).collect())
    }

    async fn set_ipv4_conf(&self, link: &Link, forwarding: bool, proxy_arp: bool) -> Result<()> {
        for (key, on) in [("forwarding", forwarding), ("proxy_arp", proxy_arp)] {
            let path = std::path::Path::new(IPV4_CONF).join(&link.name).join(key);
            // Synchronous on purpose: /proc/sys/net is resolved in the calling
            // thread's namespace, which a blocking-pool thread may not share.
            std::fs::write(&path, if on { "1\n" } else { "0\n" })
                .map_err(|source| Error::Sysctl { path, source })?;
        }
        Ok(())
    }

    async fn install_filter(&self, spec: &FilterSpec) -> Result<bool> {
        filter::socket::install(&self.nft, spec)
    }

    async fn remove_filter(&self, ifname: &str) -> Result<bool> {
        filter::socket::remove(&self.nft, ifname)
    }

    async fn filter_status(&self, ifname: &str) -> Result<Option<FilterStatus>> {
        filter::socket::status(&self.nft, ifname)
    }

    async fn filter_statuses(&self) -> Result<Vec<FilterStatus>> {
        filter::socket::all_status(&self.nft)
    }

    async fn filtered(&self) -> Result<Vec<String>> {
        filter::socket::filtered(&self.nft)
    }
}

fn onoff(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

/// Decode an `AF_BRIDGE` neighbour message (an FDB entry).
fn fdb_from_msg(msg: &NeighbourMessage) -> Option<FdbEntry> {
    let mac = msg.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::LinkLayerAddress(l) => <[u8; 6]>::try_from(l.as_slice()).ok(),
        _ => None,
    })?;
    Some(FdbEntry {
        mac: MacAddr(mac),
        port: msg.header.ifindex,
        static_: matches!(
            msg.header.state,
            NeighbourState::Noarp | NeighbourState::Permanent
        ),
        sticky: msg.header.flags.contains(NeighbourFlags::Sticky),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_round_trips_through_message() {
        let r = Route {
            dst: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            dst_len: 0,
            gateway: Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))),
            pref_src: None,
            priority: Some(100),
            oif: 7,
            protocol: 3,
            scope: 0,
        };
        let msg = route_to_msg(&r);
        assert!(
            !msg.attributes
                .iter()
                .any(|a| matches!(a, RouteAttribute::Destination(_))),
            "default route carries no RTA_DST"
        );
        assert_eq!(route_from_msg(&msg), Some(r));
    }

    #[test]
    fn ignores_routes_of_other_tables() {
        let r = Route {
            dst: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 0)),
            dst_len: 24,
            gateway: None,
            pref_src: None,
            priority: None,
            oif: 3,
            protocol: 4,
            scope: 253,
        };
        let mut msg = route_to_msg(&r);
        msg.header.table = 255; // RT_TABLE_LOCAL
        assert_eq!(route_from_msg(&msg), None);
    }
}
