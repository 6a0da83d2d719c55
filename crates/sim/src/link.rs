//! Links over rtnetlink: the netback's veth pairs, the simulated NICs and
//! the outside network's plumbing, and a read-only view of a namespace's
//! links and bridges (what `ip -details link show` prints).
//!
//! A netlink socket is bound to the namespace it was opened in:
//! [`Netlink::connect`] opens one in the calling thread's namespace,
//! [`Netlink::connect_in`] one in a named namespace (opened on a dedicated
//! thread, see [`crate::netns::on_thread_in`]), and both are then used
//! from any task.

use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Arc;

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use rtnetlink::packet_core::NetlinkPayload;
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::link::{
    BridgePortState, InfoData, InfoKind, InfoPortData, InfoVeth, LinkAttribute, LinkFlags,
    LinkInfo, LinkMessage, State,
};
use rtnetlink::{Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVeth, MulticastGroup};
use serde::Serialize;
use tokio::task::JoinHandle;
use xentypes::IpCidr;

use crate::error::{Error, Result};

/// `ENODEV` and `ENOENT`, as netlink reports a missing link.
fn is_missing(e: &rtnetlink::Error) -> bool {
    errno_is(e, &[nix::errno::Errno::ENODEV, nix::errno::Errno::ENOENT])
}

fn errno_is(e: &rtnetlink::Error, codes: &[nix::errno::Errno]) -> bool {
    match e {
        rtnetlink::Error::NetlinkError(msg) => {
            let code = msg.raw_code().abs();
            codes.iter().any(|c| *c as i32 == code)
        }
        _ => false,
    }
}

