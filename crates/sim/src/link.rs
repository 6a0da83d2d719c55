//! Links: the netback's veth pairs (over rtnetlink, in the calling thread's
//! namespace) and a read-only view of a namespace's links and bridges
//! (from `ip -json -details link show`).

use std::os::fd::AsRawFd;

use futures::TryStreamExt;
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth};
use rtnetlink::{Handle, LinkMessageBuilder, LinkUnspec, LinkVeth};
use serde::Serialize;

use crate::cmd::{ip, ip_in};
use crate::error::{Error, Result};

/// `ENODEV` and `ENOENT`, as netlink reports a missing link.
fn is_missing(e: &rtnetlink::Error) -> bool {
    match e {
        rtnetlink::Error::NetlinkError(msg) => {
            let code = msg.raw_code().abs();
            code == nix::errno::Errno::ENODEV as i32 || code == nix::errno::Errno::ENOENT as i32
        }
        _ => false,
    }
}

/// An rtnetlink connection bound to the namespace it was opened in.
#[derive(Debug, Clone)]
pub struct Netlink {
    handle: Handle,
}

impl Netlink {
    /// Open a socket in the calling thread's namespace; its connection task
    /// runs on the current tokio runtime until the process ends.
    pub fn connect() -> Result<Netlink> {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(|source| Error::Spawn {
            program: "rtnetlink socket".into(),
            source,
        })?;
        tokio::spawn(conn);
        Ok(Netlink { handle })
    }

    /// The index of link `name`, if it exists.
    pub async fn index_of(&self, name: &str) -> Result<Option<u32>> {
        let mut s = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        match s.try_next().await {
            Ok(Some(msg)) => Ok(Some(msg.header.index)),
            Ok(None) => Ok(None),
            Err(e) if is_missing(&e) => Ok(None),
            Err(source) => Err(Error::Netlink {
                what: format!("look up link {name}"),
                source,
            }),
        }
    }

    /// Create veth `name` here whose peer is created directly inside the
    /// namespace `peer_ns` (a file under `/run/netns`) as `peer_name` with
    /// MAC `peer_mac`. Both ends start down, as a fresh netback vif does.
    pub async fn add_veth_into(
        &self,
        name: &str,
        peer_ns: &std::path::Path,
        peer_name: &str,
        peer_mac: [u8; 6],
    ) -> Result<()> {
        let ns = std::fs::File::open(peer_ns).map_err(|source| Error::File {
            what: "open namespace",
            path: peer_ns.to_path_buf(),
            source,
        })?;
        let peer = LinkUnspec::new_with_name(peer_name)
            .address(peer_mac.to_vec())
            .setns_by_fd(ns.as_raw_fd())
            .build();
        let msg = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
            .name(name.to_string())
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
            .build();
        let res = self.handle.link().add(msg).execute().await;
        drop(ns); // the kernel has taken its reference by now
        res.map_err(|source| Error::Netlink {
            what: format!(
                "create veth {name} with peer {peer_name} in {}",
                peer_ns.display()
            ),
            source,
        })
    }

    /// Delete link `name`; a missing link is fine.
    pub async fn delete(&self, name: &str) -> Result<()> {
        let Some(index) = self.index_of(name).await? else {
            return Ok(());
        };
        match self.handle.link().del(index).execute().await {
            Ok(()) => Ok(()),
            Err(e) if is_missing(&e) => Ok(()),
            Err(source) => Err(Error::Netlink {
                what: format!("delete link {name}"),
                source,
            }),
        }
    }
}

/// One link as `ip -json -details link show` reports it.
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
    /// For a bridge port: its STP state (`forwarding`, `disabled`, ...).
    pub port_state: Option<String>,
}

/// Every link of namespace `ns` (`None`: the caller's namespace).
pub async fn list(ns: Option<&str>) -> Result<Vec<LinkView>> {
    let args = ["-json", "-details", "link", "show"];
    let out = match ns {
        Some(ns) => ip_in(ns, &args).await?,
        None => ip(&args).await?,
    };
    Ok(parse_ip_json(&out.stdout))
}

