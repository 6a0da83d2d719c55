//! The xenstore schema between the toolstack in dom0 and `drvdom-agent`
//! in a driver domain (`AGENT_XS_SCHEMA.md`), in one place for both sides:
//!
//! * desired bridges, written by dom0, read (and watched) by the agent:
//!   `/local/domain/<dd>/drvdom/config/bridges/<name>/{uplink,mtu}`, under
//!   `/local/domain/<dd>/drvdom` created by dom0 with perms `n0 r<dd>`;
//! * what the agent publishes under its own writable home,
//!   `/local/domain/<dd>/data/drvdom/`: `agent/{state,version,pid}` and
//!   `bridges/<name>/{uplink,mtu,ports/<ifname>}`, one compact JSON object
//!   per port.
//!
//! Node names: xenstore path components may only hold `[A-Za-z0-9-_@]`
//! (`xs_wire.h`, `docs/misc/xenstore.txt`), while Linux interface names
//! may hold almost anything (`vif5.0`, `br.100`). A bridge or interface
//! name is stored as its [`node_name`]: every other byte written as `@`
//! and two lowercase hex digits (`vif5.0` → `vif5@2e0`); [`ifname_of_node`]
//! reverses it ([`read_published`] returns the plain names).
//!
//! Trust: everything under `data/drvdom` is written by the driver domain;
//! [`read_published`] parses it defensively (bounded counts, unknown or bad
//! entries skipped), never trusting it as paths or names elsewhere.

use futures::FutureExt;
use serde::{Deserialize, Serialize};
use xenstore::{Access, AsyncClient, DomId, PermList};
use xentypes::{Bdf, DevId};

use crate::error::{Error, Result};
use crate::validate;

/// Most bridges or ports read back from a driver domain's publication.
pub const PUBLISHED_MAX: usize = 4096;

/// `/local/domain/<dd>/drvdom`: dom0's settings for the driver domain.
pub fn settings_root(dd: DomId) -> String {
    format!("{}/drvdom", dd.path())
}

/// `/local/domain/<dd>/drvdom/config`: what the agent watches.
pub fn config_dir(dd: DomId) -> String {
    format!("{}/config", settings_root(dd))
}

/// `/local/domain/<dd>/drvdom/config/bridges`.
pub fn config_bridges_dir(dd: DomId) -> String {
    format!("{}/bridges", config_dir(dd))
}

/// `/local/domain/<dd>/data/drvdom`: what the agent publishes.
pub fn published_dir(dd: DomId) -> String {
    format!("{}/data/drvdom", dd.path())
}

/// `/local/domain/<dd>/data/drvdom/agent`.
pub fn agent_dir(dd: DomId) -> String {
    format!("{}/agent", published_dir(dd))
}

/// `/local/domain/<dd>/data/drvdom/bridges`.
pub fn published_bridges_dir(dd: DomId) -> String {
    format!("{}/bridges", published_dir(dd))
}

fn node_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// The xenstore node name standing for interface or bridge `name`.
pub fn node_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if node_char(b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("@{b:02x}"));
        }
    }
    out
}

/// The interface name a node name stands for; `None` if it is not a valid
/// encoding.
pub fn ifname_of_node(node: &str) -> Option<String> {
    let b = node.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'@' => {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                if !hex
                    .bytes()
                    .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
                {
                    return None;
                }
                let v = u8::from_str_radix(hex, 16).ok()?;
                if node_char(v) {
                    return None; // not canonical
                }
                out.push(v);
                i += 3;
            }
            c if node_char(c) => {
                out.push(c);
                i += 1;
            }
            _ => return None,
        }
    }
    String::from_utf8(out).ok()
}

/// The agent's lifecycle as published in `agent/state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentState {
    /// Started, replaying existing devices and building bridges.
    Starting,
    /// Replay done, every configured bridge built, watching backends.
    Ready,
    /// Shutting down (devices are left as they are).
    Stopping,
}

impl AgentState {
    /// The node's value.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentState::Starting => "starting",
            AgentState::Ready => "ready",
            AgentState::Stopping => "stopping",
        }
    }

    /// Parse the node's value.
    pub fn parse(raw: &[u8]) -> Option<AgentState> {
        match raw.trim_ascii() {
            b"starting" => Some(AgentState::Starting),
            b"ready" => Some(AgentState::Ready),
            b"stopping" => Some(AgentState::Stopping),
            _ => None,
        }
    }
}