fn nl(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> Error {
    let what = what.into();
    move |source| Error::Netlink { what, source }
}

/// Aborts the connection task when the last handle goes.
#[derive(Debug)]
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// An rtnetlink connection bound to the namespace it was opened in.
#[derive(Debug, Clone)]
pub struct Netlink {
    handle: Handle,
    _conn: Arc<AbortOnDrop>,
}

impl Netlink {
    /// Open a socket in the calling thread's namespace; its connection
    /// task runs on the current tokio runtime.
    pub fn connect() -> Result<Netlink> {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(|source| Error::Spawn {
            program: "rtnetlink socket".into(),
            source,
        })?;
        Ok(Netlink {
            handle,
            _conn: Arc::new(AbortOnDrop(tokio::spawn(conn))),
        })
    }

    /// Open a socket inside the namespace at `ns` (a file under
    /// `/run/netns`), from any task.
    pub async fn connect_in(ns: &Path) -> Result<Netlink> {
        let rt = tokio::runtime::Handle::current();
        let (conn, handle) = crate::netns::on_thread_in(ns, move || {
            // The socket registers with the runtime's reactor, which needs
            // the runtime's context on this foreign thread.
            let _guard = rt.enter();
            let (conn, handle, _) = rtnetlink::new_connection().map_err(|source| Error::Spawn {
                program: "rtnetlink socket".into(),
                source,
            })?;
            Ok((conn, handle))
        })
        .await?;
        Ok(Netlink {
            handle,
            _conn: Arc::new(AbortOnDrop(tokio::spawn(conn))),
        })
    }

    /// The link called `name`, if it exists.
    async fn get(&self, name: &str) -> Result<Option<LinkMessage>> {
        let mut s = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        match s.try_next().await {
            Ok(m) => Ok(m),
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(nl(format!("look up link {name}"))(e)),
        }
    }

    /// The index of link `name`, if it exists.
    pub async fn index_of(&self, name: &str) -> Result<Option<u32>> {
        Ok(self.get(name).await?.map(|m| m.header.index))
    }

    async fn require(&self, name: &str) -> Result<u32> {
        self.index_of(name)
            .await?
            .ok_or_else(|| Error::Invalid(format!("no link {name}")))
    }

    /// Create veth `name` here whose peer is created directly inside the
    /// namespace `peer_ns` (a file under `/run/netns`) as `peer_name`,
    /// with MAC `peer_mac` if given. Both ends start down, as a fresh
    /// netback vif does.
    pub async fn add_veth_into(
        &self,
        name: &str,
        peer_ns: &Path,
        peer_name: &str,
        peer_mac: Option<[u8; 6]>,
    ) -> Result<()> {
        let ns = std::fs::File::open(peer_ns).map_err(|source| Error::File {
            what: "open namespace",
            path: peer_ns.to_path_buf(),
            source,
        })?;
        let mut peer = LinkUnspec::new_with_name(peer_name).setns_by_fd(ns.as_raw_fd());
        if let Some(mac) = peer_mac {
            peer = peer.address(mac.to_vec());
        }
        let msg = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
            .name(name.to_string())
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer.build())))
            .build();
        let res = self.handle.link().add(msg).execute().await;
        drop(ns); // the kernel has taken its reference by now
        res.map_err(nl(format!(
            "create veth {name} with peer {peer_name} in {}",
            peer_ns.display()
        )))
    }

    /// Create bridge `name` (STP off, as Xen's `network-bridge` made
    /// them); an existing link of that name is fine.
    pub async fn add_bridge(&self, name: &str) -> Result<()> {
        if self.index_of(name).await?.is_some() {
            return Ok(());
        }
        let msg = LinkBridge::new(name).build();
        match self.handle.link().add(msg).execute().await {
            Ok(()) => Ok(()),
            Err(e) if errno_is(&e, &[nix::errno::Errno::EEXIST]) => Ok(()),
            Err(e) => Err(nl(format!("create bridge {name}"))(e)),
        }
    }

    async fn set(
        &self,
        name: &str,
        what: String,
        f: impl FnOnce(LinkMessageBuilder<LinkUnspec>) -> LinkMessageBuilder<LinkUnspec>,
    ) -> Result<()> {
        let index = self.require(name).await?;
        let msg = f(LinkUnspec::new_with_index(index)).build();
        self.handle
            .link()
            .set(msg)
            .execute()
            .await
            .map_err(nl(what))
    }

    /// Bring link `name` up.
    pub async fn set_up(&self, name: &str) -> Result<()> {
        self.set(name, format!("bring {name} up"), |b| b.up()).await
    }

    /// Set the MTU of link `name`.
    pub async fn set_mtu(&self, name: &str, mtu: u32) -> Result<()> {
        self.set(name, format!("set mtu {mtu} on {name}"), |b| b.mtu(mtu))
            .await
    }

    /// Enslave link `name` to bridge `bridge`.
    pub async fn set_master(&self, name: &str, bridge: &str) -> Result<()> {
        let master = self.require(bridge).await?;
        self.set(name, format!("put {name} on {bridge}"), |b| {
            b.controller(master)
        })
        .await
    }

    /// Move link `name` into the namespace at `ns` (it keeps its name and
    /// MAC, and goes down, as a NIC handed to another kernel would).
    pub async fn move_to(&self, name: &str, ns: &Path) -> Result<()> {
        let f = std::fs::File::open(ns).map_err(|source| Error::File {
            what: "open namespace",
            path: ns.to_path_buf(),
            source,
        })?;
        let res = self
            .set(name, format!("move {name} to {}", ns.display()), |b| {
                b.setns_by_fd(f.as_raw_fd())
            })
            .await;
        drop(f);
        res
    }

    /// Add `addr` to link `name`; already there is fine.
    pub async fn add_address(&self, name: &str, addr: IpCidr) -> Result<()> {
        let index = self.require(name).await?;
        match self
            .handle
            .address()
            .add(index, addr.addr(), addr.prefix())
            .execute()
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if errno_is(&e, &[nix::errno::Errno::EEXIST]) => Ok(()),
            Err(e) => Err(nl(format!("add address {addr} to {name}"))(e)),
        }
    }

    /// Addresses on link `name`.
    pub async fn addresses(&self, name: &str) -> Result<Vec<IpAddr>> {
        use rtnetlink::packet_route::address::AddressAttribute;
        let index = self.require(name).await?;
        let msgs: Vec<_> = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute()
            .try_collect()
            .await
            .map_err(nl(format!("list addresses of {name}")))?;
        Ok(msgs
            .iter()
            .filter(|m| m.header.index == index)
            .filter_map(|m| {
                m.attributes
                    .iter()
                    .find_map(|a| match a {
                        AddressAttribute::Local(a) => Some(*a),
                        _ => None,
                    })
                    .or_else(|| {
                        m.attributes.iter().find_map(|a| match a {
                            AddressAttribute::Address(a) => Some(*a),
                            _ => None,
                        })
                    })
            })
            .collect())
    }

    /// Delete link `name`; a missing link is fine.
    pub async fn delete(&self, name: &str) -> Result<()> {
        let Some(index) = self.index_of(name).await? else {
            return Ok(());
        };
        match self.handle.link().del(index).execute().await {
            Ok(()) => Ok(()),
            Err(e) if is_missing(&e) => Ok(()),
            Err(e) => Err(nl(format!("delete link {name}"))(e)),
        }
    }

    /// Wait until link `name` is operationally UP (its carrier seen by the
    /// kernel's link watcher, which also activates its queueing discipline:
    /// until then every packet it sends is dropped), on link notifications
    /// in the namespace at `ns`. `Ok(false)` if `timeout` passes first.
    pub async fn wait_oper_up(ns: &Path, name: &str, timeout: Duration) -> Result<bool> {
        let rt = tokio::runtime::Handle::current();
        let (conn, handle, mut events) = crate::netns::on_thread_in(ns, move || {
            let _guard = rt.enter();
            rtnetlink::new_multicast_connection(&[MulticastGroup::Link]).map_err(|source| {
                Error::Spawn {
                    program: "rtnetlink socket".into(),
                    source,
                }
            })
        })
        .await?;
        let nl = Netlink {
            handle,
            _conn: Arc::new(AbortOnDrop(tokio::spawn(conn))),
        };
        // Subscribed first, then looked: no notification can slip between.
        let is_up = |m: &LinkMessage| {
            m.attributes
                .iter()
                .any(|a| matches!(a, LinkAttribute::OperState(State::Up)))
        };
        let Some(first) = nl.get(name).await? else {
            return Err(Error::Invalid(format!("no link {name}")));
        };
        if is_up(&first) {
            return Ok(true);
        }
        let index = first.header.index;
        let wait = async {
            while let Some((msg, _)) = events.next().await {
                if let NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(m)) = msg.payload {
                    if m.header.index == index && is_up(&m) {
                        return true;
                    }
                }
            }
            false
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(up) => Ok(up),
            // A notification may have been lost to a full socket buffer.
            Err(_) => Ok(nl.get(name).await?.is_some_and(|m| is_up(&m))),
        }
    }

    /// Every link of this namespace.
    pub async fn list(&self) -> Result<Vec<LinkView>> {
        let msgs: Vec<LinkMessage> = self
            .handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(nl("list links"))?;
        Ok(views(&msgs))
    }
}