/// Decode `ip -json -details link show`; unknown shapes yield no entries.
pub fn parse_ip_json(text: &str) -> Vec<LinkView> {
    let Ok(serde_json::Value::Array(items)) = serde_json::from_str::<serde_json::Value>(text)
    else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|it| {
            let s = |k: &str| it.get(k).and_then(|v| v.as_str()).map(str::to_string);
            let flags: Vec<&str> = it
                .get("flags")
                .and_then(|f| f.as_array())
                .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
                .unwrap_or_default();
            Some(LinkView {
                name: s("ifname")?,
                master: s("master"),
                kind: it
                    .get("linkinfo")
                    .and_then(|l| l.get("info_kind"))
                    .and_then(|v| v.as_str())
                    .map(str::to_string),
                up: flags.contains(&"UP"),
                operstate: s("operstate").unwrap_or_default(),
                mac: s("address"),
                port_state: it
                    .get("linkinfo")
                    .and_then(|l| l.get("info_slave_data"))
                    .and_then(|d| d.get("state"))
                    .and_then(|v| v.as_str())
                    .map(str::to_string),
            })
        })
        .collect()
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

    const SAMPLE: &str = r#"[
      {"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"],"operstate":"UNKNOWN","address":"00:00:00:00:00:00"},
      {"ifindex":5,"ifname":"xenbr0","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"operstate":"UP","address":"5a:1b:00:00:00:01","linkinfo":{"info_kind":"bridge","info_data":{}}},
      {"ifindex":6,"ifname":"vif2.0","flags":["BROADCAST","UP"],"master":"xenbr0","operstate":"UP","address":"fe:ff:ff:ff:ff:ff","linkinfo":{"info_kind":"veth","info_slave_kind":"bridge","info_slave_data":{"state":"forwarding","priority":32}}},
      {"ifindex":4,"ifname":"nic0","flags":["UP"],"master":"xenbr0","operstate":"UP","linkinfo":{"info_kind":"veth"}}
    ]"#;

    #[test]
    fn parses_ip_json_and_groups_bridge_ports() {
        let links = parse_ip_json(SAMPLE);
        assert_eq!(links.len(), 4);
        let br = bridges(&links);
        assert_eq!(br.len(), 1);
        assert_eq!(br[0].bridge.name, "xenbr0");
        let ports: Vec<&str> = br[0].ports.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(ports, ["nic0", "vif2.0"]);
        assert!(br[0].ports[1].up);
        assert_eq!(br[0].ports[1].mac.as_deref(), Some("fe:ff:ff:ff:ff:ff"));
        assert_eq!(br[0].ports[1].port_state.as_deref(), Some("forwarding"));
        assert_eq!(br[0].ports[0].port_state, None);
    }

    #[test]
    fn garbage_json_gives_no_links() {
        assert!(parse_ip_json("not json").is_empty());
        assert!(parse_ip_json("{}").is_empty());
        assert!(parse_ip_json(r#"[{"noname":1}]"#).is_empty());
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
            let links = parse_ip_json(&s);
            let _ = bridges(&links);
        }

        #[test]
        fn json_links_keep_their_names(names in proptest::collection::vec("[a-z][a-z0-9.]{0,14}", 0..8)) {
            let items: Vec<serde_json::Value> = names
                .iter()
                .map(|n| serde_json::json!({"ifname": n, "flags": ["UP"], "operstate": "UP"}))
                .collect();
            let links = parse_ip_json(&serde_json::Value::Array(items).to_string());
            let got: Vec<&str> = links.iter().map(|l| l.name.as_str()).collect();
            prop_assert_eq!(got, names.iter().map(String::as_str).collect::<Vec<_>>());
            prop_assert!(links.iter().all(|l| l.up));
        }
    }
}