/// A bridge's uplink as dom0 names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UplinkSetting {
    /// One of the driver domain's passed-through NICs.
    Nic(Bdf),
    /// An interface name inside the driver domain.
    Iface(String),
}

impl UplinkSetting {
    /// Parse a node value: a BDF, else an interface name.
    pub fn parse(raw: &[u8]) -> Result<UplinkSetting> {
        let text = validate::printable("uplink", raw, 64)?;
        let text = text.trim();
        if let Ok(bdf) = text.parse::<Bdf>() {
            return Ok(UplinkSetting::Nic(bdf));
        }
        validate::ifname("uplink", text.as_bytes()).map(UplinkSetting::Iface)
    }
}

impl std::fmt::Display for UplinkSetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UplinkSetting::Nic(b) => write!(f, "{b}"),
            UplinkSetting::Iface(n) => f.write_str(n),
        }
    }
}

/// One desired bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeSetting {
    /// Bridge name.
    pub name: String,
    /// Uplink, if any (none: a guest-only bridge).
    pub uplink: Option<UplinkSetting>,
    /// MTU, if set (else the uplink's, else 1500).
    pub mtu: Option<u32>,
}

/// dom0: make `/local/domain/<dd>/drvdom` (perms `n0 r<dd>`) and replace
/// the desired bridges with `bridges`, in one transaction.
pub async fn write_config(
    client: &AsyncClient,
    dd: DomId,
    bridges: &[BridgeSetting],
) -> Result<()> {
    for b in bridges {
        validate::ifname("bridge", b.name.as_bytes())?;
        if let Some(m) = b.mtu {
            validate::mtu(m.to_string().as_bytes())?;
        }
    }
    let bridges = bridges.to_vec();
    client
        .transaction(move |tx| {
            let bridges = bridges.clone();
            async move {
                let root = settings_root(dd);
                tx.write(&root, "").await?;
                let perms = PermList::owned_by(DomId::DOM0, Access::None).with(Access::Read, dd);
                tx.set_perms(&root, &perms).await?;
                let dir = config_bridges_dir(dd);
                match tx.rm(&dir).await {
                    Err(e) if !e.is_not_found() => return Err(e),
                    _ => {}
                }
                tx.mkdir(&dir).await?;
                for b in &bridges {
                    let p = format!("{dir}/{}", node_name(&b.name));
                    tx.mkdir(&p).await?;
                    if let Some(u) = &b.uplink {
                        tx.write(&format!("{p}/uplink"), u.to_string()).await?;
                    }
                    if let Some(m) = b.mtu {
                        tx.write(&format!("{p}/mtu"), m.to_string()).await?;
                    }
                }
                Ok(())
            }
            .boxed()
        })
        .await
        .map_err(Error::xs(format!(
            "write the bridge settings of domain {dd}"
        )))
}

/// A desired bridge the agent could not use, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingProblem {
    /// The node.
    pub path: String,
    /// What is wrong.
    pub reason: String,
}

/// The agent: read the desired bridges. Entries that do not parse are
/// returned as problems (the others still count); no settings at all is
/// an empty list.
pub async fn read_config(
    client: &AsyncClient,
    dd: DomId,
) -> Result<(Vec<BridgeSetting>, Vec<SettingProblem>)> {
    let dir = config_bridges_dir(dd);
    let names = match client.directory(&dir).await {
        Ok(n) => n,
        Err(e) if e.is_not_found() => return Ok((Vec::new(), Vec::new())),
        Err(e) => return Err(Error::xs(format!("list {dir}"))(e)),
    };
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for node in names.iter().take(PUBLISHED_MAX) {
        let p = format!("{dir}/{node}");
        let Some(name) = ifname_of_node(node) else {
            problems.push(SettingProblem {
                path: p,
                reason: "not a valid encoded bridge name".into(),
            });
            continue;
        };
        let read = |k: &'static str| {
            let path = format!("{p}/{k}");
            async move {
                client
                    .read_opt(&path)
                    .await
                    .map_err(Error::xs(format!("read {path}")))
            }
        };
        let parsed = async {
            validate::ifname("bridge", name.as_bytes())?;
            let uplink = match read("uplink").await? {
                Some(raw) => Some(UplinkSetting::parse(&raw)?),
                None => None,
            };
            let mtu = match read("mtu").await? {
                Some(raw) => Some(validate::mtu(&raw)?),
                None => None,
            };
            Ok::<_, Error>(BridgeSetting { name, uplink, mtu })
        }
        .await;
        match parsed {
            Ok(b) => out.push(b),
            Err(e) if e.xenstore_error().is_some() => return Err(e),
            Err(e) => problems.push(SettingProblem {
                path: p,
                reason: e.to_string(),
            }),
        }
    }
    Ok((out, problems))
}

