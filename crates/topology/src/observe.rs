//! Observing the host: domains, domids and devices from xenstore (the same
//! on every host), the agents' published view, and NICs through
//! [`Host::nics`].
//!
//! Everything a domain wrote about itself (its agent's publication, its
//! frontend keys) is parsed leniently: a malformed value is reported as
//! unknown, never trusted and never an error.

use std::collections::{BTreeMap, BTreeSet};

use futures::future::try_join_all;
use xenbus::agent::AgentState;
use xenbus::{BackendPath, XenbusState, keys};
use xenstore::{Access, AsyncClient};
use xentypes::{Bdf, DevId, DomId, IpCidr};

use crate::error::{Error, Result};
use crate::host::Host;
use crate::observed::{
    AgentStatus, ConfiguredBridge, Observed, ObservedBridge, ObservedDomain, ObservedNic,
    ObservedPort, ObservedVif,
};

/// Most PCI functions we read from one pci backend.
const MAX_PCI_DEVS: u32 = 64;
/// Name dom0 gets when it has no `name` node.
pub const DOM0_NAME: &str = "Domain-0";

/// Observe the host. `nics`: the NICs to report on (those of a host file);
/// NICs found passed through to any domain are added.
pub async fn observe<H: Host>(host: &H, nics: &[Bdf]) -> Result<Observed> {
    let xs = host.xenstore();
    let domids = list_domids(xs).await?;
    let domains = try_join_all(domids.iter().map(|d| observe_domain(xs, *d))).await?;
    let mut domains: Vec<ObservedDomain> = domains.into_iter().flatten().collect();
    domains.sort_by_key(|d| d.domid);
    let vifs = try_join_all(domains.iter().map(|d| observe_vifs(xs, d.domid))).await?;
    let vifs: Vec<ObservedVif> = vifs.into_iter().flatten().collect();

    let passed = try_join_all(domains.iter().map(|d| pci_of(xs, d.domid))).await?;
    let mut assigned: BTreeMap<Bdf, DomId> = BTreeMap::new();
    for (d, bdfs) in domains.iter().zip(passed) {
        for b in bdfs {
            assigned.insert(b, d.domid);
        }
    }
    let mut want: Vec<Bdf> = nics.to_vec();
    for b in assigned.keys() {
        if !want.contains(b) {
            want.push(*b);
        }
    }
    let mut nics = if want.is_empty() {
        Vec::new()
    } else {
        host.nics(&want).await?
    };
    for n in &mut nics {
        n.assigned_to = assigned.get(&n.bdf).copied();
    }
    Ok(Observed {
        domains,
        nics,
        vifs,
    })
}

/// The domids under `/local/domain`.
pub async fn list_domids(xs: &AsyncClient) -> Result<Vec<DomId>> {
    let names = match xs.directory("/local/domain").await {
        Ok(n) => n,
        Err(e) if e.is_not_found() => Vec::new(),
        Err(e) => return Err(Error::xs("list /local/domain")(e)),
    };
    let mut ids: Vec<DomId> = names
        .iter()
        .filter(|n| n.len() == 1 || !n.starts_with('0'))
        .filter_map(|n| n.parse::<DomId>().ok())
        .collect();
    ids.sort();
    Ok(ids)
}

/// The domid of the running domain called `name`, if any.
pub async fn domid_of(xs: &AsyncClient, name: &str) -> Result<Option<DomId>> {
    if name == crate::hostfile::DOM0 || name == DOM0_NAME {
        return Ok(Some(DomId::DOM0));
    }
    for d in list_domids(xs).await? {
        if read_text(xs, &format!("{}/name", d.path()))
            .await?
            .as_deref()
            == Some(name)
        {
            return Ok(Some(d));
        }
    }
    Ok(None)
}

pub(crate) async fn read_opt(xs: &AsyncClient, path: &str) -> Result<Option<Vec<u8>>> {
    match xs.read_opt(path).await {
        Ok(v) => Ok(v),
        // A domain going away under us: treat as absent.
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(Error::xs(format!("read {path}"))(e)),
    }
}