/// One link as `ip -details link show` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkView {
    /// Interface name.
    pub name: String,
    /// Name of its bridge (or other master), if enslaved.
    pub master: Option<String>,
    /// `linkinfo.info_kind`: "bridge", "veth", ...
    pub kind: Option<String>,
    /// Administratively up.
    pub up: bool,
    /// `operstate`: "UP", "DOWN", "LOWERLAYERDOWN", ...
    pub operstate: String,
    /// MAC address.
    pub mac: Option<String>,
    /// MTU.
    pub mtu: u32,
    /// For a bridge port: its STP state (`forwarding`, `disabled`, ...).
    pub port_state: Option<String>,
}

fn oper_name(s: &State) -> String {
    match s {
        State::Unknown => "UNKNOWN".into(),
        State::NotPresent => "NOTPRESENT".into(),
        State::Down => "DOWN".into(),
        State::LowerLayerDown => "LOWERLAYERDOWN".into(),
        State::Testing => "TESTING".into(),
        State::Dormant => "DORMANT".into(),
        State::Up => "UP".into(),
        other => format!("{other:?}").to_uppercase(),
    }
}

fn port_state_name(s: &BridgePortState) -> String {
    match s {
        BridgePortState::Disabled => "disabled".into(),
        BridgePortState::Listening => "listening".into(),
        BridgePortState::Learning => "learning".into(),
        BridgePortState::Forwarding => "forwarding".into(),
        BridgePortState::Blocking => "blocking".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// Decode a link dump; masters are resolved to names within it.
fn views(msgs: &[LinkMessage]) -> Vec<LinkView> {
    let name_of = |m: &LinkMessage| {
        m.attributes.iter().find_map(|a| match a {
            LinkAttribute::IfName(n) => Some(n.clone()),
            _ => None,
        })
    };
    let names: std::collections::HashMap<u32, String> = msgs
        .iter()
        .filter_map(|m| name_of(m).map(|n| (m.header.index, n)))
        .collect();
    let mut out: Vec<LinkView> = msgs
        .iter()
        .filter_map(|m| {
            let mut v = LinkView {
                name: name_of(m)?,
                master: None,
                kind: None,
                up: m.header.flags.contains(LinkFlags::Up),
                operstate: String::new(),
                mac: None,
                mtu: 0,
                port_state: None,
            };
            for a in &m.attributes {
                match a {
                    LinkAttribute::Controller(c) if *c != 0 => {
                        v.master = Some(names.get(c).cloned().unwrap_or_else(|| format!("#{c}")));
                    }
                    LinkAttribute::OperState(s) => v.operstate = oper_name(s),
                    LinkAttribute::Mtu(mtu) => v.mtu = *mtu,
                    LinkAttribute::Address(a) if a.len() == 6 => {
                        v.mac = Some(
                            a.iter()
                                .map(|b| format!("{b:02x}"))
                                .collect::<Vec<_>>()
                                .join(":"),
                        );
                    }
                    LinkAttribute::LinkInfo(infos) => {
                        for i in infos {
                            match i {
                                LinkInfo::Kind(k) => v.kind = Some(k.to_string()),
                                LinkInfo::PortData(InfoPortData::BridgePort(attrs)) => {
                                    v.port_state = attrs.iter().find_map(|p| match p {
                                        rtnetlink::packet_route::link::InfoBridgePort::State(s) => {
                                            Some(port_state_name(s))
                                        }
                                        _ => None,
                                    });
                                }
                                _ => {}
                            }
                        }
                    }
                    _ => {}
                }
            }
            Some(v)
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Every link of namespace `ns` (a file under `/run/netns`).
pub async fn list_in(ns: &Path) -> Result<Vec<LinkView>> {
    Netlink::connect_in(ns).await?.list().await
}

/// A bridge and its ports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BridgeView {
    /// The bridge.
    pub bridge: LinkView,
    /// Its ports, sorted by name.
    pub ports: Vec<LinkView>,
}

/// Group `links` into bridges with their ports, sorted by bridge name.
pub fn bridges(links: &[LinkView]) -> Vec<BridgeView> {
    let mut out: Vec<BridgeView> = links
        .iter()
        .filter(|l| l.kind.as_deref() == Some("bridge"))
        .map(|b| {
            let mut ports: Vec<LinkView> = links
                .iter()
                .filter(|l| l.master.as_deref() == Some(b.name.as_str()))
                .cloned()
                .collect();
            ports.sort_by(|a, b| a.name.cmp(&b.name));
            BridgeView {
                bridge: b.clone(),
                ports,
            }
        })
        .collect();
    out.sort_by(|a, b| a.bridge.name.cmp(&b.bridge.name));
    out
}

/// Parse `vif<fe>.<devid>` (the netback's interface name) into its numbers.
pub fn parse_vif_name(name: &str) -> Option<(u16, u32)> {
    let rest = name.strip_prefix("vif")?;
    let (fe, devid) = rest.split_once('.')?;
    Some((fe.parse().ok()?, devid.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(name: &str, master: Option<&str>, kind: Option<&str>) -> LinkView {
        LinkView {
            name: name.into(),
            master: master.map(Into::into),
            kind: kind.map(Into::into),
            up: true,
            operstate: "UP".into(),
            mac: None,
            mtu: 1500,
            port_state: master.map(|_| "forwarding".into()),
        }
    }

    #[test]
    fn groups_bridge_ports() {
        let links = vec![
            view("lo", None, None),
            view("xenbr0", None, Some("bridge")),
            view("vif2.0", Some("xenbr0"), Some("veth")),
            view("nic0", Some("xenbr0"), Some("veth")),
            view("br1", None, Some("bridge")),
        ];
        let br = bridges(&links);
        assert_eq!(br.len(), 2);
        assert_eq!(br[0].bridge.name, "br1");
        assert!(br[0].ports.is_empty());
        let ports: Vec<&str> = br[1].ports.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(ports, ["nic0", "vif2.0"]);
    }

    #[test]
    fn vif_names_parse() {
        assert_eq!(parse_vif_name("vif2.0"), Some((2, 0)));
        assert_eq!(parse_vif_name("vif12.3"), Some((12, 3)));
        assert_eq!(parse_vif_name("nic0"), None);
        assert_eq!(parse_vif_name("vifx.0"), None);
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn vif_names_round_trip(fe in any::<u16>(), devid in any::<u32>()) {
            prop_assert_eq!(parse_vif_name(&format!("vif{fe}.{devid}")), Some((fe, devid)));
        }

        #[test]
        fn arbitrary_text_never_panics(s in ".{0,200}") {
            let _ = parse_vif_name(&s);
        }
    }
}
