//! `verify`: every step of the driver-domain setup, for every domain and
//! device of the file, checked on the host as it is, PASS/FAIL with the
//! evidence seen (SPEC.md §3): NICs on pciback, passed through and visible,
//! agents ready, bridges with their uplinks, every vif Connected on both
//! ends with `hotplug-status = connected` and a port of its bridge, and
//! traffic where the host can send it ([`Host::probe`]).

use std::net::IpAddr;

use futures::StreamExt;
use serde::Serialize;
use xentypes::IpCidr;

use crate::error::Result;
use crate::host::{Host, ProbeOutcome, ProbeTarget};
use crate::hostfile::DOM0;
use crate::model::{Topology, Uplink, VifMode};
use crate::observe::{file_nics, observe, vif_is_up};
use crate::observed::Observed;
use crate::plan::PCIBACK;

/// Probes in flight at once.
const PROBE_PARALLEL: usize = 8;

/// Pass or fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The step is done.
    Pass,
    /// It is not.
    Fail,
}

/// One checked step. Its JSON form starts with a stable `id`,
/// `<check>/<target>` (`vif-connected/web/0`).
#[derive(Debug, Clone)]
pub struct Check {
    /// What is checked (`nic-pciback`, `vif-connected`, `ping`, ...).
    pub check: String,
    /// On what (`0000:03:00.0`, `web/0`, `web -> db`).
    pub target: String,
    /// Pass or fail.
    pub status: Status,
    /// The evidence (what was seen).
    pub detail: String,
}

impl Check {
    /// The stable id: `<check>/<target>`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.check, self.target)
    }
}

impl Serialize for Check {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Check", 5)?;
        st.serialize_field("id", &self.id())?;
        st.serialize_field("check", &self.check)?;
        st.serialize_field("target", &self.target)?;
        st.serialize_field("status", &self.status)?;
        st.serialize_field("detail", &self.detail)?;
        st.end()
    }
}

/// Every check, with counts.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// The checks, in order.
    pub checks: Vec<Check>,
    /// How many passed.
    pub passed: usize,
    /// How many failed.
    pub failed: usize,
    /// What was not checked, and why (e.g. no traffic on a real host).
    pub notes: Vec<String>,
    /// The observation the checks were made on.
    #[serde(skip)]
    pub observed: Observed,
}

impl VerifyReport {
    /// True when every check passed.
    pub fn ok(&self) -> bool {
        self.failed == 0
    }
}

struct Out<'a> {
    checks: Vec<Check>,
    report: &'a mut (dyn FnMut(&Check) + Send),
}

impl Out<'_> {
    fn push(
        &mut self,
        check: &str,
        target: impl Into<String>,
        ok: bool,
        detail: impl Into<String>,
    ) {
        let c = Check {
            check: check.to_string(),
            target: target.into(),
            status: if ok { Status::Pass } else { Status::Fail },
            detail: detail.into(),
        };
        (self.report)(&c);
        self.checks.push(c);
    }
}

/// Check the host against `topo`; `report` sees each check as it is made.
pub async fn verify<H: Host>(
    host: &H,
    topo: &Topology,
    report: &mut (dyn FnMut(&Check) + Send),
) -> Result<VerifyReport> {
    let obs = observe(host, &file_nics(topo)).await?;
    let mut out = Out {
        checks: Vec::new(),
        report,
    };
    let mut notes = Vec::new();
    structure(topo, &obs, &mut out);
    traffic(host, topo, &obs, &mut out, &mut notes).await?;
    let failed = out
        .checks
        .iter()
        .filter(|c| c.status == Status::Fail)
        .count();
    Ok(VerifyReport {
        passed: out.checks.len() - failed,
        failed,
        checks: out.checks,
        notes,
        observed: obs,
    })
}

