//! What the agent needs to publish its bridges and follow the kernel:
//! links with bridge ports' STP states, link change notifications, and
//! deleting a bridge it built. Kernel only (no [`crate::LinkOps`] fake):
//! these feed a report, not the hotplug decisions.

use rtnetlink::packet_core::{
    NLM_F_DUMP, NLM_F_REQUEST, NetlinkBuffer, NetlinkMessage, NetlinkPayload,
};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::link::{
    BridgePortState, InfoBridgePort, InfoPortData, LinkAttribute, LinkInfo, LinkMessage,
};
use rtnetlink::sys::protocols::NETLINK_ROUTE;
use rtnetlink::sys::{AsyncSocket, AsyncSocketExt, SocketAddr, TokioSocket};

use crate::error::{Error, Result};
use crate::netlink::{NetlinkOps, link_from_msg};
use crate::ops::{Link, validate_ifname};

/// A link with, for a bridge port, whether it forwards frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkState {
    /// The link.
    pub link: Link,
    /// For a bridge port: STP port state `forwarding` (`IFLA_BRPORT_STATE`).
    pub forwarding: Option<bool>,
}

/// Receive buffer for a dump: the kernel sends dump datagrams of at most
/// 32 KiB (`netlink_dump`, `NLMSG_GOODSIZE` or the socket's min dump size).
const DUMP_BUF: usize = 64 * 1024;

/// Every link of the namespace with its bridge-port state, in one dump.
///
/// The dump is read on its own raw netlink socket one datagram at a time
/// and each message is reduced to a compact [`Link`] at once: a driver
/// domain with thousands of vifs never holds the decoded dump (going
/// through the shared rtnetlink connection would queue every decoded
/// message before the first is looked at).
pub async fn link_states(_ops: &NetlinkOps) -> Result<Vec<LinkState>> {
    let connect = |source| Error::Connect { source };
    let mut sock = TokioSocket::new(NETLINK_ROUTE).map_err(connect)?;
    sock.socket_mut().bind_auto().map_err(connect)?;
    let mut req = NetlinkMessage::from(RouteNetlinkMessage::GetLink(LinkMessage::default()));
    req.header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    req.header.sequence_number = 1;
    req.finalize();
    let mut out_buf = vec![0u8; req.buffer_len()];
    req.serialize(&mut out_buf);
    sock.send_to(&out_buf, &SocketAddr::new(0, 0))
        .await
        .map_err(connect)?;
    let mut buf = vec![0u8; DUMP_BUF].into_boxed_slice();
    let mut out = Vec::new();
    loop {
        let n = {
            let mut b: &mut [u8] = &mut buf[..];
            sock.recv(&mut b).await.map_err(connect)?;
            DUMP_BUF - b.len()
        };
        let mut at = 0;
        while at < n {
            let Ok(nb) = NetlinkBuffer::new_checked(&buf[at..n]) else {
                break;
            };
            let len = usize::try_from(nb.length()).unwrap_or(0);
            if len == 0 || at + len > n {
                break;
            }
            let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[at..at + len]);
            // Netlink messages are 4-byte aligned (NLMSG_ALIGN).
            at += (len + 3) & !3;
            let Ok(msg) = msg else {
                continue;
            };
            match msg.payload {
                NetlinkPayload::Done(_) => return Ok(out),
                NetlinkPayload::Error(e) if e.code.is_some() => {
                    return Err(Error::Netlink {
                        what: "list links".into(),
                        source: rtnetlink::Error::NetlinkError(e),
                    });
                }
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(m)) => {
                    if let Some(link) = link_from_msg(&m) {
                        out.push(LinkState {
                            forwarding: port_forwarding_of(&m),
                            link,
                        });
                    }
                }
                _ => {}
            }
        }
    }
}

fn port_forwarding_of(m: &LinkMessage) -> Option<bool> {
    for a in &m.attributes {
        let LinkAttribute::LinkInfo(infos) = a else {
            continue;
        };
        for i in infos {
            if let LinkInfo::PortData(InfoPortData::BridgePort(attrs)) = i {
                return Some(
                    attrs
                        .iter()
                        .any(|p| matches!(p, InfoBridgePort::State(BridgePortState::Forwarding))),
                );
            }
        }
    }
    None
}

/// Delete bridge `name` (its ports are released by the kernel); a missing
/// link is fine.
pub async fn delete_bridge(ops: &NetlinkOps, name: &str) -> Result<()> {
    use crate::ops::LinkOps;
    validate_ifname(name)?;
    let Some(link) = ops.link_by_name(name).await? else {
        return Ok(());
    };
    if !link.is_bridge() {
        return Err(Error::NotABridge {
            name: name.to_string(),
            kind: link.kind.unwrap_or_else(|| "none".into()),
        });
    }
    ops.handle()
        .link()
        .del(link.index)
        .execute()
        .await
        .map_err(|source| Error::Netlink {
            what: format!("delete bridge {name}"),
            source,
        })
}

/// `RTMGRP_LINK` [include/uapi/linux/rtnetlink.h]: link notifications.
const RTMGRP_LINK: u32 = 1;
/// Receive buffer for one notification (the content is not needed).
const EVENT_BUF: usize = 16 * 1024;

/// Notifications of link changes (a link appears, goes, changes state or
/// master) in the calling thread's namespace. Only the fact that something
/// changed is kept: the messages are read into one fixed buffer and
/// dropped, so a burst costs no memory (an overflow of the kernel's queue,
/// `ENOBUFS`, also counts as a change).
pub struct LinkEvents {
    sock: TokioSocket,
    buf: Box<[u8]>,
}

impl std::fmt::Debug for LinkEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkEvents").finish_non_exhaustive()
    }
}

impl LinkEvents {
    /// Subscribe. Must be called inside a tokio runtime.
    pub fn subscribe() -> Result<LinkEvents> {
        let mut sock =
            TokioSocket::new(NETLINK_ROUTE).map_err(|source| Error::Connect { source })?;
        sock.socket_mut()
            .bind(&SocketAddr::new(0, RTMGRP_LINK))
            .map_err(|source| Error::Connect { source })?;
        Ok(LinkEvents {
            sock,
            buf: vec![0u8; EVENT_BUF].into_boxed_slice(),
        })
    }

    /// Wait for the next link change; `None` if the socket failed.
    pub async fn next(&mut self) -> Option<()> {
        let mut b: &mut [u8] = &mut self.buf[..];
        match self.sock.recv(&mut b).await {
            Ok(()) => Some(()),
            Err(e) if e.raw_os_error() == Some(nix::errno::Errno::ENOBUFS as i32) => Some(()),
            Err(_) => None,
        }
    }
}