pub(crate) async fn read_text(xs: &AsyncClient, path: &str) -> Result<Option<String>> {
    Ok(read_opt(xs, path).await?.map(|v| text(&v)))
}

/// A short, printable rendering of a value another domain may have written.
pub(crate) fn text(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(&raw[..raw.len().min(256)]);
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

fn parse_u32(s: Option<String>) -> Option<u32> {
    s.and_then(|s| s.parse().ok())
}

pub(crate) async fn observe_domain(
    xs: &AsyncClient,
    domid: DomId,
) -> Result<Option<ObservedDomain>> {
    let base = domid.path();
    let name = match read_text(xs, &format!("{base}/name")).await? {
        Some(n) => n,
        None if domid == DomId::DOM0 => DOM0_NAME.to_string(),
        // Being created or destroyed: not a domain yet / any more.
        None => return Ok(None),
    };
    let driver_domain = domid != DomId::DOM0
        && match xs.exists(&format!("{base}/libxl")).await {
            Ok(b) => b,
            Err(e) if e.is_not_found() => false,
            Err(e) => return Err(Error::xs(format!("read {base}/libxl"))(e)),
        };
    let published = xenbus::agent::read_published(xs, domid)
        .await
        .map_err(Error::xb(format!("read what {name}'s agent publishes")))?;
    let agent = published.state.map(|st| AgentStatus {
        state: st.as_str().to_string(),
        ready: st == AgentState::Ready,
        version: published.version.clone(),
        pid: published.pid,
        error: published.error.clone(),
    });
    let bridges = published
        .bridges
        .into_iter()
        .map(|b| ObservedBridge {
            name: b.name,
            uplink: b.uplink.filter(|u| !u.is_empty()),
            mtu: b.mtu,
            ports: b
                .ports
                .into_iter()
                .map(|p| ObservedPort {
                    vif: p.vif_ids(),
                    ifname: p.name,
                    up: p.up,
                    forwarding: p.fwd,
                    filter: p.filter,
                    drops: p.drops,
                })
                .collect(),
        })
        .collect();
    let (settings, _problems) = xenbus::agent::read_config(xs, domid)
        .await
        .map_err(Error::xb(format!("read the bridge settings of {name}")))?;
    let configured_bridges = settings
        .into_iter()
        .map(|b| ConfiguredBridge {
            name: b.name,
            uplink: b.uplink.map(|u| u.to_string()),
            mtu: b.mtu,
        })
        .collect();
    let name_readers = match xs.get_perms(&format!("{base}/name")).await {
        Ok(perms) => {
            let mut v: Vec<DomId> = perms
                .entries()
                .iter()
                .skip(1)
                .filter(|p| p.access.can_read() && p.domid != domid)
                .map(|p| p.domid)
                .collect();
            if perms.default_access() != Access::None {
                v.push(DomId(u16::MAX));
            }
            v
        }
        Err(_) => Vec::new(),
    };
    let memory_kib = read_text(xs, &format!("{base}/memory/target"))
        .await?
        .and_then(|m| m.parse().ok());
    Ok(Some(ObservedDomain {
        name,
        domid,
        driver_domain,
        memory_kib,
        agent,
        bridges,
        configured_bridges,
        name_readers,
    }))
}

async fn observe_vifs(xs: &AsyncClient, fe: DomId) -> Result<Vec<ObservedVif>> {
    let infos = match xenbus::list_vifs(xs, fe).await {
        Ok(v) => v,
        Err(e) if e.xenstore_error().is_some_and(|x| x.is_not_found()) => Vec::new(),
        Err(e) => return Err(Error::xb(format!("list vifs of domain {fe}"))(e)),
    };
    let mut out = Vec::with_capacity(infos.len());
    for i in infos {
        let Some(bp) = i.backend else {
            // A frontend with no valid backend path: report it half-made.
            out.push(ObservedVif {
                frontend: fe,
                devid: i.devid,
                backend: DomId::DOM0,
                mac: i.mac,
                bridge: i.bridge,
                ip: Vec::new(),
                state_frontend: i.frontend_state,
                state_backend: None,
                hotplug_status: None,
                trusted: None,
                mtu: None,
                online: false,
                hotplug_error: None,
                l2_hygiene: None,
                routed: false,
            });
            continue;
        };
        out.push(vif_extra(xs, fe, i.devid, bp, i).await?);
    }
    Ok(out)
}

async fn vif_extra(
    xs: &AsyncClient,
    fe: DomId,
    devid: DevId,
    bp: BackendPath,
    i: xenbus::VifInfo,
) -> Result<ObservedVif> {
    let ip = read_text(xs, &bp.key(keys::IP))
        .await?
        .map(|s| IpCidr::parse_list(&s).unwrap_or_default())
        .unwrap_or_default();
    let trusted = read_text(xs, &i.frontend.key(keys::TRUSTED))
        .await?
        .map(|t| t == "1");
    Ok(ObservedVif {
        frontend: fe,
        devid,
        backend: bp.be,
        mac: i.mac,
        bridge: i.bridge,
        ip,
        state_frontend: i.frontend_state,
        state_backend: i.backend_state,
        hotplug_status: i.hotplug_status,
        trusted,
        mtu: parse_u32(read_text(xs, &bp.key(keys::MTU)).await?),
        online: i.online,
        hotplug_error: read_text(xs, &bp.key(keys::HOTPLUG_ERROR)).await?,
        l2_hygiene: read_text(xs, &bp.key(keys::L2_HYGIENE))
            .await?
            .map(|t| t != "0"),
        routed: read_text(xs, &bp.key(keys::SCRIPT))
            .await?
            .is_some_and(|s| s.ends_with("vif-route")),
    })
}

/// One vif whose backend is known.
pub(crate) async fn observe_vif(
    xs: &AsyncClient,
    fe: DomId,
    devid: DevId,
    bp: BackendPath,
) -> Result<ObservedVif> {
    let infos = xenbus::list_vifs(xs, fe)
        .await
        .map_err(Error::xb(format!("read vif {devid} of domain {fe}")))?;
    match infos.into_iter().find(|i| i.devid == devid) {
        Some(i) => vif_extra(xs, fe, devid, bp, i).await,
        None => Err(Error::Host(format!("vif {devid} of domain {fe} vanished"))),
    }
}

/// The BDFs passed through to `fe` (dom0's pci backend `dev-<i>` nodes).
async fn pci_of(xs: &AsyncClient, fe: DomId) -> Result<Vec<Bdf>> {
    let bp = xenbus::pci::pci_backend_path(fe);
    let Some(n) = parse_u32(read_text(xs, &bp.key("num_devs")).await?) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for i in 0..n.min(MAX_PCI_DEVS) {
        if let Some(s) = read_text(xs, &bp.key(&format!("dev-{i}"))).await? {
            if let Ok(b) = s.parse::<Bdf>() {
                out.push(b);
            }
        }
    }
    Ok(out)
}

/// Both ends Connected and the hotplug script (agent) done.
pub fn vif_is_up(v: &ObservedVif) -> bool {
    v.state_frontend == Some(XenbusState::Connected)
        && v.state_backend == Some(XenbusState::Connected)
        && v.hotplug_status.as_deref() == Some(xenbus::vif::HOTPLUG_CONNECTED)
}

/// The NIC list a host file names, without duplicates, in file order.
pub fn file_nics(topo: &crate::model::Topology) -> Vec<Bdf> {
    let mut seen = BTreeSet::new();
    topo.driver_domains
        .iter()
        .flat_map(|d| d.nics.iter().copied())
        .filter(|b| seen.insert(*b))
        .collect()
}

/// An [`ObservedNic`] with nothing known yet, for hosts to fill.
pub fn nic_unknown(bdf: Bdf) -> ObservedNic {
    ObservedNic {
        bdf,
        driver: None,
        assigned_to: None,
        visible_in_domain: None,
        detail: None,
    }
}
