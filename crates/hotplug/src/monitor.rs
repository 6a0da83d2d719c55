//! What the agent needs to publish its bridges and follow the kernel:
//! links with bridge ports' STP states, link change notifications, and
//! deleting a bridge it built. Kernel only (no [`crate::LinkOps`] fake):
//! these feed a report, not the hotplug decisions.

use rtnetlink::packet_core::Nla;
use rtnetlink::packet_core::{
    NLM_F_DUMP, NLM_F_REQUEST, NetlinkBuffer, NetlinkMessage, NetlinkPayload,
};
use rtnetlink::packet_route::link::{
    BridgePortState, InfoBridgePort, InfoPortData, LinkAttribute, LinkInfo, LinkMessage,
    LinkProtoInfoBridge,
};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
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
/// Receive buffer for one notification (a link message is a few KiB; a
/// truncated one is reported as an overflow).
const EVENT_BUF: usize = 64 * 1024;
/// `IFLA_BRPORT_STATE` [include/uapi/linux/if_link.h], in the `IFLA_PROTINFO`
/// of the bridge's own (`AF_BRIDGE`) port notifications.
const IFLA_BRPORT_STATE: u16 = 1;
/// `BR_STATE_FORWARDING` [include/uapi/linux/if_bridge.h].
const BR_STATE_FORWARDING: u8 = 3;

/// One link notification, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkUpdate {
    /// A link appeared or changed: its whole state.
    Link(LinkState),
    /// The bridge reported one of its ports (`AF_BRIDGE`): its master (none:
    /// it left the bridge) and STP state.
    Port {
        /// Interface index.
        index: u32,
        /// Its bridge, if still a port.
        master: Option<u32>,
        /// Forwarding, if known.
        forwarding: Option<bool>,
    },
    /// A link is gone.
    Gone {
        /// Interface index.
        index: u32,
    },
    /// Notifications were lost (the kernel's queue overflowed, or one did
    /// not decode): the listener must read the whole state again.
    Overflow,
}

/// Link notifications (`RTNLGRP_LINK`: a link appears, goes, changes state
/// or master) in the calling thread's namespace, decoded one datagram at a
/// time into compact [`LinkUpdate`]s (nothing is queued in user space).
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

    /// The next notification(s); `None` if the socket failed.
    pub async fn next(&mut self) -> Option<Vec<LinkUpdate>> {
        let n = {
            let mut b: &mut [u8] = &mut self.buf[..];
            match self.sock.recv(&mut b).await {
                Ok(()) => EVENT_BUF - b.len(),
                Err(e) if e.raw_os_error() == Some(nix::errno::Errno::ENOBUFS as i32) => {
                    return Some(vec![LinkUpdate::Overflow]);
                }
                Err(_) => return None,
            }
        };
        Some(decode_updates(&self.buf[..n]))
    }
}

/// Decode the link notifications of one datagram; anything that does not
/// decode makes it an [`LinkUpdate::Overflow`] (read everything again).
pub fn decode_updates(buf: &[u8]) -> Vec<LinkUpdate> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        let Ok(nb) = NetlinkBuffer::new_checked(&buf[at..]) else {
            out.push(LinkUpdate::Overflow);
            break;
        };
        let len = usize::try_from(nb.length()).unwrap_or(0);
        if len == 0 || at + len > buf.len() {
            out.push(LinkUpdate::Overflow);
            break;
        }
        let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[at..at + len]);
        at += (len + 3) & !3;
        let Ok(msg) = msg else {
            out.push(LinkUpdate::Overflow);
            continue;
        };
        let NetlinkPayload::InnerMessage(inner) = msg.payload else {
            continue;
        };
        match inner {
            RouteNetlinkMessage::NewLink(m)
                if m.header.interface_family == AddressFamily::Bridge =>
            {
                out.push(LinkUpdate::Port {
                    index: m.header.index,
                    master: master_of(&m),
                    forwarding: bridge_port_state(&m),
                });
            }
            RouteNetlinkMessage::DelLink(m)
                if m.header.interface_family == AddressFamily::Bridge =>
            {
                out.push(LinkUpdate::Port {
                    index: m.header.index,
                    master: None,
                    forwarding: None,
                });
            }
            RouteNetlinkMessage::NewLink(m) => match link_from_msg(&m) {
                Some(link) => out.push(LinkUpdate::Link(LinkState {
                    forwarding: port_forwarding_of(&m),
                    link,
                })),
                None => out.push(LinkUpdate::Overflow),
            },
            RouteNetlinkMessage::DelLink(m) => out.push(LinkUpdate::Gone {
                index: m.header.index,
            }),
            _ => {}
        }
    }
    out
}