fn structure(topo: &Topology, obs: &Observed, out: &mut Out<'_>) {
    for dd in &topo.driver_domains {
        let od = obs.domain(&dd.name);
        match od {
            Some(d) => out.push(
                "domain-running",
                &dd.name,
                d.driver_domain,
                if d.driver_domain {
                    format!("domain {}, driver_domain = 1", d.domid)
                } else {
                    format!("domain {} runs without driver_domain = 1", d.domid)
                },
            ),
            None => out.push("domain-running", &dd.name, false, "not running"),
        }
        for bdf in &dd.nics {
            let n = obs.nic(*bdf);
            let driver = n.and_then(|n| n.driver.clone());
            let extra = n
                .and_then(|n| n.detail.clone())
                .map(|d| format!("; {d}"))
                .unwrap_or_default();
            out.push(
                "nic-pciback",
                bdf.to_string(),
                driver.as_deref() == Some(PCIBACK),
                format!("driver {}{extra}", driver.as_deref().unwrap_or("none")),
            );
            let to = n.and_then(|n| n.assigned_to);
            let want = od.map(|d| d.domid);
            out.push(
                "nic-passed-through",
                bdf.to_string(),
                to.is_some() && to == want,
                match to {
                    Some(d) => format!(
                        "pci backend of domain {d} ({})",
                        obs.domain_by_id(d).map_or("?", |x| x.name.as_str())
                    ),
                    None => "in no domain's pci backend".to_string(),
                },
            );
            let vis = n.and_then(|n| n.visible_in_domain);
            out.push(
                "nic-visible",
                bdf.to_string(),
                vis == Some(true),
                match vis {
                    Some(true) => format!("seen in {}", dd.name),
                    Some(false) => format!("not seen in {}", dd.name),
                    None => "this host cannot tell".to_string(),
                },
            );
        }
        let Some(od) = od else { continue };
        match &od.agent {
            Some(a) => out.push(
                "agent-ready",
                &dd.name,
                a.ready,
                format!(
                    "drvdom-agent {} pid {} state {}{}",
                    a.version.as_deref().unwrap_or("?"),
                    a.pid.map_or("?".to_string(), |p| p.to_string()),
                    a.state,
                    a.error
                        .as_deref()
                        .map(|e| format!("; error: {e}"))
                        .unwrap_or_default()
                ),
            ),
            None => out.push(
                "agent-ready",
                &dd.name,
                false,
                format!(
                    "nothing published under {} (is drvdom-agent running?)",
                    xenbus::agent::agent_dir(od.domid)
                ),
            ),
        }
        for b in &dd.bridges {
            let target = format!("{}/{}", dd.name, b.name);
            let Some(ob) = od.bridges.iter().find(|x| x.name == b.name) else {
                out.push("bridge", target, false, "not published by the agent");
                continue;
            };
            let mut problems = Vec::new();
            match (&b.uplink, &ob.uplink) {
                (Some(_), None) => problems.push("no uplink".to_string()),
                (Some(Uplink::Iface(want)), Some(have)) if want != have => {
                    problems.push(format!("uplink {have}, not {want}"));
                }
                (None, Some(have)) => problems.push(format!("unexpected uplink {have}")),
                _ => {}
            }
            if let (Some(want), Some(have)) = (b.mtu, ob.mtu) {
                if want != have {
                    problems.push(format!("MTU {have}, not {want}"));
                }
            }
            let ports: Vec<String> = ob
                .ports
                .iter()
                .map(|p| {
                    let who = p
                        .vif
                        .and_then(|(d, _)| obs.domain_by_id(d))
                        .map(|d| format!("({})", d.name))
                        .unwrap_or_default();
                    format!("{}{who}", p.ifname)
                })
                .collect();
            let detail = format!(
                "uplink {}, mtu {}, ports: {}{}",
                ob.uplink.as_deref().unwrap_or("none"),
                ob.mtu.map_or("?".to_string(), |m| m.to_string()),
                if ports.is_empty() {
                    "none".to_string()
                } else {
                    ports.join(" ")
                },
                if problems.is_empty() {
                    String::new()
                } else {
                    format!("; {}", problems.join("; "))
                }
            );
            out.push("bridge", target, problems.is_empty(), detail);
        }
    }
    for g in &topo.guests {
        let Some(og) = obs.domain(&g.name) else {
            out.push("domain-running", &g.name, false, "not running");
            continue;
        };
        out.push(
            "domain-running",
            &g.name,
            true,
            format!("domain {}", og.domid),
        );
        let mut backends: Vec<&str> = g
            .vifs
            .iter()
            .map(|v| v.backend.as_str())
            .filter(|b| *b != DOM0)
            .collect();
        backends.sort_unstable();
        backends.dedup();
        for b in backends {
            let Some(bd) = obs.domain(b) else { continue };
            out.push(
                "name-readable",
                format!("{}->{b}", g.name),
                og.name_readers.contains(&bd.domid),
                format!(
                    "/local/domain/{}/name readable by domain {} ({b}): {}",
                    og.domid,
                    bd.domid,
                    og.name_readers.contains(&bd.domid)
                ),
            );
        }
        for v in &g.vifs {
            let target = format!("{}/{}", g.name, v.devid);
            let Some(o) = obs.vif(og.domid, v.devid) else {
                out.push("vif-connected", target, false, "absent from xenstore");
                continue;
            };
            let up = vif_is_up(o);
            let mac_ok = o.mac == Some(v.mac);
            let mut detail = format!(
                "vif{}.{} backend {} ({}), frontend {}, hotplug-status {}, mac {}",
                og.domid,
                v.devid,
                o.state_backend.map_or("absent", |s| s.name()),
                obs.domain_by_id(o.backend)
                    .map_or("?".to_string(), |d| d.name.clone()),
                o.state_frontend.map_or("absent", |s| s.name()),
                o.hotplug_status.as_deref().unwrap_or("absent"),
                o.mac.map_or("none".to_string(), |m| m.to_string()),
            );
            if !mac_ok {
                detail.push_str(&format!(" (file: {})", v.mac));
            }
            if let Some(e) = &o.hotplug_error {
                detail.push_str(&format!("; hotplug-error: {e}"));
            }
            out.push("vif-connected", target.clone(), up && mac_ok, detail);
            if v.mode != VifMode::Bridge || v.backend == DOM0 {
                continue;
            }
            let Some(bd) = obs.domain(&v.backend) else {
                continue;
            };
            let br = v.bridge.as_deref().unwrap_or_default();
            let port = bd
                .bridges
                .iter()
                .find(|b| b.name == br)
                .and_then(|b| b.ports.iter().find(|p| p.vif == Some((og.domid, v.devid))));
            match port {
                Some(p) => out.push(
                    "vif-on-bridge",
                    target,
                    p.up && p.forwarding,
                    format!(
                        "{} port of {br} in {} (up {}, forwarding {})",
                        p.ifname, v.backend, p.up, p.forwarding
                    ),
                ),
                None => out.push(
                    "vif-on-bridge",
                    target,
                    false,
                    format!(
                        "no port for vif{}.{} on {br} in {}",
                        og.domid, v.devid, v.backend
                    ),
                ),
            }
        }
    }
}

