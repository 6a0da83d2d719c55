//! What the reconcile daemon remembers, kept in dom0-only xenstore nodes
//! under [`ROOT`] so that it survives the daemon's own SIGKILL (a new
//! daemon reads it back and converges from there) and is the same on the
//! real and the simulated host:
//!
//! | node | value |
//! |---|---|
//! | `/drvdom/reconcile/vifs/<guest>/<devid>` | a [`WantVif`] as JSON |
//! | `/drvdom/reconcile/bridges/<driver domain>` | its bridge settings as JSON |
//! | `/drvdom/reconcile/domains/<domid>` | the name of a domain seen running |
//!
//! Names are encoded with [`xenbus::agent::node_name`] (xenstore path
//! components cannot hold `.`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use xenbus::agent::{BridgeSetting, UplinkSetting, ifname_of_node, node_name};
use xenstore::AsyncClient;
use xentypes::{DevId, IpCidr, MacAddr};

use crate::error::{Error, Result};
use crate::model::{Vif, VifMode};
use crate::observe::read_opt;

/// Root of the daemon's memory.
pub const ROOT: &str = "/drvdom/reconcile";

/// Where a vif stands for the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Served by a running backend (last seen so).
    Active,
    /// Its backend domain died; its nodes were cleaned; waiting for a
    /// domain with the backend's name and a ready agent.
    Waiting,
    /// Re-created toward the returned backend; waiting for Connected.
    Attaching,
}

impl Phase {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Active => "active",
            Phase::Waiting => "waiting",
            Phase::Attaching => "attaching",
        }
    }
}

/// A guest vif the daemon keeps alive: everything needed to re-create it
/// with the same devid and MAC toward a driver domain of the same name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WantVif {
    /// The guest's name.
    pub guest: String,
    /// Device id.
    pub devid: u32,
    /// The backend domain's name.
    pub backend: String,
    /// MAC address.
    pub mac: String,
    /// Bridge (bridge mode).
    #[serde(default)]
    pub bridge: Option<String>,
    /// Addresses (`ip` key).
    #[serde(default)]
    pub ip: Vec<String>,
    /// MTU.
    #[serde(default)]
    pub mtu: Option<u32>,
    /// Routed (vif-route) instead of bridged.
    #[serde(default)]
    pub route: bool,
    /// Frontend `trusted`.
    #[serde(default = "yes")]
    pub trusted: bool,
    /// Layer-2 hygiene (the backend's `drvdom-l2-hygiene`; on unless the
    /// host file relaxed it).
    #[serde(default = "yes")]
    pub l2_hygiene: bool,
    /// Where it stands.
    pub phase: Phase,
    /// Since when (ms since the epoch).
    pub since_ms: u64,
    /// The domid that served it (Active) or that it was re-created toward
    /// (Attaching).
    #[serde(default)]
    pub backend_domid: Option<u16>,
}

fn yes() -> bool {
    true
}

impl WantVif {
    /// The key: guest name and devid.
    pub fn key(&self) -> (String, u32) {
        (self.guest.clone(), self.devid)
    }

    /// From a host file's vif.
    pub fn from_file(guest: &str, v: &Vif, now_ms: u64) -> WantVif {
        WantVif {
            guest: guest.to_string(),
            devid: v.devid.0,
            backend: v.backend.clone(),
            mac: v.mac.to_string(),
            bridge: v.bridge.clone(),
            ip: v.ip.iter().map(|i| i.to_string()).collect(),
            mtu: v.mtu,
            route: v.mode == VifMode::Route,
            trusted: v.trusted,
            l2_hygiene: v.l2_hygiene,
            phase: Phase::Active,
            since_ms: now_ms,
            backend_domid: None,
        }
    }

    /// As the toolstack's vif model (for `vif_config` and the host's
    /// `vif_connected`). `None` when the MAC does not parse.
    pub fn to_vif(&self) -> Option<Vif> {
        let mac: MacAddr = self.mac.parse().ok()?;
        let ip: Vec<IpCidr> = self.ip.iter().filter_map(|s| s.parse().ok()).collect();
        Some(Vif {
            devid: DevId(self.devid),
            backend: self.backend.clone(),
            bridge: if self.route {
                None
            } else {
                self.bridge.clone()
            },
            mac,
            ip,
            mtu: self.mtu,
            mode: if self.route {
                VifMode::Route
            } else {
                VifMode::Bridge
            },
            trusted: self.trusted,
            l2_hygiene: self.l2_hygiene,
        })
    }

    /// Its node.
    pub fn node(&self) -> String {
        vif_node(&self.guest, self.devid)
    }
}

/// The node of a guest's remembered vif.
pub fn vif_node(guest: &str, devid: u32) -> String {
    format!("{ROOT}/vifs/{}/{devid}", node_name(guest))
}

fn xs_err(what: String) -> impl FnOnce(xenstore::Error) -> Error {
    Error::xs(what)
}