fn master_of(m: &LinkMessage) -> Option<u32> {
    m.attributes.iter().find_map(|a| match a {
        LinkAttribute::Controller(c) if *c != 0 => Some(*c),
        _ => None,
    })
}

/// `IFLA_PROTINFO`'s `IFLA_BRPORT_STATE` of an `AF_BRIDGE` notification.
fn bridge_port_state(m: &LinkMessage) -> Option<bool> {
    m.attributes.iter().find_map(|a| match a {
        LinkAttribute::ProtoInfoBridge(infos) => infos.iter().find_map(|i| match i {
            LinkProtoInfoBridge::Other(nla) if nla.kind() == IFLA_BRPORT_STATE => {
                let mut v = vec![0u8; nla.value_len()];
                nla.emit_value(&mut v);
                v.first().map(|s| *s == BR_STATE_FORWARDING)
            }
            _ => None,
        }),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtnetlink::packet_core::DefaultNla;

    fn bytes(msg: RouteNetlinkMessage) -> Vec<u8> {
        let mut m = NetlinkMessage::from(msg);
        m.finalize();
        let mut buf = vec![0u8; m.buffer_len()];
        m.serialize(&mut buf);
        buf
    }

    #[test]
    fn bridge_port_notifications_give_master_and_state() {
        let mut lm = LinkMessage::default();
        lm.header.interface_family = AddressFamily::Bridge;
        lm.header.index = 7;
        lm.attributes.push(LinkAttribute::Controller(3));
        lm.attributes.push(LinkAttribute::ProtoInfoBridge(vec![
            LinkProtoInfoBridge::Other(DefaultNla::new(
                IFLA_BRPORT_STATE,
                vec![BR_STATE_FORWARDING],
            )),
        ]));
        let mut buf = bytes(RouteNetlinkMessage::NewLink(lm.clone()));
        // Two messages in one datagram.
        lm.header.index = 8;
        lm.attributes = vec![LinkAttribute::ProtoInfoBridge(vec![
            LinkProtoInfoBridge::Other(DefaultNla::new(IFLA_BRPORT_STATE, vec![0])),
        ])];
        buf.extend(bytes(RouteNetlinkMessage::NewLink(lm)));
        assert_eq!(
            decode_updates(&buf),
            [
                LinkUpdate::Port {
                    index: 7,
                    master: Some(3),
                    forwarding: Some(true)
                },
                LinkUpdate::Port {
                    index: 8,
                    master: None,
                    forwarding: Some(false)
                }
            ]
        );
    }

    #[test]
    fn link_notifications_give_the_whole_link_or_its_removal() {
        let mut lm = LinkMessage::default();
        lm.header.index = 5;
        lm.attributes.push(LinkAttribute::IfName("vif2.0".into()));
        lm.attributes.push(LinkAttribute::Mtu(1500));
        lm.attributes.push(LinkAttribute::Controller(4));
        let got = decode_updates(&bytes(RouteNetlinkMessage::NewLink(lm.clone())));
        let [LinkUpdate::Link(l)] = got.as_slice() else {
            panic!("{got:?}");
        };
        assert_eq!(
            (l.link.index, l.link.name.as_str(), l.link.master),
            (5, "vif2.0", Some(4))
        );
        assert_eq!(l.forwarding, None);
        assert_eq!(
            decode_updates(&bytes(RouteNetlinkMessage::DelLink(lm))),
            [LinkUpdate::Gone { index: 5 }]
        );
    }

    #[test]
    fn damaged_datagrams_ask_for_a_resync() {
        let mut lm = LinkMessage::default();
        lm.attributes.push(LinkAttribute::IfName("eth0".into()));
        let buf = bytes(RouteNetlinkMessage::NewLink(lm));
        assert_eq!(
            decode_updates(&buf[..buf.len() - 3]),
            [LinkUpdate::Overflow]
        );
        assert_eq!(decode_updates(&[1, 2, 3]), [LinkUpdate::Overflow]);
        assert!(decode_updates(&[]).is_empty());
        // A link message without a name is not usable either.
        let nameless = bytes(RouteNetlinkMessage::NewLink(LinkMessage::default()));
        assert_eq!(decode_updates(&nameless), [LinkUpdate::Overflow]);
    }
}
