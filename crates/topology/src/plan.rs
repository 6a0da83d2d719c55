//! Planning: observe the host, diff it against the file, and list the
//! ordered actions (each with the reason read from the host) that make it
//! match — or, for `destroy`, that remove what the file describes.
//!
//! Order: driver domains first (config, NICs to pciback, create, bridges),
//! then guests (config, create, name read grants, stale vifs detached,
//! vifs attached). Destroy is the reverse. Only domains the file names are
//! touched; everything else on the host is left alone.

use std::collections::BTreeMap;

use xentypes::{DomId, IpCidr};

use crate::action::{Action, ActionKind};
use crate::error::Result;
use crate::host::{DomainRole, Host};
use crate::hostfile::DOM0;
use crate::model::{DriverDomain, Guest, Topology, Uplink, Vif, VifMode};
use crate::observe::{file_nics, observe, vif_is_up};
use crate::observed::{ConfiguredBridge, Observed, ObservedVif};

/// The driver pciback binds as (`xen-pciback`'s sysfs name).
pub const PCIBACK: &str = "pciback";

/// A plan and the observation it was made from.
#[derive(Debug, Clone)]
pub struct Planned {
    /// The host as observed.
    pub observed: Observed,
    /// What to do, in order (empty: the host matches).
    pub actions: Vec<Action>,
}

/// Why each domain's configuration differs (domain name → reason).
pub type Drift = BTreeMap<String, String>;

/// Observe and plan `apply`.
pub async fn plan<H: Host>(host: &H, topo: &Topology) -> Result<Planned> {
    let observed = observe(host, &file_nics(topo)).await?;
    let mut drift = Drift::new();
    for d in &topo.driver_domains {
        if let Some(r) = host.config_drift(DomainRole::Driver(d)).await? {
            drift.insert(d.name.clone(), r);
        }
    }
    for g in &topo.guests {
        if let Some(r) = host.config_drift(DomainRole::Guest(g)).await? {
            drift.insert(g.name.clone(), r);
        }
    }
    let actions = diff(topo, &observed, &drift);
    Ok(Planned { observed, actions })
}

/// Observe and plan `destroy`.
pub async fn plan_destroy<H: Host>(host: &H, topo: &Topology) -> Result<Planned> {
    let observed = observe(host, &file_nics(topo)).await?;
    let actions = diff_destroy(topo, &observed);
    Ok(Planned { observed, actions })
}