async fn list(xs: &AsyncClient, dir: &str) -> Result<Vec<String>> {
    match xs.directory(dir).await {
        Ok(v) => Ok(v),
        Err(e) if e.is_not_found() => Ok(Vec::new()),
        Err(e) => Err(xs_err(format!("list {dir}"))(e)),
    }
}

async fn rm(xs: &AsyncClient, path: &str) -> Result<()> {
    match xs.rm(path).await {
        Ok(()) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(xs_err(format!("remove {path}"))(e)),
    }
}

/// Every remembered vif (entries that do not parse are dropped).
pub async fn load_vifs(xs: &AsyncClient) -> Result<BTreeMap<(String, u32), WantVif>> {
    let mut out = BTreeMap::new();
    let root = format!("{ROOT}/vifs");
    for g in list(xs, &root).await? {
        for d in list(xs, &format!("{root}/{g}")).await? {
            let p = format!("{root}/{g}/{d}");
            let Some(raw) = read_opt(xs, &p).await? else {
                continue;
            };
            match serde_json::from_slice::<WantVif>(&raw) {
                Ok(w) => {
                    out.insert(w.key(), w);
                }
                Err(e) => {
                    tracing::warn!(node = %p, error = %e, "dropping an unreadable remembered vif");
                    rm(xs, &p).await?;
                }
            }
        }
    }
    Ok(out)
}

/// Remember a vif (replacing what was there).
pub async fn save_vif(xs: &AsyncClient, w: &WantVif) -> Result<()> {
    let json =
        serde_json::to_string(w).map_err(|e| Error::Host(format!("encode remembered vif: {e}")))?;
    let p = w.node();
    xs.write(&p, json)
        .await
        .map_err(xs_err(format!("write {p}")))
}

/// Forget a vif (and its guest's directory when empty).
pub async fn forget_vif(xs: &AsyncClient, guest: &str, devid: u32) -> Result<()> {
    rm(xs, &vif_node(guest, devid)).await?;
    let dir = format!("{ROOT}/vifs/{}", node_name(guest));
    if list(xs, &dir).await?.is_empty() {
        rm(xs, &dir).await?;
    }
    Ok(())
}

#[derive(Serialize, Deserialize)]
struct BridgeJson {
    name: String,
    #[serde(default)]
    uplink: Option<String>,
    #[serde(default)]
    mtu: Option<u32>,
}

/// Remembered bridge settings, per driver domain name.
pub async fn load_bridges(xs: &AsyncClient) -> Result<BTreeMap<String, Vec<BridgeSetting>>> {
    let mut out = BTreeMap::new();
    let root = format!("{ROOT}/bridges");
    for n in list(xs, &root).await? {
        let Some(name) = ifname_of_node(&n).or_else(|| Some(n.clone())) else {
            continue;
        };
        let Some(raw) = read_opt(xs, &format!("{root}/{n}")).await? else {
            continue;
        };
        let Ok(v) = serde_json::from_slice::<Vec<BridgeJson>>(&raw) else {
            continue;
        };
        let settings = v
            .into_iter()
            .map(|b| BridgeSetting {
                name: b.name,
                uplink: b
                    .uplink
                    .and_then(|u| UplinkSetting::parse(u.as_bytes()).ok()),
                mtu: b.mtu,
            })
            .collect();
        out.insert(name, settings);
    }
    Ok(out)
}

/// Remember a driver domain's bridge settings.
pub async fn save_bridges(xs: &AsyncClient, dd: &str, bridges: &[BridgeSetting]) -> Result<()> {
    let v: Vec<BridgeJson> = bridges
        .iter()
        .map(|b| BridgeJson {
            name: b.name.clone(),
            uplink: b.uplink.as_ref().map(|u| u.to_string()),
            mtu: b.mtu,
        })
        .collect();
    let json =
        serde_json::to_string(&v).map_err(|e| Error::Host(format!("encode bridges: {e}")))?;
    let p = format!("{ROOT}/bridges/{}", node_name(dd));
    xs.write(&p, json)
        .await
        .map_err(xs_err(format!("write {p}")))
}

/// Domains seen running: domid → name.
pub async fn load_seen(xs: &AsyncClient) -> Result<BTreeMap<u16, String>> {
    let mut out = BTreeMap::new();
    let root = format!("{ROOT}/domains");
    for n in list(xs, &root).await? {
        let Ok(id) = n.parse::<u16>() else { continue };
        if let Some(raw) = read_opt(xs, &format!("{root}/{n}")).await? {
            out.insert(id, String::from_utf8_lossy(&raw).into_owned());
        }
    }
    Ok(out)
}

/// Record a domain seen running.
pub async fn save_seen(xs: &AsyncClient, domid: u16, name: &str) -> Result<()> {
    let p = format!("{ROOT}/domains/{domid}");
    xs.write(&p, name)
        .await
        .map_err(xs_err(format!("write {p}")))
}

/// Forget a domain seen running.
pub async fn forget_seen(xs: &AsyncClient, domid: u16) -> Result<()> {
    rm(xs, &format!("{ROOT}/domains/{domid}")).await
}