/// One bridge port as published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRecord {
    /// The interface name (from the node's name when read back; a writer
    /// may leave it empty, and it is then not written).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Frontend domain and devid, for a vif (absent for the uplink).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vif: Option<(u16, u32)>,
    /// Link up (operational state UP).
    pub up: bool,
    /// STP port state forwarding.
    pub fwd: bool,
    /// The vif's packet filter in force: `off`, `l2`, `ip` or `l2+ip`
    /// (absent for the uplink, and from agents before issue 14).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// Frames from the guest the filter dropped, per reason, as of the last
    /// publication (absent without a filter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drops: Option<PortDrops>,
}

/// Drop counters of a vif's filter, per reason (the counters of its
/// nf_tables table `netdev drvdom-<ifname>`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortDrops {
    /// Ethernet source not the guest's MAC.
    #[serde(default)]
    pub mac: u64,
    /// Link-local control frames (STP, LLDP…) and VLAN tags.
    #[serde(default)]
    pub l2ctl: u64,
    /// Router advertisements and redirects.
    #[serde(default)]
    pub ra: u64,
    /// DHCP/DHCPv6 server messages.
    #[serde(default)]
    pub dhcp: u64,
    /// Spoofed addresses and other ethertypes.
    #[serde(default)]
    pub spoof: u64,
    /// All of them.
    #[serde(default)]
    pub total: u64,
}

impl PortRecord {
    /// The compact JSON written to the port's node.
    pub fn to_json(&self) -> String {
        // Serialising plain fields cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parse a port node (unknown fields ignored); `None` if malformed.
    pub fn from_json(raw: &[u8]) -> Option<PortRecord> {
        serde_json::from_slice(raw).ok()
    }

    /// The vif as typed ids.
    pub fn vif_ids(&self) -> Option<(DomId, DevId)> {
        self.vif.map(|(fe, d)| (DomId(fe), DevId(d)))
    }
}

/// One bridge as published.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PublishedBridge {
    /// Bridge name.
    pub name: String,
    /// Uplink interface, if any.
    pub uplink: Option<String>,
    /// MTU.
    pub mtu: Option<u32>,
    /// Ports, by interface name.
    pub ports: Vec<PortRecord>,
}

/// Everything a driver domain's agent publishes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Published {
    /// `agent/state` (`None`: absent or unknown).
    pub state: Option<AgentState>,
    /// `agent/version`.
    pub version: Option<String>,
    /// `agent/pid`.
    pub pid: Option<u32>,
    /// `agent/error`: why a desired bridge could not be built (an addition
    /// to the schema; absent when all is well).
    pub error: Option<String>,
    /// Bridges, sorted by name.
    pub bridges: Vec<PublishedBridge>,
}