/// A probe to run: (check, target, from, to).
type Probe = (&'static str, String, String, ProbeTarget);

async fn traffic<H: Host>(
    host: &H,
    topo: &Topology,
    obs: &Observed,
    out: &mut Out<'_>,
    notes: &mut Vec<String>,
) -> Result<()> {
    let used: Vec<IpAddr> = topo
        .guests
        .iter()
        .flat_map(|g| g.vifs.iter().flat_map(|v| v.ip.iter().map(|c| c.addr())))
        .collect();
    let mut probes: Vec<Probe> = Vec::new();
    for dd in &topo.driver_domains {
        for b in &dd.bridges {
            // Guests on this bridge with an address, in file order.
            let members: Vec<(&str, IpCidr)> = topo
                .guests
                .iter()
                .filter(|g| obs.domain(&g.name).is_some())
                .flat_map(|g| {
                    g.vifs
                        .iter()
                        .filter(|v| {
                            v.backend == dd.name
                                && v.mode == VifMode::Bridge
                                && v.bridge.as_deref() == Some(b.name.as_str())
                        })
                        .filter_map(|v| v.ip.first().map(|ip| (g.name.as_str(), *ip)))
                })
                .collect();
            for (i, (a, _)) in members.iter().enumerate() {
                for (bn, bip) in members.iter().skip(i + 1) {
                    if a != bn {
                        probes.push((
                            "ping",
                            format!("{a} -> {bn}"),
                            a.to_string(),
                            ProbeTarget::Addr(bip.addr()),
                        ));
                    }
                }
            }
            if let Some(Uplink::Nic(nic)) = &b.uplink {
                for (a, ip) in &members {
                    if let Some(addr) = outside_addr(ip, &used) {
                        probes.push((
                            "ping-outside",
                            format!("{a} -> outside via {}/{}", dd.name, b.name),
                            a.to_string(),
                            ProbeTarget::Outside { nic: *nic, addr },
                        ));
                    }
                }
            }
        }
    }
    if probes.is_empty() {
        return Ok(());
    }
    // One probe first: a host that cannot send says so once.
    let first = probes.remove(0);
    let r = host.probe(&first.2, &first.3).await?;
    if r == ProbeOutcome::Unsupported {
        notes.push(format!(
            "traffic not checked: this host cannot send from inside a guest ({} probes skipped)",
            probes.len() + 1
        ));
        return Ok(());
    }
    push_probe(out, &first, r);
    let results: Vec<(Probe, Result<ProbeOutcome>)> = futures::stream::iter(probes)
        .map(|p| async move {
            let r = host.probe(&p.2, &p.3).await;
            (p, r)
        })
        .buffered(PROBE_PARALLEL)
        .collect()
        .await;
    for (p, r) in results {
        // A probe that got no answer in the parallel pass is tried once
        // more on its own before it counts as a failure: concurrent first
        // packets (ARP, a just-forwarding port) can lose the race, a real
        // break does not answer twice.
        let r = match r {
            Ok(ProbeOutcome::NoAnswer(_)) | Err(_) => host.probe(&p.2, &p.3).await,
            other => other,
        };
        match r {
            Ok(r) => push_probe(out, &p, r),
            Err(e) => out.push(p.0, p.1.clone(), false, crate::apply::error_chain(&e)),
        }
    }
    Ok(())
}

fn push_probe(out: &mut Out<'_>, p: &Probe, r: ProbeOutcome) {
    let to = match &p.3 {
        ProbeTarget::Addr(a) => a.to_string(),
        ProbeTarget::Outside { addr, nic } => format!("{} beyond {nic}", addr.addr()),
    };
    match r {
        ProbeOutcome::Answered(d) => out.push(p.0, p.1.clone(), true, format!("{to}: {d}")),
        ProbeOutcome::NoAnswer(d) => out.push(p.0, p.1.clone(), false, format!("{to}: {d}")),
        ProbeOutcome::Unsupported => {
            out.push(p.0, p.1.clone(), false, format!("{to}: cannot probe"));
        }
    }
}

/// An address for "the outside" in `ip`'s subnet that no vif of the file
/// uses: the highest host address, going down. `None` for /31, /32 and
/// IPv6 prefixes longer than /126.
pub fn outside_addr(ip: &IpCidr, used: &[IpAddr]) -> Option<IpCidr> {
    match ip.addr() {
        IpAddr::V4(a) => {
            let p = u32::from(ip.prefix());
            if p > 30 {
                return None;
            }
            let mask = u32::MAX.checked_shl(32 - p).unwrap_or(0);
            let net = u32::from(a) & mask;
            let bcast = net | !mask;
            (1..=64u32)
                .filter_map(|k| bcast.checked_sub(k))
                .take_while(|c| *c > net)
                .map(|c| IpAddr::V4(c.into()))
                .find(|c| !used.contains(c))
                .and_then(|c| IpCidr::new(c, ip.prefix()).ok())
        }
        IpAddr::V6(a) => {
            let p = u32::from(ip.prefix());
            if p > 126 {
                return None;
            }
            let mask = u128::MAX.checked_shl(128 - p).unwrap_or(0);
            let net = u128::from(a) & mask;
            let last = net | !mask;
            (1..=64u128)
                .filter_map(|k| last.checked_sub(k))
                .take_while(|c| *c > net)
                .map(|c| IpAddr::V6(c.into()))
                .find(|c| !used.contains(c))
                .and_then(|c| IpCidr::new(c, ip.prefix()).ok())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_address_avoids_used_ones() {
        let ip: IpCidr = "192.0.2.10/24".parse().unwrap();
        assert_eq!(
            outside_addr(&ip, &[]).unwrap().to_string(),
            "192.0.2.254/24"
        );
        let used = ["192.0.2.254".parse().unwrap()];
        assert_eq!(
            outside_addr(&ip, &used).unwrap().to_string(),
            "192.0.2.253/24"
        );
        assert!(outside_addr(&"10.0.0.1/32".parse().unwrap(), &[]).is_none());
        assert_eq!(
            outside_addr(&"10.0.0.1/30".parse().unwrap(), &[])
                .unwrap()
                .to_string(),
            "10.0.0.2/30"
        );
        assert_eq!(
            outside_addr(&"2001:db8::10/64".parse().unwrap(), &[])
                .unwrap()
                .to_string(),
            "2001:db8::ffff:ffff:ffff:fffe/64"
        );
    }
}