/// The configuration a driver domain's agent gets for its bridges.
pub fn desired_bridges(dd: &DriverDomain) -> Vec<ConfiguredBridge> {
    let mut v: Vec<ConfiguredBridge> = dd
        .bridges
        .iter()
        .map(|b| ConfiguredBridge {
            name: b.name.clone(),
            uplink: b.uplink.as_ref().map(|u| match u {
                Uplink::Nic(bdf) => bdf.to_string(),
                Uplink::Iface(i) => i.clone(),
            }),
            mtu: b.mtu,
        })
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

/// Why a driver domain's agent does not (yet) serve the file's bridges,
/// or `None` when it does.
pub fn bridges_gap(dd: &DriverDomain, observed: &Observed) -> Option<String> {
    let Some(od) = observed.domain(&dd.name) else {
        return Some(format!("{} is not running", dd.name));
    };
    let mut configured = od.configured_bridges.clone();
    configured.sort_by(|a, b| a.name.cmp(&b.name));
    if configured != desired_bridges(dd) {
        return Some(if configured.is_empty() {
            "no bridges configured for its agent yet".to_string()
        } else {
            "its agent's bridge configuration differs from the file".to_string()
        });
    }
    match &od.agent {
        None => return Some("its agent has not published itself".to_string()),
        Some(a) if !a.ready => return Some(format!("its agent is {:?}, not ready", a.state)),
        Some(_) => {}
    }
    for b in &dd.bridges {
        let Some(ob) = od.bridges.iter().find(|x| x.name == b.name) else {
            return Some(format!("its agent has not built bridge {}", b.name));
        };
        if b.uplink.is_some() && ob.uplink.is_none() {
            return Some(format!("bridge {} has no uplink yet", b.name));
        }
        if let (Some(want), Some(have)) = (b.mtu, ob.mtu) {
            if want != have {
                return Some(format!("bridge {} has MTU {have}, not {want}", b.name));
            }
        }
    }
    None
}

/// Why an observed vif is not the file's vif, or `None` when it matches
/// (same backend, MAC, bridge, addresses, trust).
pub fn vif_mismatch(v: &Vif, backend: Option<DomId>, o: &ObservedVif) -> Option<String> {
    match backend {
        Some(b) if b == o.backend => {}
        Some(b) => return Some(format!("its backend is domain {}, not {b}", o.backend)),
        None => return Some(format!("its backend {} is not running", v.backend)),
    }
    if o.mac != Some(v.mac) {
        let have = o.mac.map_or("none".to_string(), |m| m.to_string());
        return Some(format!("its MAC is {have}, not {}", v.mac));
    }
    if v.mode == VifMode::Bridge && o.bridge != v.bridge {
        return Some(format!(
            "its bridge is {}, not {}",
            o.bridge.as_deref().unwrap_or("none"),
            v.bridge.as_deref().unwrap_or("none")
        ));
    }
    let mut a: Vec<IpCidr> = o.ip.clone();
    let mut b: Vec<IpCidr> = v.ip.clone();
    a.sort();
    b.sort();
    if a != b {
        return Some(format!(
            "its ip is [{}], not [{}]",
            IpCidr::format_list(&o.ip),
            IpCidr::format_list(&v.ip)
        ));
    }
    if let Some(t) = o.trusted {
        if t != v.trusted {
            return Some(format!("trusted is {t}, not {}", v.trusted));
        }
    }
    let l2 = o.l2_hygiene.unwrap_or(true);
    if l2 != v.l2_hygiene {
        return Some(format!(
            "its layer-2 hygiene is {}, not {}",
            if l2 { "on" } else { "off" },
            if v.l2_hygiene { "on" } else { "off" }
        ));
    }
    None
}

/// The domid a vif's backend name has on the observed host.
fn backend_id(observed: &Observed, name: &str) -> Option<DomId> {
    if name == DOM0 {
        return Some(DomId::DOM0);
    }
    observed.domain(name).map(|d| d.domid)
}

/// The actions that make `observed` match `topo`.
pub fn diff(topo: &Topology, observed: &Observed, drift: &Drift) -> Vec<Action> {
    let mut out = Vec::new();
    // Driver domains that will be (re)created: their guests' vifs and
    // grants must be redone against the new domid.
    let mut fresh: Vec<&str> = Vec::new();
    for dd in &topo.driver_domains {
        let name = dd.name.clone();
        if let Some(r) = drift.get(&dd.name) {
            out.push(Action::new(
                ActionKind::WriteConfig {
                    domain: name.clone(),
                },
                r.clone(),
            ));
        }
        let od = observed.domain(&dd.name);
        let mut recreate = None;
        if let Some(od) = od {
            if !od.driver_domain {
                recreate = Some(format!(
                    "{} runs without driver_domain = 1: it must be created again",
                    dd.name
                ));
            } else if let Some(b) = dd
                .nics
                .iter()
                .find(|b| observed.nic(**b).and_then(|n| n.assigned_to) != Some(od.domid))
            {
                recreate = Some(format!(
                    "NIC {b} is not passed through to the running {}: it must be created again",
                    dd.name
                ));
            }
        }
        if let Some(r) = &recreate {
            out.push(Action::new(
                ActionKind::DestroyDomain {
                    domain: name.clone(),
                },
                r.clone(),
            ));
        }
        for bdf in &dd.nics {
            let n = observed.nic(*bdf);
            let driver = n.and_then(|n| n.driver.clone());
            if driver.as_deref() != Some(PCIBACK) {
                let why = match driver {
                    Some(d) => format!("{bdf} is bound to {d}, not pciback"),
                    None => format!("{bdf} has no driver bound, not pciback"),
                };
                out.push(Action::new(ActionKind::AssignNic { bdf: *bdf }, why));
            }
        }
        if od.is_none() || recreate.is_some() {
            let why = recreate
                .clone()
                .unwrap_or_else(|| format!("{} is not running", dd.name));
            out.push(Action::new(
                ActionKind::CreateDomain {
                    domain: name.clone(),
                },
                why,
            ));
            fresh.push(&dd.name);
            out.push(Action::new(
                ActionKind::ConfigureBridges { domain: name },
                format!("{} will be created", dd.name),
            ));
        } else if let Some(gap) = bridges_gap(dd, observed) {
            out.push(Action::new(
                ActionKind::ConfigureBridges { domain: name },
                gap,
            ));
        }
    }
    for g in &topo.guests {
        guest_actions(g, observed, drift, &fresh, &mut out);
    }
    out
}

fn guest_actions(
    g: &Guest,
    observed: &Observed,
    drift: &Drift,
    fresh: &[&str],
    out: &mut Vec<Action>,
) {
    let name = g.name.clone();
    if let Some(r) = drift.get(&g.name) {
        out.push(Action::new(
            ActionKind::WriteConfig {
                domain: name.clone(),
            },
            r.clone(),
        ));
    }
    let og = observed.domain(&g.name);
    if og.is_none() {
        out.push(Action::new(
            ActionKind::CreateDomain {
                domain: name.clone(),
            },
            format!("{} is not running", g.name),
        ));
    }
    // Grants: one per driver-domain backend.
    let mut backends: Vec<&str> = g
        .vifs
        .iter()
        .map(|v| v.backend.as_str())
        .filter(|b| *b != DOM0)
        .collect();
    backends.dedup();
    backends.sort_unstable();
    backends.dedup();
    for b in backends {
        let why = match (og, backend_id(observed, b)) {
            (None, _) => Some(format!("{} will be created", g.name)),
            (_, None) => Some(format!("{b} will be created")),
            (Some(_), Some(_)) if fresh.contains(&b) => Some(format!("{b} will be created again")),
            (Some(og), Some(bid)) if !og.name_readers.contains(&bid) => Some(format!(
                "{b} (domain {bid}) may not read /local/domain/{}/name",
                og.domid
            )),
            _ => None,
        };
        if let Some(why) = why {
            out.push(Action::new(
                ActionKind::GrantNameRead {
                    guest: name.clone(),
                    backend: b.to_string(),
                },
                why,
            ));
        }
    }
    let Some(og) = og else {
        for v in &g.vifs {
            out.push(Action::new(
                ActionKind::AttachVif {
                    guest: name.clone(),
                    devid: v.devid,
                },
                format!("{} will be created", g.name),
            ));
        }
        return;
    };
    // Stale vifs first: not in the file, or different from it.
    let mut attach = Vec::new();
    for o in observed.vifs_of(og.domid) {
        let want = g.vifs.iter().find(|v| v.devid == o.devid);
        let why = match want {
            None => Some(format!("vif {} of {} is not in the file", o.devid, g.name)),
            Some(v) if fresh.contains(&v.backend.as_str()) => {
                Some(format!("its backend {} will be created again", v.backend))
            }
            Some(v) => vif_mismatch(v, backend_id(observed, &v.backend), o),
        };
        if let Some(why) = why {
            out.push(Action::new(
                ActionKind::DetachVif {
                    guest: name.clone(),
                    devid: o.devid,
                },
                why.clone(),
            ));
            if let Some(v) = want {
                attach.push((v.devid, why));
            }
        }
    }
    for v in &g.vifs {
        if attach.iter().any(|(d, _)| *d == v.devid) {
            continue;
        }
        let why = match observed.vif(og.domid, v.devid) {
            None => Some(format!("vif {} of {} is absent", v.devid, g.name)),
            Some(o) if !vif_is_up(o) => Some(format!(
                "vif {} is not connected (backend {}, frontend {}, hotplug-status {})",
                v.devid,
                o.state_backend.map_or("absent", |s| s.name()),
                o.state_frontend.map_or("absent", |s| s.name()),
                o.hotplug_status.as_deref().unwrap_or("absent"),
            )),
            Some(_) => None,
        };
        if let Some(why) = why {
            attach.push((v.devid, why));
        }
    }
    attach.sort_by_key(|(d, _)| *d);
    for (devid, why) in attach {
        out.push(Action::new(
            ActionKind::AttachVif {
                guest: name.clone(),
                devid,
            },
            why,
        ));
    }
}

/// The actions that remove what `topo` describes from `observed`: vifs
/// detached, guests then driver domains destroyed, NICs released.
pub fn diff_destroy(topo: &Topology, observed: &Observed) -> Vec<Action> {
    let mut out = Vec::new();
    for g in topo.guests.iter().rev() {
        let Some(og) = observed.domain(&g.name) else {
            continue;
        };
        for o in observed.vifs_of(og.domid) {
            out.push(Action::new(
                ActionKind::DetachVif {
                    guest: g.name.clone(),
                    devid: o.devid,
                },
                format!("vif {} of {} exists", o.devid, g.name),
            ));
        }
        out.push(Action::new(
            ActionKind::DestroyDomain {
                domain: g.name.clone(),
            },
            format!("{} is running as domain {}", g.name, og.domid),
        ));
    }
    for dd in topo.driver_domains.iter().rev() {
        if let Some(od) = observed.domain(&dd.name) {
            out.push(Action::new(
                ActionKind::DestroyDomain {
                    domain: dd.name.clone(),
                },
                format!("{} is running as domain {}", dd.name, od.domid),
            ));
        }
        for bdf in &dd.nics {
            if observed.nic(*bdf).and_then(|n| n.driver.as_deref()) == Some(PCIBACK) {
                out.push(Action::new(
                    ActionKind::ReleaseNic { bdf: *bdf },
                    format!("{bdf} is on pciback"),
                ));
            }
        }
    }
    out
}