/// dom0: read what driver domain `dd`'s agent publishes. Missing nodes
/// read as absent; malformed entries are skipped.
pub async fn read_published(client: &AsyncClient, dd: DomId) -> Result<Published> {
    let text = |raw: Option<Vec<u8>>| {
        raw.and_then(|v| validate::printable("value", &v, 1024).ok())
            .map(|s| s.trim().to_string())
    };
    let read = |p: String| async move {
        client
            .read_opt(&p)
            .await
            .map_err(Error::xs(format!("read {p}")))
    };
    let list = |p: String| async move {
        match client.directory(&p).await {
            Ok(v) => Ok(v),
            Err(e) if e.is_not_found() => Ok(Vec::new()),
            Err(e) => Err(Error::xs(format!("list {p}"))(e)),
        }
    };
    let a = agent_dir(dd);
    let mut out = Published {
        state: read(format!("{a}/state"))
            .await?
            .and_then(|v| AgentState::parse(&v)),
        version: text(read(format!("{a}/version")).await?),
        pid: text(read(format!("{a}/pid")).await?).and_then(|s| s.parse().ok()),
        error: text(read(format!("{a}/error")).await?),
        bridges: Vec::new(),
    };
    let dir = published_bridges_dir(dd);
    for node in list(dir.clone()).await?.iter().take(PUBLISHED_MAX) {
        let Some(name) = ifname_of_node(node) else {
            continue;
        };
        let b = format!("{dir}/{node}");
        let mut br = PublishedBridge {
            name,
            uplink: text(read(format!("{b}/uplink")).await?),
            mtu: read(format!("{b}/mtu"))
                .await?
                .and_then(|v| validate::mtu(&v).ok()),
            ports: Vec::new(),
        };
        for pnode in list(format!("{b}/ports")).await?.iter().take(PUBLISHED_MAX) {
            let Some(ifname) = ifname_of_node(pnode) else {
                continue;
            };
            let Some(raw) = read(format!("{b}/ports/{pnode}")).await? else {
                continue;
            };
            if let Some(mut rec) = PortRecord::from_json(&raw) {
                rec.name = ifname;
                br.ports.push(rec);
            }
        }
        br.ports.sort_by(|x, y| x.name.cmp(&y.name));
        out.bridges.push(br);
    }
    out.bridges.sort_by(|x, y| x.name.cmp(&y.name));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_map_to_node_names_and_back() {
        assert_eq!(node_name("xenbr0"), "xenbr0");
        assert_eq!(node_name("vif5.0"), "vif5@2e0");
        assert_eq!(node_name("br@x"), "br@40x");
        assert_eq!(ifname_of_node("vif5@2e0").as_deref(), Some("vif5.0"));
        assert_eq!(ifname_of_node("eth0").as_deref(), Some("eth0"));
        for bad in ["vif5@2", "vif5@zz0", "a@41", "a.b", "a/b", "@2E"] {
            assert_eq!(ifname_of_node(bad), None, "{bad}");
        }
    }

    #[test]
    fn port_records_are_compact_json_and_tolerate_new_fields() {
        let p = PortRecord {
            name: String::new(),
            vif: Some((5, 0)),
            up: true,
            fwd: true,
            filter: None,
            drops: None,
        };
        assert_eq!(p.to_json(), r#"{"vif":[5,0],"up":true,"fwd":true}"#);
        let back = PortRecord::from_json(br#"{"vif":[5,0],"up":true,"fwd":true,"future":{"x":3}}"#)
            .unwrap();
        assert_eq!(back, p);
        // The filter and its drop counters (issue 14).
        let f = PortRecord {
            filter: Some("l2+ip".into()),
            drops: Some(PortDrops {
                mac: 2,
                spoof: 1,
                total: 3,
                ..PortDrops::default()
            }),
            ..p.clone()
        };
        let json = f.to_json();
        assert_eq!(
            json,
            r#"{"vif":[5,0],"up":true,"fwd":true,"filter":"l2+ip","drops":{"mac":2,"l2ctl":0,"ra":0,"dhcp":0,"spoof":1,"total":3}}"#
        );
        assert_eq!(PortRecord::from_json(json.as_bytes()), Some(f));
        let uplink = PortRecord::from_json(br#"{"name":"nic0","up":false,"fwd":false}"#).unwrap();
        assert_eq!(uplink.vif, None);
        assert_eq!(uplink.name, "nic0");
        for bad in [
            &b"{"[..],
            b"[]",
            b"{\"vif\":[1],\"up\":true,\"fwd\":true}",
            b"\xff",
        ] {
            assert_eq!(PortRecord::from_json(bad), None);
        }
    }

    #[test]
    fn uplinks_are_bdfs_or_interface_names() {
        assert_eq!(
            UplinkSetting::parse(b"0000:03:00.0").unwrap(),
            UplinkSetting::Nic("0000:03:00.0".parse().unwrap())
        );
        assert_eq!(
            UplinkSetting::parse(b"eth1").unwrap(),
            UplinkSetting::Iface("eth1".into())
        );
        assert!(UplinkSetting::parse(b"a/b").is_err());
        assert!(UplinkSetting::parse(b"").is_err());
        assert_eq!(AgentState::parse(b"ready"), Some(AgentState::Ready));
        assert_eq!(AgentState::parse(b"bogus"), None);
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn node_names_round_trip(name in "[ -~]{1,15}") {
            let node = node_name(&name);
            prop_assert!(node.bytes().all(|b| node_char(b) || b == b'@'));
            prop_assert_eq!(ifname_of_node(&node), Some(name));
        }

        #[test]
        fn arbitrary_nodes_never_panic(s in ".{0,40}") {
            let _ = ifname_of_node(&s);
            let _ = PortRecord::from_json(s.as_bytes());
        }
    }
}
