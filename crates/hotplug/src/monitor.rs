//! What the agent needs to publish its bridges and follow the kernel:
//! bridge ports' STP states, a stream of link change notifications, and
//! deleting a bridge it built. Kernel only (no [`crate::LinkOps`] fake):
//! these feed a report, not the hotplug decisions.

use std::collections::HashMap;

use futures::{StreamExt, TryStreamExt};
use rtnetlink::MulticastGroup;
use rtnetlink::packet_core::NetlinkPayload;
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::link::{
    BridgePortState, InfoBridgePort, InfoPortData, LinkAttribute, LinkInfo, LinkMessage,
};
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::netlink::NetlinkOps;
use crate::ops::validate_ifname;

/// Whether each bridge port (by interface index) forwards frames (STP
/// port state `forwarding`, `IFLA_BRPORT_STATE`); one link dump.
pub async fn port_forwarding(ops: &NetlinkOps) -> Result<HashMap<u32, bool>> {
    let msgs: Vec<LinkMessage> = ops
        .handle()
        .link()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(|source| Error::Netlink {
            what: "list links".into(),
            source,
        })?;
    let mut out = HashMap::new();
    for m in &msgs {
        for a in &m.attributes {
            let LinkAttribute::LinkInfo(infos) = a else {
                continue;
            };
            for i in infos {
                if let LinkInfo::PortData(InfoPortData::BridgePort(attrs)) = i {
                    let fwd = attrs
                        .iter()
                        .any(|p| matches!(p, InfoBridgePort::State(BridgePortState::Forwarding)));
                    out.insert(m.header.index, fwd);
                }
            }
        }
    }
    Ok(out)
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

/// Notifications of link changes (`RTNLGRP_LINK`: a link appears, goes,
/// changes state or master) in the calling thread's namespace.
#[derive(Debug)]
pub struct LinkEvents {
    events: futures::channel::mpsc::UnboundedReceiver<(
        rtnetlink::packet_core::NetlinkMessage<RouteNetlinkMessage>,
        rtnetlink::sys::SocketAddr,
    )>,
    conn: JoinHandle<()>,
}

impl Drop for LinkEvents {
    fn drop(&mut self) {
        self.conn.abort();
    }
}

impl LinkEvents {
    /// Subscribe. Must be called inside a tokio runtime.
    pub fn subscribe() -> Result<LinkEvents> {
        let (conn, _handle, events) = rtnetlink::new_multicast_connection(&[MulticastGroup::Link])
            .map_err(|source| Error::Connect { source })?;
        Ok(LinkEvents {
            events,
            conn: tokio::spawn(conn),
        })
    }

    /// Wait for the next link change; `None` if the stream ended.
    pub async fn next(&mut self) -> Option<()> {
        loop {
            let (msg, _) = self.events.next().await?;
            if let NetlinkPayload::InnerMessage(
                RouteNetlinkMessage::NewLink(_) | RouteNetlinkMessage::DelLink(_),
            ) = msg.payload
            {
                return Some(());
            }
        }
    }
}
