//! The checks across entries of a host file (SPEC.md §2) and the defaults
//! that depend on other entries (a vif's bridge). Each problem is a
//! diagnostic at the offending value.

use std::collections::HashMap;
use std::net::IpAddr;

use xentypes::{Bdf, MacAddr};

use crate::hostfile::{Cx, DOM0, Spans};
use crate::model::{Topology, Uplink, VifMode};

fn line_of(src_line: usize) -> String {
    format!("line {src_line}")
}

/// Run every check; fill each bridge-mode vif's default bridge.
pub(crate) fn check(topo: &Topology, spans: &Spans, cx: &mut Cx<'_>) {
    names(topo, spans, cx);
    nics(topo, spans, cx);
    vifs(topo, spans, cx);
}

/// A resolved copy: every bridge-mode vif gets its backend's first bridge
/// when it names none (dom0: libxl's default).
pub(crate) fn resolve_bridges(topo: &mut Topology) {
    let firsts: HashMap<String, Option<String>> = topo
        .driver_domains
        .iter()
        .map(|d| (d.name.clone(), d.bridges.first().map(|b| b.name.clone())))
        .collect();
    for g in &mut topo.guests {
        for v in &mut g.vifs {
            if v.mode == VifMode::Route || v.bridge.is_some() {
                continue;
            }
            v.bridge = if v.backend == DOM0 {
                Some(xenbus::DEFAULT_BRIDGE.to_string())
            } else {
                firsts.get(&v.backend).cloned().flatten()
            };
        }
    }
}

fn names(topo: &Topology, spans: &Spans, cx: &mut Cx<'_>) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let all = topo
        .driver_domains
        .iter()
        .map(|d| d.name.as_str())
        .zip(spans.dd_name.iter())
        .chain(
            topo.guests
                .iter()
                .map(|g| g.name.as_str())
                .zip(spans.guest_name.iter()),
        );
    for (name, span) in all {
        if name.is_empty() {
            continue;
        }
        if let Some(first) = seen.get(name) {
            cx.error(
                span.clone(),
                "TOPO-DUPLICATE-NAME",
                format!(
                    "domain name {name:?} is used twice (first at {})",
                    line_of(*first)
                ),
            );
        } else {
            seen.insert(name, cx_line(cx, span.start));
        }
    }
}

fn cx_line(cx: &Cx<'_>, pos: usize) -> usize {
    cx.line_of(pos)
}

fn nics(topo: &Topology, spans: &Spans, cx: &mut Cx<'_>) {
    let mut owner: HashMap<Bdf, (&str, usize)> = HashMap::new();
    for (i, dd) in topo.driver_domains.iter().enumerate() {
        for (bdf, span) in dd.nics.iter().zip(&spans.dd_nics[i]) {
            match owner.get(bdf) {
                Some((o, line)) if *o == dd.name => cx.error(
                    span.clone(),
                    "TOPO-NIC-SHARED",
                    format!(
                        "NIC {bdf} is listed twice in {:?} (first at line {line})",
                        dd.name
                    ),
                ),
                Some((o, line)) => cx.error(
                    span.clone(),
                    "TOPO-NIC-SHARED",
                    format!(
                        "NIC {bdf} is already given to driver domain {o:?} (line {line}); \
                         a NIC can be passed through to one domain only"
                    ),
                ),
                None => {
                    owner.insert(*bdf, (&dd.name, cx_line(cx, span.start)));
                }
            }
        }
        let mut bridge_names: HashMap<&str, usize> = HashMap::new();
        let mut uplinked: HashMap<Bdf, &str> = HashMap::new();
        for (b, (name_span, up_span)) in dd.bridges.iter().zip(&spans.bridges[i]) {
            if !b.name.is_empty() {
                if let Some(line) = bridge_names.get(b.name.as_str()) {
                    cx.error(
                        name_span.clone(),
                        "TOPO-DUPLICATE-BRIDGE",
                        format!(
                            "bridge {:?} is defined twice in {:?} (first at line {line})",
                            b.name, dd.name
                        ),
                    );
                } else {
                    bridge_names.insert(&b.name, cx_line(cx, name_span.start));
                }
            }
            let (Some(Uplink::Nic(bdf)), Some(us)) = (&b.uplink, up_span) else {
                continue;
            };
            if !dd.nics.contains(bdf) {
                let known = if dd.nics.is_empty() {
                    "it has none".to_string()
                } else {
                    dd.nics
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                cx.error(
                    us.clone(),
                    "TOPO-BAD-UPLINK",
                    format!(
                        "uplink {bdf} is not one of {:?}'s `nics` ({known})",
                        dd.name
                    ),
                );
            }
            if let Some(other) = uplinked.get(bdf) {
                cx.error(
                    us.clone(),
                    "TOPO-UPLINK-SHARED",
                    format!("NIC {bdf} is already the uplink of bridge {other:?}"),
                );
            } else {
                uplinked.insert(*bdf, &b.name);
            }
        }
    }
}

fn vifs(topo: &Topology, spans: &Spans, cx: &mut Cx<'_>) {
    let dds: HashMap<&str, &crate::model::DriverDomain> = topo
        .driver_domains
        .iter()
        .map(|d| (d.name.as_str(), d))
        .collect();
    let known_backends = || {
        let mut v: Vec<&str> = topo
            .driver_domains
            .iter()
            .map(|d| d.name.as_str())
            .collect();
        v.push(DOM0);
        v.join(", ")
    };
    let mut macs: HashMap<MacAddr, String> = HashMap::new();
    let mut ips: HashMap<IpAddr, String> = HashMap::new();
    for (gi, g) in topo.guests.iter().enumerate() {
        for (vi, v) in g.vifs.iter().enumerate() {
            let sp = &spans.vifs[gi][vi];
            let who = format!("{}/{}", g.name, v.devid);
            // backend
            let dd = dds.get(v.backend.as_str()).copied();
            if !v.backend.is_empty() && dd.is_none() && v.backend != DOM0 {
                cx.error(
                    sp.backend.clone(),
                    "TOPO-UNKNOWN-BACKEND",
                    format!(
                        "backend {:?} names no driver domain (known: {})",
                        v.backend,
                        known_backends()
                    ),
                );
            }
            if v.backend == g.name {
                cx.error(
                    sp.backend.clone(),
                    "TOPO-UNKNOWN-BACKEND",
                    format!("guest {:?} cannot be its own backend", g.name),
                );
            }
            // bridge / mode
            match v.mode {
                VifMode::Route => {
                    if let Some(bs) = &sp.bridge {
                        cx.error(
                            bs.clone(),
                            "TOPO-ROUTE-BRIDGE",
                            "a vif with mode = \"route\" is on no bridge; remove `bridge`",
                        );
                    }
                    if v.ip.is_empty() {
                        cx.error(
                            sp.mode.clone().unwrap_or(sp.table.clone()),
                            "TOPO-ROUTE-NEEDS-IP",
                            "mode = \"route\" needs `ip` (the routes to add)",
                        );
                    }
                }
                VifMode::Bridge => {
                    if let Some(dd) = dd {
                        match (&v.bridge, &sp.bridge) {
                            (Some(b), Some(bs)) => {
                                if !dd.bridges.iter().any(|x| &x.name == b) {
                                    let have: Vec<&str> =
                                        dd.bridges.iter().map(|x| x.name.as_str()).collect();
                                    cx.error(
                                        bs.clone(),
                                        "TOPO-UNKNOWN-BRIDGE",
                                        format!(
                                            "driver domain {:?} has no bridge {b:?} (its bridges: {})",
                                            dd.name,
                                            if have.is_empty() {
                                                "none".to_string()
                                            } else {
                                                have.join(", ")
                                            }
                                        ),
                                    );
                                }
                            }
                            _ => {
                                if dd.bridges.is_empty() {
                                    cx.error(
                                        sp.backend.clone(),
                                        "TOPO-NO-BRIDGE",
                                        format!(
                                            "driver domain {:?} has no bridge for this vif; add a \
                                             [[driver_domain.bridge]] to it",
                                            dd.name
                                        ),
                                    );
                                }
                            }
                        }
                    }
                }
            }
            // MAC
            let mac_span = sp.mac.clone().unwrap_or(sp.table.clone());
            let derived = if sp.mac.is_none() { " (derived)" } else { "" };
            if sp.mac.is_some() && v.mac != MacAddr::ZERO {
                if v.mac.is_multicast() {
                    cx.error(
                        mac_span.clone(),
                        "TOPO-MULTICAST-MAC",
                        format!(
                            "MAC {} is a multicast address; a NIC needs a unicast one",
                            v.mac
                        ),
                    );
                } else if v.mac.is_zero() {
                    cx.error(
                        mac_span.clone(),
                        "TOPO-BAD-MAC",
                        "MAC 00:00:00:00:00:00 is not usable",
                    );
                } else if !v.mac.is_xen_oui() {
                    cx.warning(
                        mac_span.clone(),
                        "TOPO-FOREIGN-MAC",
                        format!(
                            "MAC {} is outside the Xen OUI 00:16:3e; make sure no other host uses it",
                            v.mac
                        ),
                    );
                }
            }
            if sp.mac.is_none() || v.mac != MacAddr::ZERO {
                if let Some(other) = macs.get(&v.mac) {
                    let hint = if sp.mac.is_none() {
                        "; set an explicit `mac` on one of them"
                    } else {
                        ""
                    };
                    cx.error(
                        mac_span.clone(),
                        "TOPO-DUPLICATE-MAC",
                        format!(
                            "MAC {}{derived} of vif {who} is also the MAC of vif {other}{hint}",
                            v.mac
                        ),
                    );
                } else {
                    macs.insert(v.mac, format!("{who}{derived}"));
                }
            }
            // IPs
            for (ip, span) in v.ip.iter().zip(&sp.ip) {
                if let Some(other) = ips.get(&ip.addr()) {
                    cx.error(
                        span.clone(),
                        "TOPO-DUPLICATE-IP",
                        format!("address {} is also given to vif {other}", ip.addr()),
                    );
                } else {
                    ips.insert(ip.addr(), who.clone());
                }
            }
        }
    }
}
